"""Observation models: a :class:`Likelihood` is two pure functions, ``nll`` and ``mean``.

Shape glossary: B trials, T bins, N units. ``out`` is the read-out's output per bin,
float32 [B, T, N]: the log of the expected count per bin for ``poisson``, the mean for
``gaussian`` (unit variance; meant for z-scored continuous data).

:func:`masked_nll` sums the element-wise NLL over bins and units with a weight, using the
double-``where`` guard so that masked elements (padded units, unobserved held-out units)
contribute exactly zero to the loss *and* to every gradient, whatever their values.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from ..errors import ConfigError


class Likelihood(NamedTuple):
    nll: Callable  # (out [..], x [..]) -> element-wise negative log-likelihood, nats
    mean: Callable  # out [..] -> expected value per bin (counts per bin for Poisson)


_N_TABLE = 1024
_LOG_FACTORIAL = np.array([math.lgamma(k + 1.0) for k in range(_N_TABLE)], np.float32)


def log_factorial(x):
    """``log(x!)`` element-wise for counts ``x`` (float32 holding whole numbers >= 0): a table
    below 1024, Stirling's series with its 1/(12 n) term above (relative error < 1e-12 there,
    below float32 rounding).

    Why not ``gammaln(x + 1)``: XLA evaluates its reflection branch (a sine) and its
    rational approximation for every element of every batch, a measurable part of the CPU
    training step (docs/DESIGN.md, "The step's CPU kernels") for a term that does not depend
    on the parameters. Returns float32 of the shape of ``x``."""
    k = jnp.clip(x, 0, _N_TABLE - 1).astype(jnp.int32)
    n = jnp.maximum(x, float(_N_TABLE)) + 1.0
    stirling = (n - 0.5) * jnp.log(n) - n + 0.5 * math.log(2.0 * math.pi) + 1.0 / (12.0 * n)
    return jnp.where(x < _N_TABLE, jnp.asarray(_LOG_FACTORIAL)[k], stirling)


def poisson_nll(log_rate, x):
    """-log Poisson(x; exp(log_rate)), element-wise, nats: ``log_rate`` (log expected count
    per bin) and ``x`` (counts as float32) of one shape [B, T, N] (or any)."""
    return jnp.exp(log_rate) - x * log_rate + log_factorial(x)


def gaussian_nll(mean, x):
    """-log N(x; mean, 1), element-wise, nats: ``mean`` and ``x`` float32 of one shape."""
    return 0.5 * (x - mean) ** 2 + 0.5 * math.log(2.0 * math.pi)


LIKELIHOODS = {
    "poisson": Likelihood(poisson_nll, jnp.exp),
    "gaussian": Likelihood(gaussian_nll, lambda out: out),
}


def get_likelihood(name: str) -> Likelihood:
    """The :class:`Likelihood` called ``name`` (a key of :data:`LIKELIHOODS`); raises
    :class:`~nwb_lfads.errors.ConfigError` for any other name."""
    if name not in LIKELIHOODS:
        raise ConfigError(
            f"model.likelihood: unknown likelihood {name!r}; "
            f"expected one of {', '.join(LIKELIHOODS)}."
        )
    return LIKELIHOODS[name]


def masked_nll(lik: Likelihood, out, x, weight):
    """Sum over bins and units of ``weight * nll(out, x)`` per trial.

    Args:
        out: read-out output, float32 [B, T, N].
        x: observed data, float32 [B, T, N].
        weight: float32 broadcastable to [B, T, N]; elements with weight 0 are ignored
            exactly (no NaN or inf can leak from them, neither forward nor backward).

    Returns:
        NLL per trial, float32 [B], nats.
    """
    on = jnp.broadcast_to(weight, out.shape) > 0
    safe_out = jnp.where(on, out, 0.0)
    safe_x = jnp.where(on, x, 0.0)
    nll = jnp.where(on, lik.nll(safe_out, safe_x) * weight, 0.0)
    return jnp.sum(nll, axis=(1, 2))
