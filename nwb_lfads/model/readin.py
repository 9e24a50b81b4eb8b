"""Per-session read-in (units -> shared encoder input) and read-out (factors -> units).

Shape glossary: B trials, T bins, S sessions, N units (padded to the largest session),
R ``readin_dim``, F ``fac_dim``.

Weights of all sessions are stacked, ``[S, N, R]`` and ``[S, F, N]``, and gathered by each
trial's session index, so one compiled step serves every session. Padded units have zero
input (masked by the caller) and zero loss weight, so their read-in rows and read-out columns
receive exactly zero gradient; they are also initialised to zero.

Initial weights can be handed in as a :class:`ReadInit` (e.g. the principal-component
regression of :func:`nwb_lfads.stitching.readin_init_from_data`); any field left ``None``
falls back to the default initialiser.
"""

from __future__ import annotations

from typing import NamedTuple

import haiku as hk
import jax.numpy as jnp
import numpy as np

from .noise import normal_init


class ReadInit(NamedTuple):
    """Optional initial values, numpy float32: ``readin_w`` [S, N, R], ``readin_b`` [S, R],
    ``readout_w`` [S, F, N], ``readout_b`` [S, N] (log expected counts per bin for Poisson)."""

    readin_w: np.ndarray | None = None
    readin_b: np.ndarray | None = None
    readout_w: np.ndarray | None = None
    readout_b: np.ndarray | None = None


def _init_or(value, shape, default):
    if value is None:
        return default
    value = np.asarray(value, np.float32)
    if value.shape != tuple(shape):
        from ..errors import ConfigError

        raise ConfigError(
            f"read-in/read-out initial value has shape {value.shape}, expected {tuple(shape)}."
        )
    return hk.initializers.Constant(value)


def _masked_normal(unit_mask, axis: int, fan_in: int):
    """Initializer of Normal(0, 1/fan_in) weights [S, N, R] or [S, F, N], zero where the
    unit does not exist (``unit_mask`` bool [S, N]; unit axis ``axis``)."""

    def init(shape, dtype):
        w = normal_init(1.0 / np.sqrt(fan_in))(shape, dtype)
        m = jnp.asarray(unit_mask, dtype)  # [S, N]
        m = m[:, :, None] if axis == 1 else m[:, None, :]
        return w * m

    return init


class ReadIn(hk.Module):
    """Linear map of units to the encoder input: call with ``x`` float32 [B, T, N] and
    ``session`` int32 [B]; returns float32 [B, T, R]."""

    def __init__(
        self,
        unit_mask: np.ndarray,
        readin_dim: int,
        init: ReadInit | None = None,
        name: str | None = "readin",
    ):
        super().__init__(name=name)
        self.unit_mask = np.asarray(unit_mask, bool)
        self.R = readin_dim
        self.init = init or ReadInit()

    def __call__(self, x, session):
        S, N = self.unit_mask.shape
        fan = max(int(self.unit_mask.sum(axis=1).max()), 1)
        w = hk.get_parameter(
            "w",
            [S, N, self.R],
            jnp.float32,
            init=_init_or(
                self.init.readin_w, (S, N, self.R), _masked_normal(self.unit_mask, 1, fan)
            ),
        )
        b = hk.get_parameter(
            "b", [S, self.R], jnp.float32, init=_init_or(self.init.readin_b, (S, self.R), jnp.zeros)
        )
        if S == 1:
            return x @ w[0] + b[0]
        return jnp.einsum("btn,bnr->btr", x, w[session]) + b[session][:, None, :]


class ReadOut(hk.Module):
    """Linear map of factors to per-unit outputs (log-rates for Poisson): call with
    ``factors`` float32 [B, T, F] and ``session`` int32 [B]; returns float32 [B, T, N]."""

    def __init__(
        self,
        unit_mask: np.ndarray,
        fac_dim: int,
        init: ReadInit | None = None,
        name: str | None = "readout",
    ):
        super().__init__(name=name)
        self.unit_mask = np.asarray(unit_mask, bool)
        self.F = fac_dim
        self.init = init or ReadInit()

    def __call__(self, factors, session):
        S, N = self.unit_mask.shape
        w = hk.get_parameter(
            "w",
            [S, self.F, N],
            jnp.float32,
            init=_init_or(
                self.init.readout_w, (S, self.F, N), _masked_normal(self.unit_mask, 2, self.F)
            ),
        )
        b = hk.get_parameter(
            "b", [S, N], jnp.float32, init=_init_or(self.init.readout_b, (S, N), jnp.zeros)
        )
        if S == 1:
            return factors @ w[0] + b[0]
        return jnp.einsum("btf,bfn->btn", factors, w[session]) + b[session][:, None, :]


def apply_read_init(params: dict, init: ReadInit | None) -> dict:
    """Return ``params`` with the read-in/read-out values of ``init`` (fields not None)
    put in place (same effect as passing ``init`` to the modules, without recompiling)."""
    if init is None:
        return params
    params = {m: dict(v) for m, v in params.items()}
    slots = {
        "readin_w": ("readin", "w"),
        "readin_b": ("readin", "b"),
        "readout_w": ("readout", "w"),
        "readout_b": ("readout", "b"),
    }
    for field, (suffix, name) in slots.items():
        value = getattr(init, field)
        if value is None:
            continue
        module = next((m for m in params if m.endswith(suffix)), None)
        if module is None:
            from ..errors import ConfigError

            raise ConfigError(
                f"{field} was given but the model has no {suffix} (one session with readin_dim = 0)."
            )
        want = tuple(params[module][name].shape)
        value = np.asarray(value, np.float32)
        if value.shape != want:
            from ..errors import ConfigError

            raise ConfigError(f"{field} has shape {value.shape}, expected {want}.")
        params[module][name] = jnp.asarray(value)
    return params
