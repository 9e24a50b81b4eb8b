"""GRU layers over whole sequences with hand-written backward passes (``jax.custom_vjp``).

Shape glossary: T bins, B trials, I inputs, D input streams, K cells sharing the time loop
(each with its own weights; cell k reads stream ``k // (K // D)``), H hidden units. Every
array is float32; sequences are time-major.

:func:`gru_layer` runs the encoders: a bidirectional encoder is one layer with D = 2 streams,
the sequence and its time reversal, and both directions (of both encoders) advance in the same
loop, one batched input matmul and one batched recurrent matmul per step for all cells.
:func:`gru_autonomous` runs the generator without inferred inputs (no input matmul at all).

Both use the split weight layout and the cell of :mod:`.gru` (:func:`.gru.gru_cell`,
:func:`.gru.gru_cell_bwd`). The input projection ``x_t W_i`` runs inside the loop, per step,
like the recurrent one. The forward pass keeps only the states ``hs``; the backward pass walks
the bins in reverse, recomputes each step's pre-activations from ``x_t`` and ``h_{t-1}``, and
accumulates the weight gradients in its carry, so no ``[T, ...]`` array other than ``hs`` (and
the input cotangent, when asked for) is stored. Why: XLA's reverse mode of a ``lax.scan``
stores every intermediate of every step, and on CPU the step is bound by memory traffic
(docs/DESIGN.md, "Recurrences have a hand-written backward pass").
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from .gru import GRUPre, gru_cell, gru_cell_bwd


def _cell_inputs(x_t, K):
    """Stream inputs [D, B, I] -> per-cell inputs [K, B, I]."""
    return jnp.repeat(x_t, K // x_t.shape[0], axis=0)


def _pre(xk, h, w_i, w_h, b):
    """Pre-activations of one step of K cells: inputs ``xk`` [K, B, I], states ``h``
    [K, B, H], weights ``w_i`` [K, I, 3H], ``w_h`` [K, H, 3H], ``b`` [K, 3H]; returns a
    :class:`.gru.GRUPre`, each [K, B, H]."""
    xg = jnp.einsum("kbi,kig->kbg", xk, w_i) + b[:, None, :]
    hg = jnp.einsum("kbh,khg->kbg", h, w_h)
    return GRUPre.from_split(xg, hg)


def _forward(x, w_i, w_h, b):
    """:func:`gru_layer` without its custom gradient (the reference for autodiff)."""
    K, H = w_h.shape[0], w_h.shape[1]
    h0 = jnp.zeros((K, x.shape[2], H), x.dtype)

    def step(h, x_t):
        h = gru_cell(_pre(_cell_inputs(x_t, K), h, w_i, w_h, b), h)
        return h, h

    _, hs = jax.lax.scan(step, h0, x)
    return hs


@partial(jax.custom_vjp, nondiff_argnums=(4,))
def gru_layer(x, w_i, w_h, b, need_dx: bool = False):
    """Run K GRU cells over D input streams, from a zero state.

    Args:
        x: inputs, float32 [T, D, B, I] (time-major; each stream in the order its cells read it).
        w_i: input weights, float32 [K, I, 3H]; w_h: recurrent weights [K, H, 3H];
            b: biases [K, 3H] (split layout, :mod:`.gru`).
        need_dx: compute the gradient with respect to ``x`` (only when ``x`` depends on
            parameters, e.g. a read-in); otherwise it is returned as zeros.

    Returns:
        states ``hs``, float32 [T, K, B, H]; ``hs[t]`` is the state after reading step t of
        its stream.
    """
    return _forward(x, w_i, w_h, b)


def _fwd(x, w_i, w_h, b, need_dx):
    hs = _forward(x, w_i, w_h, b)
    return hs, (x, w_i, w_h, b, hs)


def _bwd(need_dx, res, g):
    x, w_i, w_h, b, hs = res
    T, K, B, H = hs.shape
    D = x.shape[1]
    h_prev = jnp.concatenate([jnp.zeros((1, K, B, H), hs.dtype), hs[:-1]])  # state before each step

    def step(carry, xs):
        dh, dw_i, dw_h, db = carry
        x_t, hp, g_t = xs
        xk = _cell_inputs(x_t, K)
        d_pre, dh_direct = gru_cell_bwd(_pre(xk, hp, w_i, w_h, b), hp, dh + g_t)
        d_xg, d_hg = d_pre.to_split()  # [K, B, 3H] each
        dh_prev = dh_direct + jnp.einsum("kbg,khg->kbh", d_hg, w_h)
        dw_i = dw_i + jnp.einsum("kbi,kbg->kig", xk, d_xg)
        dw_h = dw_h + jnp.einsum("kbh,kbg->khg", hp, d_hg)
        db = db + jnp.sum(d_xg, axis=1)
        dx = (
            jnp.einsum("kbg,kig->kbi", d_xg, w_i).reshape(D, K // D, B, -1).sum(axis=1)
            if need_dx
            else None
        )
        return (dh_prev, dw_i, dw_h, db), dx

    init = (
        jnp.zeros((K, B, H), hs.dtype),
        jnp.zeros_like(w_i),
        jnp.zeros_like(w_h),
        jnp.zeros_like(b),
    )
    (_, dw_i, dw_h, db), dx = jax.lax.scan(step, init, (x, h_prev, g), reverse=True)
    return (dx if need_dx else jnp.zeros_like(x)), dw_i, dw_h, db


gru_layer.defvjp(_fwd, _bwd)


def _autonomous_forward(h0, w_h, b, n_steps, clip):
    """:func:`gru_autonomous` without its custom gradient (the reference for autodiff)."""

    def step(h, _):
        h = gru_cell(GRUPre.from_split(b, h @ w_h), h, clip)
        return h, h

    _, hs = jax.lax.scan(step, h0, None, length=n_steps)
    return hs


@partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def gru_autonomous(h0, w_h, b, n_steps: int, clip: float = 0.0):
    """A GRU without input (the autonomous generator) from state ``h0``.

    Args:
        h0: initial state, float32 [B, H]; w_h: recurrent weights [H, 3H]; b: bias [3H]
            (split layout, :mod:`.gru`).
        n_steps: T. clip: clip every new state to [-clip, clip] (0 = none).

    Returns:
        states, float32 [T, B, H] (``hs[t]`` after t + 1 steps).
    """
    return _autonomous_forward(h0, w_h, b, n_steps, clip)


def _auto_fwd(h0, w_h, b, n_steps, clip):
    hs = _autonomous_forward(h0, w_h, b, n_steps, clip)
    return hs, (h0, w_h, b, hs)


def _auto_bwd(n_steps, clip, res, g):
    h0, w_h, b, hs = res
    h_prev = jnp.concatenate([h0[None], hs[:-1]])

    def step(carry, xs):
        dh, dw_h, db = carry
        hp, hn, g_t = xs
        pre = GRUPre.from_split(b, hp @ w_h)
        d_pre, dh_direct = gru_cell_bwd(pre, hp, dh + g_t, hn, clip)
        d_xg, d_hg = d_pre.to_split()  # [B, 3H] each
        dh_prev = dh_direct + d_hg @ w_h.T
        dw_h = dw_h + hp.T @ d_hg
        db = db + jnp.sum(d_xg, axis=0)
        return (dh_prev, dw_h, db), None

    init = (jnp.zeros_like(h0), jnp.zeros_like(w_h), jnp.zeros_like(b))
    (dh0, dw_h, db), _ = jax.lax.scan(step, init, (h_prev, hs, g), reverse=True)
    return dh0, dw_h, db


gru_autonomous.defvjp(_auto_fwd, _auto_bwd)
