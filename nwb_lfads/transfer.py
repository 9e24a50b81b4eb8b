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

Read-in start (``model.readin_init``, default ``auto``): principal-component regression on the
new sessions' condition-averaged rates (:func:`nwb_lfads.stitching.readin_init_from_data`)
when every new session has a ``condition_id`` trial coordinate, random otherwise; ``pcr`` or
``random`` force one. The read-out's weights start random and its bias at each unit's log mean
count (the PCR read-out maps principal components, not the trained model's factors).
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
    method = resolve_transfer_readin(datasets, method)
    cfg = cfg.replace(model={"readin_init": method})  # recorded: what the start was
    readin_init = initial_transfer_readin(data, datasets, cfg)
    frozen = {m: v for m, v in params.items() if not m.endswith(TRAINED_PARTS)}
    record = source_record(src, known)
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


def resolve_transfer_readin(datasets, method: str) -> ReadinMethod:
    """``pcr`` or ``random`` for ``method`` (``auto``, ``pcr``, ``random``): ``auto`` is ``pcr``
    when every new session has a ``condition_id`` trial coordinate."""
    if method == "auto":
        have = all("condition_id" in ds.coords for ds in datasets)
        return ReadinMethod.PCR if have else ReadinMethod.RANDOM
    return ReadinMethod(method)


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
