"""The generator: a GRU with clipped state whose factors are a row-normalised linear map.

Shape glossary: B trials, G ``gen_dim``, U ``co_dim`` (0 = autonomous), X external inputs
(U + X is the generator's input width),
D ``ic_dim``, F ``fac_dim``.

The initial state g0 is a linear map of the initial-condition sample (D -> G). Factors are
``f_t = g_t W_fac`` with ``W_fac`` [G, F] whose columns (the weight vector of each factor over
the generator units, a row in the [F, G] convention) are normalised to unit norm and no bias,
as in TF LFADS: the scale of the factors lives in the read-out. The recurrence itself runs
in :func:`nwb_lfads.model.decoder.decode`.
"""

from __future__ import annotations

from typing import NamedTuple

import haiku as hk
import jax.numpy as jnp

from .gru import GRUWeights
from .noise import fan_in_init


class GeneratorParams(NamedTuple):
    """The generator's weights, float32 (split GRU layout, :mod:`.gru`)."""

    w_i: jnp.ndarray  # [U + X, 3G] input weights (inferred inputs, then external inputs)
    w_h: jnp.ndarray  # [G, 3G] recurrent weights
    b: jnp.ndarray  # [3G]
    w_fac: jnp.ndarray  # [G, F] factor map, unit-norm columns


def normalise_columns(w, eps: float = 1e-8):
    """Scale each column of ``w`` float32 [G, F] to unit Euclidean norm; returns [G, F]."""
    return w / jnp.sqrt(jnp.sum(w**2, axis=0, keepdims=True) + eps)


class Generator(hk.Module):
    """Owns the generator's parameters, the g0 map and the factor map. Call with the input
    width U + X (inferred plus external inputs; 0 = autonomous); returns :class:`GeneratorParams`."""

    def __init__(self, gen_dim: int, fac_dim: int, name: str | None = "generator"):
        super().__init__(name=name)
        self.G, self.F = gen_dim, fac_dim

    def __call__(self, co_dim: int) -> GeneratorParams:
        w_i, w_h, b = GRUWeights(self.G, name="gru")(co_dim)
        w_fac = hk.get_parameter("w_fac", [self.G, self.F], jnp.float32, init=fan_in_init())
        return GeneratorParams(w_i, w_h, b, normalise_columns(w_fac))

    def initial_state(self, ic_sample, clip: float):
        """g0 [B, G] from the initial-condition sample [B, D] (linear, then clipped)."""
        g0 = hk.Linear(self.G, name="ic_to_g0", w_init=fan_in_init())(ic_sample)
        return jnp.clip(g0, -clip, clip) if clip > 0 else g0
