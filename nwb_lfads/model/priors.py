"""Priors of the initial condition and of the inferred inputs, and their KL terms.

Shape glossary: B trials, T bins, D ``ic_dim``, U ``co_dim``.

- Initial condition g0: Gaussian prior ``N(mu_p, ic_prior_var)`` with a learnable mean
  (starting at 0) and a fixed variance; the KL to the Gaussian posterior is analytic.
- Inferred inputs u_t: per dimension an AR(1) (Ornstein-Uhlenbeck) process with learnable
  time constant ``tau`` (bins) and learnable process (stationary) variance ``pvar``:
  ``u_0 ~ N(0, pvar)``, ``u_t = a u_{t-1} + e_t``, ``a = exp(-1 / tau)``,
  ``e_t ~ N(0, pvar (1 - a^2))``. The KL is estimated by sampling, as in TF LFADS:
  ``log q(u | x) - log p(u)`` at the posterior sample.

Pure functions do the maths; the two small Haiku modules only own the learnable values.
"""

from __future__ import annotations

import math

import haiku as hk
import jax.numpy as jnp

LOG_2PI = math.log(2.0 * math.pi)


def gaussian_kl(q_mean, q_var, p_mean, p_var):
    """KL(N(q_mean, q_var) || N(p_mean, p_var)) summed over the last axis.

    Args: arrays broadcastable to [..., D] (variances, not log-variances). Returns [...] nats.
    """
    return 0.5 * jnp.sum(
        jnp.log(p_var) - jnp.log(q_var) + (q_var + (q_mean - p_mean) ** 2) / p_var - 1.0, axis=-1
    )


def gaussian_log_density(x, mean, var):
    """Element-wise log N(x; mean, var), float32, same shape as the broadcast inputs."""
    return -0.5 * (LOG_2PI + jnp.log(var) + (x - mean) ** 2 / var)


def ar1_log_density(u, log_tau, log_pvar):
    """log p(u) under the AR(1) prior, summed over bins and dimensions.

    Args:
        u: inferred inputs, float32 [B, T, U].
        log_tau: log time constants in bins, [U].
        log_pvar: log process (stationary) variances, [U].

    Returns:
        log-density per trial, float32 [B].
    """
    a = jnp.exp(-jnp.exp(-log_tau))  # exp(-1 / tau)
    pvar = jnp.exp(log_pvar)
    nvar = pvar * (1.0 - a**2)  # innovation variance
    first = gaussian_log_density(u[:, 0], 0.0, pvar)  # [B, U]
    rest = gaussian_log_density(u[:, 1:], a * u[:, :-1], nvar)  # [B, T-1, U]
    return jnp.sum(first, axis=-1) + jnp.sum(rest, axis=(1, 2))


class ICPrior(hk.Module):
    """Learnable mean [D] (init 0) and fixed variance ``ic_prior_var`` of the g0 prior."""

    def __init__(self, ic_dim: int, ic_prior_var: float, name: str | None = "ic_prior"):
        super().__init__(name=name)
        self.ic_dim, self.var = ic_dim, ic_prior_var

    def __call__(self):
        mean = hk.get_parameter("mean", [self.ic_dim], jnp.float32, init=jnp.zeros)
        return mean, jnp.full((self.ic_dim,), self.var, jnp.float32)


class AR1Prior(hk.Module):
    """Learnable ``log_tau`` [U] (init log ``co_prior_tau`` bins) and ``log_pvar`` [U]
    (init log ``co_prior_var``) of the inferred-input prior."""

    def __init__(self, co_dim: int, tau: float, pvar: float, name: str | None = "co_prior"):
        super().__init__(name=name)
        self.co_dim, self.tau, self.pvar = co_dim, tau, pvar

    def __call__(self):
        log_tau = hk.get_parameter(
            "log_tau", [self.co_dim], jnp.float32, init=hk.initializers.Constant(math.log(self.tau))
        )
        log_pvar = hk.get_parameter(
            "log_pvar",
            [self.co_dim],
            jnp.float32,
            init=hk.initializers.Constant(math.log(self.pvar)),
        )
        return log_tau, log_pvar
