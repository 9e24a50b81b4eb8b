"""The controller: a GRU that reads the CI encodings and the previous factors and emits the
posterior of the inferred inputs u_t.

Shape glossary: B trials, K ``con_dim``, U ``co_dim``, F ``fac_dim``, I2 = 2 ``ci_enc_dim``.

Its input at bin t is ``[ci_enc_t, f_{t-1}]`` (``[ci_enc_t, x_t, f_{t-1}]`` with X external
inputs ``x_t``; the caller passes ``ci_width`` = I2 + X); the inferred-input posterior is
``N(mean_t, var_t)`` with ``[mean_t, log(var_t - var_min)] = h_t W_co + b_co``. The recurrence
itself runs in :func:`nwb_lfads.model.decoder.decode`, together with the generator.
"""

from __future__ import annotations

from typing import NamedTuple

import haiku as hk
import jax.numpy as jnp

from .gru import GRUWeights
from .noise import fan_in_init


class ControllerParams(NamedTuple):
    """The controller's weights, float32 (split GRU layout, :mod:`.gru`, with the input
    weights split by source) and its posterior head."""

    w_ci: jnp.ndarray  # [I2 + X, 3K] input weights of the CI encodings (and external inputs)
    w_f: jnp.ndarray  # [F, 3K] input weights of the previous factors
    w_h: jnp.ndarray  # [K, 3K] recurrent weights
    b: jnp.ndarray  # [3K]
    w_co: jnp.ndarray  # [K, 2U] posterior head (mean | log variance above the floor)
    b_co: jnp.ndarray  # [2U]


class Controller(hk.Module):
    """Owns the controller's parameters; call with the CI encoding width I2 and the factor
    width F; returns :class:`ControllerParams`."""

    def __init__(self, con_dim: int, co_dim: int, name: str | None = "controller"):
        super().__init__(name=name)
        self.K, self.U = con_dim, co_dim

    def __call__(self, ci_width: int, fac_dim: int) -> ControllerParams:
        w_i, w_h, b = GRUWeights(self.K, name="gru")(ci_width + fac_dim)
        w_co = hk.get_parameter("w_co", [self.K, 2 * self.U], jnp.float32, init=fan_in_init())
        b_co = hk.get_parameter("b_co", [2 * self.U], jnp.float32, init=jnp.zeros)
        return ControllerParams(w_i[:ci_width], w_i[ci_width:], w_h, b, w_co, b_co)
