"""The controller-generator recurrence: one ``lax.scan`` over bins.

Shape glossary: B trials, T bins, G ``gen_dim``, K ``con_dim``, U ``co_dim``,
F ``fac_dim``, I2 = 2 ``ci_enc_dim``.

Per bin t (TF LFADS ordering): the controller reads ``[ci_enc_t, f_{t-1}]`` and its state
``c_{t-1}``; the inferred input ``u_t ~ N(mean_t, var_t)`` is sampled with noise drawn
before the scan; the generator steps from ``g_{t-1}`` with input ``u_t``; the factors
``f_t = dropout(g_t) W_fac`` are the ones that give the rates of bin t. ``f_{-1}`` comes
from g0.

Speed: the CI projection of all bins is one matmul before the scan; ``f_{t-1} W_f`` is folded
into ``dropout(g_{t-1}) (W_fac W_f)``, so each step costs three matmuls (controller, posterior
head, generator), each of the fused ``[x, h] @ [I + H, 4H]`` form (:func:`gru.cat_weights`).
Factors are computed after the scan in one matmul. Without a controller the step is a
single ``[B, G] x [G, 3G]`` matmul (:func:`.rnn.gru_autonomous`). Both recurrences have
hand-written backward passes that recompute each step from the saved states
(:mod:`.control_loop`, :mod:`.rnn`) instead of storing every intermediate.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp

from .controller import ControllerParams
from .generator import GeneratorParams
from .control_loop import control_loop
from .gru import cat_weights
from .rnn import gru_autonomous


class DecoderOut(NamedTuple):
    gen_states: jnp.ndarray   # [B, T, G] generator states after dropout (factor input)
    co_mean: jnp.ndarray | None  # [B, T, U]
    co_var: jnp.ndarray | None   # [B, T, U]
    u: jnp.ndarray | None        # [B, T, U] sampled inferred inputs


def decode(gen: GeneratorParams, g0, n_bins: int, clip: float, *, con: ControllerParams | None = None,
           ci_enc=None, co_eps=None, co_var_min: float = 1e-4, gen_keep=None) -> DecoderOut:
    """Run the recurrence.

    Args:
        gen: generator parameters. g0: initial generator state, float32 [B, G].
        n_bins: T. clip: state clip of both GRUs (<= 0: none).
        con: controller parameters (None = autonomous generator).
        ci_enc: CI encodings, float32 [B, T, I2] (with a controller).
        co_eps: standard normal noise of the inferred inputs, float32 [B, T, U].
        gen_keep: dropout scale of the generator state, float32 [B, T, G] with entries 0 or
            1 / (1 - rate); None = no dropout.
    """
    B, G = g0.shape
    keep_t = None if gen_keep is None else jnp.swapaxes(gen_keep, 0, 1)   # [T, B, G]
    if con is None:
        hs = gru_autonomous(g0, gen.w_h, gen.b, n_bins, float(clip))          # [T, B, G]
        hs = hs if keep_t is None else hs * keep_t
        return DecoderOut(jnp.swapaxes(hs, 0, 1), None, None, None)

    K = con.w_h.shape[0]
    ci_x = jnp.swapaxes(ci_enc @ con.w_ci + con.b, 0, 1)                      # [T, B, 3K]
    ci_x = jnp.pad(ci_x, ((0, 0), (0, 0), (0, K)))                            # [T, B, 4K]
    params = (cat_weights(gen.w_fac @ con.w_f, con.w_h), con.w_co, con.b_co,   # [G + K, 4K], ...
              cat_weights(gen.w_i, gen.w_h), jnp.concatenate([gen.b, jnp.zeros((G,), gen.b.dtype)]))
    keep = jnp.ones((n_bins, B, G), g0.dtype) if keep_t is None else keep_t
    hs, mean, var, u = control_loop(params, g0, ci_x, jnp.swapaxes(co_eps, 0, 1), keep, float(clip),
                                    float(co_var_min))
    sw = lambda a: jnp.swapaxes(a, 0, 1)
    return DecoderOut(sw(hs), sw(mean), sw(var), sw(u))
