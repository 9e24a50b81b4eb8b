"""The validation monitor: smoothing, the best epoch, plateaus and early stopping.

A pure function of the previous :class:`Monitor` and one epoch's validation loss; the trainer
keeps the state (and saves it in checkpoints) and acts on the :class:`Verdict`: keep the
current parameters as the best, decay the learning rate, stop.

Rules: the monitored value is an exponential smoothing of the validation loss (weight
``SMOOTHING`` on the past). Until the KL and L2 ramps are complete (``ramps_done`` epochs) the
objective itself still changes, so every epoch is kept as the best and nothing counts; after,
an epoch whose smoothed loss beats the best is kept and resets the counters, any other adds
one to the plateau counter (a decay every ``lr_patience``) and to the early-stopping counter
(stop after ``early_stop_patience``). A non-finite value changes nothing.
"""

from __future__ import annotations

import math
from typing import NamedTuple

SMOOTHING = 0.7  # weight of the past in the smoothed validation loss


class Monitor(NamedTuple):
    smoothed: float = math.nan
    best: float = math.inf
    best_epoch: int = -1
    plateau: int = 0
    bad_epochs: int = 0


class Verdict(NamedTuple):
    keep: bool = False  # the epoch's parameters become the best ones
    decay_lr: bool = False  # a plateau of lr_patience epochs has just completed
    stop: bool = False  # early_stop_patience epochs without improvement


def observe(
    mon: Monitor,
    value: float,
    epoch: int,
    *,
    ramps_done: int,
    lr_patience: int,
    early_stop_patience: int,
) -> tuple[Monitor, Verdict]:
    """One epoch's validation loss ``value`` (nats per trial) after epoch ``epoch`` (1-based)."""
    if not math.isfinite(value):
        return mon, Verdict()
    smoothed = (
        value if math.isnan(mon.smoothed) else SMOOTHING * mon.smoothed + (1 - SMOOTHING) * value
    )
    if epoch < ramps_done:
        return mon._replace(smoothed=smoothed, best_epoch=epoch), Verdict(keep=True)
    if smoothed < mon.best:
        return Monitor(smoothed, smoothed, epoch, 0, 0), Verdict(keep=True)
    plateau, bad = mon.plateau + 1, mon.bad_epochs + 1
    decay = plateau >= lr_patience
    mon = mon._replace(smoothed=smoothed, plateau=0 if decay else plateau, bad_epochs=bad)
    return mon, Verdict(decay_lr=decay, stop=bad >= early_stop_patience)
