"""The whole path in one call: read sessions, train one model, write every session enriched.

``fit`` is what ``nwb-lfads fit`` runs and what a notebook calls::

    from nwb_lfads.fit import fit

    result = fit(["a.nwb", "b.nwb"], "runs/ab",
                 overrides=["data.align_to=move_onset_time", "train.max_epochs=200"])
    print(result.table)

Everything the user can get wrong (sources, columns, windows, the run directory) is checked
before training starts and before anything is written. What the run directory holds is
:mod:`nwb_lfads.rundir`'s to say.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ._version import __version__
from .config import RunConfig
from .errors import ConfigError, RunDirError
from .io.read import reader_options
from .rundir import RunDir


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


def resolve_sources(specs: Sequence, *, cache_dir=None) -> list[Path]:
    """Local paths for SOURCES (paths, quoted globs, DANDI identifiers or URLs), in order."""
    from .io.sources import expand_sources, localize

    return localize(expand_sources([str(s) for s in specs]), cache_dir=cache_dir)


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
    n_samples: int | None = None,
    push_mean: bool = False,
    write_states: bool = False,
) -> FitResult:
    """Read ``sources``, train one LFADS model over all of them, write each session enriched.

    Args:
        sources: NWB paths, globs, DANDI identifiers or URLs (several sessions are stitched).
        out: the run directory (created).
        config: a ``RunConfig``; default the package defaults (on resume: the saved one).
        overrides: ``"SECTION.FIELD=VALUE"`` strings applied on top (``--set``).
        resume: continue the run in ``out`` (only training limits such as ``max_epochs`` may
            change); a folder without a run yet (killed before its config was written) starts
            one with the settings given.
        in_place: write ``processing/lfads`` into the inputs themselves (atomic replace).
        progress: show progress bars. plots: write the PNG figures.
        echo: where progress lines go.
        n_samples, push_mean: how the written posterior is summarised
            (:func:`nwb_lfads.infer.infer`; recorded in the provenance).
        write_states: also write the generator and controller states.

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

    rd = RunDir(out)
    if resume and not rd.holds_run() and not (rd.path.exists() and not rd.path.is_dir()):
        echo(
            f"{rd.path}: no run here yet (a fit stopped before writing its config); starting "
            f"it with the settings given."
        )
        resume = False  # the same command with --resume continues a run killed at any moment
    rd.check_for_fit(resume)
    cfg = rd.resolve_config(resume, config, overrides)
    run_dir = rd.path
    paths = resolve_sources(sources, cache_dir=cache_dir)
    datasets = read_sessions(paths, **reader_options(cfg.data))
    data = prepare_data(datasets, cfg.data)
    outputs = [p if in_place else rd.output(p) for p in paths]
    if len(set(outputs)) != len(outputs):
        raise RunDirError(
            f"{run_dir}: two sessions share a file name ({', '.join(p.name for p in paths)}), so their "
            f"outputs would collide. Rename one of them."
        )

    with rd.lock():  # one process per run directory; released however this one ends
        rd.check_for_fit(resume)  # again, now that no other fit can start here
        trained = train(data, cfg, run_dir, resume=resume, progress=progress, echo=echo)
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
            paths, datasets, results, outputs, cfg, summary, metrics, in_place=in_place
        )
        rd.write_summary(summary)
        history = rd.read_metrics()
        figures = make_plots(run_dir, datasets, results, history) if plots else []
    return FitResult(run_dir, cfg, written, summary, figures, epochs=len(history))


def write_sessions(
    paths,
    datasets,
    results,
    outputs,
    cfg: RunConfig,
    summary,
    metrics: dict,
    *,
    in_place=False,
    extra: dict | None = None,
) -> list[Path]:
    """Write every session enriched (:func:`nwb_lfads.io.write.write_results`) to ``outputs``
    with the fit's provenance: package, config, final metrics, the session's summary row, and
    ``extra`` entries (e.g. ``transferred_from``). Returns the written paths."""
    from .io.write import write_results

    written = []
    for path, ds, res, target in zip(paths, datasets, results, outputs):
        provenance = {
            "package": f"nwb-lfads {__version__}",
            "config": cfg.to_dict(),
            "final_metrics": metrics,
            "session_summary": _row(summary, ds),
            **(extra or {}),
        }
        written.append(write_results(path, res, target, provenance=provenance, in_place=in_place))
    return written


def read_metrics(run_dir) -> list[dict]:
    """Rows of the run's metrics (all epochs, resumed ones included) as dicts of floats."""
    return RunDir(run_dir).read_metrics()


def _row(summary: list[dict], ds) -> dict:
    return next((r for r in summary if r["session"] == str(ds.attrs.get("session_id"))), {})


def summarize(datasets, results, data, paths) -> list[dict]:
    """One ``session_summary`` per session (validation trials from the training split); with
    several sessions each row also has ``shared`` (:func:`nwb_lfads.summary.shared_fraction`)."""
    from .io.ground_truth import read_ground_truth
    from .summary import session_summary, shared_fraction

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
    if len(results) > 1:
        for row, frac in zip(rows, shared_fraction([r.factors.values for r in results])):
            row["shared"] = frac
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
    external_inputs: Sequence[str] = (),
    in_place: bool = False,
    cache_dir=None,
    n_samples: int | None = None,
    push_mean: bool = False,
    write_states: bool = False,
) -> list[Path]:
    """Apply the trained run in ``run_dir`` to ``sources`` and write them enriched into ``out``.

    Sources must be sessions the run was trained on (matched by session id or file name); all
    their trials are read with the run's data options (or those selected by ``trials``, a
    ``{column: value}`` dict or a list of ids), so new trials of a known session get rates too.
    ``n_samples``, ``push_mean``, ``write_states``: as in :func:`fit`. The run's external inputs
    (``data.external_inputs``) are read from every source; ``external_inputs``, when given, must
    name the same inputs in the same order (ConfigError otherwise).

    Returns:
        the written enriched copies (:meth:`nwb_lfads.rundir.RunDir.output`; the sources
        themselves with ``in_place``).
    """
    from .infer import infer
    from .io.read import read_session
    from .io.write import write_results
    from .train.checkpoint import load_run

    cfg, params, sessions = load_run(run_dir)
    if external_inputs and tuple(external_inputs) != cfg.data.external_inputs:
        raise ConfigError(
            f"--external-input {list(external_inputs)}: the run in {run_dir} was trained with "
            f"external inputs {list(cfg.data.external_inputs)}; infer reads those, so leave the "
            f"option out or repeat them in that order."
        )
    paths = resolve_sources(sources, cache_dir=cache_dir)
    opts = reader_options(cfg.data)
    datasets = [read_session(p, trials=trials, **opts) for p in paths]
    results = infer(
        params,
        cfg,
        datasets,
        sessions=sessions,
        n_samples=n_samples,
        push_mean=push_mean,
        states=write_states,
    )
    out = Path(out).expanduser()
    written = []
    for path, res in zip(paths, results):
        target = path if in_place else RunDir(out).output(path)
        provenance = {
            "package": f"nwb-lfads {__version__}",
            "config": cfg.to_dict(),
            "run_dir": str(Path(run_dir).resolve()),
        }
        written.append(write_results(path, res, target, provenance=provenance, in_place=in_place))
    return written
