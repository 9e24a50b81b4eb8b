"""Posterior means: average rates, factors and inferred inputs over posterior samples.

Shape glossary: M trials, T bins, N units (padded), n units of one session, F factors,
U inferred inputs, P posterior samples.

Each trial is passed through the model ``n_samples`` times without dropout (fresh samples of
g0 and of the inferred inputs each time); the expected counts per bin, the factors and the
inferred inputs are averaged. Batches of trials run through one jitted function
(``lax.scan`` over samples); the last batch is padded so nothing recompiles.
:func:`infer` returns xarray Datasets with the input's coordinates and rates in Hz.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .config import RunConfig
from .data import SessionInfo, TrainingData, inference_data
from .errors import ConfigError, SessionMismatchError
from .model.lfads import Batch, make_lfads
from .model.likelihoods import get_likelihood


def _sampler(model, lik, n_samples: int, push_mean: bool = False):
    @jax.jit
    def run(params, batch: Batch, key):
        def body(acc, k):
            out = model.apply(params, k, batch, False, not push_mean)
            new = (lik.mean(out.log_rates), out.factors, out.inferred_inputs)
            return jax.tree_util.tree_map(jnp.add, acc, new), None

        B, T, N = batch.spikes.shape
        out0 = jax.eval_shape(lambda: model.apply(params, key, batch, False))
        zeros = (
            jnp.zeros((B, T, N)),
            jnp.zeros(out0.factors.shape),
            jnp.zeros(out0.inferred_inputs.shape),
        )
        acc, _ = jax.lax.scan(body, zeros, jax.random.split(key, n_samples))
        return jax.tree_util.tree_map(lambda a: a / n_samples, acc)

    return run


def posterior_means(
    params,
    cfg: RunConfig,
    data: TrainingData,
    *,
    n_samples: int | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    push_mean: bool = False,
) -> list[dict]:
    """Posterior-mean outputs of every trial of ``data``, split by session.

    Args:
        params: trained parameters. cfg: the run's config. data: trials to infer (any
            :class:`TrainingData` with the model's session layout).
        n_samples: posterior samples per trial (default ``cfg.train.n_samples``).
        batch_size: trials per compiled call (default ``cfg.train.batch_size``).
        push_mean: instead of averaging samples, run the posterior means of g0 and of the
            inferred inputs through the generator once (TF LFADS ``posterior_push_mean``).

    Returns:
        one dict per session of ``data.sessions``: ``rates`` float32 [M_s, T, n_s] expected
        counts per bin (Poisson: divide by the bin size for Hz), ``factors`` float32
        [M_s, T, F], ``inferred_inputs`` float32 [M_s, T, U] (U = 0 for the autonomous model).
    """
    rates, factors, inputs = _posterior_arrays(
        params, cfg, data, n_samples, batch_size, seed, push_mean
    )
    result = []
    for s, info in enumerate(data.sessions):
        sel = data.session == s
        result.append(
            {
                "rates": rates[sel][:, :, : info.n_units],
                "factors": factors[sel],
                "inferred_inputs": inputs[sel],
            }
        )
    return result


def _posterior_arrays(params, cfg, data, n_samples, batch_size, seed, push_mean=False):
    """(rates [M, T, N] counts per bin, factors [M, T, F], inputs [M, T, U]) of all trials."""
    n_samples = int(cfg.train.n_samples if n_samples is None else n_samples)
    batch_size = int(cfg.train.batch_size if batch_size is None else batch_size)
    if n_samples < 1 or batch_size < 1:
        raise ConfigError(
            f"posterior sampling needs n_samples >= 1 and batch_size >= 1, got {n_samples}, {batch_size}."
        )
    model = make_lfads(cfg.model, data.unit_mask)
    if push_mean:
        n_samples = 1
    run = _sampler(model, get_likelihood(cfg.model.likelihood), n_samples, push_mean)
    params = jax.tree_util.tree_map(jnp.asarray, params)
    M = data.spikes.shape[0]
    batch_size = min(batch_size, M)
    outs = []
    key = jax.random.key(seed)
    for i, start in enumerate(range(0, M, batch_size)):
        idx = np.arange(start, start + batch_size) % M
        s = data.session[idx]
        batch = Batch(
            jnp.asarray(data.spikes[idx]),
            jnp.asarray(s),
            jnp.asarray(data.input_mask[s], jnp.float32),
            jnp.asarray(data.loss_mask[idx], jnp.float32),
        )
        res = jax.device_get(run(params, batch, jax.random.fold_in(key, i)))
        n = min(batch_size, M - start)
        outs.append(tuple(np.asarray(r[:n], np.float32) for r in res))
    return tuple(np.concatenate(parts) for parts in zip(*outs))


def infer(
    params,
    cfg: RunConfig,
    datasets,
    *,
    sessions: list[SessionInfo] | None = None,
    n_samples: int | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    push_mean: bool = False,
) -> list:
    """Posterior means of ``datasets`` as xarray, one Dataset per input.

    Args:
        params: trained parameters; cfg: the run's config.
        datasets: ``xarray.Dataset`` sessions from :func:`nwb_lfads.read_session` (all or new
            trials of sessions the model was trained on).
        sessions: the run's sessions (from :func:`nwb_lfads.train.checkpoint.load_run`);
            datasets are matched by ``session_id`` or source file name. None: ``datasets``
            are the training sessions in training order.
        n_samples, batch_size, push_mean: see :func:`posterior_means`.

    Returns:
        per dataset: ``rates`` float32 Hz (trial, time, unit), ``factors`` (trial, time,
        factor), ``inferred_inputs`` (trial, time, input) when ``co_dim > 0``, with the
        input's coordinates (trial coordinates such as ``align_time``) and attrs.
    """
    import xarray as xr

    datasets = list(datasets)
    n_units_max = int(np.asarray(params["lfads/readout"]["w"]).shape[2])
    data, order = inference_data(datasets, sessions, n_units_max)
    n_model = int(np.asarray(params["lfads/readout"]["w"]).shape[0])
    if data.n_sessions != n_model:
        raise SessionMismatchError(
            f"the model was trained on {n_model} sessions but {data.n_sessions} were given "
            f"without the run's session list; pass sessions= from load_run()."
        )
    rates, factors, inputs = _posterior_arrays(
        params, cfg, data, n_samples, batch_size, seed, push_mean
    )
    out = []
    start = 0
    for ds, s in zip(datasets, order):
        m = ds.sizes["trial"]
        sl = slice(start, start + m)
        start += m
        res = {
            "rates": rates[sl][:, :, : data.sessions[s].n_units],
            "factors": factors[sl],
            "inferred_inputs": inputs[sl],
        }
        bin_size = float(ds.attrs.get("bin_size", cfg.data.bin_size))
        coords = {
            name: c for name, c in ds.coords.items() if set(c.dims) <= {"trial", "time", "unit"}
        }
        variables = {
            "rates": (
                ("trial", "time", "unit"),
                (res["rates"] / bin_size).astype(np.float32),
                {"units": "Hz"},
            ),
            "factors": (("trial", "time", "factor"), res["factors"]),
        }
        coords["factor"] = np.arange(res["factors"].shape[2])
        if res["inferred_inputs"].shape[2] > 0:
            variables["inferred_inputs"] = (("trial", "time", "input"), res["inferred_inputs"])
            coords["input"] = np.arange(res["inferred_inputs"].shape[2])
        out.append(xr.Dataset(variables, coords=coords, attrs=dict(ds.attrs)))
    return out
