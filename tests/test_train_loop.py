"""End-to-end: a tiny fit through ``train`` lowers the validation loss, writes a run
directory, and ``load_run`` + ``infer`` give rates with the input's coordinates."""

import numpy as np
import pytest
from helpers import make_session

from nwb_lfads.config import RunConfig, resolve_for_data
from nwb_lfads.data import prepare_data
from nwb_lfads.infer import infer
from nwb_lfads.train.checkpoint import load_run
from nwb_lfads.train.loop import train


def _session(seed=0, M=48, T=20, N=10):
    cond = np.repeat(np.arange(6), M // 6)
    return make_session(f"s{seed}", M, T, N, seed=seed, conditions=cond, align_spacing=2.0)


TINY = dict(
    model=dict(ic_enc_dim=8, ci_enc_dim=8, ic_dim=8, gen_dim=16, con_dim=8, co_dim=2, fac_dim=6),
    train=dict(
        batch_size=16, n_samples=3, kl_increase_epochs=4, l2_increase_epochs=4, lr_init=1e-2
    ),
)


def test_fit_writes_run_and_infer_returns_rates_in_hz(tmp_path):
    ds = _session()
    cfg = RunConfig().replace(**{k: dict(v) for k, v in TINY.items()})
    cfg = cfg.replace(train={"max_epochs": 10})
    data = prepare_data([ds], cfg.data)
    res = train(data, cfg, tmp_path / "run", progress=False)
    assert res.stop_reason == "max_epochs" and len(res.history) == 10
    recon = [r["valid_recon"] for r in res.history]
    assert recon[-1] < recon[0]
    lines = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert len(lines) == 11 and lines[0].startswith("epoch,step")
    cfg2, params, sessions = load_run(tmp_path / "run")
    # the run records its automatic settings as resolved for one session
    assert cfg2 == resolve_for_data(cfg, 1) and sessions[0].session_id == "s0"
    assert cfg.model.readin_init == "auto" and cfg2.model.readin_init == "random"
    (out,) = infer(params, cfg2, [ds], sessions=sessions, n_samples=2)
    assert out["rates"].dims == ("trial", "time", "unit") and out["rates"].dtype == np.float32
    assert out["rates"].shape == ds["spikes"].shape
    assert np.all(out["rates"].values > 0)
    # rates are in Hz: the mean rate is close to the data's mean count / bin size
    assert out["rates"].values.mean() == pytest.approx(ds["spikes"].values.mean() / 0.01, rel=0.5)
    assert out["factors"].shape == (48, 20, 6) and out["inferred_inputs"].shape == (48, 20, 2)
    np.testing.assert_array_equal(out["align_time"].values, ds["align_time"].values)
    assert out.attrs["session_id"] == "s0"
