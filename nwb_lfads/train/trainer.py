"""The :class:`Trainer`: one run's state, advanced one epoch at a time.

An external driver (the loop in :mod:`nwb_lfads.train.loop`, or a sweep member) calls it::

    trainer = Trainer(data, cfg)
    while not trainer.stop_reason:
        row = trainer.train_epoch()      # dict of this epoch's metrics
    trainer.save(RunDir(out).checkpoint)

Shape glossary: M trials, T bins, N units (padded), S sessions.

Per epoch: ``calls_per_epoch`` compiled calls of ``steps_per_call`` optimizer steps
(:func:`nwb_lfads.train.step.make_update`, the optimizer of
:func:`nwb_lfads.train.optimizer.make_optimizer`), an update of the parameters' moving
average (``train.ema_decay``), a validation pass of that average, and the monitor's verdict
(:mod:`nwb_lfads.train.monitor`): keep the average as the best parameters, decay the learning
rate, stop. A compiled call with a skipped (non-finite) step counts as failed; after
``nan_patience`` failed calls in a row the last good state is restored with half the learning
rate (a warning says so), and after ``MAX_RESTORES`` restores without a good call in between
:class:`~nwb_lfads.errors.TrainingDivergedError` is raised.
"""

from __future__ import annotations

import math
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from ..config import (
    DataPlacement,
    RunConfig,
    SessionSampling,
    check_against_data,
    resolve_for_data,
)
from ..data import TrainingData, sample_validation_mask
from ..errors import RunDirError, SelectionError, TrainingDivergedError
from ..model.lfads import Batch, l2_penalty, make_lfads
from ..model.readin import ReadInit, apply_read_init
from ..rundir import CheckpointDir
from ..stitching import initial_readin
from . import checkpoint as ckpt
from .monitor import Monitor, observe
from .optimizer import learning_rate, make_optimizer, parameter_average, with_learning_rate
from .parallel import make_parallel, put
from .schedules import kl_schedule, l2_schedule, ramps_done_epoch
from .step import (
    DeviceData,
    TrainingState,
    cached,
    chunk_indices,
    init_opt_state,
    make_evaluate,
    make_gradient,
    make_update,
    trainable_mask,
)

MAX_RESTORES = 3
MAX_AUTO_STEPS = 50  # steps per compiled call when steps_per_call = 0
_HOST_INTS = ("epoch", "nan_calls", "restores", "n_nonfinite_total")


def device_data(data: TrainingData, cfg: RunConfig, sv_mask: np.ndarray | None) -> DeviceData:
    """The arrays the compiled step reads (host numpy; the trainer places them).

    ``train_p`` (float32 [Mtr]) weights each training trial so that every session is drawn
    equally often when ``train.session_sampling`` is ``balanced`` (None: uniform over trials).
    """
    train_idx = np.flatnonzero(data.train).astype(np.int32)
    train_p = None
    if cfg.train.session_sampling == SessionSampling.BALANCED and data.n_sessions > 1:
        per = np.bincount(data.session[train_idx], minlength=data.n_sessions)
        train_p = (1.0 / (data.n_sessions * per[data.session[train_idx]])).astype(np.float32)
    return DeviceData(
        spikes=np.asarray(data.spikes, np.float32),
        session=np.asarray(data.session, np.int32),
        input_mask=np.asarray(data.input_mask, np.float32),
        loss_mask=np.asarray(data.loss_mask, np.float32),
        sv_mask=sv_mask,
        train_idx=train_idx,
        train_p=train_p,
        ext_inputs=None if data.ext_inputs is None else np.asarray(data.ext_inputs, np.float32),
        forward_mask=forward_mask(data),
    )


def forward_mask(data: TrainingData) -> np.ndarray | None:
    """float32 [M]: 1 where a trial's forward-prediction bins are scored, 0 on evaluation
    trials (their forward bins are what is predicted); None without forward bins."""
    return (~data.eval).astype(np.float32) if data.n_forward else None


def n_external_inputs(data: TrainingData) -> int:
    """X, the number of external-input columns (0 without external inputs)."""
    return 0 if data.ext_inputs is None else int(data.ext_inputs.shape[2])


class Trainer:
    """See the module docstring. ``readin_init`` overrides the default read-in/out init
    (:func:`nwb_lfads.stitching.initial_readin`). ``frozen``: ``{module: {name: array}}``
    parameters of a trained model (same names and shapes as this model's) copied in and never
    updated; the moving average and the best parameters keep them bit for bit
    (``nwb-lfads transfer``)."""

    def __init__(
        self,
        data: TrainingData,
        cfg: RunConfig,
        *,
        readin_init: ReadInit | None = None,
        frozen: dict | None = None,
    ):
        cfg = resolve_for_data(cfg, data.n_sessions)  # automatic settings made concrete
        self.data, self.cfg = data, cfg
        t = cfg.train
        check_against_data(cfg.model, n_bins=data.spikes.shape[1], n_sessions=data.n_sessions)
        n_train = int(np.count_nonzero(data.train))
        if n_train == 0:
            raise SelectionError(
                "no training trials: every trial is in the validation set; lower valid_fraction."
            )
        self.parallel = make_parallel(t.devices, t.batch_size)  # ConfigError: devices, batch
        n_dev = self.parallel.n_devices
        # fewer training trials than train.batch_size: the largest multiple of the devices that fits
        self.batch_size = int(min(t.batch_size, max(n_dev, n_train // n_dev * n_dev)))
        self.steps_per_epoch = max(1, math.ceil(n_train / self.batch_size))
        self.steps_per_call = int(t.steps_per_call) or min(self.steps_per_epoch, MAX_AUTO_STEPS)
        self.calls_per_epoch = max(1, math.ceil(self.steps_per_epoch / self.steps_per_call))
        init = initial_readin(data, cfg.model)
        if readin_init is not None:
            init = (
                readin_init
                if readin_init.readout_b is not None
                else readin_init._replace(readout_b=init.readout_b)
            )
        self.model = make_lfads(cfg.model, data.unit_mask, n_forward=data.n_forward)

        sv = sample_validation_mask(data, cfg.model.sv_rate, t.seed)
        host_data = device_data(data, cfg, sv)

        k_init, k_train = jax.random.split(jax.random.key(t.seed))
        probe = Batch(
            jnp.asarray(data.spikes[:1], jnp.float32),
            jnp.asarray(data.session[:1]),
            jnp.asarray(data.input_mask[:1], jnp.float32),
            jnp.asarray(data.loss_mask[:1], jnp.float32),
            None if sv is None else jnp.asarray(sv[:1]),
            None if data.ext_inputs is None else jnp.asarray(data.ext_inputs[:1], jnp.float32),
            None if data.n_forward == 0 else jnp.ones((1,), jnp.float32),
        )
        init_key = (
            "init",
            cfg.model,
            data.unit_mask.tobytes(),
            data.unit_mask.shape,
            sv is None,
            n_external_inputs(data),
            data.n_forward,
        )
        init_fn = cached(init_key, lambda: jax.jit(self.model.init, static_argnums=2))
        params = _with_frozen(apply_read_init(init_fn(k_init, probe, True), init), frozen)
        self._frozen = self._put(frozen) if frozen else None
        params = self._put(params)
        self.optimizer = make_optimizer(t, trainable_mask(t, params, frozen=frozen or ()))
        self.state = self._put(
            TrainingState(params, init_opt_state(self.optimizer, params), k_train, jnp.int32(0))
        )
        self._update, self._evaluate, self._gradient = self._compiled(params)
        # the whole data set on every device of the mesh (batches are split inside the step),
        # or, when it cannot fit, one call's trials at a time from the host
        self._place_data(host_data, params)
        valid_idx = np.flatnonzero(data.valid).astype(np.int32)
        self._valid_chunks, self._n_valid = chunk_indices(valid_idx, self.batch_size)
        self._valid_sessions = data.session[valid_idx]
        self._kl_s = kl_schedule(t, self.steps_per_epoch)
        self._l2_s = l2_schedule(t, self.steps_per_epoch)
        self._ramps_done = ramps_done_epoch(t)
        # host-side loop state (saved in checkpoints)
        self.epoch, self.elapsed = 0, 0.0
        self.monitor = Monitor()
        self.nan_calls, self.restores, self.n_nonfinite_total = 0, 0, 0
        self.stop_reason: str | None = None
        self.best_params = self.average = params
        self._last_good = self.state

    def _compiled(self, params):
        """The jitted update, evaluate and gradient functions, shared by trainers whose compiled
        code would be identical (same model config, shapes and compiled-in training settings)."""
        t = self.cfg.train
        compiled_in = dict(vars(t))
        for host_side in (
            "lr_init",
            "lr_decay",
            "lr_patience",
            "lr_min",
            "max_epochs",
            "max_minutes",
            "early_stop_patience",
            "seed",
            "nan_patience",
            "n_samples",
            "ema_decay",
            "session_sampling",
            "devices",
            "data_placement",
        ):
            compiled_in.pop(host_side)
        key = (
            self.cfg.model,
            tuple(sorted(compiled_in.items())),
            self.data.unit_mask.shape,
            n_external_inputs(self.data),
            self.data.n_forward,
            self.batch_size,
            self.steps_per_call,
            self.steps_per_epoch,
            self.parallel.key,
            tuple(sorted(self._frozen or ())),
        )
        par, model, cfg = self.parallel, self.model, self.cfg
        sizes = dict(batch_size=self.batch_size, steps_per_epoch=self.steps_per_epoch, parallel=par)
        return cached(
            key,
            lambda: (
                make_update(
                    model, cfg, self.optimizer, params, steps_per_call=self.steps_per_call, **sizes
                ),
                make_evaluate(model, cfg, self.batch_size, par),
                make_gradient(model, cfg, params, **sizes),
            ),
        )

    def _place_data(self, host_data, params) -> None:
        """Estimate memory (:attr:`memory`, :mod:`nwb_lfads.train.memory`), then put the data
        on the devices or keep it on the host for streaming (:attr:`streaming`)."""
        from . import memory as mem

        t = self.cfg.train
        n_dev = self.parallel.n_devices
        free_dev = mem.device_free(self.parallel.mesh.devices.flat[0])
        on_host = free_dev is None  # CPU devices share the host's memory
        free = mem.host_available() if on_host else free_dev
        share = mem.FIT_FRACTION * free / (n_dev if on_host else 1)  # per device
        state = mem.STATE_COPIES * mem.tree_bytes(self.state)
        n_params = mem.tree_bytes(self.state.params) // 4
        step = mem.analytic_step(
            self.cfg.model, self.batch_size, self.data.n_bins, self.data.n_units_max, n_params
        )
        step_fn, source = None, "estimate"
        if t.data_placement != DataPlacement.STREAM:
            step_fn, measured = self._compile(host_data)
            if measured is not None:
                step, source = measured, "XLA"
        data_bytes = mem.tree_bytes(host_data)
        now = mem.rss()  # the compiler's memory included, before the data goes onto the devices
        self.streaming = t.data_placement == DataPlacement.STREAM or (
            t.data_placement == DataPlacement.AUTO and data_bytes + state + step > share
        )
        if self.streaming:
            row = mem.tree_bytes(mem.take(host_data, np.zeros(1, np.int64)))
            steps = mem.pool_steps(self.steps_per_call, self.batch_size, row, share - state - step)
            if steps != self.steps_per_call:
                self.steps_per_call = steps
                self.calls_per_epoch = max(1, math.ceil(self.steps_per_epoch / steps))
                self._update, self._evaluate, self._gradient = self._compiled(params)
            self._host_data = host_data
            self._pool_rng = np.random.default_rng(t.seed + 104729)
            pool = mem.take(host_data, np.zeros(steps * self.batch_size, np.int64))
            step_fn, pool_step = self._compile(pool)
            data_bytes = mem.tree_bytes(pool)
            if pool_step is not None:
                step, source = pool_step, "XLA"
            self.device = None
        else:
            self.device = self._put(host_data)
        self._step = step_fn
        per_device = data_bytes + state + step
        self.memory = mem.MemoryEstimate(
            platform=self.parallel.mesh.devices.flat[0].platform,
            n_devices=n_dev,
            data=data_bytes,
            state=state,
            step=step,
            step_source=source,
            free=int(free),
            host_now=now,
            # on CPU every device's share; streamed, also the pool being built on the host
            host=now
            + (n_dev * per_device if on_host else 0)
            + (data_bytes if self.streaming else 0),
            streamed=self.streaming,
        )

    def _compile(self, device_data_tree):
        """The update compiled ahead of time for these data shapes, with its memory (bytes or
        None), shared by trainers with the same compiled function and shapes."""
        from . import memory as mem

        shapes = jax.tree_util.tree_map(
            lambda x: (
                tuple(np.shape(x)),
                str(np.asarray(x).dtype) if not hasattr(x, "dtype") else str(x.dtype),
            ),
            (self.state, device_data_tree),
        )
        key = ("aot", self._update, str(jax.tree_util.tree_structure(shapes)), str(shapes))
        return cached(
            key,
            lambda: mem.compile_step(
                self._update, self.state, device_data_tree, self.parallel.replicated
            ),
        )

    def _call_data(self):
        """The data of the next compiled call: the placed data set, or a streamed pool."""
        if not self.streaming:
            return self.device
        from . import memory as mem

        d = self._host_data
        rows = mem.draw_pool(
            self._pool_rng, d.train_idx, d.train_p, self.steps_per_call * self.batch_size
        )
        return self._put(mem.take(d, rows))

    def _put(self, tree):
        """``tree`` replicated over the mesh: a copy on every device of :attr:`parallel`."""
        return put(tree, self.parallel.replicated)

    # ------------------------------------------------------------------ the learning rate
    @property
    def lr(self) -> float:
        """The current learning rate (held in the optimizer state)."""
        return learning_rate(self.state.opt_state)

    @lr.setter
    def lr(self, value: float) -> None:
        self.state = self._put(
            self.state._replace(opt_state=with_learning_rate(self.state.opt_state, value))
        )

    def gradient(self) -> tuple[dict, dict]:
        """``(metrics, grads)`` of the next optimizer step from the current state (same batch,
        keys and sharding as :meth:`train_epoch` would use; nothing changes): float loss terms
        and a params-shaped dict of numpy float32 gradients."""
        metrics, grads = jax.device_get(self._gradient(self.state, self._call_data()))
        return {k: float(v) for k, v in metrics.items()}, grads

    # ------------------------------------------------------------------ epochs
    def train_epoch(self) -> dict:
        """Run one epoch and its validation; returns the metrics row (a row of the run's metrics)."""
        t0 = time.perf_counter()
        sums: dict = {}
        n_ok_steps = skipped = 0
        for _ in range(self.calls_per_epoch):
            self.state, m = self._step(self.state, self._call_data())
            m = jax.device_get(m)
            bad = int(m.pop("n_nonfinite"))
            if bad:
                skipped += bad
                self.nan_calls += 1
                if self.nan_calls >= self.cfg.train.nan_patience:
                    self._recover()
            else:
                self.nan_calls, self.restores = 0, 0
                self._last_good = self.state
            ok = self.steps_per_call - bad
            for k, v in m.items():
                sums[k] = sums.get(k, 0.0) + float(v) * ok
            n_ok_steps += ok
        self.n_nonfinite_total += skipped
        self.epoch += 1
        decay = self.cfg.train.ema_decay
        self.average = (
            parameter_average(self.average, self.state.params, self._put(np.float32(decay)))
            if decay > 0
            else self.state.params
        )
        if self._frozen:  # the average of equal values can differ from them in the last bit
            self.average = {**self.average, **self._frozen}
        train = {
            f"train_{k}": (v / n_ok_steps if n_ok_steps else math.nan) for k, v in sums.items()
        }
        valid = self.evaluate()
        self._observe(
            valid["valid_monitor"] if self._n_valid else train.get("train_loss", math.nan)
        )
        self.elapsed += time.perf_counter() - t0
        return {
            "epoch": self.epoch,
            "step": int(self.state.step),
            "elapsed_s": round(self.elapsed, 3),
            "lr": self.lr,
            "kl_weight": train.pop("train_kl_weight", math.nan),
            "l2_weight": train.pop("train_l2_weight", math.nan),
            **train,
            **valid,
            "n_skipped_nonfinite": skipped,
            "best_epoch": self.best_epoch,
        }

    def evaluate(self, params=None) -> dict:
        """Validation metrics of ``params`` (default: the parameters' moving average) with no
        dropout, one posterior sample and a fixed key: ``valid_loss``
        (with the current KL/L2 weights), ``valid_recon``, ``valid_kl_ic``, ``valid_kl_co``,
        ``valid_monitor`` (recon + scaled KL at full weight), ``valid_recon_sv`` and
        ``valid_recon_<session_id>`` per session; NaN without validation trials."""
        t, names = self.cfg.train, [s.session_id for s in self.data.sessions]
        if not self._n_valid:
            return {
                "valid_loss": math.nan,
                "valid_recon": math.nan,
                "valid_kl_ic": math.nan,
                "valid_kl_co": math.nan,
                "valid_monitor": math.nan,
                "valid_recon_sv": math.nan,
                **{f"valid_recon_{n}": math.nan for n in names},
            }
        params = self.average if params is None else params
        key = jax.random.key(t.seed + 7919)
        if self.streaming:  # one chunk of trials on the device at a time
            from .memory import take

            keys = jax.random.split(key, len(self._valid_chunks))
            parts = [
                jax.device_get(
                    self._evaluate(
                        self._put(params),
                        self._put(take(self._host_data, chunk)),
                        self._put(np.arange(chunk.size, dtype=np.int32)[None]),
                        self._put(k),
                    )
                )
                for chunk, k in zip(self._valid_chunks, keys)
            ]
            out = {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in parts[0]}
        else:
            out = jax.device_get(
                self._evaluate(
                    self._put(params), self.device, self._put(self._valid_chunks), self._put(key)
                )
            )
        per = {k: np.asarray(v).reshape(-1)[: self._n_valid] for k, v in out.items()}
        recon, kl_ic, kl_co = (float(np.mean(per[k])) for k in ("recon", "kl_ic", "kl_co"))
        step = self.state.step
        l2 = float(self._l2_value(params))
        kl_w, l2_w = float(self._kl_s(step)), float(self._l2_s(step))
        kl = t.kl_ic_scale * kl_ic + t.kl_co_scale * kl_co
        row = {
            "valid_loss": recon + kl_w * kl + l2_w * l2,
            "valid_recon": recon,
            "valid_kl_ic": kl_ic,
            "valid_kl_co": kl_co,
            "valid_monitor": recon + kl,
            "valid_recon_sv": float(np.mean(per["recon_sv"])),
        }
        for s, n in enumerate(names):
            sel = self._valid_sessions == s
            row[f"valid_recon_{n}"] = float(np.mean(per["recon"][sel])) if sel.any() else math.nan
        return row

    def _l2_value(self, params):
        g, c = l2_penalty(params)
        return self.cfg.train.l2_gen_scale * g + self.cfg.train.l2_con_scale * c

    def _observe(self, value: float) -> None:
        """Hand the epoch's validation loss to the monitor and act on its verdict."""
        t = self.cfg.train
        self.monitor, verdict = observe(
            self.monitor,
            value,
            self.epoch,
            ramps_done=self._ramps_done,
            lr_patience=t.lr_patience,
            early_stop_patience=t.early_stop_patience,
        )
        if verdict.keep:
            self.best_params = self.average
        if verdict.decay_lr:
            if self.lr * t.lr_decay < t.lr_min:
                self.stop_reason = "lr_min"
            self.lr = max(self.lr * t.lr_decay, t.lr_min)
        if verdict.stop:
            self.stop_reason = "early_stopping"

    @property
    def best_epoch(self) -> int:
        """The epoch whose parameters :attr:`best_params` holds (-1 before the first)."""
        return self.monitor.best_epoch

    def _recover(self) -> None:
        self.restores += 1
        self.nan_calls = 0
        lr = self.lr
        if self.restores > MAX_RESTORES:
            raise TrainingDivergedError(
                f"training diverged: non-finite losses persisted after {MAX_RESTORES} restores of "
                f"the last good state with halved learning rates (now {lr:.2e}) at epoch "
                f"{self.epoch}; lower train.lr_init, train.max_grad_norm or model.cell_clip, or "
                f"check the data for extreme counts."
            )
        self.state = self._last_good._replace(rng=self.state.rng, step=self.state.step)
        self.lr = lr / 2.0
        warnings.warn(
            f"non-finite loss in {self.cfg.train.nan_patience} consecutive calls at epoch "
            f"{self.epoch}: restored the last good state and halved the learning rate to "
            f"{self.lr:.2e}.",
            RuntimeWarning,
            stacklevel=2,
        )

    # ------------------------------------------------------------------ checkpoints
    def host_state(self) -> dict:
        """The loop's scalars saved in a checkpoint (floats)."""
        return {
            "epoch": self.epoch,
            "lr": self.lr,
            "elapsed": self.elapsed,
            **self.monitor._asdict(),
            "nan_calls": self.nan_calls,
            "restores": self.restores,
            "n_nonfinite_total": self.n_nonfinite_total,
        }

    def save(self, folder) -> None:
        """Write the checkpoint folder (a :class:`~nwb_lfads.rundir.CheckpointDir` or its path):
        state, best parameters, config, sessions."""
        ck = folder if isinstance(folder, CheckpointDir) else CheckpointDir(folder)
        ckpt.save_state(
            ck, self.state, self.host_state(), self.data.train, self.cfg, average=self.average
        )
        ckpt.save_params(ck.best, self.best_params, epoch=self.best_epoch)
        ckpt.write_run_files(ck, self.cfg, self.data.sessions)

    def restore(self, folder) -> None:
        """Continue from a checkpoint folder (same split and RNG stream)."""
        ck = folder if isinstance(folder, CheckpointDir) else CheckpointDir(folder)
        state, host, train_mask = ckpt.load_state(ck, self.state)
        if train_mask.shape != self.data.train.shape or not np.array_equal(
            train_mask, self.data.train
        ):
            raise RunDirError(
                f"{ck.path}: the checkpoint was trained on another train/validation split; "
                f"resume with the same sessions and data settings (split_seed, valid_fraction)."
            )
        self.state = self._last_good = self._put(state)
        average = ckpt.load_average(ck)
        self.average = self._put(average) if average is not None else self.state.params
        self.monitor = Monitor(
            smoothed=host["smoothed"],
            best=host["best"],
            best_epoch=int(host["best_epoch"]),
            plateau=int(host["plateau"]),
            bad_epochs=int(host["bad_epochs"]),
        )
        for k in _HOST_INTS:
            setattr(self, k, int(host[k]))
        self.elapsed = float(host["elapsed"])
        self.best_params = (
            self._put(ckpt.load_params(ck.best)) if ck.best.exists() else state.params
        )
        self.stop_reason = None

    @property
    def params(self):
        """The optimizer's current parameters (not averaged)."""
        return self.state.params

    @property
    def averaged_params(self):
        """The parameters' moving average after the last epoch (``train.ema_decay``; the
        optimizer's parameters when it is 0): what :meth:`evaluate` scores by default."""
        return self.average


def _with_frozen(params: dict, frozen: dict | None) -> dict:
    """``params`` with the modules of ``frozen`` replaced by its values (numpy or jax arrays of
    the same names and shapes; RunDirError naming the first difference)."""
    if not frozen:
        return params
    out = dict(params)
    for module, leaves in frozen.items():
        mine = params.get(module)
        if mine is None or set(mine) != set(leaves):
            raise RunDirError(
                f"the trained model's module {module!r} has no counterpart in this model "
                f"(modules: {sorted(params)}); the run was made by another version or config."
            )
        for name, value in leaves.items():
            if tuple(np.shape(value)) != tuple(mine[name].shape):
                raise RunDirError(
                    f"the trained model's {module}/{name} has shape {tuple(np.shape(value))}, "
                    f"this model {tuple(mine[name].shape)}; the run's config does not match."
                )
        out[module] = {k: jnp.asarray(v, mine[k].dtype) for k, v in leaves.items()}
    return out
