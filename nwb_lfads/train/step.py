"""The jitted training update and validation pass.

Shape glossary: M trials (all sessions), Mtr training trials, S sessions, T bins, N units,
B batch size, P optimizer steps per compiled call.

One :class:`TrainingState` ``(params, opt_state, rng, step)`` and one jitted
``update(state, data) -> (state, metrics)`` that runs P optimizer steps with ``lax.scan``.
The whole data set (:class:`DeviceData`) is an argument of the compiled function (uploaded
once; not baked into the program as constants), and every step draws its batch inside with
``jax.random``. The learning rate lives in the optimizer state
(:mod:`nwb_lfads.train.optimizer`), so decaying it never recompiles. Batches are split over a
device mesh (:mod:`nwb_lfads.train.parallel`; one device is a 1-device mesh): each device
differentiates its slice, and the gradients are averaged once per step
(:func:`sharded_value_and_grad`).

The optimizer works on one flat vector of all parameters (``ravel_pytree``); the state keeps
the optimizer state of that flat vector, and parameters are handed in and out as the usual
Haiku dict. A step whose loss or gradients are not finite is skipped by the optimizer
(``optax.apply_if_finite``) and counted in ``n_nonfinite``; the step counter and the RNG
advance either way.

Compiled functions are memoised by what is compiled into them (:func:`cached`), so a second
trainer with the same model, shapes and training settings (a resume, a sweep member, a test)
compiles nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree
from jax.sharding import PartitionSpec as P

from ..config import RunConfig, TrainConfig
from ..model import noise
from ..model.lfads import Batch, l2_penalty, readin_param_mask
from .optimizer import step_was_finite
from .parallel import BATCH_AXIS, NO_REPLICATION_CHECK, Parallel, shard_batch, shard_map
from .schedules import kl_schedule, l2_schedule


class TrainingState(NamedTuple):
    params: dict
    opt_state: optax.OptState
    rng: jax.Array  # typed PRNG key
    step: jax.Array  # int32 scalar: optimizer steps taken (skipped ones included)


class DeviceData(NamedTuple):
    """The data set on the device. spikes float32 [M, T, N]; session int32 [M]; input_mask
    float32 [S, N]; loss_mask float32 [M, N]; sv_mask float32 [M, T, N] or None;
    train_idx int32 [Mtr]; train_p float32 [Mtr] sampling probabilities, or None = uniform;
    ext_inputs float32 [M, T, X] external inputs, or None; forward_mask float32 [M] (1 where
    the forward-prediction bins are scored), or None without forward bins."""

    spikes: jax.Array
    session: jax.Array
    input_mask: jax.Array
    loss_mask: jax.Array
    sv_mask: jax.Array | None
    train_idx: jax.Array
    train_p: jax.Array | None
    ext_inputs: jax.Array | None = None
    forward_mask: jax.Array | None = None


METRIC_NAMES = ("loss", "recon", "kl_ic", "kl_co", "l2", "kl_weight", "l2_weight")


def gather_batch(data: DeviceData, idx) -> Batch:
    """The :class:`Batch` of trials ``idx`` (int32 [B])."""
    session = data.session[idx]
    return Batch(
        spikes=data.spikes[idx],
        session=session,
        input_mask=data.input_mask[session],
        loss_mask=data.loss_mask[idx],
        sv_mask=None if data.sv_mask is None else data.sv_mask[idx],
        ext_inputs=None if data.ext_inputs is None else data.ext_inputs[idx],
        forward_mask=None if data.forward_mask is None else data.forward_mask[idx],
    )


def init_opt_state(optimizer: optax.GradientTransformation, params):
    """Optimizer state of the flat parameter vector of ``params``."""
    return optimizer.init(ravel_pytree(params)[0])


def trainable_mask(train: TrainConfig, params, frozen=()) -> jax.Array | None:
    """float32 [P] flat mask, 0 for frozen parameters, or None when everything trains.

    Frozen are the read-in when ``train_readin`` is false and every module named in
    ``frozen`` (Haiku module names, e.g. ``"lfads/generator/gru"``; ``nwb-lfads transfer``
    freezes all but the read-in and read-out)."""
    frozen = set(frozen)
    if train.train_readin and not frozen:
        return None
    readin = readin_param_mask(params)
    mask = {
        m: {
            k: jnp.full(
                p.shape,
                0.0 if m in frozen or (readin[m][k] and not train.train_readin) else 1.0,
                jnp.float32,
            )
            for k, p in leaves.items()
        }
        for m, leaves in params.items()
    }
    return ravel_pytree(mask)[0]


def make_loss(model, cfg: RunConfig) -> Callable:
    """``loss(params, key, batch, kl_w, l2_w, is_training) -> (loss, metrics)``; losses are
    means over the batch of per-trial sums (nats per trial)."""
    t = cfg.train

    def loss_fn(params, key, batch, kl_w, l2_w, is_training=True):
        out = model.apply(params, key, batch, is_training)
        recon, kl_ic, kl_co = jnp.mean(out.recon), jnp.mean(out.kl_ic), jnp.mean(out.kl_co)
        l2_gen, l2_con = l2_penalty(params)
        l2 = t.l2_gen_scale * l2_gen + t.l2_con_scale * l2_con
        loss = recon + kl_w * (t.kl_ic_scale * kl_ic + t.kl_co_scale * kl_co) + l2_w * l2
        return loss, dict(
            loss=loss,
            recon=recon,
            kl_ic=kl_ic,
            kl_co=kl_co,
            l2=l2,
            kl_weight=jnp.asarray(kl_w, jnp.float32),
            l2_weight=jnp.asarray(l2_w, jnp.float32),
        )

    return loss_fn


def sharded_value_and_grad(grad_fn: Callable, parallel: Parallel) -> Callable:
    """Data-parallel ``grad_fn(flat, key, batch, kl_w, l2_w) -> ((loss, metrics), grads)``:
    each device differentiates the loss of its slice of ``batch`` [B/D, ...] (``shard_map``;
    random draws numbered as in the whole batch, :func:`~nwb_lfads.model.noise.batch_shard`)
    and one ``pmean`` averages losses and gradients over the devices, after the recurrences.

    Why not leave the split to XLA's SPMD partitioner (a sharding constraint on the batch): it
    all-reduces the weight-gradient sums inside the backward ``lax.scan`` loops at every time
    bin (hundreds of rendezvous per step), which cost a third of the step on 2 CPU devices and
    would be worse across GPUs. One device differentiates the whole batch directly."""
    if parallel.n_devices == 1:
        return grad_fn

    def local(flat, key, batch, kl_w, l2_w):
        with noise.batch_shard(BATCH_AXIS):
            (loss, metrics), grads = grad_fn(flat, key, batch, kl_w, l2_w)
        return jax.lax.pmean(((loss, metrics), grads), BATCH_AXIS)

    return shard_map(
        local,
        mesh=parallel.mesh,
        in_specs=(P(), P(), P(BATCH_AXIS), P(), P()),
        out_specs=P(),
        **NO_REPLICATION_CHECK,
    )


def _make_step_gradient(
    model, cfg: RunConfig, unravel, *, batch_size: int, steps_per_epoch: int, parallel: Parallel
) -> Callable:
    """``step_gradient(state, data) -> (rng, (loss, metrics), grads)`` with ``state.params``
    the flat vector: draw one batch of training trials and differentiate the loss, each device
    on its slice of the batch (:func:`sharded_value_and_grad`)."""
    loss_fn = make_loss(model, cfg)
    grad_fn = sharded_value_and_grad(
        jax.value_and_grad(lambda flat, *a: loss_fn(unravel(flat), *a), has_aux=True), parallel
    )
    kl_s = kl_schedule(cfg.train, steps_per_epoch)
    l2_s = l2_schedule(cfg.train, steps_per_epoch)

    def step_gradient(state: TrainingState, data: DeviceData):
        rng, k_batch, k_model = jax.random.split(state.rng, 3)
        n_train = data.train_idx.shape[0]
        if data.train_p is None:
            pick = jax.random.randint(k_batch, (batch_size,), 0, n_train)
        else:
            pick = jax.random.choice(k_batch, n_train, (batch_size,), replace=True, p=data.train_p)
        batch = gather_batch(data, data.train_idx[pick])
        return rng, *grad_fn(state.params, k_model, batch, kl_s(state.step), l2_s(state.step))

    return step_gradient


def make_update(
    model,
    cfg: RunConfig,
    optimizer: optax.GradientTransformation,
    params_template,
    *,
    batch_size: int,
    steps_per_call: int,
    steps_per_epoch: int,
    parallel: Parallel,
) -> Callable:
    """The jitted ``update(state, data) -> (state, metrics)`` running ``steps_per_call``
    optimizer steps of ``optimizer`` (:func:`nwb_lfads.train.optimizer.make_optimizer`).
    ``metrics``: means over the finite steps of :data:`METRIC_NAMES`, plus ``n_nonfinite``
    (int32, skipped steps).

    A step whose loss or gradient is not finite changes neither the parameters nor the
    optimizer's moments (``optax.apply_if_finite``); the step counter and the RNG advance.
    State and data are replicated over ``parallel.mesh`` and every batch is split over its
    ``batch`` axis (``batch_size`` divisible by the number of devices); a 1-device mesh runs
    the same program."""
    _, unravel = ravel_pytree(params_template)
    step_gradient = _make_step_gradient(
        model,
        cfg,
        unravel,
        batch_size=batch_size,
        steps_per_epoch=steps_per_epoch,
        parallel=parallel,
    )

    def one_step(state: TrainingState, data: DeviceData):
        """One optimizer step; ``state.params`` is the flat vector here."""
        rng, (loss, metrics), grads = step_gradient(state, data)
        grads = jnp.where(jnp.isfinite(loss), grads, jnp.nan)  # a non-finite loss skips too
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        state = TrainingState(params, opt_state, rng, state.step + 1)
        return state, {**metrics, "ok": step_was_finite(opt_state)}

    rep = parallel.replicated

    @partial(jax.jit, in_shardings=(rep, rep), out_shardings=(rep, rep))
    def update(state: TrainingState, data: DeviceData):
        state = state._replace(params=ravel_pytree(state.params)[0])
        state, m = jax.lax.scan(lambda s, _: one_step(s, data), state, None, length=steps_per_call)
        state = state._replace(params=unravel(state.params))
        ok = m.pop("ok")
        n_ok = jnp.sum(ok)
        out = {k: jnp.sum(jnp.where(ok, v, 0.0)) / jnp.maximum(n_ok, 1) for k, v in m.items()}
        out["n_nonfinite"] = steps_per_call - n_ok
        return state, out

    return update


def make_gradient(
    model,
    cfg: RunConfig,
    params_template,
    *,
    batch_size: int,
    steps_per_epoch: int,
    parallel: Parallel,
) -> Callable:
    """Jitted ``gradient(state, data) -> (metrics, grads)``: the loss terms (dict of float32
    scalars, :data:`METRIC_NAMES`) and gradients (a params-shaped dict) that the next optimizer
    step of :func:`make_update` would compute from ``state``: same batch, same keys, same
    sharding. For checking and diagnostics; training never calls it."""
    _, unravel = ravel_pytree(params_template)
    step_gradient = _make_step_gradient(
        model,
        cfg,
        unravel,
        batch_size=batch_size,
        steps_per_epoch=steps_per_epoch,
        parallel=parallel,
    )
    rep = parallel.replicated

    @partial(jax.jit, in_shardings=(rep, rep), out_shardings=(rep, rep))
    def gradient(state: TrainingState, data: DeviceData):
        state = state._replace(params=ravel_pytree(state.params)[0])
        _, (_, metrics), grads = step_gradient(state, data)
        return metrics, unravel(grads)

    return gradient


def make_evaluate(model, cfg: RunConfig, batch_size: int, parallel: Parallel) -> Callable:
    """Jitted ``evaluate(params, data, idx, key) -> dict`` of per-trial arrays [n, batch_size]
    (``recon``, ``kl_ic``, ``kl_co``, ``recon_sv``) for trial indices ``idx`` int32
    [n, batch_size] (pad with any index and discard), without dropout. Inputs and outputs
    replicated over ``parallel.mesh`` (so every process can read them); each chunk of
    ``batch_size`` trials is split over its devices."""
    rep = parallel.replicated

    @partial(jax.jit, in_shardings=(rep, rep, rep, rep), out_shardings=rep)
    def evaluate(params, data: DeviceData, idx, key):
        def chunk(args):
            i, k = args
            out = model.apply(params, k, shard_batch(gather_batch(data, i), parallel.batch), False)
            return dict(recon=out.recon, kl_ic=out.kl_ic, kl_co=out.kl_co, recon_sv=out.recon_sv)

        keys = jax.random.split(key, idx.shape[0])
        return jax.lax.map(chunk, (idx, keys))

    return evaluate


def chunk_indices(indices: np.ndarray, batch_size: int) -> tuple[np.ndarray, int]:
    """Pad int indices [n] to a multiple of batch_size (repeating the first) -> ([k, batch_size], n)."""
    n = len(indices)
    k = max(1, -(-n // batch_size))
    padded = np.full(k * batch_size, indices[0] if n else 0, np.int32)
    padded[:n] = indices
    return padded.reshape(k, batch_size), n


_COMPILED: dict = {}
_COMPILED_MAX = 8


def cached(key, build: Callable):
    """``build()`` memoised under ``key`` (bounded: the oldest entry goes first)."""
    if key not in _COMPILED:
        while len(_COMPILED) >= _COMPILED_MAX:
            _COMPILED.pop(next(iter(_COMPILED)))
        _COMPILED[key] = build()
    return _COMPILED[key]
