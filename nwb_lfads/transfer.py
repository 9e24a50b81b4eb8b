"""A new recording day on a trained model: frozen dynamics, new read-in and read-out.

``transfer`` is what ``nwb-lfads transfer RUN_DIR NEW.nwb... --out DIR`` runs::

    from nwb_lfads.transfer import transfer

    result = transfer("runs/day1", ["day2.nwb"], "runs/day2", overrides=["train.max_minutes=2"])

The trained run's encoders, controller, generator, priors and factor map are copied in and
frozen (the optimizer's stateless freeze mask, :func:`nwb_lfads.train.step.trainable_mask`);
each new session gets its own read-in (its units -> the encoders' input, of the width the
trained encoders take) and read-out (the frozen factors -> its units), and only those train,
with fit's limits and seed (``train.*``). The new sessions are read with the run's data
settings and written enriched as ``fit`` writes them (:func:`nwb_lfads.fit.write_sessions`).
``DIR`` is a normal run directory over the new sessions (``infer`` and ``evaluate`` work on
it); ``DIR/transferred_from.json`` and every written file's provenance name the source run
(its path and the SHA-256 of its config and of its parameters file).

Read-in start (``--set model.readin_init=...``; ``transferred_from.json`` records which as
``readin_start``): by default ``aligned`` (:func:`aligned_readin`) when every new session
shares conditions (``condition_id``) with the trained sessions and those can be read again:
the new session's condition averages regressed onto what the trained encoders received for the
same conditions; else random. ``pcr``: principal-component regression on the new session's own
condition averages (:func:`nwb_lfads.stitching.readin_init_from_data`); ``random``: random.
The read-out's weights start random and its bias at each unit's log mean count.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .config import ReadinMethod, RunConfig
from .errors import ConfigError, RunDirError, SessionMismatchError
from .fit import FitResult, make_plots, resolve_sources, summarize, write_sessions
from .io.read import reader_options
from .rundir import RunDir

# reading options of the command line -> the run's DataConfig field they must equal
READING_OPTIONS = {"align_to": "--align-to", "window": "--window", "bin_size": "--bin-size"}
TRAINED_PARTS = ("readin", "readout")  # module-name endings of the parts a transfer trains


def transfer(
    run_dir,
    sources: Sequence,
    out,
    *,
    overrides: Sequence[str] = (),
    reading: dict | None = None,
    progress: bool = True,
    plots: bool = True,
    cache_dir=None,
    echo: Callable[[str], None] = print,
    n_samples: int | None = None,
    push_mean: bool = False,
    write_states: bool = False,
) -> FitResult:
    """Fit read-ins and read-outs of new sessions to the frozen model of ``run_dir``.

    Args:
        run_dir: a trained run directory (``nwb-lfads fit --out``).
        sources: the new sessions (paths, globs, DANDI identifiers or URLs).
        out: the new run directory (created; must not hold a run).
        overrides: ``"train.FIELD=VALUE"`` strings (``--set``, ``--max-minutes``, ...) and
            ``model.readin_init``; data and model settings are the run's.
        reading: reading options given on the command line (``align_to``, ``window``,
            ``bin_size``; None = not given); each must equal the run's.
        progress, plots, cache_dir, echo, n_samples, push_mean, write_states: as in
            :func:`nwb_lfads.fit.fit`.

    Returns:
        ``FitResult`` of the new run directory.

    Raises:
        RunDirError: ``run_dir`` is not a trained run, or ``out`` already holds a run.
        ConfigError: a reading option differs from the run's, or an override changes data or
            model settings.
        SessionMismatchError: a new session is one the model was trained on.
    """
    from .data import prepare_data
    from .infer import infer
    from .io.read import read_sessions
    from .train.checkpoint import load_run
    from .train.loop import train

    src = RunDir(run_dir)
    src.check_trained()
    src_cfg, params, known = load_run(src.path)
    _check_reading(src, src_cfg, reading or {})
    cfg, method = _transfer_config(src, src_cfg, params, overrides)
    rd = RunDir(out)
    rd.check_for_fit(resume=False)
    paths = resolve_sources(sources, cache_dir=cache_dir)
    _check_not_known(paths, known, src)
    datasets = read_sessions(paths, **reader_options(cfg.data))
    _check_not_known(paths, known, src, datasets)
    data = prepare_data(datasets, cfg.data)
    readin_init = (
        aligned_readin(data, datasets, params, known, src_cfg) if method == "auto" else None
    )
    start = "aligned" if readin_init is not None else ("pcr" if method == "pcr" else "random")
    cfg = cfg.replace(
        model={"readin_init": ReadinMethod.PCR if start == "pcr" else ReadinMethod.RANDOM}
    )
    if start == "pcr":
        readin_init = initial_transfer_readin(data, datasets, cfg)
    frozen = {m: v for m, v in params.items() if not m.endswith(TRAINED_PARTS)}
    record = {**source_record(src, known), "readin_start": start}
    echo(f"transfer from {src.path}: read-in start {start}; encoders, controller, generator frozen")
    outputs = [rd.output(p) for p in paths]
    if len(set(outputs)) != len(outputs):
        raise RunDirError(
            f"{rd.path}: two sessions share a file name ({', '.join(p.name for p in paths)}), so "
            f"their outputs would collide. Rename one of them."
        )
    with rd.lock():
        rd.check_for_fit(resume=False)
        rd.write_transferred_from(record)
        trained = train(
            data,
            cfg,
            rd.path,
            progress=progress,
            echo=echo,
            readin_init=readin_init,
            frozen=frozen,
        )
        results = infer(
            trained.params,
            cfg,
            datasets,
            n_samples=n_samples,
            push_mean=push_mean,
            states=write_states,
        )
        summary = summarize(datasets, results, data, paths)
        metrics = trained.history[-1] if trained.history else {}
        written = write_sessions(
            paths,
            datasets,
            results,
            outputs,
            cfg,
            summary,
            metrics,
            extra={"transferred_from": record},
        )
        rd.write_summary(summary)
        history = rd.read_metrics()
        figures = make_plots(rd.path, datasets, results, history) if plots else []
    return FitResult(rd.path, cfg, written, summary, figures, epochs=len(history))


def _check_reading(src: RunDir, cfg: RunConfig, reading: dict) -> None:
    """ConfigError naming the first reading option that differs from the run's data settings."""
    for field, option in READING_OPTIONS.items():
        given = reading.get(field)
        if given is None:
            continue
        have = getattr(cfg.data, field)
        same = (
            have is not None
            and np.allclose(np.asarray(given, float), np.asarray(have, float), rtol=0, atol=1e-9)
            if field != "align_to"
            else given == have
        )
        if not same:
            shown = " ".join(map(str, given)) if isinstance(given, (list, tuple)) else given
            raise ConfigError(
                f"{option} {shown} differs from the run's data.{field}={have!r} "
                f"({src.config}); a transfer reads new sessions as the model was trained: drop "
                f"{option} or pass the run's value."
            )


def _transfer_config(src: RunDir, src_cfg: RunConfig, params: dict, overrides) -> tuple:
    """The new run's config (the source's data and model with the trained encoders' input width
    as ``model.readin_dim``, training settings overridden) and the read-in method (auto, pcr,
    random)."""
    cfg = src_cfg.with_overrides(list(overrides))
    changed = [
        f"{section}.{key}"
        for section in ("data", "model")
        for key, value in src_cfg.to_dict()[section].items()
        if cfg.to_dict()[section][key] != value and f"{section}.{key}" != "model.readin_init"
    ]
    if changed:
        raise ConfigError(
            f"transfer cannot change {', '.join(changed)}: the data and model are those of "
            f"{src.path}; only train.* settings and model.readin_init may be set."
        )
    asked = any(
        o.split("=", 1)[0].strip() in ("model.readin_init", "readin_init") for o in overrides
    )
    method = cfg.model.readin_init if asked else "auto"
    readin = next((m for m in params if m.endswith("readin")), None)
    if readin is not None:
        width = int(np.shape(params[readin]["w"])[2])  # [S, N, R]
    else:  # no read-in: the encoders took the units themselves; a read-in maps onto them
        width = int(np.shape(params[next(m for m in params if m.endswith("readout"))]["w"])[2])
    cfg = cfg.replace(
        model={"readin_dim": width, "readin_init": ReadinMethod.RANDOM},
        train={"train_readin": True},
    )
    return cfg, str(method)


def initial_transfer_readin(data, datasets, cfg: RunConfig):
    """The new sessions' starting read-in for ``cfg.model.readin_init`` (see the module
    docstring): a :class:`~nwb_lfads.model.readin.ReadInit` (read-in weights and bias
    [S, N, R], [S, R]; condition averages when every session has ``condition_id``), or None for
    the random start."""
    from .model.readin import ReadInit
    from .stitching import readin_init_from_data

    if cfg.model.readin_init != ReadinMethod.PCR:
        return None
    have_conditions = all("condition_id" in ds.coords for ds in datasets)
    conditions = (
        np.concatenate([np.asarray(ds.coords["condition_id"].values) for ds in datasets])
        if have_conditions
        else None
    )
    fitted = readin_init_from_data(data, cfg.model.readin_dim, conditions=conditions)
    return ReadInit(readin_w=fitted["readin_w"], readin_b=fitted["readin_b"])


def _check_not_known(paths, known, src: RunDir, datasets=None) -> None:
    """SessionMismatchError when a new session is one the model was trained on: the same file
    (resolved path) or, once read, the same NWB identifier."""
    trained_paths = {}
    for info in known:
        try:
            trained_paths[Path(info.source).resolve()] = info
        except (OSError, RuntimeError):
            continue
    identifiers = {info.identifier: info for info in known if info.identifier}
    for i, path in enumerate(paths):
        info = trained_paths.get(Path(path).resolve())
        if info is None and datasets is not None:
            info = identifiers.get(str(datasets[i].attrs.get("identifier") or ""))
        if info is not None:
            raise SessionMismatchError(
                f"{path}: session {info.session_id!r} is already in the model of {src.path} "
                f"(same file or NWB identifier); transfer is for new sessions: use "
                f"`nwb-lfads infer {src.path} {path} --out DIR` for it."
            )


def source_record(src: RunDir, known) -> dict:
    """What the new run records of its source: path, SHA-256 of the checkpoint's config and
    parameters file, and the source's sessions."""
    ck = src.checkpoint
    return {
        "run_dir": str(src.path.resolve()),
        "config_sha256": _sha256(ck.config),
        "params_file": ck.params_file().name,
        "params_sha256": _sha256(ck.params_file()),
        "sessions": [info.session_id for info in known],
    }


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ----------------------------------------------------------------------------- aligned start
ALIGN_RIDGE = 0.1  # ridge penalty relative to the mean per-unit sum of squares
ALIGN_SIGMA_S = 0.05  # s, Gaussian smoothing of the condition averages
MIN_SHARED_CONDITIONS = 2


def aligned_readin(data, datasets, params: dict, known, src_cfg: RunConfig):
    """A read-in start that maps each new session onto what the trained encoders saw.

    For every condition shared by a new session and the model's sessions (``condition_id``),
    the smoothed condition-averaged counts of the trained session, passed through its trained
    read-in (or as they are when the model has none: the encoders took its units), are the
    targets; the new session's smoothed condition averages are regressed onto them (ridge,
    ``ALIGN_RIDGE``; centred, so the bias carries the means). The trained sessions are read
    again from their ``source`` paths with the run's data settings.

    Args:
        data: the new sessions' ``TrainingData`` (spikes [M, T, N], ``input_mask`` [S, N]).
        datasets: the new sessions (xarray, with ``condition_id``).
        params: the trained parameters; known: the run's ``SessionInfo`` list; src_cfg: its
            config.

    Returns:
        a :class:`~nwb_lfads.model.readin.ReadInit` with ``readin_w`` [S, N, R] and
        ``readin_b`` [S, R] (float32), or None when it cannot be built: a new session without
        ``MIN_SHARED_CONDITIONS`` conditions shared with a trained session, trained sessions
        that cannot be read again, or another number of bins.
    """
    from .baselines import smooth_spikes
    from .errors import NwbLfadsError
    from .io.read import read_session
    from .model.readin import ReadInit

    if not all("condition_id" in ds.coords for ds in datasets):
        return None
    bin_size = float(data.bin_size)
    readin = next((m for m in params if m.endswith("readin")), None)
    targets = {}  # condition -> list of [T, R] targets over the trained sessions
    for s, info in enumerate(known):
        if not Path(info.source).is_file():
            continue
        try:
            ds = read_session(info.source, **reader_options(src_cfg.data))
        except (NwbLfadsError, OSError):
            continue
        if "condition_id" not in ds.coords or ds.sizes["time"] != data.n_bins:
            continue
        counts = np.asarray(ds["spikes"].values, np.float64)
        counts = counts * ~np.asarray(info.heldout, bool)  # the encoders never see held-out units
        if readin is None:
            n_in = int(np.shape(params[next(m for m in params if m.endswith("readout"))]["w"])[2])
            w, b = np.eye(counts.shape[2], n_in), np.zeros(n_in)
        else:
            w = np.asarray(params[readin]["w"][s], np.float64)[: counts.shape[2]]
            b = np.asarray(params[readin]["b"][s], np.float64)
        conds = np.asarray(ds.coords["condition_id"].values)
        for c in np.unique(conds):
            avg = counts[conds == c].mean(axis=0, keepdims=True)
            targets.setdefault(c, []).append(smooth_spikes(avg, bin_size, ALIGN_SIGMA_S)[0] @ w + b)
    if not targets:
        return None
    n_sessions, n_max = data.unit_mask.shape
    width = len(next(iter(targets.values()))[0][0])
    readin_w = np.zeros((n_sessions, n_max, width), np.float32)
    readin_b = np.zeros((n_sessions, width), np.float32)
    for j, ds in enumerate(datasets):
        rows = data.session == j
        cols = np.flatnonzero(data.input_mask[j])
        conds = np.asarray(ds.coords["condition_id"].values)
        shared = [c for c in np.unique(conds) if c in targets]
        if len(shared) < MIN_SHARED_CONDITIONS:
            return None
        spikes = data.spikes[rows][:, :, cols].astype(np.float64)
        x = np.concatenate(
            [
                smooth_spikes(
                    spikes[conds == c].mean(axis=0, keepdims=True), bin_size, ALIGN_SIGMA_S
                )[0]
                for c in shared
            ]
        )  # [C * T, n_j]
        y = np.concatenate([np.mean(targets[c], axis=0) for c in shared])  # [C * T, R]
        mx, my = x.mean(axis=0), y.mean(axis=0)
        xc = x - mx
        gram = xc.T @ xc
        lam = ALIGN_RIDGE * float(np.trace(gram)) / max(xc.shape[1], 1)
        w = np.linalg.solve(gram + max(lam, 1e-12) * np.eye(xc.shape[1]), xc.T @ (y - my))
        readin_w[j, cols] = w
        readin_b[j] = my - mx @ w
    return ReadInit(readin_w=readin_w, readin_b=readin_b)
