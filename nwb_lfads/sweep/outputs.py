"""What a finished (or interrupted) sweep leaves in DIR: the leaderboard and ``best/``.

Every member's best checkpoint (lowest smoothed validation reconstruction loss) is scored the
way ``fit`` scores a run: posterior means of all trials, bits/spike on the validation trials
against the smoothing baseline, and R^2 against the true rates when the file carries them
(:func:`nwb_lfads.summary.session_summary`), averaged over sessions.

``best/`` is a complete RUN_DIR (:class:`~nwb_lfads.rundir.RunDir`, the layout of ``fit``, so
``infer`` and ``evaluate`` take it): the winner's config, its checkpoint (whose best parameters
are the chosen checkpoint's), the epochs of the winner's lineage across copies as its metrics,
the summary, one enriched copy per session and the figures. It is built in a hidden
folder and swapped in, so a crash never leaves half a ``best/``.
"""

from __future__ import annotations

import csv
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import RunConfig
from ..rundir import CheckpointDir, RunDir, SweepDir


@dataclass
class MemberScore:
    """A member's scores from its best checkpoint. ``sessions``: one ``session_summary`` per session."""

    cfg: RunConfig
    params: dict
    results: list
    sessions: list[dict]

    def mean(self, key: str) -> float:
        values = [s[key] for s in self.sessions if key in s and math.isfinite(s[key])]
        return float(np.mean(values)) if values else math.nan


def load_checkpoint_params(folder) -> tuple[RunConfig, dict, int]:
    """``(config, parameters, epoch)`` of a member checkpoint folder; the parameters are the
    training state's (numpy), i.e. the weights the checkpoint was ranked by."""
    from ..train import checkpoint as ckpt

    ck = CheckpointDir(folder)
    cfg = ck.read_config()
    with np.load(ck.state, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files if k.startswith("params:") or k == "host:epoch"}
    epoch = int(arrays.pop("host:epoch", 0))
    return cfg, ckpt.unflatten_params(arrays), epoch


def score_member(folder, datasets, data, paths) -> MemberScore:
    """Infer every trial with the checkpoint in ``folder`` and summarise each session as
    ``fit`` does (:func:`nwb_lfads.fit.summarize`).

    Args:
        datasets: the reader's xarray sessions; data: their :class:`TrainingData` (for the
            validation split); paths: their local files (for the true rates, when present).
    """
    from ..fit import summarize
    from ..infer import infer

    cfg, params, _ = load_checkpoint_params(folder)
    results = infer(params, cfg, datasets)
    return MemberScore(cfg, params, results, summarize(datasets, results, data, paths))


def write_leaderboard(path: Path, rows: list[dict], hyperparameters: list[str]) -> Path:
    """The leaderboard (CSV): one row per member, best first (see :func:`nwb_lfads.sweep.sweep`)."""
    fixed = [
        "rank",
        "trial_id",
        "status",
        "epochs",
        "best_valid_recon_smoothed",
        "best_epoch",
        "final_valid_recon_smoothed",
        "times_copied",
        "valid_bps",
        "smoothing_valid_bps",
        "r2",
        "smoothing_r2",
    ]
    fields = fixed + hyperparameters + ["checkpoint", "error"]
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(row.get(k)) for k in fields})
    os.replace(tmp, path)
    return path


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return value


def read_leaderboard(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_best(
    out: Path,
    checkpoint_folder,
    score: MemberScore,
    *,
    paths,
    datasets,
    metrics_rows,
    plots: bool = True,
    extra_provenance: dict | None = None,
) -> Path:
    """Build ``out/best/`` (see the module docstring) and return its path.

    Args:
        checkpoint_folder: the winner's checkpoint (a :class:`~nwb_lfads.rundir.CheckpointDir`).
        score: the winner's :class:`MemberScore` (its inference results are written).
        paths: the sessions' local files; datasets: the reader's sessions.
        metrics_rows: one dict per epoch of the winner's lineage (the run's metrics).
    """
    from .._version import __version__
    from ..fit import make_plots
    from ..io.write import write_results
    from ..train import checkpoint as ckpt

    final = SweepDir(out).best.path
    tmp = RunDir(final.with_name(f".{final.name}.tmp-{os.getpid()}"))
    shutil.rmtree(tmp.path, ignore_errors=True)
    try:
        source, ck = CheckpointDir(checkpoint_folder), tmp.checkpoint
        ck.path.mkdir(parents=True)
        for src, dst in zip(source.files(), ck.files()):
            shutil.copy2(src, dst)
        _, _, epoch = load_checkpoint_params(checkpoint_folder)
        ckpt.save_params(ck.best, score.params, epoch=epoch)
        tmp.write_config(score.cfg)
        tmp.write_summary(score.sessions)
        tmp.write_metrics(metrics_rows)
        final_metrics = {
            k: v
            for k, v in (metrics_rows[-1] if metrics_rows else {}).items()
            if isinstance(v, (int, float))
        }
        for path, _ds, res, row in zip(paths, datasets, score.results, score.sessions):
            provenance = {
                "package": f"nwb-lfads {__version__}",
                "config": score.cfg.to_dict(),
                "final_metrics": final_metrics,
                "session_summary": row,
                **(extra_provenance or {}),
            }
            write_results(path, res, tmp.output(path), provenance=provenance)
        if plots:
            make_plots(tmp.path, datasets, score.results, metrics_rows)
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        if final.exists():
            os.replace(final, old)
        os.replace(tmp.path, final)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp.path, ignore_errors=True)
        raise
    return final
