"""Posterior means: average rates, factors and inferred inputs over posterior samples.

Shape glossary: M trials, T bins, N units (padded), n units of one session, F factors,
U inferred inputs, P posterior samples, D ``ic_dim``, G ``gen_dim``, K ``con_dim``.

Each trial is passed through the model ``n_samples`` times without dropout (fresh samples of
g0 and of the inferred inputs each time); the expected counts per bin, the factors, the
inferred inputs, g0 and (when asked) the generator and controller states are averaged; the
initial-condition posterior's mean and standard deviation are returned as they are. Batches of trials run through one jitted function
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


def _sampler(model, lik, n_samples: int, push_mean: bool = False, states: bool = False):
    """Jitted ``run(params, batch, key) -> dict`` of per-trial posterior outputs (see
    :func:`posterior_means`); the averaged ones summed over ``n_samples`` passes in a scan."""

    def one(params, batch, k):
        out = model.apply(params, k, batch, False, not push_mean, states)
        avg = {
            "rates": lik.mean(out.log_rates),
            "factors": out.factors,
            "inferred_inputs": out.inferred_inputs,
            "g0": out.g0,
        }
        if states:
            avg["generator_states"] = out.gen_states
            avg["controller_states"] = out.con_states
        return avg, {"ic_mean": out.ic_mean, "ic_sd": jnp.sqrt(out.ic_var)}

    @jax.jit
    def run(params, batch: Batch, key):
        def body(acc, k):
            avg, fixed = one(params, batch, k)
            return jax.tree_util.tree_map(jnp.add, acc, avg), fixed

        shapes, _ = jax.eval_shape(lambda: one(params, batch, key))
        zeros = jax.tree_util.tree_map(lambda a: jnp.zeros(a.shape, a.dtype), shapes)
        acc, fixed = jax.lax.scan(body, zeros, jax.random.split(key, n_samples))
        means = jax.tree_util.tree_map(lambda a: a / n_samples, acc)
        # the initial-condition posterior does not depend on the sample: take the first pass's
        return {**means, **{name: a[0] for name, a in fixed.items()}}

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
    states: bool = False,
) -> list[dict]:
    """Posterior-mean outputs of every trial of ``data``, split by session.

    Args:
        params: trained parameters. cfg: the run's config. data: trials to infer (any
            :class:`TrainingData` with the model's session layout).
        n_samples: posterior samples per trial (default ``cfg.train.n_samples``).
        batch_size: trials per compiled call (default ``cfg.train.batch_size``).
        push_mean: instead of averaging samples, run the posterior means of g0 and of the
            inferred inputs through the generator once (TF LFADS ``posterior_push_mean``).
        states: also return the generator and controller states.

    Returns:
        one dict per session of ``data.sessions``, float32 arrays: ``rates`` [M_s, T, n_s]
        expected counts per bin (Poisson: divide by the bin size for Hz), ``factors``
        [M_s, T, F], ``inferred_inputs`` [M_s, T, U] (U = 0 for the autonomous model),
        ``ic_mean`` and ``ic_sd`` [M_s, D] (the initial-condition posterior's mean and standard
        deviation), ``g0`` [M_s, G] (the generator's initial state, averaged over samples);
        with ``states``, ``generator_states`` [M_s, T, G] and ``controller_states``
        [M_s, T, K] (K = 0 for the autonomous model), averaged over samples.
    """
    arrays = _posterior_arrays(params, cfg, data, n_samples, batch_size, seed, push_mean, states)
    result = []
    for s, info in enumerate(data.sessions):
        sel = data.session == s
        mine = {name: a[sel] for name, a in arrays.items()}
        mine["rates"] = mine["rates"][:, :, : info.n_units]
        result.append(mine)
    return result


def effective_samples(cfg: RunConfig, n_samples: int | None, push_mean: bool) -> int:
    """Posterior samples averaged per trial: 1 with ``push_mean``, else ``n_samples`` or the
    run's ``train.n_samples``."""
    return 1 if push_mean else int(cfg.train.n_samples if n_samples is None else n_samples)


def _posterior_arrays(
    params, cfg, data, n_samples, batch_size, seed, push_mean=False, states=False
) -> dict:
    """``{name: float32 [M, ...]}`` of all trials (see :func:`posterior_means`; rates padded
    to N units)."""
    n_samples = int(cfg.train.n_samples if n_samples is None else n_samples)
    batch_size = int(cfg.train.batch_size if batch_size is None else batch_size)
    if n_samples < 1 or batch_size < 1:
        raise ConfigError(
            f"posterior sampling needs n_samples >= 1 and batch_size >= 1, got {n_samples}, {batch_size}."
        )
    model = make_lfads(cfg.model, data.unit_mask, n_forward=data.n_forward)
    n_samples = effective_samples(cfg, n_samples, push_mean)
    run = _sampler(model, get_likelihood(cfg.model.likelihood), n_samples, push_mean, states)
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
            ext_inputs=None if data.ext_inputs is None else jnp.asarray(data.ext_inputs[idx]),
        )
        res = jax.device_get(run(params, batch, jax.random.fold_in(key, i)))
        n = min(batch_size, M - start)
        outs.append({name: np.asarray(r[:n], np.float32) for name, r in res.items()})
    return {name: np.concatenate([o[name] for o in outs]) for name in outs[0]}


def check_external_inputs(params, cfg: RunConfig, data: TrainingData) -> None:
    """SessionMismatchError unless ``data`` has as many external-input columns as the model
    was trained with (the generator's input width minus ``co_dim``)."""
    x_model = int(np.asarray(params["lfads/generator/gru"]["w_i"]).shape[0]) - cfg.model.co_dim
    x_data = 0 if data.ext_inputs is None else int(data.ext_inputs.shape[2])
    if x_model != x_data:
        raise SessionMismatchError(
            f"the sessions have {x_data} external-input columns but the model was trained with "
            f"{x_model} (data.external_inputs={list(cfg.data.external_inputs)}); read them with "
            f"the run's external inputs."
        )


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
    states: bool = False,
) -> list:
    """Posterior means of ``datasets`` as xarray, one Dataset per input.

    Args:
        params: trained parameters; cfg: the run's config.
        datasets: ``xarray.Dataset`` sessions from :func:`nwb_lfads.read_session` (all or new
            trials of sessions the model was trained on).
        sessions: the run's sessions (from :func:`nwb_lfads.train.checkpoint.load_run`);
            datasets are matched by ``session_id`` or source file name. None: ``datasets``
            are the training sessions in training order.
        n_samples, batch_size, push_mean, states: see :func:`posterior_means`.

    Returns:
        per dataset (docs/DESIGN.md, "Results"), float32: ``rates`` Hz (trial, time, unit),
        ``factors`` (trial, time, factor), ``inferred_inputs`` (trial, time, input) when
        ``co_dim > 0``, ``ic_mean`` and ``ic_sd`` (trial, ic_dim), ``g0`` (trial, gen_dim);
        with ``states``, ``generator_states`` (trial, time, gen_dim) and, when ``co_dim > 0``,
        ``controller_states`` (trial, time, con_dim). The input's coordinates (trial
        coordinates such as ``align_time``) and attrs, plus attrs ``n_samples`` (samples
        averaged; 1 with ``push_mean``) and ``push_mean``; with external inputs also
        ``external_inputs`` (names), ``external_input_columns`` and ``external_input_sources``.
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
    check_external_inputs(params, cfg, data)
    arrays = _posterior_arrays(params, cfg, data, n_samples, batch_size, seed, push_mean, states)
    attrs = {"n_samples": effective_samples(cfg, n_samples, push_mean), "push_mean": push_mean}
    if data.ext_inputs is not None:
        ext = datasets[0]["external_inputs"]
        attrs["external_inputs"] = list(ext.attrs.get("names", cfg.data.external_inputs))
        attrs["external_input_columns"] = [str(v) for v in ext.coords["input"].values]
        attrs["external_input_sources"] = list(ext.attrs.get("sources", []))
    out = []
    start = 0
    for ds, s in zip(datasets, order):
        m = ds.sizes["trial"]
        sl = slice(start, start + m)
        start += m
        res = {name: a[sl] for name, a in arrays.items()}
        res["rates"] = res["rates"][:, :, : data.sessions[s].n_units]
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
            "ic_mean": (("trial", "ic_dim"), res["ic_mean"]),
            "ic_sd": (("trial", "ic_dim"), res["ic_sd"]),
            "g0": (("trial", "gen_dim"), res["g0"]),
        }
        if res["inferred_inputs"].shape[2] > 0:
            variables["inferred_inputs"] = (("trial", "time", "input"), res["inferred_inputs"])
        if states:
            variables["generator_states"] = (("trial", "time", "gen_dim"), res["generator_states"])
            if res["controller_states"].shape[2] > 0:
                variables["controller_states"] = (
                    ("trial", "time", "con_dim"),
                    res["controller_states"],
                )
        for dims, values, *_ in variables.values():  # index coordinates of the model's axes
            for dim, size in zip(dims, np.shape(values)):
                coords.setdefault(dim, np.arange(size))
        out.append(xr.Dataset(variables, coords=coords, attrs={**ds.attrs, **attrs}))
    return out
