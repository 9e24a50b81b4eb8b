"""The whole path in one call: read sessions, train one model, write every session enriched.

``fit`` is what ``nwb-lfads fit`` runs and what a notebook calls::

    from nwb_lfads.fit import fit

    result = fit(["a.nwb", "b.nwb"], "runs/ab",
                 overrides=["data.align_to=move_onset_time", "train.max_epochs=200"])
    print(result.table)

Everything the user can get wrong (sources, columns, windows, the run directory) is checked
before training starts and before anything is written. The run directory follows CONTRACT.md:
``config.yaml``, ``checkpoint/``, ``metrics.csv``, ``<stem>.lfads.nwb`` per session, plots,
plus ``summary.json`` (the end-of-fit table); ``checkpoint/`` also keeps the config and
the sessions the model knows (``sessions.json``), for ``infer`` and ``evaluate``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ._version import __version__
from .config import RunConfig
from .errors import ConfigError, RunDirError

CONFIG_FILE = "config.yaml"
SUMMARY_FILE = "summary.json"
CHECKPOINT_DIR = "checkpoint"


@dataclass
class FitResult:
    """What ``fit`` produced: the run directory, the config, the written files and the scores."""

    run_dir: Path
    config: RunConfig
    outputs: list[Path]
    summary: list[dict]
    plots: list[Path] = field(default_factory=list)
    epochs: int = 0

    @property
    def table(self) -> str:
        from .summary import format_table

        return format_table(self.summary)


def reader_options(data_cfg) -> dict:
    """``read_session`` keyword arguments from a ``DataConfig``."""
    opts = {
        "bin_size": data_cfg.bin_size,
        "align_to": data_cfg.align_to,
        "window": data_cfg.window,
        "heldout": data_cfg.heldout_units,
    }
    if data_cfg.align_to is None:
        opts.update(window_length=data_cfg.window_length, overlap=data_cfg.overlap)
    elif data_cfg.eval_trials:  # text columns (NLB's split) are only read when asked for
        opts["include_columns"] = [data_cfg.eval_trials.partition("=")[0].strip()]
    return opts


def resolve_sources(specs: Sequence, *, cache_dir=None) -> list[Path]:
    """Local paths for SOURCES (paths, quoted globs, DANDI identifiers or URLs), in order."""
    from .io.sources import expand_sources, localize

    return localize(expand_sources([str(s) for s in specs]), cache_dir=cache_dir)


def check_run_dir(run_dir: Path, resume: bool) -> None:
    """Refuse to mix runs: a new fit needs a folder without a run, ``resume`` needs one."""
    has_run = (run_dir / CONFIG_FILE).exists() or (run_dir / CHECKPOINT_DIR).exists()
    if resume and not has_run:
        raise RunDirError(
            f"{run_dir}: no run to resume here (no {CONFIG_FILE} or {CHECKPOINT_DIR}/). "
            f"Drop --resume to start a new run, or point --out at an existing run."
        )
    if not resume and has_run:
        raise RunDirError(
            f"{run_dir}: already holds a run ({CONFIG_FILE}, {CHECKPOINT_DIR}/). Pass --resume to "
            f"continue it, or choose a new --out folder."
        )
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: exists and is not a folder. Choose a folder for --out.")


def resolve_config(
    run_dir: Path, resume: bool, config: RunConfig | None, overrides: Sequence[str]
) -> RunConfig:
    """The run's configuration: saved one on resume (only training limits may change), else new."""
    if not resume:
        return (config or RunConfig()).with_overrides(list(overrides))
    saved = RunConfig.from_yaml(run_dir / CONFIG_FILE)
    cfg = (config or saved).with_overrides(list(overrides))
    changed = [
        f"{section}.{f.name}"
        for section in ("data", "model")
        for f in dataclasses.fields(getattr(saved, section))
        if getattr(getattr(saved, section), f.name) != getattr(getattr(cfg, section), f.name)
    ]
    if changed:
        raise ConfigError(
            f"{run_dir}: --resume cannot change {', '.join(changed)} (the data or model of the run). "
            f"Start a new run with a new --out instead."
        )
    return cfg


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def output_name(path: Path) -> str:
    """``session.nwb`` -> ``session.lfads.nwb``."""
    name = Path(path).name
    return (name[:-4] if name.endswith(".nwb") else name) + ".lfads.nwb"


def fit(
    sources: Sequence,
    out,
    *,
    config: RunConfig | None = None,
    overrides: Sequence[str] = (),
    resume: bool = False,
    in_place: bool = False,
    progress: bool = True,
    plots: bool = True,
    cache_dir=None,
    echo: Callable[[str], None] = print,
) -> FitResult:
    """Read ``sources``, train one LFADS model over all of them, write each session enriched.

    Args:
        sources: NWB paths, globs, DANDI identifiers or URLs (several sessions are stitched).
        out: the run directory (created).
        config: a ``RunConfig``; default the package defaults (on resume: the saved one).
        overrides: ``"SECTION.FIELD=VALUE"`` strings applied on top (``--set``).
        resume: continue the run in ``out`` (only training limits such as ``max_epochs`` may change).
        in_place: write ``processing/lfads`` into the inputs themselves (atomic replace).
        progress: show progress bars. plots: write the PNG figures.
        echo: where progress lines go.

    Returns:
        ``FitResult``; ``result.table`` is the per-session summary.

    Raises:
        NwbLfadsError subclasses for bad sources, options or run directories (nothing written);
        KeyboardInterrupt after saving a checkpoint when interrupted.
    """
    from .data import prepare_data
    from .infer import infer
    from .io.read import read_sessions
    from .train.loop import train

    run_dir = Path(out).expanduser()
    check_run_dir(run_dir, resume)
    cfg = resolve_config(run_dir, resume, config, overrides)
    paths = resolve_sources(sources, cache_dir=cache_dir)
    datasets = read_sessions(paths, **reader_options(cfg.data))
    data = prepare_data(datasets, cfg.data)
    outputs = [p if in_place else run_dir / output_name(p) for p in paths]
    if len(set(outputs)) != len(outputs):
        raise RunDirError(
            f"{run_dir}: two sessions share a file name ({', '.join(p.name for p in paths)}), so their "
            f"outputs would collide. Rename one of them."
        )

    trained = train(data, cfg, run_dir, resume=resume, progress=progress)
    results = infer(trained.params, cfg, datasets)
    summary = summarize(datasets, results, data, paths)
    metrics = trained.history[-1] if trained.history else {}
    written = []
    for path, ds, res, target in zip(paths, datasets, results, outputs):
        provenance = {
            "package": f"nwb-lfads {__version__}",
            "config": cfg.to_dict(),
            "final_metrics": metrics,
            "session_summary": _row(summary, ds),
        }
        from .io.write import write_results

        written.append(write_results(path, res, target, provenance=provenance, in_place=in_place))
    _write_text_atomic(run_dir / SUMMARY_FILE, json.dumps(summary, indent=2))
    history = read_metrics(run_dir)
    figures = make_plots(run_dir, datasets, results, history) if plots else []
    return FitResult(run_dir, cfg, written, summary, figures, epochs=len(history))


def read_metrics(run_dir: Path) -> list[dict]:
    """Rows of ``RUN_DIR/metrics.csv`` (all epochs, resumed ones included) as dicts of floats."""
    import csv

    path = Path(run_dir) / "metrics.csv"
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return [{k: _num(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def _num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return v


def _row(summary: list[dict], ds) -> dict:
    return next((r for r in summary if r["session"] == str(ds.attrs.get("session_id"))), {})


def summarize(datasets, results, data, paths) -> list[dict]:
    """One ``session_summary`` per session (validation trials from the training split)."""
    from .io.ground_truth import read_ground_truth
    from .summary import session_summary

    rows = []
    for s, (ds, res, path) in enumerate(zip(datasets, results, paths)):
        mine = data.session == s
        rows.append(
            session_summary(
                ds,
                res,
                data.valid[mine],
                read_ground_truth(path, ds),
                train_trials=data.train[mine],
            )
        )
    return rows


def make_plots(run_dir: Path, datasets, results, metrics) -> list[Path]:
    """Learning curves and, per session, rasters, PSTHs and factor trajectories."""
    from . import report

    figures = list(report.plot_learning_curves(metrics, run_dir) or [])
    many = len(datasets) > 1
    for ds, res in zip(datasets, results):
        prefix = _safe(str(ds.attrs.get("session_id"))) if many else ""
        figures += list(report.plot_session_report(ds, res, metrics, run_dir, prefix) or [])
    return figures


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:60]


def infer_run(
    run_dir,
    sources: Sequence,
    out,
    *,
    trials=None,
    in_place: bool = False,
    cache_dir=None,
    n_samples: int | None = None,
) -> list[Path]:
    """Apply the trained run in ``run_dir`` to ``sources`` and write them enriched into ``out``.

    Sources must be sessions the run was trained on (matched by session id or file name); all
    their trials are read with the run's data options (or those selected by ``trials``, a
    ``{column: value}`` dict or a list of ids), so new trials of a known session get rates too.

    Returns:
        the written ``<stem>.lfads.nwb`` paths (or the sources themselves with ``in_place``).
    """
    from .infer import infer
    from .io.read import read_session
    from .io.write import write_results
    from .train.checkpoint import load_run

    cfg, params, sessions = load_run(run_dir)
    paths = resolve_sources(sources, cache_dir=cache_dir)
    opts = reader_options(cfg.data)
    datasets = [read_session(p, trials=trials, **opts) for p in paths]
    results = infer(params, cfg, datasets, sessions=sessions, n_samples=n_samples)
    out = Path(out).expanduser()
    written = []
    for path, res in zip(paths, results):
        target = path if in_place else out / output_name(path)
        provenance = {
            "package": f"nwb-lfads {__version__}",
            "config": cfg.to_dict(),
            "run_dir": str(Path(run_dir).resolve()),
        }
        written.append(write_results(path, res, target, provenance=provenance, in_place=in_place))
    return written
