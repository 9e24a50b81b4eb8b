"""The full LFADS model, assembled from its parts, as one Haiku-transformed function.

Shape glossary: B trials, T bins, S sessions, N units (padded to the largest session),
R read-in size, E/C encoder sizes per direction, D ``ic_dim``, G ``gen_dim``,
K ``con_dim``, U ``co_dim`` (0 = autonomous), F ``fac_dim``, X external inputs (taken from the
batch: ``Batch.ext_inputs`` is None for X = 0, and then no parameter or step changes).

Data flow of one trial: spikes (units the encoders may see; sample-validation and
coordinated-dropout masks applied; dropout) -> per-session read-in -> bidirectional IC and CI
encoders -> g0 posterior (KL to a learnable-mean Gaussian prior) -> controller + generator
recurrence with inferred inputs (KL to an AR(1) prior, by sampling) and the external inputs
(appended to the controller's and to the generator's input at every bin) -> row-normalised factors
-> per-session read-out -> log-rates -> masked likelihood.

Forward prediction (``n_forward`` = T_f > 0, static): the last T_f of the T bins follow the
observed window. The encoders read only the first T - T_f bins; the controller's encodings
are zero over the forward bins (as past the end of the data in TF LFADS), the generator and the
controller run on through them, and the likelihood scores them on trials whose
``Batch.forward_mask`` is 1 (never hidden by coordinated dropout, which acts on the observed
bins). With T_f = 0 the model is the one without forward prediction, op for op.

``make_lfads(cfg, unit_mask, n_forward=0)`` returns an ``hk.Transformed`` whose
``apply(params, rng, batch, is_training)`` returns an :class:`LFADSOutput`; ``is_training``
(a Python bool, static under ``jit``) switches dropout and coordinated dropout on;
``sample=False`` pushes the posterior means (of g0 and of the inferred inputs) through the
generator instead of samples (TF LFADS's ``posterior_push_mean``); ``states=True`` also returns
the generator and controller states (inference only).
"""

from __future__ import annotations

import re
from typing import NamedTuple

import haiku as hk
import jax.numpy as jnp
import numpy as np

from ..config import ModelConfig
from . import noise
from .controller import Controller
from .decoder import decode
from .encoder import Encoders
from .generator import Generator
from .likelihoods import get_likelihood, masked_nll
from .priors import LOG_2PI, AR1Prior, ICPrior, ar1_log_density, gaussian_kl
from .readin import ReadIn, ReadInit, ReadOut


class Batch(NamedTuple):
    """One batch of trials.

    spikes: counts as float32 [B, T, N] (padded units 0). session: int32 [B].
    input_mask: float32 [B, N], 1 where the encoders may see the unit.
    loss_mask: float32 [B, N], 1 where the unit is observed on this trial (scored).
    sv_mask: float32 [B, T, N] or None, 1 for bins held back for sample validation.
    ext_inputs: float32 [B, T, X] known inputs (:mod:`nwb_lfads.io.external`), or None.
    forward_mask: float32 [B], 1 where the forward bins are scored (0 on evaluation trials),
        or None (all scored; the model has no forward bins).
    """

    spikes: jnp.ndarray
    session: jnp.ndarray
    input_mask: jnp.ndarray
    loss_mask: jnp.ndarray
    sv_mask: jnp.ndarray | None = None
    ext_inputs: jnp.ndarray | None = None
    forward_mask: jnp.ndarray | None = None


class LFADSOutput(NamedTuple):
    """What one pass returns (per trial; nats for losses).

    log_rates [B, T, N] (read-out output: log expected counts per bin for Poisson),
    factors [B, T, F], inferred_inputs [B, T, U] (sampled; U = 0 when autonomous),
    ic_mean, ic_var [B, D] (g0 posterior), co_mean, co_var [B, T, U],
    kl_ic, kl_co [B], recon [B] (masked NLL of the scored elements), recon_sv [B] (NLL of the
    sample-validation elements; 0 without them), g0 [B, G] (the generator's initial state, from
    the initial-condition sample, or its mean with ``sample=False``); with ``states=True``
    gen_states [B, T, G] and con_states [B, T, K] (K = 0 when autonomous), else None.
    """

    log_rates: jnp.ndarray
    factors: jnp.ndarray
    inferred_inputs: jnp.ndarray
    ic_mean: jnp.ndarray
    ic_var: jnp.ndarray
    co_mean: jnp.ndarray
    co_var: jnp.ndarray
    kl_ic: jnp.ndarray
    kl_co: jnp.ndarray
    recon: jnp.ndarray
    recon_sv: jnp.ndarray
    g0: jnp.ndarray | None = None
    gen_states: jnp.ndarray | None = None
    con_states: jnp.ndarray | None = None


def readin_size(cfg: ModelConfig, n_sessions: int) -> int:
    """Width of the read-in (0 = none: one session and ``readin_dim == 0``)."""
    if n_sessions == 1 and cfg.readin_dim == 0:
        return 0
    return cfg.readin_dim or cfg.fac_dim


class LFADS(hk.Module):
    """LFADS over sessions sharing encoders, controller and generator (see module docstring)."""

    def __init__(
        self,
        cfg: ModelConfig,
        unit_mask: np.ndarray,
        readin_init: ReadInit | None = None,
        name: str | None = "lfads",
        n_forward: int = 0,
    ):
        super().__init__(name=name)
        self.cfg = cfg
        self.n_forward = int(n_forward)
        self.unit_mask = np.asarray(unit_mask, bool)
        self.readin_init = readin_init
        self.lik = get_likelihood(cfg.likelihood)

    def __call__(
        self, batch: Batch, is_training: bool, sample: bool = True, states: bool = False
    ) -> LFADSOutput:
        cfg = self.cfg
        spikes = batch.spikes
        B, T, N = spikes.shape
        S = self.unit_mask.shape[0]
        U = cfg.co_dim
        seeds = noise.seeds_from_key(hk.next_rng_key(), 8)
        if is_training and cfg.jitter_width > 0:
            spikes = noise.jitter_in_time(seeds[7], cfg.jitter_width, spikes)  # input and target
        x = jnp.where(batch.input_mask[:, None, :] > 0, spikes, 0.0)
        weight = jnp.broadcast_to(batch.loss_mask[:, None, :], spikes.shape)
        sv_weight = None
        if batch.sv_mask is not None and cfg.sv_rate > 0:
            x = jnp.where(batch.sv_mask > 0, 0.0, x / (1.0 - cfg.sv_rate))
            sv_weight = weight * batch.sv_mask
            weight = weight * (1.0 - batch.sv_mask)
        T_obs = T - self.n_forward
        if self.n_forward:  # the encoders read the observed bins only
            x = x[:, :T_obs]
            if batch.forward_mask is not None:
                fwd = batch.forward_mask[:, None, None]
                weight = jnp.concatenate([weight[:, :T_obs], weight[:, T_obs:] * fwd], axis=1)
                if sv_weight is not None:
                    sv_weight = jnp.concatenate(
                        [sv_weight[:, :T_obs], sv_weight[:, T_obs:] * fwd], axis=1
                    )
        if is_training and cfg.cd_rate > 0:
            keep = noise.keep_mask(seeds[0], cfg.cd_rate, x.shape)
            x = jnp.where(keep, x / (1.0 - cfg.cd_rate), 0.0)
            cd = jnp.where(keep, 0.0, 1.0 / cfg.cd_rate)
            if self.n_forward:
                cd = jnp.concatenate([cd, jnp.ones((B, self.n_forward, N), cd.dtype)], axis=1)
            weight = weight * cd
        if is_training and cfg.dropout_rate > 0:
            x = noise.dropout(seeds[1], cfg.dropout_rate, x)
        R = readin_size(cfg, S)
        if R > 0:
            x = ReadIn(self.unit_mask, R, self.readin_init)(x, batch.session)

        ci_dim = cfg.ci_enc_dim if U > 0 else 0
        ic_enc, ci_enc = Encoders(cfg.ic_enc_dim, ci_dim, cfg.ci_lag, cfg.dropout_rate)(
            x, seeds[2:4] if is_training else None, need_dx=R > 0
        )

        post = hk.Linear(2 * cfg.ic_dim, name="ic_posterior", w_init=noise.fan_in_init())(ic_enc)
        ic_mean = post[:, : cfg.ic_dim]
        ic_var = jnp.exp(post[:, cfg.ic_dim :]) + cfg.ic_post_var_min
        p_mean, p_var = ICPrior(cfg.ic_dim, cfg.ic_prior_var)()
        kl_ic = gaussian_kl(ic_mean, ic_var, p_mean, p_var)
        ic_sample = (
            ic_mean + jnp.sqrt(ic_var) * noise.normal(seeds[4], ic_mean.shape)
            if sample
            else ic_mean
        )

        ext = (
            None if batch.ext_inputs is None else jnp.swapaxes(batch.ext_inputs, 0, 1)
        )  # [T, B, X]
        X = 0 if ext is None else ext.shape[-1]
        generator = Generator(cfg.gen_dim, cfg.fac_dim)
        gp = generator(U + X)
        g0 = generator.initial_state(ic_sample, cfg.cell_clip)
        gen_keep = None
        if is_training and cfg.dropout_rate > 0:
            gen_keep = noise.dropout_scale(
                seeds[5], cfg.dropout_rate, (T, B, cfg.gen_dim), batch_axis=1
            )
        if U > 0:
            if self.n_forward:  # no encodings past the observed bins
                ci_enc = jnp.pad(ci_enc, ((0, self.n_forward), (0, 0), (0, 0)))
            if ext is not None:
                ci_enc = jnp.concatenate([ci_enc, ext], axis=-1)  # [T, B, I2 + X]
            cp = Controller(cfg.con_dim, U)(ci_enc.shape[-1], cfg.fac_dim)
            eps = noise.normal(seeds[6], (B, T, U)) if sample else jnp.zeros((B, T, U), jnp.float32)
            dec = decode(
                gp,
                g0,
                T,
                cfg.cell_clip,
                con=cp,
                ci_enc=ci_enc,
                co_eps=eps,
                co_var_min=cfg.ic_post_var_min,
                gen_keep=gen_keep,
                keep_states=states,
                ext=ext,
            )
            log_tau, log_pvar = AR1Prior(U, cfg.co_prior_tau, cfg.co_prior_var)()
            log_q = jnp.sum(-0.5 * (LOG_2PI + jnp.log(dec.co_var) + eps**2), axis=(1, 2))
            kl_co = log_q - ar1_log_density(dec.u, log_tau, log_pvar)
            co_mean, co_var, u = dec.co_mean, dec.co_var, dec.u
        else:
            dec = decode(gp, g0, T, cfg.cell_clip, gen_keep=gen_keep, ext=ext)
            co_mean = co_var = u = jnp.zeros((B, T, 0), jnp.float32)
            kl_co = jnp.zeros((B,), jnp.float32)

        factors = jnp.swapaxes(dec.gen_states @ gp.w_fac, 0, 1)  # [B, T, F]
        log_rates = ReadOut(self.unit_mask, cfg.fac_dim, self.readin_init)(factors, batch.session)
        recon = masked_nll(self.lik, log_rates, spikes, weight)
        recon_sv = (
            masked_nll(self.lik, log_rates, spikes, sv_weight)
            if sv_weight is not None
            else jnp.zeros((B,), jnp.float32)
        )
        gen_states = con_states = None
        if states:
            gen_states = jnp.swapaxes(dec.gen_states, 0, 1)
            con_states = (
                jnp.swapaxes(dec.con_states, 0, 1)
                if dec.con_states is not None
                else jnp.zeros((B, T, 0), jnp.float32)
            )
        return LFADSOutput(
            log_rates,
            factors,
            u,
            ic_mean,
            ic_var,
            co_mean,
            co_var,
            kl_ic,
            kl_co,
            recon,
            recon_sv,
            g0,
            gen_states,
            con_states,
        )


def make_lfads(
    cfg: ModelConfig,
    unit_mask: np.ndarray,
    readin_init: ReadInit | None = None,
    n_forward: int = 0,
) -> hk.Transformed:
    """The transformed model. ``unit_mask``: bool [S, N], True where session s has unit n.
    ``n_forward``: T_f, the last bins of every batch that are forward-prediction bins (static).

    ``init(rng, batch, is_training)`` -> params; ``apply(params, rng, batch, is_training,
    sample=True, states=False)`` -> :class:`LFADSOutput`.
    """

    def forward(
        batch: Batch, is_training: bool, sample: bool = True, states: bool = False
    ) -> LFADSOutput:
        return LFADS(cfg, unit_mask, readin_init, n_forward=n_forward)(
            batch, is_training, sample, states
        )

    return hk.transform(forward)


def l2_penalty(params) -> tuple[jnp.ndarray, jnp.ndarray]:
    """``0.5 * mean(w^2)`` of the generator's and the controller's recurrent kernels
    (``w_h``); the controller term is 0 for the autonomous model. Returns two scalars."""
    gen = con = jnp.float32(0.0)
    for module, leaves in params.items():
        if re.search(r"generator/(~/)?gru$", module):
            gen = 0.5 * jnp.mean(leaves["w_h"] ** 2)
        elif re.search(r"controller/(~/)?gru$", module):
            con = 0.5 * jnp.mean(leaves["w_h"] ** 2)
    return gen, con


def readin_param_mask(params):
    """Pytree of bools like ``params``: True for the read-in's parameters (to freeze them)."""
    return {m: {k: m.endswith("readin") for k in leaves} for m, leaves in params.items()}
