"""The run directory: every file name of a run, and the checks "is this a run / resumable".

``RUN_DIR`` (what ``nwb-lfads fit --out`` writes; docs/DESIGN.md, "Run directory")::

    config.yaml               the full resolved RunConfig, enough to rerun
    metrics.csv               one row per epoch
    summary.json              the end-of-fit table, one entry per session
    evaluation.json           what ``nwb-lfads evaluate`` wrote
    transferred_from.json     (``nwb-lfads transfer`` runs only) the trained run it started from
    <stem>.lfads.nwb          each input, enriched with processing/lfads
    *.png                     figures
    checkpoint/               a CheckpointDir:
        state.npz             parameters, their moving average, optimizer state, loop state
        best_params.npz       the parameters that scored best in validation
        config.yaml           the RunConfig again (the checkpoint is self-contained)
        sessions.json         the sessions the model knows, in its session order
        member.json           (sweep members only) the member's lineage and scores

A sweep's ``DIR`` holds ``sweep.yaml``, ``leaderboard.csv``, member checkpoint folders and
``best/``, itself a RUN_DIR. This is the only module that spells these names; everything else
asks a :class:`RunDir` or :class:`CheckpointDir` for a path. Files are written to a temporary
name in the same folder and renamed (:func:`write_text_atomic`), so a crash never leaves half a
file. Imports nothing of the package but :mod:`~nwb_lfads.config` and :mod:`~nwb_lfads.errors`.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
from pathlib import Path

from .config import RunConfig
from .errors import ConfigError, RunDirError

OUTPUT_SUFFIX = ".lfads.nwb"
EVALUATION_SUFFIX = ".evaluation.json"


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def output_name(source) -> str:
    """``session.nwb`` -> ``session.lfads.nwb`` (the enriched copy's file name)."""
    name = Path(source).name
    return (name[:-4] if name.endswith(".nwb") else name) + OUTPUT_SUFFIX


def evaluation_path(path) -> Path:
    """Where ``evaluate`` writes: ``RUN_DIR/evaluation.json``, or ``<stem>.evaluation.json``
    beside one enriched file."""
    p = Path(path).expanduser()
    return RunDir(p).evaluation if p.is_dir() else p.with_name(f"{p.stem}{EVALUATION_SUFFIX}")


class CheckpointDir:
    """A checkpoint folder (``RUN_DIR/checkpoint`` or a sweep member's folder)."""

    def __init__(self, path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"CheckpointDir({str(self.path)!r})"

    @property
    def state(self) -> Path:
        return self.path / "state.npz"

    @property
    def best(self) -> Path:
        return self.path / "best_params.npz"

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def sessions(self) -> Path:
        return self.path / "sessions.json"

    @property
    def member(self) -> Path:
        return self.path / "member.json"

    def files(self) -> list[Path]:
        """The files a copy of this checkpoint needs (state, config, sessions)."""
        return [self.state, self.config, self.sessions]

    def has_state(self) -> bool:
        return self.state.exists()

    def is_trained(self) -> bool:
        """Config, sessions and parameters (best or state) are all there."""
        return (
            self.config.exists()
            and self.sessions.exists()
            and (self.best.exists() or self.state.exists())
        )

    def params_file(self) -> Path:
        """The parameters inference uses: ``best_params.npz``, else ``state.npz``."""
        return self.best if self.best.exists() else self.state

    def read_config(self) -> RunConfig:
        return RunConfig.from_yaml(self.config)

    def read_sessions(self) -> list[dict]:
        return json.loads(self.sessions.read_text())

    def write_run_files(self, cfg: RunConfig, sessions: list[dict]) -> None:
        """``config.yaml`` and ``sessions.json`` (one dict per session)."""
        self.path.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.config, cfg.to_yaml())
        write_text_atomic(self.sessions, json.dumps(sessions, indent=1, default=str))


class RunDir:
    """The files of one run directory (see the module docstring)."""

    def __init__(self, path):
        self.path = Path(path).expanduser()

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # ---------------------------------------------------------------- paths
    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def summary(self) -> Path:
        return self.path / "summary.json"

    @property
    def evaluation(self) -> Path:
        return self.path / "evaluation.json"

    @property
    def transferred_from(self) -> Path:
        """``transferred_from.json``: the source run of a ``transfer`` (path, hashes, sessions)."""
        return self.path / "transferred_from.json"

    def write_transferred_from(self, record: dict) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.transferred_from, json.dumps(record, indent=1, default=str))

    def read_transferred_from(self) -> dict | None:
        """The source-run record of a ``transfer`` run, or None for a run made by ``fit``."""
        p = self.transferred_from
        return json.loads(p.read_text()) if p.exists() else None

    @property
    def sessions(self) -> Path:
        """A listing of the sessions at the top (older runs and ``--in-place`` runs)."""
        return self.path / "sessions.json"

    @property
    def checkpoint(self) -> CheckpointDir:
        return CheckpointDir(self.path / "checkpoint")

    def output(self, source) -> Path:
        """``RUN_DIR/<stem>.lfads.nwb`` for the input ``source``."""
        return self.path / output_name(source)

    def outputs(self) -> list[Path]:
        """The enriched files present, sorted."""
        return sorted(self.path.glob(f"*{OUTPUT_SUFFIX}"))

    def figure(self, name: str) -> Path:
        """``RUN_DIR/<name>.png``."""
        return self.path / f"{name}.png"

    @property
    def lock_file(self) -> Path:
        return self.path / ".lock"

    @contextlib.contextmanager
    def lock(self):
        """Hold the run directory for this process (created if missing).

        An exclusive ``fcntl.flock`` on ``RUN_DIR/.lock``, which holds the owner's pid; the
        kernel releases it when the owner exits, however it exits (``kill -9`` included), so a
        stale lock never blocks a later run. Temporary files a killed owner left are removed.

        Raises:
            RunDirError: another live process holds the lock.
        """
        import fcntl

        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                raise RunDirError(
                    f"{self.path}: another nwb-lfads process (pid {owner}) is using this run "
                    f"directory; wait for it to finish, or choose another --out."
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            self.remove_temporaries()
            yield self
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def temporaries(self) -> list[Path]:
        """Temporary files of interrupted writes: ``.<name>.tmp-<pid>`` (this module's and the
        NWB writer's ``.<stem>.lfads.nwb.tmp-<pid>.nwb``) and ``checkpoint/*.tmp``."""
        found = list(self.path.glob(".*.tmp-*")) if self.path.is_dir() else []
        if self.checkpoint.path.is_dir():
            found += list(self.checkpoint.path.glob("*.tmp"))
        return sorted(found)

    def remove_temporaries(self) -> None:
        """Delete what a killed process left half-written; only called under :meth:`lock`,
        when no other process can be writing here."""
        for path in self.temporaries():
            path.unlink(missing_ok=True)

    # ---------------------------------------------------------------- checks
    def holds_run(self) -> bool:
        """A run was started here (its config or its checkpoint folder exists)."""
        return self.config.exists() or self.checkpoint.path.exists()

    def check_for_fit(self, resume: bool) -> None:
        """Refuse to mix runs: a new fit needs a folder without a run, ``resume`` needs one.

        Raises:
            RunDirError: naming the folder and the fix.
        """
        if self.path.exists() and not self.path.is_dir():
            raise RunDirError(
                f"{self.path}: exists and is not a folder. Choose a folder for --out."
            )
        has_run = self.holds_run()
        if resume and not has_run:
            raise RunDirError(
                f"{self.path}: no run to resume here (no config.yaml or checkpoint/). "
                f"Drop --resume to start a new run, or point --out at an existing run."
            )
        if not resume and has_run:
            raise RunDirError(
                f"{self.path}: already holds a run (config.yaml, checkpoint/). Pass --resume to "
                f"continue it, or choose a new --out folder."
            )

    def check_trained(self) -> CheckpointDir:
        """The checkpoint of a finished fit, or RunDirError naming what is missing."""
        ck = self.checkpoint
        if not ck.is_trained():
            raise RunDirError(
                f"{self.path}: not a trained run directory (expected checkpoint/ with "
                f"config.yaml, sessions.json and best_params.npz); pass the --out folder of a "
                f"finished `nwb-lfads fit`."
            )
        return ck

    # ---------------------------------------------------------------- config
    def write_config(self, cfg: RunConfig) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.config, cfg.to_yaml())

    def read_config(self) -> RunConfig:
        """The run's config: ``config.yaml``, else the checkpoint's copy."""
        for path in (self.config, self.checkpoint.config):
            if path.exists():
                return RunConfig.from_yaml(path)
        raise RunDirError(f"{self.path}: no config.yaml here; is this a run directory?")

    def has_config(self) -> bool:
        return self.config.exists() or self.checkpoint.config.exists()

    def resolve_config(self, resume: bool, config: RunConfig | None, overrides) -> RunConfig:
        """The run's configuration: on ``resume`` the saved one (only training settings may
        change), else ``config`` (default: the package defaults); ``overrides`` on top."""
        if not resume:
            return (config or RunConfig()).with_overrides(list(overrides))
        saved = RunConfig.from_yaml(self.config)
        cfg = (config or saved).with_overrides(list(overrides))
        changed = [
            f"{section}.{key}"
            for section in ("data", "model")
            for key, value in saved.to_dict()[section].items()
            if cfg.to_dict()[section][key] != value
        ]
        if changed:
            raise ConfigError(
                f"{self.path}: --resume cannot change {', '.join(changed)} (the data or model of "
                f"the run). Start a new run with a new --out instead."
            )
        return cfg

    # ---------------------------------------------------------------- metrics and summary
    def reset_metrics(self) -> None:
        self.metrics.unlink(missing_ok=True)

    def append_metrics(self, row: dict) -> None:
        """Append one epoch's row to ``metrics.csv`` (header written with the first row)."""
        self.path.mkdir(parents=True, exist_ok=True)
        new = not self.metrics.exists() or self.metrics.stat().st_size == 0
        with open(self.metrics, "a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(row), extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)

    def read_metrics(self) -> list[dict]:
        """Rows of ``metrics.csv`` (all epochs, resumed ones included), numbers as floats."""
        return read_csv(self.metrics)

    def write_metrics(self, rows: list[dict]) -> None:
        """Replace ``metrics.csv`` with ``rows`` (atomically)."""
        write_text_atomic(self.metrics, _csv_text(rows))

    def truncate_metrics(self, epoch: int) -> None:
        """Drop the rows of epochs after ``epoch`` (those a crash left after the checkpoint
        that a resume continues from)."""
        rows = self.read_metrics()
        kept = [r for r in rows if not isinstance(r.get("epoch"), float) or r["epoch"] <= epoch]
        if len(kept) < len(rows):
            self.write_metrics(kept)

    def write_summary(self, rows: list[dict]) -> None:
        write_text_atomic(self.summary, json.dumps(rows, indent=2))

    def read_summary(self) -> list[dict]:
        return json.loads(self.summary.read_text()) if self.summary.exists() else []

    def listed_sources(self) -> list[Path]:
        """Input files listed in ``sessions.json`` (top level, then the checkpoint's)."""
        for listing in (self.sessions, self.checkpoint.sessions):
            if listing.exists():
                entries = json.loads(listing.read_text())
                return [Path(e.get("path") or e["source"]) for e in entries]
        return []


def read_csv(path) -> list[dict]:
    """Rows of a CSV file as dicts, numeric cells as floats; [] when the file is missing."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return [{k: _num(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def _num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return v


def _csv_text(rows: list[dict]) -> str:
    import io

    keys = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


class SweepDir:
    """The folder of ``nwb-lfads sweep --out DIR``: ``sweep.yaml`` (sources, base config,
    search space, population: what ``--resume`` reuses), ``ray/`` (Ray Tune's experiment),
    ``population.jsonl`` (every member's reports), ``leaderboard.csv``, ``population.png``,
    ``hyperparameters.png`` and ``best/`` (a :class:`RunDir`)."""

    def __init__(self, path):
        self.path = Path(path).expanduser()

    @property
    def settings(self) -> Path:
        return self.path / "sweep.yaml"

    @property
    def ray(self) -> Path:
        return self.path / "ray"

    @property
    def jax_cache(self) -> Path:
        """JAX's compilation cache shared by the local workers."""
        return self.ray / "jax_cache"

    @property
    def log(self) -> Path:
        return self.path / "population.jsonl"

    @property
    def leaderboard(self) -> Path:
        return self.path / "leaderboard.csv"

    @property
    def best(self) -> RunDir:
        return RunDir(self.path / "best")

    def figure(self, name: str) -> Path:
        """``DIR/<name>.png`` (``population``, ``hyperparameters``)."""
        return self.path / f"{name}.png"

    def holds_sweep(self) -> bool:
        return self.settings.exists() or self.ray.exists()
