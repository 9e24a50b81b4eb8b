"""Run-directory figures: learning curves, rasters beside inferred rates, PSTHs, factor trajectories.

Every function draws on a ``matplotlib.figure.Figure`` rendered by the Agg canvas (no pyplot, so
no global backend is switched and notebooks keep theirs), saves a PNG atomically (a hidden
temporary file in ``out_dir``, then ``os.replace``) and returns the paths it wrote. matplotlib is
imported inside the functions, so ``import nwb_lfads.report`` is cheap.

Inputs follow docs/DESIGN.md ("Reader output", "Results"): ``ds`` from ``read_session`` (``spikes`` int counts
``(trial, time, unit)``, coords ``time`` in s from the event, optional per-trial ``condition_id``)
and ``results`` from ``infer`` (``rates`` float32 Hz ``(trial, time, unit)``, ``factors``
``(trial, time, factor)``). Learning curves are run-level: call :func:`plot_learning_curves` once
per run; :func:`plot_session_report` draws the per-session figures.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from .baselines import smooth_spikes

DPI = 110
PSTH_SIGMA_S = 0.05


def _save(fig, out_dir, name: str) -> Path:
    """Render ``fig`` to ``out_dir/name`` (PNG) atomically and return the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / name
    tmp = out_dir / f".{name}.tmp-{os.getpid()}.png"
    FigureCanvasAgg(fig)
    try:
        fig.savefig(tmp, format="png", dpi=DPI)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _name(prefix: str, stem: str) -> str:
    return f"{prefix}_{stem}.png" if prefix else f"{stem}.png"


def _session(ds) -> str:
    return str(ds.attrs.get("session_id") or Path(str(ds.attrs.get("source", "session"))).stem)


def _time_label(ds) -> str:
    align_to = ds.attrs.get("align_to")
    return f"time from {align_to} (s)" if align_to else "time from window start (s)"


# ---------------------------------------------------------------- helpers (pure)


def pca(x, n_components: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Principal components of the rows of ``x``.

    Args:
        x: float, shape [S, F] (samples, features).

    Returns:
        ``(components, mean, explained)``: float64 [k, F] orthonormal rows (k = min(n_components,
        F, S)), the feature mean [F], and the fraction of variance each explains [k].
    """
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    k = min(n_components, vt.shape[0])
    var = s**2
    explained = var[:k] / var.sum() if var.sum() > 0 else np.zeros(k)
    return vt[:k], mean, explained


def _paired(ds, results):
    """``ds`` restricted to the results' trials and units (same order)."""
    if ds.sizes["trial"] != results.sizes["trial"] or not np.array_equal(
        ds["trial"].values, results["trial"].values
    ):
        ds = ds.sel(trial=results["trial"].values)
    if not np.array_equal(ds["unit"].values, results["unit"].values):
        ds = ds.sel(unit=results["unit"].values)
    return ds


def _conditions(obj, condition: str):
    """Per-trial condition labels, or None when ``obj`` has no such coordinate."""
    if not condition or condition not in obj.coords or obj[condition].dims != ("trial",):
        return None
    return np.asarray(obj[condition].values)


# ---------------------------------------------------------------- learning curves


def _read_metrics(metrics_rows) -> list[dict]:
    if metrics_rows is None:
        return []
    if isinstance(metrics_rows, (str, os.PathLike)):
        with open(metrics_rows, newline="") as fh:
            return list(csv.DictReader(fh))
    return [dict(r) for r in metrics_rows]


def _column(rows: list[dict], key: str) -> np.ndarray:
    def num(v):
        try:
            return float(v)
        except (TypeError, ValueError):
            return np.nan

    return np.array([num(r.get(key)) for r in rows])


def _panels(keys: list[str]) -> dict[str, list[str]]:
    low = {k: k.lower() for k in keys}
    is_lr = [k for k in keys if low[k] in ("lr", "learning_rate") or low[k].endswith("_lr")]
    penalty = [
        k
        for k in keys
        if ("kl" in low[k] or "l2" in low[k])
        and k not in is_lr
        and not any(w in low[k] for w in ("weight", "scale", "ramp"))
    ]
    loss = [
        k
        for k in keys
        if any(w in low[k] for w in ("loss", "nll", "elbo", "recon")) and k not in penalty
    ]
    score = [k for k in keys if any(w in low[k] for w in ("bps", "r2")) and k not in loss + penalty]
    return {
        "loss": loss,
        "KL and L2 penalties": penalty,
        "validation scores": score,
        "learning rate": is_lr,
    }


def plot_learning_curves(metrics_rows, out_dir, *, prefix: str = "", title: str = "") -> list[Path]:
    """Losses, KL/L2 terms and learning rate against epoch, one panel each.

    Args:
        metrics_rows: one dict per epoch (keys like ``epoch``, ``train_loss``, ``valid_loss``,
            ``kl_ic``, ``l2``, ``lr``) or the path of a run's metrics file (:attr:`nwb_lfads.rundir.RunDir.metrics`).
            Train and validation versions of a quantity share a colour (solid / dashed).
        out_dir: run directory. prefix: file-name prefix. title: figure title (the run).

    Returns:
        ``[out_dir/learning_curves.png]``, or ``[]`` when there are no rows.
    """
    rows = _read_metrics(metrics_rows)
    if not rows:
        return []
    keys = [k for k in rows[0] if k not in ("epoch", "step")]
    epoch = (
        _column(rows, "epoch") if "epoch" in rows[0] else np.arange(1, len(rows) + 1, dtype=float)
    )
    panels = {name: ks for name, ks in _panels(keys).items() if ks}
    if not panels:
        return []
    fig = _figure(4.2 * len(panels), 3.6)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, ks) in zip(axes, panels.items()):
        bases = sorted({k.removeprefix("train_").removeprefix("valid_") for k in ks})
        for k in ks:
            y = _column(rows, k)
            base = k.removeprefix("train_").removeprefix("valid_")
            style = "--" if k.startswith("valid") else "-"
            ax.plot(
                epoch,
                y,
                style,
                color=f"C{bases.index(base)}",
                label=k,
                marker="." if len(rows) < 30 else None,
            )
        values = np.concatenate([_column(rows, k) for k in ks])
        finite = values[np.isfinite(values)]
        if (
            finite.size
            and finite.min() > 0
            and (name == "learning rate" or finite.max() / finite.min() > 20)
        ):
            ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.set_title(
            f"{name} (train solid, validation dashed)" if name == "loss" else name,
            fontsize="medium",
        )
        ax.legend(fontsize="small")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{title + ': ' if title else ''}learning curves ({len(rows)} epochs)")
    return [_save(fig, out_dir, _name(prefix, "learning_curves"))]


# ---------------------------------------------------------------- per-session figures


def plot_rasters(ds, results, out_dir, n_trials: int = 4, *, prefix: str = "") -> list[Path]:
    """For a few trials, the spike raster beside the inferred rates (heat map), same unit order.

    Args:
        ds: reader Dataset (``spikes`` int ``(trial, time, unit)``).
        results: results Dataset (``rates`` Hz ``(trial, time, unit)``).
        n_trials: trials shown, spread evenly over the session.

    Returns:
        ``[out_dir/<prefix>_rasters.png]``.
    """
    ds = _paired(ds, results)
    picks = np.unique(
        np.linspace(0, results.sizes["trial"] - 1, min(n_trials, results.sizes["trial"])).astype(
            int
        )
    )
    rates = np.asarray(results["rates"].values[picks], dtype=np.float64)  # [n, T, N]
    spikes = np.asarray(ds["spikes"].values[picks])
    order = np.argsort(
        -np.nanmean(results["rates"].values, axis=(0, 1)), kind="stable"
    )  # busiest units on top
    time = np.asarray(results["time"].values, dtype=float)
    half = float(ds.attrs.get("bin_size", time[1] - time[0] if time.size > 1 else 0.01)) / 2
    extent = (time[0] - half, time[-1] + half, len(order) - 0.5, -0.5)
    vmax = float(np.nanpercentile(rates, 99)) or 1.0
    fig = _figure(10.0, 2.4 * len(picks) + 0.6)
    axes = fig.subplots(len(picks), 2, squeeze=False, sharex=True)
    for row, i in enumerate(picks):
        trial_id = results["trial"].values[i]
        counts = spikes[row][:, order]  # [T, N]
        t_idx, u_idx = np.nonzero(counts)
        ax = axes[row, 0]
        ax.scatter(
            time[t_idx],
            u_idx,
            s=4 + 4 * (counts[t_idx, u_idx] - 1),
            marker="|",
            color="k",
            linewidths=0.8,
        )
        ax.set_ylim(len(order) - 0.5, -0.5)
        ax.set_ylabel("unit rank (mean rate)")
        ax.set_title(f"trial {trial_id}: spikes ({int(counts.sum())})", fontsize="medium")
        im = axes[row, 1].imshow(
            rates[row][:, order].T,
            aspect="auto",
            extent=extent,
            cmap="magma",
            vmin=0,
            vmax=vmax,
            interpolation="nearest",
        )
        axes[row, 1].set_title(f"trial {trial_id}: LFADS inferred rates", fontsize="medium")
        fig.colorbar(im, ax=axes[row, 1], label="rate (Hz)")
    for ax in axes[-1]:
        ax.set_xlabel(_time_label(ds))
    fig.suptitle(f"{_session(ds)}: observed spikes and inferred rates")
    return [_save(fig, out_dir, _name(prefix, "rasters"))]


def plot_psths(
    ds,
    results,
    out_dir,
    condition: str = "condition_id",
    *,
    n_units: int = 6,
    n_conditions: int = 6,
    sigma_s: float = PSTH_SIGMA_S,
    prefix: str = "",
) -> list[Path]:
    """Condition-averaged inferred rates (solid) against Gaussian-smoothed observed PSTHs (dashed).

    Shows the ``n_units`` units with the highest observed rate and the ``n_conditions``
    conditions with the most trials. Skipped (returns ``[]``) when the data have no per-trial
    ``condition`` coordinate.

    Returns:
        ``[out_dir/<prefix>_psths.png]`` or ``[]``.
    """
    ds = _paired(ds, results)
    labels = _conditions(ds, condition)
    if labels is None:
        labels = _conditions(results, condition)
    if labels is None:
        return []
    valid = np.array([not (isinstance(v, float) and np.isnan(v)) for v in labels])
    names, counts = np.unique(labels[valid], return_counts=True)
    conds = names[np.argsort(-counts, kind="stable")][:n_conditions]
    bin_size = float(ds.attrs.get("bin_size", 0.01))
    spikes = np.asarray(ds["spikes"].values, dtype=np.float64)
    rates = np.asarray(results["rates"].values, dtype=np.float64)
    units = np.argsort(-spikes.mean(axis=(0, 1)), kind="stable")[:n_units]
    time = np.asarray(results["time"].values, dtype=float)
    n_col = min(3, len(units))
    n_row = int(np.ceil(len(units) / n_col))
    fig = _figure(4.0 * n_col, 3.0 * n_row + 0.6)
    axes = fig.subplots(n_row, n_col, squeeze=False, sharex=True)
    sels = [valid & (labels == cond) for cond in conds]
    observed_hz = [  # [T, N] per condition; each PSTH keeps its total count
        smooth_spikes(
            spikes[sel].mean(axis=0, keepdims=True), bin_size, sigma_s, "conserve", truncate=None
        )[0]
        / bin_size
        for sel in sels
    ]
    for ax, u in zip(axes.ravel(), units):
        for c, (cond, sel) in enumerate(zip(conds, sels)):
            observed = observed_hz[c][:, u]
            ax.plot(
                time, rates[sel, :, u].mean(axis=0), "-", color=f"C{c}", label=f"{condition} {cond}"
            )
            ax.plot(time, observed, "--", color=f"C{c}", alpha=0.8)
        ax.set_title(f"unit {results['unit'].values[u]}", fontsize="medium")
        ax.set_ylabel("rate (Hz)")
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(units) :]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel(_time_label(ds))
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color=f"C{c}", label=f"{condition} {cond}") for c, cond in enumerate(conds)
    ]
    handles += [
        Line2D([], [], color="k", label="LFADS inferred (mean over trials)"),
        Line2D(
            [],
            [],
            color="k",
            ls="--",
            label=f"observed, Gaussian-smoothed (σ = {sigma_s * 1e3:g} ms)",
        ),
    ]
    fig.legend(
        handles=handles, loc="outside lower center", ncol=min(len(handles), 4), fontsize="small"
    )
    fig.suptitle(f"{_session(ds)}: condition-averaged rates, LFADS vs smoothed PSTH")
    return [_save(fig, out_dir, _name(prefix, "psths"))]


def plot_factor_trajectories(
    results,
    out_dir,
    condition: str = "condition_id",
    *,
    max_trials: int = 60,
    prefix: str = "",
    title: str = "",
) -> list[Path]:
    """Factors projected on their top 3 principal components, one line per trial.

    With a per-trial ``condition`` coordinate, trials are coloured by condition and the
    condition averages drawn thick; otherwise single trials are coloured by their order.
    A circle marks each trajectory's start. Fewer than 3 factors give a 2-D plot.

    Returns:
        ``[out_dir/<prefix>_factors.png]``.
    """
    import mpl_toolkits.mplot3d  # noqa: F401  (registers the 3-D projection)
    from matplotlib import colormaps

    factors = np.asarray(results["factors"].values, dtype=np.float64)  # [B, T, F]
    n_trial, n_time, n_fac = factors.shape
    comps, mean, explained = pca(factors.reshape(-1, n_fac), 3)
    proj = (factors - mean) @ comps.T  # [B, T, k]
    k = proj.shape[-1]
    labels = _conditions(results, condition)
    fig = _figure(7.0, 6.0)
    ax = fig.add_subplot(projection="3d" if k >= 3 else None)
    shown = np.unique(np.linspace(0, n_trial - 1, min(max_trials, n_trial)).astype(int))

    def line(p, **kw):
        ax.plot(*[p[:, j] for j in range(min(k, 3))], **kw)
        ax.scatter(*[p[:1, j] for j in range(min(k, 3))], color=kw.get("color"), s=12)

    if labels is not None:
        conds = list(dict.fromkeys(labels.tolist()))
        cmap = colormaps["hsv" if len(conds) > 10 else "tab10"]
        colour = {
            c: cmap(i / max(len(conds), 1) if len(conds) > 10 else i) for i, c in enumerate(conds)
        }
        for i in shown:
            line(proj[i], color=colour[labels[i]], alpha=0.25, linewidth=0.7)
        for c in conds:
            line(proj[labels == c].mean(axis=0), color=colour[c], linewidth=2.2)
        note = f"coloured by {condition} ({len(conds)}); thick: condition means; dots: starts"
    else:
        cmap = colormaps["viridis"]
        for n, i in enumerate(shown):
            line(proj[i], color=cmap(n / max(len(shown) - 1, 1)), alpha=0.6, linewidth=0.8)
        note = "coloured by trial order (dark to light); dots: starts"
    setters = [ax.set_xlabel, ax.set_ylabel] + ([ax.set_zlabel] if k >= 3 else [])
    for j, set_label in enumerate(setters[:k]):
        set_label(f"PC{j + 1} ({100 * explained[j]:.0f}% var.)")
    session = title or str(results.attrs.get("session_id", ""))
    fig.suptitle(
        f"{session + ': ' if session else ''}LFADS factors in their top {k} PCs\n"
        f"{len(shown)} trials, {note}",
        fontsize="medium",
    )
    return [_save(fig, out_dir, _name(prefix, "factors"))]


def plot_session_report(ds, results, metrics, out_dir, prefix: str = "") -> list[Path]:
    """Every per-session figure that applies: rasters, PSTHs (with conditions), factor trajectories.

    Args:
        ds: reader Dataset; results: results Dataset of the same session.
        metrics: per-epoch metric rows (unused here: learning curves are drawn once per run by
            :func:`plot_learning_curves`); accepted so callers pass one bundle per session.
        out_dir: run directory. prefix: file-name prefix (e.g. the session id when several).

    Returns:
        the PNG paths written.
    """
    del metrics
    paths = plot_rasters(ds, results, out_dir, prefix=prefix)
    paths += plot_psths(ds, results, out_dir, prefix=prefix)
    paths += plot_factor_trajectories(results, out_dir, prefix=prefix, title=_session(ds))
    return paths
