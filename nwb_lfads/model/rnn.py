"""A GRU layer over a whole sequence with a hand-written backward pass (``jax.custom_vjp``).

Shape glossary: T bins, B trials, I inputs, D input streams, K cells sharing the time loop
(each with its own weights; cell k reads stream ``k // (K // D)``), H hidden units.

A bidirectional encoder is one layer with D = 2 streams, the sequence and its time reversal:
both directions (and several encoders) advance in the same loop, one batched matmul per
step for all cells.

Why: on CPU, XLA's reverse-mode of a ``lax.scan`` stores every intermediate of every step
and runs many small kernels; the step is bound by memory traffic, not arithmetic. Here the
forward pass keeps only the states ``hs``; the backward pass recomputes the gates of each
step from ``x_t`` and ``h_{t-1}`` and accumulates the weight gradients in its carry, so no
``[T, ...]`` array other than ``hs`` (and the input cotangent, when asked for) is ever
materialised. The input projection ``x_t W_i`` runs inside the loop for the same reason.

Cell (see :mod:`.gru` for the convention): ``r = s(x W_r + b_r + h U_r)``,
``u = s(x W_u + b_u + h U_u)``, ``c = tanh(x W_c + b_c + r * (h U_c))``,
``h' = u * h + (1 - u) * c``; the initial state is zero.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp


def _cell_inputs(x_t, K):
    """Stream inputs [D, B, I] -> per-cell inputs [K, B, I]."""
    return jnp.repeat(x_t, K // x_t.shape[0], axis=0)


def _gates(xk, h, w_i, w_h, b):
    """Pre-activations of one step: ``ax`` [K, B, 3H] (input part + bias), ``ah`` [K, B, 3H]."""
    ax = jnp.einsum("kbi,kig->kbg", xk, w_i) + b[:, None, :]
    ah = jnp.einsum("kbh,khg->kbg", h, w_h)
    return ax, ah


def _cell(ax, ah, h):
    H = h.shape[-1]
    r = jax.nn.sigmoid(ax[..., :H] + ah[..., :H])
    u = jax.nn.sigmoid(ax[..., H : 2 * H] + ah[..., H : 2 * H])
    c = jnp.tanh(ax[..., 2 * H :] + r * ah[..., 2 * H :])
    return c + u * (h - c), (r, u, c)


def _forward(x, w_i, w_h, b):
    K, H = w_h.shape[0], w_h.shape[1]
    h0 = jnp.zeros((K, x.shape[2], H), x.dtype)

    def step(h, x_t):
        h, _ = _cell(*_gates(_cell_inputs(x_t, K), h, w_i, w_h, b), h)
        return h, h

    _, hs = jax.lax.scan(step, h0, x)
    return hs


@partial(jax.custom_vjp, nondiff_argnums=(4,))
def gru_layer(x, w_i, w_h, b, need_dx: bool = False):
    """Run K GRU cells over D input streams, from a zero state.

    Args:
        x: inputs, float32 [T, D, B, I] (time-major; each stream in the order its cells read it).
        w_i: input weights [K, I, 3H]; w_h: recurrent weights [K, H, 3H]; b: biases [K, 3H].
        need_dx: compute the gradient with respect to ``x`` (only when ``x`` depends on
            parameters, e.g. a read-in); otherwise it is returned as zeros.

    Returns:
        states ``hs`` [T, K, B, H]; ``hs[t]`` is the state after reading step t of its stream.
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
        ax, ah = _gates(xk, hp, w_i, w_h, b)
        _, (r, u, c) = _cell(ax, ah, hp)
        dh = dh + g_t
        du = dh * (hp - c)
        dcx = dh * (1.0 - u) * (1.0 - c * c)
        dr = dcx * ah[..., 2 * H :] * r * (1.0 - r)
        du = du * u * (1.0 - u)
        d_ax = jnp.concatenate([dr, du, dcx], axis=-1)  # [K, B, 3H]
        d_ah = jnp.concatenate([dr, du, dcx * r], axis=-1)
        dh_prev = dh * u + jnp.einsum("kbg,khg->kbh", d_ah, w_h)
        dw_i = dw_i + jnp.einsum("kbi,kbg->kig", xk, d_ax)
        dw_h = dw_h + jnp.einsum("kbh,kbg->khg", hp, d_ah)
        db = db + jnp.sum(d_ax, axis=1)
        dx = (
            jnp.einsum("kbg,kig->kbi", d_ax, w_i).reshape(D, K // D, B, -1).sum(axis=1)
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
    def step(h, _):
        ah = h @ w_h
        h, _ = _cell(b, ah, h)
        if clip > 0:
            h = jnp.clip(h, -clip, clip)
        return h, h

    _, hs = jax.lax.scan(step, h0, None, length=n_steps)
    return hs


@partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def gru_autonomous(h0, w_h, b, n_steps: int, clip: float = 0.0):
    """A GRU without input (the autonomous generator) from state ``h0``.

    Args:
        h0: initial state [B, H]; w_h: recurrent weights [H, 3H]; b: bias [3H].
        n_steps: T. clip: clip every new state to [-clip, clip] (0 = none).

    Returns:
        states [T, B, H] (``hs[t]`` after t + 1 steps).
    """
    return _autonomous_forward(h0, w_h, b, n_steps, clip)


def _auto_fwd(h0, w_h, b, n_steps, clip):
    hs = _autonomous_forward(h0, w_h, b, n_steps, clip)
    return hs, (h0, w_h, b, hs)


def _auto_bwd(n_steps, clip, res, g):
    h0, w_h, b, hs = res
    H = h0.shape[-1]
    h_prev = jnp.concatenate([h0[None], hs[:-1]])

    def step(carry, xs):
        dh, dw_h, db = carry
        hp, hn, g_t = xs
        ah = hp @ w_h
        _, (r, u, c) = _cell(b, ah, hp)
        dh = dh + g_t
        if clip > 0:
            dh = jnp.where(jnp.abs(hn) < clip, dh, 0.0)
        du = dh * (hp - c) * u * (1.0 - u)
        dcx = dh * (1.0 - u) * (1.0 - c * c)
        dr = dcx * ah[..., 2 * H :] * r * (1.0 - r)
        d_ah = jnp.concatenate([dr, du, dcx * r], axis=-1)
        dh_prev = dh * u + d_ah @ w_h.T
        dw_h = dw_h + hp.T @ d_ah
        db = db + jnp.sum(jnp.concatenate([dr, du, dcx], axis=-1), axis=0)
        return (dh_prev, dw_h, db), None

    init = (jnp.zeros_like(h0), jnp.zeros_like(w_h), jnp.zeros_like(b))
    (dh0, dw_h, db), _ = jax.lax.scan(step, init, (h_prev, hs, g), reverse=True)
    return dh0, dw_h, db


gru_autonomous.defvjp(_auto_fwd, _auto_bwd)
