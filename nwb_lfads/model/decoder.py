"""The controller-generator recurrence: one ``lax.scan`` over bins.

Shape glossary: B trials, T bins, G ``gen_dim``, K ``con_dim``, U ``co_dim``,
F ``fac_dim``, I2 = 2 ``ci_enc_dim``, X external inputs. Every array is float32.

Per bin t (TF LFADS ordering): the controller reads ``[ci_enc_t, f_{t-1}]`` and its state
``c_{t-1}``; the inferred input ``u_t ~ N(mean_t, var_t)`` is sampled with noise drawn
before the scan; the generator steps from ``g_{t-1}`` with input ``u_t``; the factors
``f_t = dropout(g_t) W_fac`` are the ones that give the rates of bin t. ``f_{-1}`` comes
from g0.

Every input projection happens inside the loop (see :mod:`.gru`): the CI encodings enter the
controller's fused matmul per bin, and ``f_{t-1} W_f`` is folded into
``dropout(g_{t-1}) (W_fac W_f)``, so each step costs three matmuls (controller, posterior
head, generator), the two GRUs in the fused ``[x, h] @ [I + H, 4H]`` layout
(:func:`.gru.cat_weights`; run by :func:`.control_loop.control_loop`). Factors are computed
after the scan in one matmul. Without a controller the step is a single ``[B, G] x [G, 3G]``
matmul (:func:`.rnn.gru_autonomous`). Both recurrences have hand-written backward passes
built on :func:`.gru.gru_cell_bwd`.

External inputs ``x_t`` (TF LFADS's ``ext_input``; known signals such as a stimulus), when
given, enter every bin twice: appended to the controller's input (``[ci_enc_t, x_t,
f_{t-1}]``) and to the generator's (``[u_t, x_t]``). Without a controller the generator reads
``x_t`` alone, through a plain ``lax.scan`` differentiated by autodiff. Without external
inputs (``ext=None``) every path is the one above, unchanged.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from .control_loop import control_loop, control_loop_states
from .controller import ControllerParams
from .generator import GeneratorParams
from .gru import GRUPre, cat_weights, gru_cell
from .rnn import gru_autonomous


class DecoderOut(NamedTuple):
    """What :func:`decode` returns, float32; the ``co_*`` and ``u`` fields are None without a
    controller."""

    gen_states: jnp.ndarray  # [T, B, G] generator states after dropout (factor input), time-major
    co_mean: jnp.ndarray | None  # [B, T, U]
    co_var: jnp.ndarray | None  # [B, T, U]
    u: jnp.ndarray | None  # [B, T, U] sampled inferred inputs
    con_states: jnp.ndarray | None = None  # [T, B, K] controller states, with keep_states only


def decode(
    gen: GeneratorParams,
    g0,
    n_bins: int,
    clip: float,
    *,
    con: ControllerParams | None = None,
    ci_enc=None,
    co_eps=None,
    co_var_min: float = 1e-4,
    gen_keep=None,
    keep_states: bool = False,
    ext=None,
) -> DecoderOut:
    """Run the recurrence.

    Args:
        gen: generator parameters. g0: initial generator state, float32 [B, G].
        n_bins: T. clip: state clip of both GRUs (<= 0: none).
        con: controller parameters (None = autonomous generator).
        ci_enc: CI encodings, time-major float32 [T, B, I2] (with a controller).
        co_eps: standard normal noise of the inferred inputs, float32 [B, T, U].
        gen_keep: dropout scale of the generator state, time-major float32 [T, B, G], 0 or
            1 / (1 - rate); None = no dropout.
        keep_states: also return the controller states (``con_states``; inference only: this
            path has no hand-written backward pass).
        ext: external inputs, time-major float32 [T, B, X], or None. With a controller the
            caller has already appended them to ``ci_enc`` (and ``con.w_ci`` has I2 + X rows);
            here they join the generator's input (``gen.w_i`` has U + X rows).

    Returns:
        a :class:`DecoderOut`.
    """
    B, G = g0.shape
    if con is None and ext is not None:
        hs = _driven_generator(g0, gen.w_i, gen.w_h, gen.b, ext, float(clip))
        return DecoderOut(hs if gen_keep is None else hs * gen_keep, None, None, None)
    if con is None:
        hs = gru_autonomous(g0, gen.w_h, gen.b, n_bins, float(clip))  # [T, B, G]
        return DecoderOut(hs if gen_keep is None else hs * gen_keep, None, None, None)

    K = con.w_h.shape[0]
    w_in = jnp.concatenate([con.w_ci, gen.w_fac @ con.w_f], axis=0)  # [I2 + G, 3K]
    params = (
        cat_weights(w_in, con.w_h),
        jnp.concatenate([con.b, jnp.zeros((K,), con.b.dtype)]),
        con.w_co,
        con.b_co,  # [I2 + G + K, 4K], ...
        cat_weights(gen.w_i, gen.w_h),
        jnp.concatenate([gen.b, jnp.zeros((G,), gen.b.dtype)]),
    )
    keep = jnp.ones((n_bins, B, G), g0.dtype) if gen_keep is None else gen_keep
    args = (params, g0, ci_enc, jnp.swapaxes(co_eps, 0, 1), keep, float(clip), float(co_var_min))
    if ext is not None:
        args = (*args, ext)
    cs = None
    if keep_states:
        cs, hs, mean, var, u = control_loop_states(*args)
    else:
        hs, mean, var, u = control_loop(*args)

    def sw(a):
        return jnp.swapaxes(a, 0, 1)

    return DecoderOut(hs, sw(mean), sw(var), sw(u), cs)


def _driven_generator(g0, w_i, w_h, b, ext, clip: float):
    """The generator without a controller, driven by external inputs ``ext`` [T, B, X]
    (``w_i`` [X, 3G], ``w_h`` [G, 3G], ``b`` [3G]); returns the states [T, B, G]."""

    def step(g, x_t):
        g = gru_cell(GRUPre.from_split(x_t @ w_i + b, g @ w_h), g, clip)
        return g, g

    _, hs = jax.lax.scan(step, g0, ext)
    return hs
