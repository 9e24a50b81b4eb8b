"""Fused GRU cells: one input projection for all time steps, one recurrent matmul per step.

Shape glossary: B trials, T bins, I inputs, H hidden units, K cells run side by side.

Gate layout: every weight has three column blocks ``[r | u | c]`` (reset, update,
candidate), each H wide, so the input part of all gates is one ``[I, 3H]`` matmul and the
recurrent part one ``[H, 3H]`` matmul (the cuDNN ordering: the reset gate multiplies the
recurrent contribution of the candidate, ``c = tanh(x W_c + b_c + r * (h U_c))``, which lets
the recurrent matmul of all three gates be fused).

Sign convention of the update gate, and the initial bias:

- Haiku's ``hk.GRU`` computes ``h' = (1 - z) * h + z * a``: its gate ``z`` weights the NEW
  candidate ``a`` and ``1 - z`` the old state; a zero bias starts it halfway, and keeping the
  state needs a *negative* ``b_z``.
- The TF LFADS ``GRUCell`` computes ``h' = u * h + (1 - u) * c`` with
  ``u = sigmoid(... + forget_bias)``, ``forget_bias = 1.0``: ``u`` weights the OLD state.
- This module follows the TF LFADS convention: ``h' = u * h + (1 - u) * c`` and the update
  bias starts at ``+UPDATE_BIAS`` (1.0), so a fresh cell keeps ``sigmoid(1) = 73%`` of its state
  each step (a stable, slowly-forgetting regime), exactly like the TF LFADS cell.
"""

from __future__ import annotations

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from .noise import fan_in_init

UPDATE_BIAS = 1.0


def gru_core(a_r, a_u, c_x, c_h, h, clip: float | None = None):
    """One GRU update from pre-activations.

    Args:
        a_r, a_u: reset / update gate pre-activations, float32 [..., H].
        c_x: input (and bias) part of the candidate pre-activation, [..., H].
        c_h: recurrent part of the candidate pre-activation (before the reset gate), [..., H].
        h: previous state, [..., H].
        clip: clip the new state to ``[-clip, clip]`` (None = no clipping).

    Returns:
        the new state, float32 [..., H].
    """
    r = jax.nn.sigmoid(a_r)
    u = jax.nn.sigmoid(a_u)
    c = jnp.tanh(c_x + r * c_h)
    new = c + u * (h - c)  # = u * h + (1 - u) * c
    if clip is not None and clip > 0:
        new = jnp.clip(new, -clip, clip)
    return new


def gru_split(xg, hg, h, clip: float | None = None):
    """GRU update from the input part ``xg`` [..., 3H] (bias included) and recurrent part ``hg`` [..., 3H]."""
    H = h.shape[-1]
    return gru_core(
        xg[..., :H] + hg[..., :H],
        xg[..., H : 2 * H] + hg[..., H : 2 * H],
        xg[..., 2 * H :],
        hg[..., 2 * H :],
        h,
        clip,
    )


def gru_cat(g, h, clip: float | None = None):
    """GRU update from one fused pre-activation ``g`` [..., 4H] = ``[r | u | c_x | c_h]``
    (see :func:`cat_weights`); ``h`` [..., H]."""
    H = h.shape[-1]
    return gru_core(g[..., :H], g[..., H : 2 * H], g[..., 2 * H : 3 * H], g[..., 3 * H :], h, clip)


def cat_weights(w_i, w_h):
    """Stack input ``w_i`` [I, 3H] and recurrent ``w_h`` [H, 3H] weights into one [I + H, 4H]
    matrix so that ``concat([x, h]) @ W = [x Wr + h Ur | x Wu + h Uu | x Wc | h Uc]``."""
    H = w_h.shape[0]
    I = w_i.shape[0]
    top = jnp.concatenate([w_i, jnp.zeros((I, H), w_i.dtype)], axis=1)
    bottom = jnp.concatenate(
        [w_h[:, : 2 * H], jnp.zeros((H, H), w_h.dtype), w_h[:, 2 * H :]], axis=1
    )
    return jnp.concatenate([top, bottom], axis=0)


def _bias_init(hidden: int):
    def init(shape, dtype):
        b = np.zeros(shape, dtype=np.float32)
        b[hidden : 2 * hidden] = UPDATE_BIAS
        return jnp.asarray(b, dtype)

    return init


class GRUWeights(hk.Module):
    """The parameters of one GRU cell: ``w_i`` [I, 3H], ``w_h`` [H, 3H], ``b`` [3H].

    Weights start from a fan-in scaled normal (variance 1/fan_in, as in TF LFADS; see
    :func:`.noise.fan_in_init`); the bias
    from zero except the update block, ``+UPDATE_BIAS`` (see the module docstring).
    """

    def __init__(self, hidden: int, name: str | None = None):
        super().__init__(name=name)
        self.hidden = hidden

    def __call__(self, n_inputs: int):
        H = self.hidden
        init = fan_in_init()
        w_i = hk.get_parameter("w_i", [n_inputs, 3 * H], jnp.float32, init=init)
        w_h = hk.get_parameter("w_h", [H, 3 * H], jnp.float32, init=init)
        b = hk.get_parameter("b", [3 * H], jnp.float32, init=_bias_init(H))
        return w_i, w_h, b


def pad_gates(w, hidden: int, rows: int | None = None):
    """Zero-pad each of the three gate blocks of ``w`` [R, 3h] (or a bias [3h]) to ``hidden``
    columns, and the rows to ``rows``; returns [rows, 3 * hidden] (or [3 * hidden]).

    A cell padded this way keeps its padded state units at exactly zero."""
    h = w.shape[-1] // 3
    if w.ndim == 1:
        return jnp.pad(w.reshape(3, h), ((0, 0), (0, hidden - h))).reshape(3 * hidden)
    R = w.shape[0]
    w = jnp.pad(w.reshape(R, 3, h), ((0, (rows or R) - R), (0, 0), (0, hidden - h)))
    return w.reshape(rows or R, 3 * hidden)
