"""Posterior means: per-session arrays, Hz conversion, xarray coordinates, session matching."""

import jax
import numpy as np
import pytest
from helpers import make_session

from nwb_lfads.config import RunConfig
from nwb_lfads.data import prepare_data
from nwb_lfads.errors import ConfigError, SessionMismatchError
from nwb_lfads.infer import infer, posterior_means
from nwb_lfads.train.trainer import Trainer

T = 12
CFG = RunConfig().replace(
    model=dict(
        ic_enc_dim=8,
        ci_enc_dim=8,
        ic_dim=8,
        gen_dim=16,
        con_dim=8,
        co_dim=2,
        fac_dim=6,
        readin_dim=5,
    ),
    train=dict(batch_size=8, n_samples=3),
)


def _session(sid, M, N, seed):
    return make_session(
        sid,
        M,
        T,
        N,
        seed=seed,
        rate=0.5,
        conditions=2,
        bin_size=0.02,
        first_trial=10,
        align_spacing=3.0,
        coords={"depth": ("unit", np.arange(N) * 10.0)},
        attrs={"align_to": "go"},
    )


@pytest.fixture(scope="module")
def fitted():
    sessions = [_session("a", 10, 6, 0), _session("b", 7, 4, 1)]
    data = prepare_data(sessions, CFG.data.__class__(bin_size=0.02))
    trainer = Trainer(data, CFG)
    return sessions, data, jax.device_get(trainer.params)


def test_posterior_means_per_session(fitted):
    sessions, data, params = fitted
    means = posterior_means(params, CFG, data, n_samples=2, batch_size=8)
    assert [m["rates"].shape for m in means] == [(10, T, 6), (7, T, 4)]
    assert means[1]["factors"].shape == (7, T, 6) and means[1]["inferred_inputs"].shape == (7, T, 2)
    assert all(np.all(m["rates"] > 0) and m["rates"].dtype == np.float32 for m in means)
    again = posterior_means(params, CFG, data, n_samples=2, batch_size=8)
    np.testing.assert_array_equal(means[0]["rates"], again[0]["rates"])  # seeded
    one = posterior_means(params, CFG, data, n_samples=1, batch_size=8, seed=1)
    assert not np.array_equal(
        one[0]["rates"], means[0]["rates"]
    )  # samples differ, the average is taken
    with pytest.raises(ConfigError, match="n_samples >= 1"):
        posterior_means(params, CFG, data, n_samples=0)


def test_infer_returns_xarray_in_hz_with_input_coordinates(fitted):
    sessions, data, params = fitted
    out = infer(params, CFG, sessions, n_samples=2, batch_size=8)
    means = posterior_means(params, CFG, data, n_samples=2, batch_size=8)
    for ds, res, m in zip(sessions, out, means):
        assert (
            res["rates"].dims == ("trial", "time", "unit") and res["rates"].attrs["units"] == "Hz"
        )
        np.testing.assert_allclose(res["rates"].values, m["rates"] / 0.02, rtol=1e-6)
        assert res["factors"].dims == ("trial", "time", "factor")
        assert res["inferred_inputs"].dims == ("trial", "time", "input")
        for c in ("trial", "time", "unit", "align_time", "condition_id", "depth"):
            np.testing.assert_array_equal(res[c].values, ds[c].values)
        assert res.attrs["session_id"] == ds.attrs["session_id"] and res.attrs["align_to"] == "go"


def test_infer_matches_sessions_by_identity(fitted):
    sessions, data, params = fitted
    only_b = infer(
        params,
        CFG,
        [sessions[1].isel(trial=slice(0, 3))],
        sessions=list(data.sessions),
        n_samples=1,
    )
    assert only_b[0]["rates"].shape == (3, T, 4)
    with pytest.raises(SessionMismatchError, match="2 sessions"):
        infer(params, CFG, [sessions[1]], n_samples=1)
    with pytest.raises(SessionMismatchError, match="not one the model was trained on"):
        infer(params, CFG, [_session("zzz", 3, 4, 2)], sessions=list(data.sessions), n_samples=1)


def test_infer_returns_initial_conditions_and_states(fitted):
    sessions, data, params = fitted
    plain = infer(params, CFG, sessions, n_samples=2, batch_size=8)
    assert plain[0].attrs["n_samples"] == 2 and plain[0].attrs["push_mean"] is False
    assert "generator_states" not in plain[0] and "controller_states" not in plain[0]
    out = infer(params, CFG, sessions, n_samples=2, batch_size=8, states=True)
    for ds, res, first in zip(sessions, out, plain):
        m = ds.sizes["trial"]
        assert res["ic_mean"].dims == ("trial", "ic_dim") and res["ic_mean"].shape == (m, 8)
        assert res["ic_sd"].shape == (m, 8) and res["g0"].dims == ("trial", "gen_dim")
        assert res["g0"].shape == (m, 16) and res["ic_mean"].dtype == np.float32
        assert np.all(res["ic_sd"].values > 0) and np.all(np.isfinite(res["ic_mean"].values))
        np.testing.assert_array_equal(res["ic_dim"].values, np.arange(8))
        assert res["generator_states"].dims == ("trial", "time", "gen_dim")
        assert res["generator_states"].shape == (m, T, 16)
        assert res["controller_states"].dims == ("trial", "time", "con_dim")
        assert res["controller_states"].shape == (m, T, 8)
        # the posterior of the initial condition does not depend on the samples drawn
        np.testing.assert_array_equal(res["ic_mean"].values, first["ic_mean"].values)
    # factors are the generator states through the unit-norm factor map: same rank, shared
    # row space, so a least-squares map from states to factors is exact
    g = out[0]["generator_states"].values.reshape(-1, 16)
    f = out[0]["factors"].values.reshape(-1, 6)
    w, *_ = np.linalg.lstsq(g, f, rcond=None)
    np.testing.assert_allclose(g @ w, f, atol=1e-4)


def test_push_mean_is_deterministic_and_recorded(fitted):
    sessions, data, params = fitted
    a = infer(params, CFG, sessions, n_samples=5, batch_size=8, push_mean=True, seed=0)
    b = infer(params, CFG, sessions, n_samples=5, batch_size=8, push_mean=True, seed=3)
    np.testing.assert_array_equal(a[0]["rates"].values, b[0]["rates"].values)
    np.testing.assert_array_equal(a[0]["g0"].values, b[0]["g0"].values)
    assert a[0].attrs["push_mean"] is True and a[0].attrs["n_samples"] == 1
    sampled = infer(params, CFG, sessions, n_samples=5, batch_size=8, seed=0)
    assert not np.allclose(sampled[0]["g0"].values, a[0]["g0"].values)  # g0 averaged, not pushed
    # the autonomous-model path: no controller, so no controller states
    auto = CFG.replace(model=dict(co_dim=0))
    data0 = prepare_data(sessions, CFG.data.__class__(bin_size=0.02))
    p0 = jax.device_get(Trainer(data0, auto).params)
    res = infer(p0, auto, sessions, n_samples=1, states=True)[0]
    assert "controller_states" not in res and res["generator_states"].shape == (10, T, 16)
