"""Per-session end-of-fit summary: bits/spike against a smoothing baseline, R^2 against truth.

The smoothing baseline for bits/spike is *leave-bin-out* Gaussian smoothing: each bin's rate is
the kernel-weighted average of the neighbouring bins of the same trial and unit, never the bin's
own count, so (like LFADS, whose rates pass through a KL-limited bottleneck) it cannot score by
copying the spike it predicts. It is mixed with the unit's mean rate,
``(1 - alpha) * smoothed + alpha * mean``, so a spike after silent neighbours is not scored
against a zero rate; the kernel width and ``alpha`` are the best of a small grid on the
training trials, and the score is reported on the validation trials. For R^2 against the true
rates the ordinary smoothed spikes (``baselines.smoothing_rates``) are the baseline.
"""

from __future__ import annotations

import numpy as np

from .baselines import smooth_spikes, smoothing_rates
from .metrics import RATE_FLOOR, bits_per_spike, r2_per_neuron

SHARED_VARIANCE = 0.95  # of the other sessions' factor variance spanned in ``shared_fraction``
SIGMA_S = 0.05  # s, Gaussian sd of the smoothing baseline for R^2
SIGMA_GRID_S = (0.02, 0.05, 0.1)  # s, kernel widths tried for the bits/spike baseline
ALPHA_GRID = (0.02, 0.1, 0.3)  # weights of the unit's mean rate tried for it


def smoothing_bps_baseline(
    spikes: np.ndarray, train: np.ndarray, valid: np.ndarray, bin_size: float
) -> float:
    """Bits/spike on ``valid`` trials of the best leave-bin-out smoothing chosen on ``train`` trials.

    Args:
        spikes: counts [B, T, N]; train, valid: bool [B].
    """

    def rates(x, sigma, alpha, mean):
        smoothed = smooth_spikes(x, bin_size, sigma, leave_bin_out=True)
        return (1 - alpha) * smoothed + alpha * mean

    fit_on = train if train.any() and spikes[train].sum() > 0 else valid
    mean = np.maximum(spikes[fit_on].mean(axis=(0, 1)), RATE_FLOOR)
    best = max(
        ((sigma, alpha) for sigma in SIGMA_GRID_S for alpha in ALPHA_GRID),
        key=lambda p: bits_per_spike(
            np.maximum(rates(spikes[fit_on], *p, mean), RATE_FLOOR), spikes[fit_on]
        ),
    )
    return float(
        bits_per_spike(np.maximum(rates(spikes[valid], *best, mean), RATE_FLOOR), spikes[valid])
    )


def session_summary(
    ds, results, valid_trials: np.ndarray, true_rates=None, train_trials=None
) -> dict:
    """Scores of one session.

    Args:
        ds: reader dataset (``spikes`` [trial, time, unit] counts; attrs ``bin_size``).
        results: inference dataset (``rates`` Hz [trial, time, unit]).
        valid_trials: bool [trial], the validation trials (never trained on).
        train_trials: bool [trial], where the smoothing baseline picks its width (default: not valid).
        true_rates: optional DataArray of true rates in Hz [trial, time, unit].

    Returns:
        dict with ``session``, ``n_trials``, ``n_units``, ``valid_bps`` and ``smoothing_valid_bps``
        (bits/spike on validation trials, NLB's null model), and when ``true_rates`` is given
        ``r2`` and ``smoothing_r2`` (mean per-neuron R^2 over all trials).
    """
    bin_size = float(ds.attrs["bin_size"])
    spikes = ds.spikes.values
    rates = results.rates.values.astype(np.float64) * bin_size
    mask = np.asarray(valid_trials, bool)
    out = {
        "session": str(ds.attrs.get("session_id")),
        "n_trials": int(spikes.shape[0]),
        "n_units": int(spikes.shape[2]),
    }
    if "heldout" in ds.coords:
        keep = ~ds.heldout.values.astype(bool)
        spikes, rates = spikes[..., keep], rates[..., keep]
    train = ~mask if train_trials is None else np.asarray(train_trials, bool)
    if mask.any() and spikes[mask].sum() > 0:
        out["valid_bps"] = float(bits_per_spike(np.maximum(rates[mask], RATE_FLOOR), spikes[mask]))
        out["smoothing_valid_bps"] = smoothing_bps_baseline(spikes, train, mask, bin_size)
    if true_rates is not None:
        truth = true_rates.values
        ok = np.isfinite(truth).all(axis=(1, 2))
        if ok.any():
            t = truth[ok].reshape(-1, truth.shape[2])
            p = results.rates.values[ok].reshape(-1, truth.shape[2])
            s = smoothing_rates(ds.spikes.values[ok], bin_size, SIGMA_S).reshape(-1, truth.shape[2])
            out["r2"] = float(r2_per_neuron(p, t)[1])
            out["smoothing_r2"] = float(r2_per_neuron(s, t)[1])
    return out


def shared_fraction(factors: list[np.ndarray]) -> list[float]:
    """How much of each session's factor activity lies where the other sessions' activity lies.

    For session s: the other sessions' factors (all their trials and bins, pooled) are centred
    on their mean m and reduced to the fewest principal components that span
    ``SHARED_VARIANCE`` of their variance, P the projection onto them; the result is
    ``|P (X_s - m)|^2 / |X_s - m|^2`` over every trial and bin of session s, in [0, 1]. Near 1:
    the session's trials move through the part of factor space that the other sessions' trials
    visit, so the dynamics fitted to them are the ones this session uses (stitching shares
    something with it); low: its trials occupy directions only it visits.

    Args:
        factors: per session, factors [K_s, T, F] (any float unit; the same F everywhere).
    Returns:
        one fraction per session (NaN with fewer than two sessions or no variance).
    """
    flat = [np.asarray(f, np.float64).reshape(-1, np.shape(f)[-1]) for f in factors]
    out = []
    for s in range(len(flat)):
        others = [x for i, x in enumerate(flat) if i != s]
        if not others:
            out.append(float("nan"))
            continue
        pooled = np.concatenate(others)
        mean = pooled.mean(axis=0)
        _, sv, vt = np.linalg.svd(pooled - mean, full_matrices=False)
        var = sv**2
        if var.sum() <= 0:
            out.append(float("nan"))
            continue
        k = int(np.searchsorted(np.cumsum(var) / var.sum(), SHARED_VARIANCE) + 1)
        x = flat[s] - mean
        total = float(np.sum(x**2))
        inside = float(np.sum((x @ vt[:k].T) ** 2))
        out.append(inside / total if total > 0 else float("nan"))
    return out


def format_table(rows: list[dict]) -> str:
    """A plain-text table of session summaries (columns that any row has)."""
    cols = [
        ("session", "session", "{}"),
        ("n_trials", "trials", "{}"),
        ("n_units", "units", "{}"),
        ("valid_bps", "valid bits/spike", "{:.3f}"),
        ("smoothing_valid_bps", "smoothing", "{:.3f}"),
        ("shared", "shared", "{:.2f}"),
        ("r2", "R^2 vs truth", "{:.3f}"),
        ("smoothing_r2", "smoothing R^2", "{:.3f}"),
    ]
    cols = [c for c in cols if any(c[0] in r for r in rows)]
    cells = [[c[1] for c in cols]] + [
        [(c[2].format(r[c[0]]) if c[0] in r else "-") for c in cols] for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    lines = [
        "  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(row, widths)))
        for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
