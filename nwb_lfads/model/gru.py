"""The GRU cell shared by every recurrence: its forward step, its backward step, its weights.

Shape glossary: B trials, I inputs, H hidden units; ``...`` any leading axes (``[B]``, or
``[K, B]`` for K cells run side by side). Every array is float32.

The cell (TF LFADS ``GRUCell``), from four pre-activations :class:`GRUPre`, each [..., H]::

    r  = sigmoid(a_r)                 a_r = x W_r + b_r + h U_r
    u  = sigmoid(a_u)                 a_u = x W_u + b_u + h U_u
    c  = tanh(c_x + r * c_h)          c_x = x W_c + b_c,   c_h = h U_c
    h' = u * h + (1 - u) * c          then clipped to [-clip, clip] when clip > 0

The reset gate multiplies the recurrent part of the candidate (the cuDNN ordering), so the
recurrent products of all three gates are one matmul. :func:`gru_cell` and
:func:`gru_cell_bwd` take the pre-activations, not ``x`` and the weights: the recurrences
(:mod:`.rnn`, :mod:`.control_loop`) run the matmuls themselves, and every one of them computes
the input part ``x_t W`` inside its time loop, in the same per-step matmul as (or next to) the
recurrent part; none projects the inputs of all bins before the loop (docs/DESIGN.md,
"Recurrences have a hand-written backward pass"). Two weight layouts feed the cell:

- split: ``w_i`` [I, 3H], ``w_h`` [H, 3H], ``b`` [3H], each in column blocks ``[r | u | c]``;
  ``x @ w_i + b`` and ``h @ w_h`` [..., 3H] give :meth:`GRUPre.from_split` (the encoders and
  the autonomous generator, :mod:`.rnn`).
- fused: ``cat_weights(w_i, w_h)`` [I + H, 4H] in blocks ``[r | u | c_x | c_h]``;
  ``[x, h] @ W + b`` [..., 4H] gives :meth:`GRUPre.from_fused` (the controller and the
  generator with inferred inputs, :mod:`.control_loop`).

Sign of the update gate, and its initial bias: Haiku's ``hk.GRU`` computes
``h' = (1 - z) * h + z * a`` (its gate weights the NEW candidate). This cell follows TF LFADS:
``u`` weights the OLD state and its bias starts at ``+UPDATE_BIAS`` (1.0, TF's
``forget_bias``), so a fresh cell keeps ``sigmoid(1) = 73%`` of its state per step.
"""

from __future__ import annotations

from typing import NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from .noise import fan_in_init

UPDATE_BIAS = 1.0


class GRUPre(NamedTuple):
    """The four pre-activations of one GRU step (or their cotangents), float32, each [..., H]:
    reset ``r``, update ``u``, input part of the candidate ``c_x`` (bias included) and its
    recurrent part ``c_h`` (before the reset gate)."""

    r: jnp.ndarray
    u: jnp.ndarray
    c_x: jnp.ndarray
    c_h: jnp.ndarray

    @classmethod
    def from_split(cls, xg, hg) -> GRUPre:
        """From the input part ``xg = x @ w_i + b`` and the recurrent part ``hg = h @ w_h``,
        each [..., 3H] (or broadcastable, e.g. a bias [3H]) in blocks ``[r | u | c]``."""
        H = hg.shape[-1] // 3
        return cls(
            xg[..., :H] + hg[..., :H],
            xg[..., H : 2 * H] + hg[..., H : 2 * H],
            xg[..., 2 * H :],
            hg[..., 2 * H :],
        )

    @classmethod
    def from_fused(cls, a) -> GRUPre:
        """From one fused pre-activation ``a = [x, h] @ cat_weights(w_i, w_h) + b``
        [..., 4H] in blocks ``[r | u | c_x | c_h]``."""
        H = a.shape[-1] // 4
        return cls(a[..., :H], a[..., H : 2 * H], a[..., 2 * H : 3 * H], a[..., 3 * H :])

    def to_split(self) -> tuple[jnp.ndarray, jnp.ndarray]:
        """Cotangents of ``(xg, hg)`` [..., 3H] each, from cotangents of the pre-activations:
        the transpose of :meth:`from_split`."""
        return (
            jnp.concatenate([self.r, self.u, self.c_x], axis=-1),
            jnp.concatenate([self.r, self.u, self.c_h], axis=-1),
        )

    def to_fused(self) -> jnp.ndarray:
        """Cotangent of ``a`` [..., 4H]: the transpose (and inverse) of :meth:`from_fused`."""
        return jnp.concatenate([self.r, self.u, self.c_x, self.c_h], axis=-1)


def gru_cell(pre: GRUPre, h, clip: float = 0.0):
    """One GRU step from its pre-activations (see the module docstring).

    Args:
        pre: pre-activations, float32, each [..., H].
        h: previous state, float32 [..., H].
        clip: clip the new state to ``[-clip, clip]``; 0 or less = no clipping.

    Returns:
        the new state ``h'``, float32 [..., H].
    """
    r = jax.nn.sigmoid(pre.r)
    u = jax.nn.sigmoid(pre.u)
    c = jnp.tanh(pre.c_x + r * pre.c_h)
    new = c + u * (h - c)  # = u * h + (1 - u) * c
    if clip > 0:
        new = jnp.clip(new, -clip, clip)
    return new


def gru_cell_bwd(pre: GRUPre, h, dh_new, h_new=None, clip: float = 0.0):
    """The backward of :func:`gru_cell`: recomputes the gates from ``pre`` and ``h``.

    Args:
        pre: the step's pre-activations, float32, each [..., H].
        h: the state before the step, float32 [..., H].
        dh_new: cotangent of the step's (clipped) output ``h'``, float32 [..., H].
        h_new: the step's output ``h'`` [..., H]; read only when ``clip > 0`` (no gradient
            flows where the state sits at the clip).
        clip: the clip the forward step used (0 or less = none).

    Returns:
        ``(d_pre, dh)``: cotangents of the pre-activations (a :class:`GRUPre`, each
        [..., H]) and of ``h`` [..., H] through the cell's element-wise part (``u * h``);
        the caller adds the path through its matmul, ``d_pre`` times the recurrent weights.
    """
    if clip > 0:
        dh_new = jnp.where(jnp.abs(h_new) < clip, dh_new, 0.0)
    r = jax.nn.sigmoid(pre.r)
    u = jax.nn.sigmoid(pre.u)
    c = jnp.tanh(pre.c_x + r * pre.c_h)
    du = dh_new * (h - c) * u * (1.0 - u)
    dc_x = dh_new * (1.0 - u) * (1.0 - c * c)
    dr = dc_x * pre.c_h * r * (1.0 - r)
    return GRUPre(dr, du, dc_x, dc_x * r), dh_new * u


def cat_weights(w_i, w_h):
    """The fused layout: input weights ``w_i`` [I, 3H] and recurrent ``w_h`` [H, 3H] (split
    layout) stacked into one float32 [I + H, 4H] matrix with
    ``concat([x, h]) @ W = [x W_r + h U_r | x W_u + h U_u | x W_c | h U_c]``."""
    H = w_h.shape[0]
    I = w_i.shape[0]
    top = jnp.concatenate([w_i, jnp.zeros((I, H), w_i.dtype)], axis=1)
    bottom = jnp.concatenate(
        [w_h[:, : 2 * H], jnp.zeros((H, H), w_h.dtype), w_h[:, 2 * H :]], axis=1
    )
    return jnp.concatenate([top, bottom], axis=0)


def pad_gates(w, hidden: int, rows: int | None = None):
    """Zero-pad each of the three gate blocks of ``w`` [R, 3h] (or a bias [3h]) to ``hidden``
    columns, and the rows to ``rows``; returns float32 [rows, 3 * hidden] (or [3 * hidden]).

    A cell padded this way keeps its padded state units at exactly zero."""
    h = w.shape[-1] // 3
    if w.ndim == 1:
        return jnp.pad(w.reshape(3, h), ((0, 0), (0, hidden - h))).reshape(3 * hidden)
    R = w.shape[0]
    w = jnp.pad(w.reshape(R, 3, h), ((0, (rows or R) - R), (0, 0), (0, hidden - h)))
    return w.reshape(rows or R, 3 * hidden)


def _bias_init(hidden: int):
    def init(shape, dtype):
        b = np.zeros(shape, dtype=np.float32)
        b[hidden : 2 * hidden] = UPDATE_BIAS
        return jnp.asarray(b, dtype)

    return init


class GRUWeights(hk.Module):
    """The parameters of one GRU cell in the split layout: ``w_i`` [I, 3H], ``w_h`` [H, 3H],
    ``b`` [3H], float32.

    Weights start from a fan-in scaled normal (variance 1/fan_in, as in TF LFADS; see
    :func:`.noise.fan_in_init`); the bias from zero except the update block, ``+UPDATE_BIAS``.
    Call with I, the input width; returns ``(w_i, w_h, b)``.
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
