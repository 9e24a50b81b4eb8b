"""Forward prediction (``--forward`` / ``data.forward``): the reader's forward bins against
numpy, encoders that never see them, the loss mask of evaluation trials, bad input, and a tiny
end-to-end fit whose rates, fp-bps and NLB submission cover the forward bins."""

from __future__ import annotations

import dataclasses
import json
import warnings

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from click.testing import CliRunner
from nwb_lfads.cli.main import main

from nwb_lfads.config import DataConfig, ModelConfig, RunConfig
from nwb_lfads.errors import AlignmentError, ConfigError
from nwb_lfads.io.read import read_session
from nwb_lfads.model.lfads import Batch, make_lfads
from nwb_lfads.synthetic import simulate

BIN = 0.01
WINDOW = (-0.25, 0.55)
FORWARD = 0.2  # the window and its forward bins: the simulator's whole 1 s trial


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    [path] = simulate(
        tmp_path_factory.mktemp("sim"),
        sessions=1,
        seed=2,
        n_conditions=4,
        trials_per_condition=6,
        n_units=16,
        heldout_fraction=0.25,
        eval_fraction=0.25,
    )
    return path


def _spike_times(path):
    import pynwb

    with pynwb.NWBHDF5IO(str(path), "r") as io:
        units = io.read().units
        return [np.asarray(units["spike_times"][i]) for i in range(len(units))]


def test_reader_forward_bins_against_numpy(sim):
    ds = read_session(sim, bin_size=BIN, align_to="move_onset_time", window=WINDOW, forward=FORWARD)
    n_obs, n_fwd = 80, 20
    assert ds.sizes["time"] == n_obs + n_fwd
    assert ds.attrs["forward_bins"] == n_fwd and ds.attrs["forward"] == FORWARD
    assert tuple(ds.attrs["window"]) == WINDOW  # the observed window
    np.testing.assert_allclose(ds.time.values, WINDOW[0] + (np.arange(100) + 0.5) * BIN)
    plain = read_session(sim, bin_size=BIN, align_to="move_onset_time", window=WINDOW)
    np.testing.assert_array_equal(ds.spikes.values[:, :n_obs], plain.spikes.values)
    assert "forward_bins" not in plain.attrs
    trains = _spike_times(sim)
    for i in range(ds.sizes["trial"]):
        edges = ds.align_time.values[i] + WINDOW[1] + np.arange(n_fwd + 1) * BIN
        want = np.stack([np.histogram(t, edges)[0] for t in trains], axis=1)
        np.testing.assert_array_equal(ds.spikes.values[i, n_obs:], want)


def test_forward_past_the_recording_drops_and_counts(sim):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = read_session(
            sim, bin_size=BIN, align_to="move_onset_time", window=(-0.25, 0.75), forward=FORWARD
        )
    last = read_session(sim, bin_size=BIN, align_to="move_onset_time", window=(-0.25, 0.75))
    assert last.attrs["dropped_trials"] == []
    assert ds.attrs["dropped_trials"] == [int(last.trial.values[-1])]
    assert ds.sizes["trial"] == last.sizes["trial"] - 1
    assert any("window (with its forward bins) reaching outside" in str(w.message) for w in caught)


def test_bad_forward():
    with pytest.raises(ConfigError, match=r"data.forward=-0.1: expected seconds >= 0"):
        DataConfig(align_to="move_onset_time", forward=-0.1)
    with pytest.raises(ConfigError, match="data.forward=0.2 needs trial-aligned windows"):
        DataConfig(forward=0.2)
    with pytest.raises(ConfigError, match="data.forward=inf"):
        DataConfig(align_to="x", forward=float("inf"))
    assert RunConfig.from_dict(RunConfig().to_dict()).data.forward == 0.0


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--align-to", "move_onset_time", "--forward", "-0.2"], "data.forward=-0.2"),
        (["--forward", "0.2"], "needs trial-aligned windows"),
        (["--align-to", "move_onset_time", "--forward", "0.015"], "forward period of 0.015 s"),
    ],
)
def test_bad_forward_cli_exit_2(sim, tmp_path, extra, message):
    res = CliRunner().invoke(
        main, ["fit", str(sim), "--out", str(tmp_path / "run"), *extra, "--max-epochs", "1"]
    )
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert res.exit_code == 2 and message in res.output, res.output
    assert "Traceback" not in res.output and lines[-1].startswith("Error:")


TINY = ModelConfig(ic_enc_dim=8, ci_enc_dim=6, ic_dim=5, gen_dim=12, con_dim=7, co_dim=2, fac_dim=4)


def _batch(seed, t_obs=12, t_fwd=5, n=6, b=3, forward_mask=None):
    rng = np.random.default_rng(seed)
    spikes = rng.poisson(1.0, (b, t_obs + t_fwd, n)).astype(np.float32)
    return Batch(
        jnp.asarray(spikes),
        jnp.zeros(b, jnp.int32),
        jnp.ones((b, n), jnp.float32),
        jnp.ones((b, n), jnp.float32),
        forward_mask=forward_mask,
    )


@pytest.mark.parametrize("cd_rate", [0.0, 0.3])
def test_encoders_never_see_forward_bins(cd_rate):
    cfg = dataclasses.replace(TINY, cd_rate=cd_rate)
    model = make_lfads(cfg, np.ones((1, 6), bool), n_forward=5)
    a = _batch(0)
    other = np.array(a.spikes)
    other[:, 12:] = np.random.default_rng(9).poisson(3.0, other[:, 12:].shape)
    b = a._replace(spikes=jnp.asarray(other))
    params = model.init(jax.random.key(0), a, True)
    for training in (False, True):
        out_a = model.apply(params, jax.random.key(1), a, training)
        out_b = model.apply(params, jax.random.key(1), b, training)
        for name in ("ic_mean", "ic_var", "co_mean", "co_var", "log_rates", "factors"):
            np.testing.assert_array_equal(getattr(out_a, name), getattr(out_b, name), name)
        assert out_a.co_mean.shape == (3, 17, 2) and out_a.log_rates.shape == (3, 17, 6)
        assert not np.allclose(out_a.recon, out_b.recon)  # the loss covers the forward bins
    # on trials whose forward bins are not scored (evaluation trials) they change nothing
    mask = jnp.asarray([1.0, 0.0, 1.0])
    out_a = model.apply(params, jax.random.key(1), a._replace(forward_mask=mask), False)
    out_b = model.apply(params, jax.random.key(1), b._replace(forward_mask=mask), False)
    assert out_a.recon[1] == out_b.recon[1] and out_a.recon[0] != out_b.recon[0]
    # the model without forward bins has the same parameters
    plain = make_lfads(cfg, np.ones((1, 6), bool)).init(jax.random.key(0), a, True)
    assert jax.tree_util.tree_map(np.shape, plain) == jax.tree_util.tree_map(np.shape, params)


TINY_CLI = [
    "--set",
    "model.gen_dim=12",
    "--set",
    "model.ic_enc_dim=8",
    "--set",
    "model.ci_enc_dim=8",
    "--set",
    "model.con_dim=8",
    "--set",
    "model.fac_dim=4",
    "--set",
    "model.ic_dim=8",
    "--set",
    "model.co_dim=2",
    "--set",
    "train.batch_size=8",
    "--set",
    "train.n_samples=2",
    "--quiet",
    "--no-plots",
]


def test_fit_with_forward_end_to_end(sim, tmp_path):
    import pynwb

    run = tmp_path / "run"
    args = ["fit", str(sim), "--out", str(run), "--align-to", "move_onset_time"]
    args += ["--window", *map(str, WINDOW), "--bin-size", str(BIN), "--forward", str(FORWARD)]
    args += ["--heldout-units", "heldout", "--eval-trials", "split=val", "--max-epochs", "2"]
    res = CliRunner().invoke(main, args + TINY_CLI)
    assert res.exit_code == 0, res.output
    assert RunConfig.from_yaml(run / "config.yaml").data.forward == FORWARD
    [out] = run.glob("*.lfads.nwb")
    ds = read_session(
        sim,
        bin_size=BIN,
        align_to="move_onset_time",
        window=WINDOW,
        forward=FORWARD,
        heldout="heldout",
        include_columns=["split"],
    )
    with pynwb.NWBHDF5IO(str(out), "r") as io:
        rates = io.read().processing["lfads"]["rates"]
        stamps = np.asarray(rates.timestamps[:])
        assert rates.data.shape[0] == ds.sizes["trial"] * 100  # window and forward bins
    first = ds.align_time.values[0] + ds.time.values
    np.testing.assert_allclose(stamps[:100], first, atol=1e-9)
    res = CliRunner().invoke(
        main,
        ["evaluate", str(run), "--nlb-submission", str(tmp_path / "s.h5"), "--dataset", "mc_maze"],
    )
    assert res.exit_code == 0, res.output
    assert "fp-bps" in res.output
    report = json.loads((run / "evaluation.json").read_text())["sessions"][0]
    m = report["metrics"]
    for key in ("fp_bps", "fp_bps_heldin", "fp_bps_heldout", "fp_bps_truth"):
        assert np.isfinite(m[key]), key
    assert m["fp_bps_truth"] > 0
    ho = ds.heldout.values
    n_eval = int((np.asarray(ds.split.values).astype(str) == "val").sum())
    with h5py.File(tmp_path / "s.h5", "r") as f:
        g = f["mc_maze_10"]
        assert g["eval_rates_heldin"].shape == (n_eval, 80, int((~ho).sum()))
        assert g["eval_rates_heldin_forward"].shape == (n_eval, 20, int((~ho).sum()))
        assert g["eval_rates_heldout_forward"].shape == (n_eval, 20, int(ho.sum()))
        assert g["eval_rates_heldout_forward"].dtype == np.float32
    # the submission's fp-bps against NLB-style targets equals evaluate's on the run directory
    ev = np.asarray(ds.split.values).astype(str) == "val"
    k = ds.spikes.values.astype(float)
    with h5py.File(tmp_path / "targets.h5", "w") as f:
        f["mc_maze_10/eval_spikes_heldout"] = k[ev][:, :80][..., ho]
        f["mc_maze_10/eval_spikes_heldin_forward"] = k[ev][:, 80:][..., ~ho]
        f["mc_maze_10/eval_spikes_heldout_forward"] = k[ev][:, 80:][..., ho]
    from nwb_lfads.evaluate import evaluate

    scored = evaluate(tmp_path / "s.h5", targets=tmp_path / "targets.h5", write=False)
    sm = scored["sessions"][0]["metrics"]
    assert sm["targets_fp_bps"] == pytest.approx(m["fp_bps"], abs=1e-6)
    assert sm["targets_co_bps"] == pytest.approx(m["co_bps"], abs=1e-6)
    direct = evaluate(run, targets=tmp_path / "targets.h5", write=False)["sessions"][0]
    assert direct["metrics"]["targets_fp_bps"] == pytest.approx(m["fp_bps"], abs=1e-9)


def test_reader_refuses_forward_in_continuous_mode(sim):
    with pytest.raises(AlignmentError, match="forward=0.2 needs align_to"):
        read_session(sim, bin_size=BIN, forward=0.2)


def test_training_data_keeps_forward_bins_out_of_the_starting_points():
    """prepare_data's unit means and the PCR read-in start never read forward bins (the
    evaluation trials' forward spikes are what is scored)."""
    from helpers import make_session

    from nwb_lfads.data import prepare_data
    from nwb_lfads.stitching import readin_init_from_data

    cfg = DataConfig(align_to="move_onset_time", forward=0.05)

    def sessions(scale):
        out = []
        for i, sid in enumerate(("a", "b")):
            ds = make_session(sid, n_bins=25, seed=i, attrs={"forward_bins": 5})
            ds["spikes"][:, 20:] = ds["spikes"][:, 20:] * scale
            out.append(ds)
        return out

    one, other = prepare_data(sessions(1), cfg), prepare_data(sessions(7), cfg)
    assert one.n_forward == 5 and one.n_bins == 25
    np.testing.assert_array_equal(one.unit_means, other.unit_means)
    a, b = readin_init_from_data(one, 4), readin_init_from_data(other, 4)
    np.testing.assert_array_equal(a["readin_w"], b["readin_w"])
