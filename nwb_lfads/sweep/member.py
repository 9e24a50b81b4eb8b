"""One member of the population: the Ray Tune trainable around a :class:`~nwb_lfads.train.trainer.Trainer`.

:func:`train_member` runs in a Ray worker. The data arrive once through Ray's object store
(``tune.with_parameters(train_member, bundle=MemberBundle(...))``), never re-read. Each epoch
is one ``tune.report``; every ``perturbation_interval`` epochs (and at the last epoch) the
report carries a checkpoint: the trainer's own no-pickle folder
(:class:`~nwb_lfads.rundir.CheckpointDir`, :mod:`nwb_lfads.train.checkpoint`) plus the member
record (who wrote it, the smoothed loss), handed to Ray with ``Checkpoint.from_directory``.

When PBT replaces this member by a copy of a better one, Ray restarts the function with the
perturbed config and the donor's checkpoint; the member record then names another trial, and
the next report says so in ``exploited_from`` (how the sweep counts exploits). The learning
rate belongs to PBT: the trainer's plateau decay is switched off and the rate is set from the
config after every restore.

Nothing here imports JAX at module level, so Ray can unpickle the function cheaply.
"""

from __future__ import annotations

import json
import math
import tempfile
import zlib
from collections import OrderedDict
from dataclasses import dataclass

from ..config import RunConfig
from ..rundir import CheckpointDir
from .space import SearchSpace

OBJECTIVE = "valid_recon_smoothed"  # PBT's metric (minimised)
CACHE_SIZE = 2  # trainers kept per worker process (a paused member resumed there skips compiling)

_TRAINERS: OrderedDict[tuple, object] = OrderedDict()


@dataclass(frozen=True, eq=False)
class MemberBundle:
    """What every member gets through the object store.

    Attributes:
        data: :class:`~nwb_lfads.data.TrainingData` of all sessions (read once by the driver).
        cfg: the sweep's base :class:`RunConfig` (hyperparameters replaced per member).
        space: the :class:`SearchSpace` (names and PBT schedule).
        token: identifies the sweep (keys the per-process trainer cache).
    """

    data: object
    cfg: RunConfig
    space: SearchSpace
    token: str = ""


def member_index(trial_id: str) -> int:
    """The member's number from a Ray trial id (``abc12_00003`` -> 3), else a stable hash."""
    tail = str(trial_id).rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else zlib.crc32(str(trial_id).encode()) % 10_000


def member_config(base: RunConfig, hyperparameters: dict, *, seed: int | None = None) -> RunConfig:
    """``base`` with the searched ``SECTION.FIELD`` values, the learning-rate decay off (PBT
    sets the rate), no per-member time limit (the sweep has one) and one device per member
    unless ``train.devices`` names more."""
    sections: dict = {"train": {"lr_decay": 1.0, "max_minutes": None}}
    if base.train.devices == 0:  # automatic would take every CPU device; a member has one core
        sections["train"]["devices"] = 1
    for key, value in hyperparameters.items():
        section, _, name = key.partition(".")
        sections.setdefault(section, {})[name] = float(value)
    if seed is not None:
        sections["train"]["seed"] = int(seed)
    return base.replace(**sections)


def smooth(previous: float, value: float, weight: float) -> float:
    """Exponential smoothing that skips non-finite values (``weight`` is the past's share)."""
    if not math.isfinite(value):
        return previous
    if not math.isfinite(previous):
        return float(value)
    return float(weight * previous + (1.0 - weight) * value)


def _trainer_for(bundle: MemberBundle, cfg: RunConfig, resuming: bool):
    """A Trainer for ``cfg``; one cached in this process is reused when a checkpoint will be
    restored into it anyway (same config, same data), which saves compiling again."""
    from ..train.trainer import Trainer

    key = (bundle.token, cfg)
    if resuming and key in _TRAINERS:
        _TRAINERS.move_to_end(key)
        return _TRAINERS[key]
    trainer = Trainer(bundle.data, cfg)
    _TRAINERS[key] = trainer
    while len(_TRAINERS) > CACHE_SIZE:
        _TRAINERS.popitem(last=False)
    return trainer


def _read_member(folder) -> dict:
    path = CheckpointDir(folder).member
    if not path.exists():
        return {}
    return json.loads(path.read_text())


def _metrics(
    row: dict, smoothed: float, me: str, exploited_from: str, best: float, best_epoch: int
) -> dict:
    """One ``tune.report`` payload: the trainer's scalar metrics plus PBT's objective and lineage."""
    metrics = {k: v for k, v in row.items() if isinstance(v, (int, float))}
    metrics.update(
        {
            OBJECTIVE: smoothed if math.isfinite(smoothed) else math.inf,
            "member": me,
            "exploited_from": exploited_from,
            "best_smoothed": best,
            "best_smoothed_epoch": best_epoch,
        }
    )
    return metrics


def _report(tune, trainer, metrics: dict, member: dict | None) -> None:
    """``tune.report(metrics)``, with a checkpoint (the trainer's folder plus the member record
    holding ``member``) unless ``member`` is None."""
    if member is None:
        tune.report(metrics)
        return
    with tempfile.TemporaryDirectory(prefix="nwb-lfads-member-") as folder:
        trainer.save(folder)
        CheckpointDir(folder).member.write_text(json.dumps(member))
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def train_member(config: dict, bundle: MemberBundle | None = None) -> None:
    """Ray Tune function trainable: train one member until ``cfg.train.max_epochs``.

    Args:
        config: this member's hyperparameters, ``{"train.lr_init": 3e-3, ...}`` (from PBT).
        bundle: the shared :class:`MemberBundle` (``tune.with_parameters``).

    Reports per epoch the trainer's metrics row (``epoch``, ``train_loss``, ``valid_loss``,
    ``valid_recon``, ...) plus ``valid_recon_smoothed`` (PBT's objective), ``member`` (this
    trial's id) and ``exploited_from`` (the donor's trial id on the first report after an
    exploit, else "").
    """
    from ray import tune

    me = tune.get_context().get_trial_id() or "member"
    space = bundle.space
    hps = {k: float(config[k]) for k in space.names if k in config}
    cfg = member_config(bundle.cfg, hps, seed=bundle.cfg.train.seed + member_index(me))
    checkpoint = tune.get_checkpoint()
    trainer = _trainer_for(bundle, cfg, resuming=checkpoint is not None)
    smoothed, best, best_epoch, exploited_from = math.nan, math.inf, 0, ""
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            trainer.restore(folder)
            info = _read_member(folder)
        smoothed = float(info.get("smoothed", math.nan))
        best, best_epoch = float(info.get("best", math.inf)), int(info.get("best_epoch", 0))
        donor = str(info.get("trial_id", me))
        if donor != me:
            exploited_from = donor
    trainer.lr = float(trainer.cfg.train.lr_init)
    interval = space.pbt.perturbation_interval
    max_epochs = int(cfg.train.max_epochs)
    if trainer.epoch >= max_epochs:
        # copied from a donor that had already finished: nothing left to train, but report
        # once so that this member's record shows the epoch (and donor) of the weights it holds
        row = {"epoch": trainer.epoch, **trainer.evaluate()}
        _report(
            tune,
            trainer,
            _metrics(row, smoothed, me, exploited_from, best, best_epoch),
            {
                "trial_id": me,
                "epoch": trainer.epoch,
                "smoothed": smoothed,
                "best": best,
                "best_epoch": best_epoch,
                "hyperparameters": hps,
            },
        )
        return
    while trainer.epoch < max_epochs:
        row = trainer.train_epoch()
        trainer.lr = float(trainer.cfg.train.lr_init)
        recon = row.get("valid_recon", math.nan)
        if not math.isfinite(recon):  # no validation trials: fall back to the training loss
            recon = row.get("train_recon", math.nan)
        smoothed = smooth(smoothed, recon, space.pbt.smoothing)
        if smoothed < best:
            best, best_epoch = smoothed, trainer.epoch
        metrics = _metrics(row, smoothed, me, exploited_from, best, best_epoch)
        exploited_from = ""
        with_checkpoint = trainer.epoch % interval == 0 or trainer.epoch >= max_epochs
        _report(
            tune,
            trainer,
            metrics,
            {
                "trial_id": me,
                "epoch": trainer.epoch,
                "smoothed": smoothed,
                "best": best,
                "best_epoch": best_epoch,
                "hyperparameters": hps,
            }
            if with_checkpoint
            else None,
        )
