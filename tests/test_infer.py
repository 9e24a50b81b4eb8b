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
