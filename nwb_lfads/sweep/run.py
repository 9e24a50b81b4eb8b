"""``sweep``: AutoLFADS population-based training on Ray Tune, from sources to ``DIR/best/``.

The driver (this process) checks everything, reads the sessions once, puts them in Ray's
object store, and lets Ray Tune's :class:`~ray.tune.schedulers.PopulationBasedTraining`
schedule the members (:func:`nwb_lfads.sweep.member.train_member`). What DIR then holds is
:class:`nwb_lfads.rundir.SweepDir`'s to say: the settings ``--resume`` reuses, Ray Tune's
experiment, every member's epochs (:mod:`nwb_lfads.sweep.population`), the leaderboard, two
figures and ``best/`` (a RUN_DIR).
"""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..config import RunConfig
from ..errors import ConfigError, NwbLfadsRuntimeError, RunDirError
from ..rundir import CheckpointDir, SweepDir
from .space import SearchSpace, default_search_space, load_search_space, search_space_from_dict

KEEP_CHECKPOINTS = 3  # per member, the best by the objective (Ray always keeps the latest too)


@dataclass
class SweepResult:
    """What :func:`sweep` produced."""

    out: Path
    leaderboard: list[dict]
    best_dir: Path | None
    n_exploits: int
    interrupted: bool = False
    figures: list[Path] = field(default_factory=list)

    @property
    def table(self) -> str:
        cols = [
            ("rank", "{}"),
            ("trial_id", "{}"),
            ("epochs", "{}"),
            ("best_valid_recon_smoothed", "{:.4g}"),
            ("valid_bps", "{:.3f}"),
            ("r2", "{:.3f}"),
            ("times_copied", "{}"),
        ]
        cols = [c for c in cols if any(r.get(c[0]) is not None for r in self.leaderboard)]

        def fmt(row, key, spec):
            value = row.get(key)
            return (
                "-"
                if value is None or (isinstance(value, float) and math.isnan(value))
                else spec.format(value)
            )

        cells = [[c[0] for c in cols]] + [[fmt(r, *c) for c in cols] for r in self.leaderboard]
        widths = [max(len(line[i]) for line in cells) for i in range(len(cols))]
        return "\n".join("  ".join(v.ljust(w) for v, w in zip(line, widths)) for line in cells)


def _check_options(population, workers, max_minutes, gpus_per_trial) -> None:
    if population is not None and (
        isinstance(population, bool) or not isinstance(population, int) or population < 2
    ):
        raise ConfigError(
            f"--population {population}: population-based training needs at least 2 members (the "
            f"worst copy the best); AutoLFADS used 20. Pass --population 2 or more."
        )
    if workers is not None and (
        isinstance(workers, bool) or not isinstance(workers, int) or workers < 1
    ):
        raise ConfigError(
            f"--workers {workers}: expected a whole number >= 1 (members trained at once)."
        )
    if max_minutes is not None and not max_minutes > 0:
        raise ConfigError(f"--max-minutes {max_minutes}: expected a positive number of minutes.")
    if gpus_per_trial is not None and not gpus_per_trial >= 0:
        raise ConfigError(
            f"--gpus-per-trial {gpus_per_trial}: expected 0 or a positive fraction of a GPU."
        )


def _resolve_space(search_space) -> SearchSpace:
    if search_space is None:
        return default_search_space()
    if isinstance(search_space, SearchSpace):
        return search_space
    if isinstance(search_space, dict):
        return search_space_from_dict(search_space)
    return load_search_space(search_space)


def _settings(sources, cfg: RunConfig, space: SearchSpace, population: int) -> dict:
    return {
        "sources": [str(s) for s in sources],
        "population": population,
        "config": cfg.to_dict(),
        "search_space": space.to_dict(),
    }


def _load_settings(
    out: Path, sources, config, overrides, search_space, population
) -> tuple[RunConfig, SearchSpace, int]:
    """The saved sweep's config, space and population; refuses changes to them on resume."""
    settings = SweepDir(out).settings
    saved = yaml.safe_load(settings.read_text()) or {}
    cfg = RunConfig.from_dict(saved.get("config"), source=str(settings))
    space = search_space_from_dict(saved.get("search_space"), source=str(settings))
    changed = []
    if config is not None or overrides:
        new = (config or cfg).with_overrides(list(overrides))
        if new.to_dict() != cfg.to_dict():
            changed.append("the configuration (--config/--set and the reading/training options)")
    if search_space is not None and _resolve_space(search_space).to_dict() != space.to_dict():
        changed.append("--search-space")
    if population is not None and population != saved.get("population"):
        changed.append(f"--population (was {saved.get('population')})")
    if [str(s) for s in sources] != saved.get("sources"):
        changed.append(f"SOURCES (were {' '.join(saved.get('sources') or [])})")
    if changed:
        raise ConfigError(
            f"{out}: --resume continues the saved sweep and cannot change {'; '.join(changed)}. "
            f"Drop those options, or start a new sweep with another --out."
        )
    return cfg, space, int(saved["population"])


def _check_out(out: Path, resume: bool) -> None:
    has = SweepDir(out).holds_sweep()
    if out.exists() and not out.is_dir():
        raise RunDirError(f"{out}: exists and is not a folder. Choose a folder for --out.")
    if resume and not has:
        raise RunDirError(
            f"{out}: no sweep to resume here (no {SweepDir(out).settings.name}); drop --resume to start one."
        )
    if not resume and has:
        raise RunDirError(
            f"{out}: already holds a sweep ({SweepDir(out).settings.name}). Pass --resume to continue it, or "
            f"choose a new --out folder."
        )


def _worker_env(gpus_per_trial: float, compile_cache: Path | None) -> dict:
    """Environment of the members' processes: CPU-only JAX without GPUs; with a fraction of a
    GPU, JAX takes only that fraction of its memory instead of 75 %; a persistent compilation
    cache, so a member resumed in another process (PBT pauses members between generations)
    does not compile its unchanged step again."""
    env = {}
    if compile_cache is not None:
        env.update(
            JAX_COMPILATION_CACHE_DIR=str(compile_cache),
            JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        )
    if not gpus_per_trial:
        env["JAX_PLATFORMS"] = "cpu"
    elif gpus_per_trial < 1:
        env["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{max(0.05, 0.9 * gpus_per_trial):.3f}"
    return env


def sweep(
    sources: Sequence,
    out,
    *,
    config: RunConfig | None = None,
    overrides: Sequence[str] = (),
    search_space=None,
    population: int | None = None,
    workers: int | None = None,
    max_minutes: float | None = None,
    address: str | None = None,
    gpus_per_trial: float = 0.0,
    resume: bool = False,
    plots: bool = True,
    progress: bool = True,
    cache_dir=None,
    echo: Callable[[str], None] = print,
) -> SweepResult:
    """Population-based training of LFADS on ``sources`` (AutoLFADS), on Ray Tune.

    Args:
        sources: NWB paths, globs, DANDI identifiers or URLs (several sessions are stitched).
        out: the sweep's folder DIR (created).
        config, overrides: the base configuration, as for :func:`nwb_lfads.fit`
            (``train.max_epochs`` is each member's length).
        search_space: a :class:`SearchSpace`, a mapping or a YAML path (default: AutoLFADS's).
        population: members (>= 2; default 8). workers: CPUs of the local Ray instance, one
            member each (default: this machine's); on a cluster its resources decide.
        max_minutes: wall-time budget of the whole sweep.
        address: ``auto``, ``HOST:PORT`` or ``ray://HOST:PORT`` of an existing Ray cluster
            (default: a local Ray instance with ``workers`` CPUs).
        gpus_per_trial: GPUs per member; fractions let several members share one GPU.
        resume: continue the interrupted sweep in ``out`` (its saved settings apply).
        plots: write figures. progress: print a line per generation and per exploit.

    Returns:
        :class:`SweepResult`; ``result.table`` is the leaderboard.

    Raises:
        RayMissingError (Ray not installed), ClusterError (unreachable ``address``),
        ConfigError (population < 2, unknown hyperparameter, ...), RunDirError; all before
        anything is trained. NwbLfadsRuntimeError when every member failed.
    """
    from .cluster import check_reachable, import_ray, local_cpus, ray_session

    _check_options(population, workers, max_minutes, gpus_per_trial)
    out = Path(out).expanduser().resolve()
    _check_out(out, resume)
    if resume:
        cfg, space, population = _load_settings(
            out, sources, config, overrides, search_space, population
        )
    else:
        cfg = (config or RunConfig()).with_overrides(list(overrides))
        space = _resolve_space(search_space)
        population = population or 8
    ray, tune = import_ray()
    if address:
        check_reachable(address)  # seconds, before reading anything

    from ..data import prepare_data
    from ..fit import reader_options, resolve_sources
    from ..io.read import read_sessions

    paths = resolve_sources(sources, cache_dir=cache_dir)
    datasets = read_sessions(paths, **reader_options(cfg.data))
    data = prepare_data(datasets, cfg.data)

    n_workers = workers or (None if address else local_cpus())
    out.mkdir(parents=True, exist_ok=True)
    if not resume:
        SweepDir(out).settings.write_text(
            yaml.safe_dump(_settings(sources, cfg, space, population), sort_keys=False)
        )
    from .member import MemberBundle, train_member
    from .population import make_callbacks
    from .scheduler import GenerationalPBT, initial_draws

    say = echo if progress else None
    sd = SweepDir(out)
    env = _worker_env(gpus_per_trial, None if address else sd.jax_cache)
    with ray_session(address, workers=n_workers or 1, env=env):
        bundle = MemberBundle(data=data, cfg=cfg, space=space, token=uuid.uuid4().hex)
        trainable = tune.with_resources(
            tune.with_parameters(train_member, bundle=bundle),
            {"cpu": 1, "gpu": float(gpus_per_trial or 0)},
        )
        experiment = sd.ray
        if resume and tune.Tuner.can_restore(str(experiment)):
            tuner = tune.Tuner.restore(
                str(experiment), trainable=trainable, resume_unfinished=True, resume_errored=True
            )
        else:
            callback, stopper = make_callbacks(
                tune,
                SweepDir(out).log,
                interval=space.pbt.perturbation_interval,
                stop_patience=space.pbt.stop_patience,
                echo=say,
            )
            tuner = tune.Tuner(
                trainable,
                param_space=initial_draws(space),
                tune_config=tune.TuneConfig(
                    scheduler=GenerationalPBT.for_space(space),
                    num_samples=population,
                    reuse_actors=True,
                    time_budget_s=None if max_minutes is None else 60.0 * max_minutes,
                    trial_name_creator=_trial_name,
                    trial_dirname_creator=_trial_name,
                ),
                run_config=tune.RunConfig(
                    name=sd.ray.name,
                    storage_path=str(sd.ray.parent),
                    verbose=0,
                    stop=stopper,
                    callbacks=[callback],
                    failure_config=tune.FailureConfig(max_failures=0),
                    checkpoint_config=tune.CheckpointConfig(
                        num_to_keep=KEEP_CHECKPOINTS,
                        checkpoint_score_attribute="valid_recon_smoothed",
                        checkpoint_score_order="min",
                    ),
                ),
            )
        grid = tuner.fit()
        members = _collect(grid)
    return _finish(out, members, paths, datasets, data, space, plots, say)


def _trial_name(trial) -> str:
    return str(trial.trial_id)


@dataclass
class _Member:
    trial_id: str
    checkpoint: Path | None  # its best checkpoint (lowest objective among those Ray kept)
    best: float = math.inf  # the objective at that checkpoint
    best_epoch: int = 0
    error: str = ""
    finished: bool = True


def _collect(grid) -> list[_Member]:
    """One :class:`_Member` per trial of Ray's ``ResultGrid``."""
    from .member import OBJECTIVE

    interrupted = grid.num_terminated + grid.num_errors < len(grid)
    members = []
    for result in grid:
        member = _Member(
            Path(result.path).name, None, finished=not interrupted
        )  # dirname = trial id
        kept = [
            (c, m)
            for c, m in (result.best_checkpoints or [])
            if isinstance(m.get(OBJECTIVE), (int, float)) and math.isfinite(m[OBJECTIVE])
        ]
        if kept:
            checkpoint, metrics = min(kept, key=lambda cm: cm[1][OBJECTIVE])
            member.checkpoint, member.best = Path(checkpoint.path), float(metrics[OBJECTIVE])
            member.best_epoch = int(metrics.get("epoch", 0))
        elif result.checkpoint is not None:
            member.checkpoint = Path(result.checkpoint.path)
        if result.error is not None:
            member.error = str(result.error).strip().splitlines()[-1][:300]
        members.append(member)
    return members


def _finish(
    out: Path, members: list[_Member], paths, datasets, data, space: SearchSpace, plots: bool, say
) -> SweepResult:
    from .outputs import (
        load_checkpoint_params,
        score_member,
        write_best,
        write_leaderboard,
    )
    from .population import (
        exploits,
        history,
        lineage,
        plot_hyperparameters,
        plot_population,
        read_log,
    )

    sd = SweepDir(out)
    hist = history(read_log(sd.log))
    events = exploits(hist)
    copied = {}
    for e in events:
        copied[e["trial_id"]] = copied.get(e["trial_id"], 0) + 1
    rows, scores = [], {}
    for m in members:
        recs = hist.get(m.trial_id, [])
        last = recs[-1] if recs else {"epoch": 0, "row": {}, "hyperparameters": {}}
        row = {
            "trial_id": m.trial_id,
            "status": "error" if m.error else ("done" if m.finished else "interrupted"),
            "epochs": last["epoch"],
            "best_valid_recon_smoothed": m.best,
            "best_epoch": m.best_epoch,
            "final_valid_recon_smoothed": last["row"].get("valid_recon_smoothed"),
            "times_copied": copied.get(m.trial_id, 0),
            "error": m.error,
            "checkpoint": os.path.relpath(m.checkpoint, out) if m.checkpoint else "",
            **last["hyperparameters"],
        }
        if m.checkpoint is not None and CheckpointDir(m.checkpoint).has_state():
            row.update(_checkpoint_hyperparameters(m.checkpoint))  # those of the weights scored
            if say:
                say(f"scoring member {m.trial_id} ({m.checkpoint.name})")
            score = score_member(m.checkpoint, datasets, data, paths)
            scores[m.trial_id] = score
            for key in ("valid_bps", "smoothing_valid_bps", "r2", "smoothing_r2"):
                row[key] = score.mean(key)
        rows.append(row)
    rows.sort(
        key=lambda r: (
            not math.isfinite(r["best_valid_recon_smoothed"]),
            r["best_valid_recon_smoothed"],
        )
    )
    for i, r in enumerate(rows, 1):
        r["rank"] = i
    write_leaderboard(sd.leaderboard, rows, list(space.names))
    figures = []
    if plots and hist:
        figures.append(plot_population(hist, sd.figure("population")))
        hp_fig = plot_hyperparameters(hist, sd.figure("hyperparameters"))
        if hp_fig is not None:
            figures.append(hp_fig)
    interrupted = any(not m.finished for m in members)
    winner = next((r for r in rows if r["trial_id"] in scores), None)
    if winner is None:
        errors = "; ".join(f"{m.trial_id}: {m.error}" for m in members if m.error)
        raise NwbLfadsRuntimeError(
            f"{out}: no member of the population produced a checkpoint"
            f"{' (' + errors + ')' if errors else ''}; see {sd.ray} for Ray's logs."
        )
    member = next(m for m in members if m.trial_id == winner["trial_id"])
    _, _, epoch = load_checkpoint_params(member.checkpoint)
    metrics_rows = [r["row"] for r in lineage(hist, member.trial_id, epoch)]
    best_dir = write_best(
        out,
        member.checkpoint,
        scores[member.trial_id],
        paths=paths,
        datasets=datasets,
        metrics_rows=metrics_rows,
        plots=plots,
        extra_provenance={
            "sweep": {
                "trial_id": member.trial_id,
                "population": len(members),
                "exploits": len(events),
            }
        },
    )
    return SweepResult(out, rows, best_dir, len(events), interrupted, figures)


def _checkpoint_hyperparameters(folder: Path) -> dict:
    """The searched values the member had when it wrote the checkpoint (its member record, :attr:`~nwb_lfads.rundir.CheckpointDir.member`)."""
    import json

    path = CheckpointDir(folder).member
    return dict(json.loads(path.read_text()).get("hyperparameters", {})) if path.exists() else {}
