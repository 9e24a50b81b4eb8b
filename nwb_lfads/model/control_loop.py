"""The controller-generator recurrence with a hand-written backward pass (``jax.custom_vjp``).

Shape glossary: T bins, B trials, G ``gen_dim``, K ``con_dim``, U ``co_dim``,
I2 = 2 ``ci_enc_dim`` (width of the CI encodings; with external inputs the caller appends
them here, so the controller reads them too), X external inputs (``ext``; None = X is 0 and
the step is exactly the one without them). Every array is float32; sequences are
time-major.

One step (see :mod:`.decoder` for the roles; GRU cell and fused layout in :mod:`.gru`)::

    a   = [ci_t, gm_{t-1}, c_{t-1}] W_con + b_con   # [B, 4K], fused GRU pre-activations
    c_t = GRU(a, c_{t-1})                           # controller state, clipped
    [mean_t, raw_t] = c_t W_co + b_co;  var_t = exp(raw_t) + var_min
    u_t = mean_t + sqrt(var_t) * eps_t              # inferred input (reparameterised sample)
    z   = [u_t, x_t, g_{t-1}] W_gen + b_gen         # [B, 4G]; x_t external inputs [B, X]
    g_t = GRU(z, g_{t-1});  gm_t = g_t * keep_t     # generator state, clipped; dropout scale

The input projections run inside the loop: the CI encodings and the previous factors enter
the controller's one fused matmul per bin ([B, I2 + G + K] x [I2 + G + K, 4K]), the inferred
input the generator's ([B, U + G] x [U + G, 4G]); nothing is projected for all bins before
the loop (docs/DESIGN.md, "The step's CPU kernels"). The forward pass keeps the states ``c``,
``g`` (and the outputs); the backward pass walks the bins in reverse, recomputes each step
from the saved states (:func:`.gru.gru_cell_bwd` for both cells), and accumulates the weight
gradients in its carry, so no per-step intermediate is stored.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from .gru import GRUPre, gru_cell, gru_cell_bwd


def _gen_input(u, ext_t, g):
    """The generator's fused-matmul input ``[u, ext_t, g]`` ([u, g] without external inputs)."""
    return jnp.concatenate([u, g] if ext_t is None else [u, ext_t, g], axis=-1)


def _step(params, clip, var_min, c, g, gm, ci_t, eps_t, keep_t, ext_t=None):
    """One bin: states ``c`` [B, K], ``g`` [B, G], ``gm`` [B, G] (``g`` times its dropout
    scale), inputs ``ci_t`` [B, I2], ``eps_t`` [B, U], ``keep_t`` [B, G], ``ext_t`` [B, X] or
    None; returns the new ``(c, g, gm)`` and the posterior ``mean``, ``var`` and sample ``u``,
    each [B, U]."""
    w_con, b_con, w_co, b_co, w_gen, b_gen = params
    U = w_co.shape[1] // 2
    a = jnp.concatenate([ci_t, gm, c], axis=-1) @ w_con + b_con
    c_new = gru_cell(GRUPre.from_fused(a), c, clip)
    co = c_new @ w_co + b_co
    mean, var = co[:, :U], jnp.exp(co[:, U:]) + var_min
    u = mean + jnp.sqrt(var) * eps_t
    z = _gen_input(u, ext_t, g) @ w_gen + b_gen
    g_new = gru_cell(GRUPre.from_fused(z), g, clip)
    return c_new, g_new, g_new * keep_t, mean, var, u


def _forward(params, g0, ci, eps, keep, clip, var_min, ext=None):
    """:func:`control_loop` without its custom gradient (the reference for autodiff); returns
    every step's ``(c [T, B, K], g [T, B, G], gm [T, B, G], mean, var, u [T, B, U])``."""
    K = params[0].shape[1] // 4
    c0 = jnp.zeros((g0.shape[0], K), g0.dtype)

    def step(carry, xs):
        c, g, gm = carry
        c, g, gm, mean, var, u = _step(params, clip, var_min, c, g, gm, *xs)
        return (c, g, gm), (c, g, gm, mean, var, u)

    _, out = jax.lax.scan(step, (c0, g0, g0), (ci, eps, keep, ext))
    return out


@partial(jax.custom_vjp, nondiff_argnums=(5, 6))
def control_loop(params, g0, ci, eps, keep, clip: float, var_min: float, ext=None):
    """Run the controller and generator together.

    Args:
        params: ``(w_con [I2 + G + K, 4K], b_con [4K], w_co [K, 2U], b_co [2U],
            w_gen [U + X + G, 4G], b_gen [4G])`` (fused GRU weights, see :func:`.gru.cat_weights`;
            the last K entries of ``b_con`` are zero).
        g0: initial generator state [B, G]. ci: CI encodings [T, B, I2].
        eps: standard normal noise [T, B, U].
        keep: dropout scale of the generator state [T, B, G] (ones without dropout).
        clip: state clip of both GRUs (0 = none). var_min: floor of the input variance.
        ext: external inputs [T, B, X] fed to the generator with ``u``, or None (none; no
            gradient flows to them).

    Returns:
        ``(gm, mean, var, u)``: factor input [T, B, G] (generator states times ``keep``) and
        the inferred-input posterior mean, variance and sample, each [T, B, U].
    """
    _, _, gm, mean, var, u = _forward(params, g0, ci, eps, keep, clip, var_min, ext)
    return gm, mean, var, u


def control_loop_states(params, g0, ci, eps, keep, clip: float, var_min: float, ext=None):
    """:func:`control_loop` that also returns the controller states, for inference.

    Same arguments; returns ``(c, gm, mean, var, u)``: the controller states [T, B, K], then
    what :func:`control_loop` returns. Differentiated by plain autodiff (no custom gradient),
    so it is meant for posterior sampling, not training.
    """
    cs, _, gm, mean, var, u = _forward(params, g0, ci, eps, keep, clip, var_min, ext)
    return cs, gm, mean, var, u


def _fwd(params, g0, ci, eps, keep, clip, var_min, ext=None):
    cs, gs, gm, mean, var, u = _forward(params, g0, ci, eps, keep, clip, var_min, ext)
    return (gm, mean, var, u), (params, g0, ci, eps, keep, ext, cs, gs, gm)


def _bwd(clip, var_min, res, cot):
    params, g0, ci, eps, keep, ext, cs, gs, gms = res
    w_con, b_con, w_co, b_co, w_gen, b_gen = params
    I2 = ci.shape[-1]
    d_gm_out, d_mean_out, d_var_out, d_u_out = cot
    B, K = cs.shape[1], cs.shape[2]
    U = w_co.shape[1] // 2
    X = 0 if ext is None else ext.shape[-1]
    c_prev = jnp.concatenate([jnp.zeros((1, B, K), cs.dtype), cs[:-1]])
    g_prev = jnp.concatenate([g0[None], gs[:-1]])
    gm_prev = jnp.concatenate([g0[None], gms[:-1]])

    def step(carry, xs):
        dc, dg, dgm, dw_con, db_con, dw_co, db_co, dw_gen, db_gen = carry
        cp, gp, gmp, c_t, g_t, ci_t, eps_t, keep_t, ext_t, d_gm, d_mean, d_var, d_u = xs
        # recompute the step's pre-activations
        a_in = jnp.concatenate([ci_t, gmp, cp], axis=-1)
        a = GRUPre.from_fused(a_in @ w_con + b_con)
        co = c_t @ w_co + b_co
        mean, raw = co[:, :U], co[:, U:]
        var = jnp.exp(raw) + var_min
        std = jnp.sqrt(var)
        u = mean + std * eps_t
        z_in = _gen_input(u, ext_t, gp)
        z = GRUPre.from_fused(z_in @ w_gen + b_gen)
        # generator
        dz, dg_direct = gru_cell_bwd(z, gp, dg + (d_gm + dgm) * keep_t, g_t, clip)
        dz = dz.to_fused()  # [B, 4G]
        dz_in = dz @ w_gen.T
        dw_gen = dw_gen + z_in.T @ dz
        db_gen = db_gen + jnp.sum(dz, axis=0)
        # inferred-input posterior
        du = dz_in[:, :U] + d_u
        dvar = du * eps_t * 0.5 / std + d_var
        dco = jnp.concatenate([du + d_mean, dvar * (var - var_min)], axis=-1)
        dc_t = dc + dco @ w_co.T
        dw_co = dw_co + c_t.T @ dco
        db_co = db_co + jnp.sum(dco, axis=0)
        # controller
        da, dc_direct = gru_cell_bwd(a, cp, dc_t, c_t, clip)
        da = da.to_fused()  # [B, 4K]
        da_in = da @ w_con.T
        dw_con = dw_con + a_in.T @ da
        db_con = db_con + jnp.sum(da, axis=0)
        G = gp.shape[-1]
        carry = (
            dc_direct + da_in[:, I2 + G :],
            dg_direct + dz_in[:, U + X :],
            da_in[:, I2 : I2 + G],
            dw_con,
            db_con,
            dw_co,
            db_co,
            dw_gen,
            db_gen,
        )
        return carry, da_in[:, :I2]

    init = (
        jnp.zeros((B, K), cs.dtype),
        jnp.zeros_like(g0),
        jnp.zeros_like(g0),
        jnp.zeros_like(w_con),
        jnp.zeros_like(b_con),
        jnp.zeros_like(w_co),
        jnp.zeros_like(b_co),
        jnp.zeros_like(w_gen),
        jnp.zeros_like(b_gen),
    )
    xs = (
        c_prev,
        g_prev,
        gm_prev,
        cs,
        gs,
        ci,
        eps,
        keep,
        ext,
        d_gm_out,
        d_mean_out,
        d_var_out,
        d_u_out,
    )
    (_, dg, dgm, dw_con, db_con, dw_co, db_co, dw_gen, db_gen), d_ci = jax.lax.scan(
        step, init, xs, reverse=True
    )
    return (
        (dw_con, db_con, dw_co, db_co, dw_gen, db_gen),
        dg + dgm,
        d_ci,
        jnp.zeros_like(eps),
        jnp.zeros_like(keep),
        None if ext is None else jnp.zeros_like(ext),
    )


control_loop.defvjp(_fwd, _bwd)
