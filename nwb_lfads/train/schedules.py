"""KL and L2 weight ramps as optax schedules of the optimizer step.

The config gives ramps in epochs (``kl_start_epoch``, ``kl_increase_epochs``, and the same
for L2); :func:`ramp` converts them with the number of optimizer steps per epoch. A ramp is
0 before its start, rises linearly to 1 over its length, then stays at 1 (a length of 0 is a
step from 0 to 1 at the start).
"""

from __future__ import annotations

import jax.numpy as jnp
import optax

from ..config import TrainConfig


def ramp(start_epoch: float, length_epochs: float, steps_per_epoch: int) -> optax.Schedule:
    """Schedule step -> weight in [0, 1] (float32 scalar)."""
    begin = int(round(start_epoch * steps_per_epoch))
    length = int(round(length_epochs * steps_per_epoch))
    if length <= 0:
        return lambda step: jnp.where(step >= begin, 1.0, 0.0).astype(jnp.float32)
    return optax.linear_schedule(0.0, 1.0, transition_steps=length, transition_begin=begin)


def kl_schedule(cfg: TrainConfig, steps_per_epoch: int) -> optax.Schedule:
    return ramp(cfg.kl_start_epoch, cfg.kl_increase_epochs, steps_per_epoch)


def l2_schedule(cfg: TrainConfig, steps_per_epoch: int) -> optax.Schedule:
    return ramp(cfg.l2_start_epoch, cfg.l2_increase_epochs, steps_per_epoch)


def ramps_done_epoch(cfg: TrainConfig) -> int:
    """First epoch at which both ramps have reached 1 (plateau and early-stopping counters
    only start then: before, the objective itself is still changing)."""
    return int(
        max(
            cfg.kl_start_epoch + cfg.kl_increase_epochs, cfg.l2_start_epoch + cfg.l2_increase_epochs
        )
    )
