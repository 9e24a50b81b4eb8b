"""``train``: the loop around a :class:`~nwb_lfads.train.trainer.Trainer` for one run.

Stops on early stopping, the learning-rate floor, ``max_epochs`` or ``max_minutes``; writes
the run directory's config, its metrics (one row per epoch; a resume appends) and its
checkpoint (at the end, every ``CHECKPOINT_EVERY_S`` seconds, and on an interrupt), through
:class:`~nwb_lfads.rundir.RunDir`. SIGINT/SIGTERM finish the current epoch, save a checkpoint and raise
``KeyboardInterrupt`` (a second signal interrupts at once). A checkpoint is written after the
first epoch too, so a run killed at any moment after it resumes with ``--resume``; one killed
before it restarts from the beginning under ``--resume``.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..config import RunConfig
from ..data import TrainingData
from ..errors import RunDirError
from ..rundir import RunDir
from .trainer import Trainer

CHECKPOINT_EVERY_S = 60.0


@dataclass
class TrainResult:
    """What :func:`train` returns: the best parameters, the config, every epoch's metrics,
    why it stopped, and the trainer (for further epochs or inference)."""

    params: dict
    cfg: RunConfig
    history: list = field(default_factory=list)
    stop_reason: str = ""
    run_dir: Path | None = None
    trainer: Trainer | None = None


class _Interrupts:
    """Turns SIGINT/SIGTERM into a flag (main thread only); restores the handlers on exit."""

    def __init__(self):
        self.flag = False
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.flag:  # second signal: stop now
            raise KeyboardInterrupt
        self.flag = True

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False


def _fmt(v) -> str:
    return "nan" if not math.isfinite(v) else f"{v:.4g}"


def train(
    data: TrainingData,
    cfg: RunConfig,
    run_dir=None,
    *,
    resume: bool = False,
    progress: bool = True,
    readin_init=None,
    frozen: dict | None = None,
    callback: Callable[[Trainer, dict], None] | None = None,
    echo: Callable[[str], None] = print,
) -> TrainResult:
    """Fit LFADS to ``data`` (from :func:`nwb_lfads.data.prepare_data`) with ``cfg``.

    Args:
        run_dir: the run directory (:class:`~nwb_lfads.rundir.RunDir`: config, metrics, checkpoint; None: nothing
            is written and interrupts are not caught).
        resume: continue from the run's checkpoint (same split, same RNG stream); a run that
            stopped before its first checkpoint starts again from the beginning (``echo`` says
            so).
        progress: print the plan (:func:`plan`: trials, batches, the memory estimate) and
            show a tqdm bar over epochs (train/valid loss, KL, learning rate).
        readin_init: optional :class:`~nwb_lfads.model.readin.ReadInit`.
        frozen: optional ``{module: {name: array}}`` of trained parameters copied in and
            never updated (:class:`~nwb_lfads.train.trainer.Trainer`).
        callback: called as ``callback(trainer, row)`` after every epoch.
        echo: where notices go (one line each).

    Raises:
        RunDirError: ``run_dir`` holds another run and ``resume`` is false, or nothing to resume.
        TrainingDivergedError: non-finite losses that restores could not cure.
        KeyboardInterrupt: after SIGINT/SIGTERM, once the checkpoint is saved.
    """
    trainer = Trainer(data, cfg, readin_init=readin_init, frozen=frozen)
    cfg = trainer.cfg  # automatic settings as resolved for this data
    t = cfg.train
    if progress:
        echo(plan(trainer))
    rd = ckpt_dir = None
    if run_dir is not None:
        rd = RunDir(run_dir)
        run_dir, ckpt_dir = rd.path, rd.checkpoint
        if resume and ckpt_dir.has_state():
            trainer.restore(ckpt_dir)
            rd.truncate_metrics(trainer.epoch)  # epochs after the checkpoint run again
        elif resume:
            echo(
                f"{run_dir}: no checkpoint yet (the run stopped before its first one); training "
                f"starts from the beginning with the saved config."
            )
            rd.reset_metrics()
        elif ckpt_dir.has_state():
            raise RunDirError(
                f"{run_dir}: already holds a trained run; pass --resume to continue it or "
                f"choose another --out folder."
            )
        else:
            rd.reset_metrics()
        rd.write_config(cfg)
    elif resume:
        raise RunDirError("resume=True needs a run directory.")

    history: list = []
    start = time.perf_counter()
    last_save = start
    budget = None if t.max_minutes is None else 60.0 * t.max_minutes
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=t.max_epochs, initial=trainer.epoch, desc="fit", unit="epoch", dynamic_ncols=True
        )
    stop = None
    try:
        with _Interrupts() if run_dir is not None else _NoInterrupts() as interrupts:
            while stop is None:
                if trainer.epoch >= t.max_epochs:
                    stop = "max_epochs"
                    break
                row = trainer.train_epoch()
                history.append(row)
                if rd is not None:
                    rd.append_metrics(row)
                if callback is not None:
                    callback(trainer, row)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix_str(
                        f"train {_fmt(row['train_loss'])} valid {_fmt(row['valid_loss'])} "
                        f"kl {_fmt(row['valid_kl_ic'] + row['valid_kl_co'])} lr {row['lr']:.2e}"
                    )
                now = time.perf_counter()
                stop = trainer.stop_reason
                if stop is None and budget is not None and now - start >= budget:
                    stop = "max_minutes"
                if interrupts.flag:
                    trainer.save(ckpt_dir)
                    raise KeyboardInterrupt(
                        f"training interrupted at epoch {trainer.epoch}; checkpoint saved in "
                        f"{ckpt_dir.path}; resume with --resume."
                    )
                first = trainer.epoch == 1  # a checkpoint after the first epoch, then every 60 s
                if ckpt_dir is not None and (first or now - last_save >= CHECKPOINT_EVERY_S):
                    trainer.save(ckpt_dir)
                    last_save = now
    finally:
        if bar is not None:
            bar.close()
    if ckpt_dir is not None:
        trainer.save(ckpt_dir)
    return TrainResult(
        params=trainer.best_params,
        cfg=cfg,
        history=history,
        stop_reason=stop,
        run_dir=run_dir,
        trainer=trainer,
    )


def plan(trainer: Trainer) -> str:
    """Two lines: what will be trained, on what, and the memory it will take
    (:class:`~nwb_lfads.train.memory.MemoryEstimate`)."""
    d = trainer.data
    return (
        f"plan: {int(d.train.sum())} training / {int(d.valid.sum())} validation trials of "
        f"{d.n_bins} bins x {d.n_units_max} units ({d.n_sessions} session(s)); batch "
        f"{trainer.batch_size}, {trainer.steps_per_epoch} steps per epoch, "
        f"{trainer.steps_per_call} per compiled call\n{trainer.memory.line()}"
    )


class _NoInterrupts:
    flag = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
