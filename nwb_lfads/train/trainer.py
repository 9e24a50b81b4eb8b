"""The :class:`Trainer`: model, optimizer, device data and the loop's state, one epoch at a time.

An external scheduler (the loop in :mod:`nwb_lfads.train.loop`, or Ray Tune) drives it::

    trainer = Trainer(data, cfg)
    while not trainer.stop_reason:
        row = trainer.train_epoch()      # dict of this epoch's metrics
    trainer.save(run_dir / "checkpoint")

Shape glossary: M trials, T bins, N units (padded), S sessions.

Per epoch: ``calls_per_epoch`` compiled calls of ``steps_per_call`` optimizer steps, an
update of the parameters' moving average (``train.ema_decay``; :attr:`Trainer.averaged_params`),
then a validation pass of that average. Learning-rate decay on a plateau of the smoothed
validation loss and early stopping start counting once the KL and L2 ramps are complete. A
call with a skipped (non-finite) step counts as failed; after ``nan_patience`` failed calls in
a row the last good state is restored with half the learning rate (a warning says so), and
after ``MAX_RESTORES`` restores without a good call in between :class:`TrainingDivergedError`
is raised.
"""

from __future__ import annotations

import math
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from ..config import RunConfig
from ..data import TrainingData
from ..errors import ConfigError, RunDirError, SelectionError, TrainingDivergedError
from ..model.lfads import Batch, make_lfads
from ..model.readin import ReadInit, apply_read_init
from . import checkpoint as ckpt
from .parallel import make_parallel, put
from .schedules import kl_schedule, l2_schedule, ramps_done_epoch
from .step import (
    DeviceData,
    TrainingState,
    chunk_indices,
    init_opt_state,
    make_evaluate,
    make_gradient,
    make_optimizer,
    make_update,
)

MAX_RESTORES = 3
SMOOTHING = 0.7  # weight of the past in the smoothed validation loss
MAX_AUTO_STEPS = 50  # steps per compiled call when steps_per_call = 0
_COMPILED: dict = {}  # see Trainer._compiled
_COMPILED_MAX = 8


@jax.jit
def _moving_average(average, params, decay):
    """``decay * average + (1 - decay) * params``, leaf by leaf (same shardings as the inputs)."""
    return jax.tree_util.tree_map(lambda a, p: decay * a + (1.0 - decay) * p, average, params)


def _cached(key, build):
    """Memoise jitted functions by what is compiled into them (bounded, oldest out first)."""
    if key not in _COMPILED:
        while len(_COMPILED) >= _COMPILED_MAX:
            _COMPILED.pop(next(iter(_COMPILED)))
        _COMPILED[key] = build()
    return _COMPILED[key]


def default_readin_init(data: TrainingData, likelihood: str, model_cfg=None) -> ReadInit:
    """Read-out bias from each unit's mean count per bin (log for Poisson); read-in and read-out
    weights keep the model's random initialisation, with several sessions too.

    With ``model_cfg.readin_init == "pcr"`` the read-in (and, when its width equals ``fac_dim``,
    the read-out weights) start from principal-component regression instead
    (:func:`nwb_lfads.stitching.readin_init_from_data`). Not the default: on the multi-session
    chaotic-RNN benchmark it fitted worse than random read-ins (small session R^2 0.26 vs 0.35;
    with 20 conditions the stitched model collapsed to R^2 ~0.02 vs 0.47), DESIGN_NOTES.md,
    "Stitching"."""
    means = data.unit_means.astype(np.float32)
    bias = np.log(np.maximum(means, 1e-3)) if likelihood == "poisson" else means
    readout_b = np.where(data.unit_mask, bias, 0.0).astype(np.float32)
    how = getattr(model_cfg, "readin_init", "random")
    if how == "random":
        return ReadInit(readout_b=readout_b)
    if how != "pcr":
        raise ConfigError(f"model.readin_init={how!r}: expected random or pcr.")
    from ..model.lfads import readin_size

    width = readin_size(model_cfg, data.n_sessions)
    if width == 0:
        raise ConfigError(
            "model.readin_init=pcr: this model has no read-in (one session and model.readin_dim=0); "
            "set model.readin_dim (e.g. --set model.readin_dim=20) or use readin_init=random."
        )
    from ..stitching import readin_init_from_data

    return ReadInit(
        **readin_init_from_data(data, width, fac_dim=model_cfg.fac_dim), readout_b=readout_b
    )


def sample_validation_mask(data: TrainingData, rate: float, seed: int) -> np.ndarray | None:
    """float32 [M, T, N]: 1 for (bin, unit) elements held back from training (``sv_rate``)."""
    if rate <= 0:
        return None
    rng = np.random.default_rng([seed, 5])
    return (rng.random(data.spikes.shape) < rate).astype(np.float32)


def _check_jitter(m, n_bins: int) -> None:
    """ConfigError unless ``model.jitter_width`` suits the model and the data."""
    w = m.jitter_width
    if w == 0:
        return
    if w < 0 or 2 * w >= n_bins:
        raise ConfigError(
            f"model.jitter_width={w}: expected 0 (off) or a shift of 1 to {(n_bins - 1) // 2} "
            f"bins for these {n_bins}-bin trials."
        )
    if m.likelihood != "poisson":
        raise ConfigError(
            f"model.jitter_width={w} moves spike counts in time and needs "
            f"model.likelihood=poisson (found {m.likelihood!r}); set model.jitter_width=0."
        )
    if m.sv_rate > 0:
        raise ConfigError(
            f"model.jitter_width={w} with model.sv_rate={m.sv_rate}: jitter would move spikes "
            f"out of the bins held back for sample validation; set one of them to 0."
        )


class Trainer:
    """See the module docstring. ``readin_init`` overrides the default read-in/out init."""

    def __init__(self, data: TrainingData, cfg: RunConfig, *, readin_init: ReadInit | None = None):
        self.data, self.cfg = data, cfg
        t = cfg.train
        if not 0.0 <= t.ema_decay < 1.0:
            raise ConfigError(
                f"train.ema_decay={t.ema_decay}: expected a value in [0, 1) (0 = no averaging)."
            )
        _check_jitter(cfg.model, data.spikes.shape[1])
        train_idx = np.flatnonzero(data.train).astype(np.int32)
        if len(train_idx) == 0:
            raise SelectionError(
                "no training trials: every trial is in the validation set; lower valid_fraction."
            )
        self.parallel = make_parallel(
            t.devices, t.batch_size
        )  # ConfigError: too few devices, indivisible batch
        n_dev = self.parallel.n_devices
        # fewer training trials than train.batch_size: the largest multiple of the device count that fits
        self.batch_size = int(min(t.batch_size, max(n_dev, len(train_idx) // n_dev * n_dev)))
        self.steps_per_epoch = max(1, math.ceil(len(train_idx) / self.batch_size))
        self.steps_per_call = int(t.steps_per_call) or min(self.steps_per_epoch, MAX_AUTO_STEPS)
        self.calls_per_epoch = max(1, math.ceil(self.steps_per_epoch / self.steps_per_call))
        init = readin_init or default_readin_init(data, cfg.model.likelihood, cfg.model)
        if readin_init is not None and readin_init.readout_b is None:
            init = init._replace(
                readout_b=default_readin_init(data, cfg.model.likelihood).readout_b
            )
        self.model = make_lfads(cfg.model, data.unit_mask)

        sv = sample_validation_mask(data, cfg.model.sv_rate, t.seed)
        train_p = None
        if t.session_sampling == "balanced" and data.n_sessions > 1:
            per = np.bincount(data.session[train_idx], minlength=data.n_sessions)
            train_p = (1.0 / (data.n_sessions * per[data.session[train_idx]])).astype(np.float32)
        elif t.session_sampling not in ("proportional", "balanced"):
            raise ConfigError(
                f"train.session_sampling={t.session_sampling!r}: expected proportional or balanced."
            )
        # the whole data set on every device of the mesh (replicated); batches are split inside the step
        self.device = self._put(
            DeviceData(
                spikes=np.asarray(data.spikes, np.float32),
                session=np.asarray(data.session, np.int32),
                input_mask=np.asarray(data.input_mask, np.float32),
                loss_mask=np.asarray(data.loss_mask, np.float32),
                sv_mask=sv,
                train_idx=train_idx,
                train_p=train_p,
            )
        )

        k_init, k_train = jax.random.split(jax.random.key(t.seed))
        probe = Batch(
            jnp.asarray(data.spikes[:1], jnp.float32),
            jnp.asarray(data.session[:1]),
            jnp.asarray(data.input_mask[:1], jnp.float32),
            jnp.asarray(data.loss_mask[:1], jnp.float32),
            None if sv is None else jnp.asarray(sv[:1]),
        )
        init_key = ("init", cfg.model, data.unit_mask.tobytes(), data.unit_mask.shape, sv is None)
        init_fn = _cached(init_key, lambda: jax.jit(self.model.init, static_argnums=2))
        params = apply_read_init(init_fn(k_init, probe, True), init)
        self.optimizer = make_optimizer(cfg)
        params = self._put(params)
        self.state = self._put(
            TrainingState(params, init_opt_state(self.optimizer, params), k_train, jnp.int32(0))
        )
        self._update, self._evaluate, self._gradient = self._compiled(params)
        valid_idx = np.flatnonzero(data.valid).astype(np.int32)
        self._valid_chunks, self._n_valid = chunk_indices(valid_idx, self.batch_size)
        self._valid_sessions = data.session[valid_idx]
        self._kl_s = kl_schedule(t, self.steps_per_epoch)
        self._l2_s = l2_schedule(t, self.steps_per_epoch)
        self._ramps_done = ramps_done_epoch(t)
        # host-side loop state (saved in checkpoints)
        self.epoch, self.lr, self.elapsed = 0, float(t.lr_init), 0.0
        self.best, self.smoothed, self.best_epoch = math.inf, math.nan, -1
        self.plateau, self.bad_epochs, self.nan_calls, self.restores = 0, 0, 0, 0
        self.n_nonfinite_total = 0
        self.stop_reason: str | None = None
        self.best_params = self.average = params
        self._last_good = self.state

    def _compiled(self, params):
        """The jitted update and evaluate functions, shared by trainers whose compiled code
        would be identical (same model config, shapes and compiled-in training settings):
        a second trainer in the same process (a resume, a Tune trial, a test) compiles nothing."""
        t = self.cfg.train
        compiled_in = (
            t.batch_size,
            t.adam_epsilon,
            t.weight_decay,
            t.max_grad_norm,
            t.kl_ic_scale,
            t.kl_co_scale,
            t.kl_start_epoch,
            t.kl_increase_epochs,
            t.l2_gen_scale,
            t.l2_con_scale,
            t.l2_start_epoch,
            t.l2_increase_epochs,
            t.train_readin,
        )
        key = (
            self.cfg.model,
            compiled_in,
            self.data.unit_mask.shape,
            self.batch_size,
            self.steps_per_call,
            self.steps_per_epoch,
            self.parallel.key,
        )
        par = self.parallel
        return _cached(
            key,
            lambda: (
                make_update(
                    self.model,
                    self.cfg,
                    self.optimizer,
                    params,
                    batch_size=self.batch_size,
                    steps_per_call=self.steps_per_call,
                    steps_per_epoch=self.steps_per_epoch,
                    parallel=par,
                ),
                make_evaluate(self.model, self.cfg, self.batch_size, par),
                make_gradient(
                    self.model,
                    self.cfg,
                    params,
                    batch_size=self.batch_size,
                    steps_per_epoch=self.steps_per_epoch,
                    parallel=par,
                ),
            ),
        )

    def _put(self, tree):
        """``tree`` replicated over the mesh: a copy on every device of :attr:`parallel`."""
        return put(tree, self.parallel.replicated)

    def gradient(self) -> tuple[dict, dict]:
        """``(metrics, grads)`` of the next optimizer step from the current state (same batch,
        keys and sharding as :meth:`train_epoch` would use; nothing changes): float loss terms
        and a params-shaped dict of numpy float32 gradients."""
        metrics, grads = jax.device_get(self._gradient(self.state, self.device))
        return {k: float(v) for k, v in metrics.items()}, grads

    # ------------------------------------------------------------------ epochs
    def train_epoch(self) -> dict:
        """Run one epoch and its validation; returns the metrics row (also for metrics.csv)."""
        t0 = time.perf_counter()
        sums: dict = {}
        n_ok_steps = skipped = 0
        for _ in range(self.calls_per_epoch):
            state, m = self._update(self.state, self.device, self._put(np.float32(self.lr)))
            m = jax.device_get(m)
            bad = int(m.pop("n_nonfinite"))
            self.state = state
            if bad:
                skipped += bad
                self.nan_calls += 1
                if self.nan_calls >= self.cfg.train.nan_patience:
                    self._recover()
            else:
                self.nan_calls, self.restores = 0, 0
                self._last_good = state
            ok = self.steps_per_call - bad
            for k, v in m.items():
                sums[k] = sums.get(k, 0.0) + float(v) * ok
            n_ok_steps += ok
        self.n_nonfinite_total += skipped
        self.epoch += 1
        decay = self.cfg.train.ema_decay
        self.average = (
            _moving_average(self.average, self.state.params, self._put(np.float32(decay)))
            if decay > 0
            else self.state.params
        )
        train = {
            f"train_{k}": (v / n_ok_steps if n_ok_steps else math.nan) for k, v in sums.items()
        }
        valid = self.evaluate()
        self._bookkeeping(
            valid["valid_monitor"] if self._n_valid else train.get("train_loss", math.nan)
        )
        self.elapsed += time.perf_counter() - t0
        row = {
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
        return row

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
        from ..model.lfads import l2_penalty

        g, c = l2_penalty(params)
        return self.cfg.train.l2_gen_scale * g + self.cfg.train.l2_con_scale * c

    def _bookkeeping(self, monitor: float) -> None:
        t = self.cfg.train
        if not math.isfinite(monitor):
            return
        self.smoothed = (
            monitor
            if math.isnan(self.smoothed)
            else SMOOTHING * self.smoothed + (1 - SMOOTHING) * monitor
        )
        if self.epoch < self._ramps_done:
            self.best_params, self.best_epoch = self.average, self.epoch
            return
        if self.smoothed < self.best:
            self.best, self.best_epoch, self.best_params = self.smoothed, self.epoch, self.average
            self.plateau = self.bad_epochs = 0
            return
        self.plateau += 1
        self.bad_epochs += 1
        if self.plateau >= t.lr_patience:
            self.plateau = 0
            if self.lr * t.lr_decay < t.lr_min:
                self.stop_reason = "lr_min"
            self.lr = max(self.lr * t.lr_decay, t.lr_min)
        if self.bad_epochs >= t.early_stop_patience:
            self.stop_reason = "early_stopping"

    def _recover(self) -> None:
        self.restores += 1
        self.nan_calls = 0
        if self.restores > MAX_RESTORES:
            raise TrainingDivergedError(
                f"training diverged: non-finite losses persisted after {MAX_RESTORES} restores of the last good "
                f"state with halved learning rates (now {self.lr:.2e}) at epoch {self.epoch}; lower train.lr_init, "
                f"train.max_grad_norm or model.cell_clip, or check the data for extreme counts."
            )
        self.lr /= 2.0
        good = self._last_good
        self.state = good._replace(rng=self.state.rng, step=self.state.step)
        warnings.warn(
            f"non-finite loss in {self.cfg.train.nan_patience} consecutive calls at epoch {self.epoch}: "
            f"restored the last good state and halved the learning rate to {self.lr:.2e}.",
            RuntimeWarning,
            stacklevel=2,
        )

    # ------------------------------------------------------------------ checkpoints
    def host_state(self) -> dict:
        return {
            "epoch": self.epoch,
            "lr": self.lr,
            "elapsed": self.elapsed,
            "best": self.best,
            "smoothed": self.smoothed,
            "best_epoch": self.best_epoch,
            "plateau": self.plateau,
            "bad_epochs": self.bad_epochs,
            "nan_calls": self.nan_calls,
            "restores": self.restores,
            "n_nonfinite_total": self.n_nonfinite_total,
        }

    def save(self, path) -> None:
        """Write the checkpoint folder ``path`` (state, best parameters, config, sessions)."""
        from pathlib import Path

        path = Path(path)
        ckpt.save_state(
            path, self.state, self.host_state(), self.data.train, self.cfg, average=self.average
        )
        ckpt.save_params(path / ckpt.BEST, self.best_params, epoch=self.best_epoch)
        ckpt.write_run_files(path, self.cfg, self.data.sessions)

    def restore(self, path) -> None:
        """Continue from the checkpoint folder ``path`` (same split and RNG stream)."""
        from pathlib import Path

        state, host, train_mask = ckpt.load_state(Path(path), self.state)
        if train_mask.shape != self.data.train.shape or not np.array_equal(
            train_mask, self.data.train
        ):
            raise RunDirError(
                f"{path}: the checkpoint was trained on another train/validation split; resume "
                f"with the same sessions and data settings (split_seed, valid_fraction)."
            )
        self.state = self._last_good = self._put(state)
        average = ckpt.load_average(Path(path))
        self.average = self._put(average) if average is not None else self.state.params
        ints = {
            "epoch",
            "best_epoch",
            "plateau",
            "bad_epochs",
            "nan_calls",
            "restores",
            "n_nonfinite_total",
        }
        for k, v in host.items():
            setattr(self, k, int(v) if k in ints else float(v))
        best = Path(path) / ckpt.BEST
        self.best_params = self._put(ckpt.load_params(best)) if best.exists() else self.state.params
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
