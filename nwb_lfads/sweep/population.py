"""The population's history: a log of every member's epochs, lineages, exploits and figures.

The driver records each result Ray Tune receives as one JSON line in the sweep's log (:attr:`nwb_lfads.rundir.SweepDir.log`)
(``trial_id``, ``epoch``, the trainer's metrics row, ``valid_recon_smoothed``,
``exploited_from`` and the member's hyperparameters at that time). From that log:

- :func:`history` keeps the last record of every (member, epoch) (a resumed sweep repeats
  some epochs);
- :func:`exploits` lists the copy events (member, epoch, donor);
- :func:`lineage` follows a member back through the members it was copied from, giving the
  epoch rows of the weights it ended with (the metrics of ``best/``);
- :func:`plot_population` draws the smoothed validation loss of every member against epoch
  with the exploits marked, :func:`plot_hyperparameters` the hyperparameters' progressions.

Only the callback and the stopper classes touch Ray (they are built by :func:`make_callbacks`
with Ray already imported).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path

from .member import OBJECTIVE

RAY_KEYS = {
    "config",
    "date",
    "hostname",
    "node_ip",
    "pid",
    "timestamp",
    "experiment_id",
    "experiment_tag",
    "checkpoint_dir_name",
    "should_checkpoint",
    "done",
    "training_iteration",
    "time_this_iter_s",
    "time_since_restore",
    "iterations_since_restore",
    "timesteps_total",
    "episodes_total",
    "timesteps_since_restore",
    "trial_id",
}


def record(trial_id: str, result: dict, config: dict) -> dict:
    """One log record from a Ray result (its scalars, without Ray's bookkeeping)."""
    row = {
        k: v
        for k, v in result.items()
        if k not in RAY_KEYS and isinstance(v, (int, float, str)) and not isinstance(v, bool)
    }
    hps = {
        k: float(v)
        for k, v in (config or {}).items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    return {
        "trial_id": str(trial_id),
        "epoch": int(result.get("epoch", 0)),
        "time_total_s": result.get("time_total_s"),
        "hyperparameters": hps,
        "row": row,
    }


def append_record(path: Path, rec: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(rec, default=float) + "\n")


def read_log(path: Path) -> list[dict]:
    """Records of the sweep's log in arrival order (a truncated last line is skipped)."""
    out = []
    if not Path(path).exists():
        return out
    with open(path) as f:
        for line in f:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def history(records: list[dict]) -> dict[str, list[dict]]:
    """``{trial_id: records sorted by epoch}``, the last record of each (member, epoch) kept."""
    by: dict[str, dict[int, dict]] = {}
    for rec in records:
        by.setdefault(rec["trial_id"], {})[int(rec["epoch"])] = rec
    return {t: [epochs[e] for e in sorted(epochs)] for t, epochs in by.items()}


def exploits(hist: dict[str, list[dict]]) -> list[dict]:
    """Copy events ``{"trial_id", "epoch", "donor"}``: at ``epoch`` the member reported for the
    first time after restarting from ``donor``'s checkpoint; sorted by epoch."""
    events = [
        {"trial_id": t, "epoch": r["epoch"], "donor": r["row"].get("exploited_from")}
        for t, recs in hist.items()
        for r in recs
        if r["row"].get("exploited_from")
    ]
    return sorted(events, key=lambda e: (e["epoch"], e["trial_id"]))


def lineage(
    hist: dict[str, list[dict]], trial_id: str, upto: float = math.inf, _depth: int = 0
) -> list[dict]:
    """Records of the weights ``trial_id`` holds at epoch ``upto``: its own epochs since its
    last copy, preceded by the donor's lineage up to the copy."""
    recs = [r for r in hist.get(trial_id, []) if r["epoch"] <= upto]
    copies = [r for r in recs if r["row"].get("exploited_from")]
    if not copies or _depth > 10_000:
        return recs
    last = copies[-1]
    start = last["epoch"]
    before = lineage(hist, last["row"]["exploited_from"], start - 1, _depth + 1)
    return before + [r for r in recs if r["epoch"] >= start]


def best_of(recs: list[dict]) -> tuple[float, int]:
    """(lowest finite smoothed validation loss, its epoch) of a member's records; (inf, 0) if none."""
    best, epoch = math.inf, 0
    for r in recs:
        v = r["row"].get(OBJECTIVE, math.inf)
        if isinstance(v, (int, float)) and math.isfinite(v) and v < best:
            best, epoch = float(v), int(r["epoch"])
    return best, epoch


def make_callbacks(
    tune,
    log_path: Path,
    *,
    interval: int,
    stop_patience: int,
    echo: Callable[[str], None] | None = None,
) -> tuple[object, object | None]:
    """``(callback, stopper)``: a Ray Tune callback appending to ``log_path`` (and echoing one
    line per generation and per exploit) and, when ``stop_patience > 0``, a stopper that ends
    the sweep after ``stop_patience`` generations without a better population best."""

    class PopulationLog(tune.Callback):
        def __init__(self):
            self.path = Path(log_path)
            self.seen: dict[int, set] = {}
            self.best = math.inf

        def on_trial_result(self, iteration, trials, trial, result, **info):
            rec = record(trial.trial_id, result, trial.config)
            append_record(self.path, rec)
            if echo is None:
                return
            donor = rec["row"].get("exploited_from")
            if donor:
                echo(
                    f"epoch {rec['epoch']}: member {trial.trial_id} continues from a copy of {donor}"
                )
            value = rec["row"].get(OBJECTIVE, math.inf)
            self.best = min(self.best, value) if isinstance(value, (int, float)) else self.best
            epoch = rec["epoch"]
            if epoch % interval == 0:
                done = self.seen.setdefault(epoch, set())
                done.add(trial.trial_id)
                live = [t for t in trials if t.status not in ("ERROR",)]
                if len(done) == len(live):
                    echo(
                        f"generation {epoch // interval} (epoch {epoch}): best smoothed validation "
                        f"reconstruction {self.best:.4g}"
                    )

    class PopulationPlateau(tune.Stopper):
        def __init__(self):
            self.best, self.best_epoch, self.last_epoch = math.inf, 0, 0

        def __call__(self, trial_id, result):
            value, epoch = result.get(OBJECTIVE, math.inf), int(result.get("epoch", 0))
            self.last_epoch = max(self.last_epoch, epoch)
            if isinstance(value, (int, float)) and value < self.best:
                self.best, self.best_epoch = float(value), epoch
            return False

        def stop_all(self):
            return self.last_epoch - self.best_epoch >= stop_patience * interval

    return PopulationLog(), (PopulationPlateau() if stop_patience > 0 else None)


# ---------------------------------------------------------------------------------------- figures


def _save(fig, path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.png")
    FigureCanvasAgg(fig)
    try:
        fig.savefig(tmp, format="png", dpi=110)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def plot_population(hist: dict[str, list[dict]], path) -> Path:
    """Smoothed validation reconstruction loss of every member against epoch; each exploit is
    a dashed line from the donor's value to the copy and a red triangle (the member's line
    breaks there).

    Args:
        hist: from :func:`history`. out_dir: folder of the PNG.
    Returns:
        the PNG's path.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 4.5), layout="constrained")
    ax = fig.add_subplot()
    for i, (trial, recs) in enumerate(sorted(hist.items())):
        segments: list[list[dict]] = []
        for r in recs:  # a copy starts a new segment: the weights before it are gone
            if not segments or r["row"].get("exploited_from"):
                segments.append([])
            segments[-1].append(r)
        for k, seg in enumerate(segments):
            ys = [r["row"].get(OBJECTIVE, math.nan) for r in seg]
            ys = [y if isinstance(y, (int, float)) and math.isfinite(y) else math.nan for y in ys]
            ax.plot(
                [r["epoch"] for r in seg],
                ys,
                lw=1.2,
                marker="." if len(seg) == 1 else None,
                color=f"C{i % 10}",
                label=trial if k == 0 else None,
            )
    value = {
        (t, r["epoch"]): r["row"].get(OBJECTIVE, math.nan) for t, recs in hist.items() for r in recs
    }
    events = exploits(hist)
    for k, e in enumerate(events):
        y = value.get((e["trial_id"], e["epoch"]), math.nan)
        y0 = value.get((e["donor"], e["epoch"] - 1), math.nan)
        if math.isfinite(y0) and math.isfinite(y):
            ax.plot([e["epoch"] - 1, e["epoch"]], [y0, y], ls="--", lw=0.8, color="0.4")
        ax.plot(
            [e["epoch"]],
            [y],
            marker="v",
            color="red",
            ms=7,
            ls="none",
            label="exploit (copy of a better member)" if k == 0 else None,
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel("smoothed validation reconstruction (nats / trial)")
    ax.set_title(
        f"population ({len(hist)} members, {len(events)} exploit{'' if len(events) == 1 else 's'})"
    )
    if len(hist) <= 12:
        ax.legend(fontsize=7, ncol=2)
    return _save(fig, Path(path))


def plot_hyperparameters(hist: dict[str, list[dict]], path) -> Path | None:
    """Each searched hyperparameter of every member against epoch (log axes for positive
    values spanning more than a decade). None when nothing was searched."""
    from matplotlib.figure import Figure

    names = sorted(
        {k for recs in hist.values() for r in recs for k in r.get("hyperparameters", {})}
    )
    if not names:
        return None
    cols = min(len(names), 4)
    rows = math.ceil(len(names) / cols)
    fig = Figure(figsize=(3.2 * cols, 2.6 * rows), layout="constrained")
    for j, hp in enumerate(names):
        ax = fig.add_subplot(rows, cols, j + 1)
        values = []
        for i, (_trial, recs) in enumerate(sorted(hist.items())):
            xs = [r["epoch"] for r in recs if hp in r["hyperparameters"]]
            ys = [r["hyperparameters"][hp] for r in recs if hp in r["hyperparameters"]]
            values += ys
            ax.plot(xs, ys, lw=1.0, color=f"C{i % 10}", marker=".", ms=3)
        positive = [v for v in values if v > 0]
        if positive and len(positive) == len(values) and max(positive) / min(positive) > 10:
            ax.set_yscale("log")
        ax.set_title(hp, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
    return _save(fig, Path(path))
