"""evaluate: metrics of enriched files built from the TRUE rates (no training), run dirs, targets, errors."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from helpers import make_results

from nwb_lfads.config import RunConfig
from nwb_lfads.errors import (
    ConfigError,
    EvaluationError,
    InputFileError,
    NwbLfadsError,
    RunDirError,
    TargetsError,
)
from nwb_lfads.evaluate import (
    evaluate,
    evaluation_path,
    format_evaluation,
    read_data_config,
)

BIN = 0.01
WINDOW = (-0.25, 0.75)  # the simulator's whole 1 s trial around move_onset_time (= start + 0.25 s)
CFG = RunConfig().with_overrides(
    [
        "data.align_to=move_onset_time",
        f"data.window={list(WINDOW)}",
        f"data.bin_size={BIN}",
        "data.heldout_units=heldout",
        "data.eval_trials=split=val",
    ]
)


def _results(ds, rates_hz):
    """A results Dataset as ``infer`` makes it: rates Hz (trial, time, unit), 3 zero factors."""
    return make_results(ds, rates_hz, np.zeros(rates_hz.shape[:2] + (3,), np.float32))


def _enrich(src, out, rates_fn, cfg=CFG):
    """Write ``src`` enriched with rates_fn(true rates Hz [B, T, N]) and return (path, ds, truth)."""
    from nwb_lfads.io.ground_truth import read_ground_truth
    from nwb_lfads.io.read import read_session
    from nwb_lfads.io.write import write_results

    ds = read_session(
        src,
        bin_size=BIN,
        align_to="move_onset_time",
        window=WINDOW,
        heldout="heldout",
        include_columns=["split"],
    )
    truth = read_ground_truth(src, ds).values
    path = write_results(
        src, _results(ds, rates_fn(truth)), out, provenance={"config": cfg.to_dict()}
    )
    return path, ds, truth


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    from nwb_lfads.synthetic import simulate

    [path] = simulate(
        tmp_path_factory.mktemp("sim"),
        sessions=1,
        seed=1,
        n_conditions=4,
        trials_per_condition=6,
        n_units=24,
        heldout_fraction=0.25,
        eval_fraction=0.25,
    )
    return path


@pytest.fixture(scope="module")
def enriched(sim, tmp_path_factory):
    return _enrich(sim, tmp_path_factory.mktemp("true") / "sim_session-0.lfads.nwb", lambda t: t)


@pytest.fixture(scope="module")
def report(enriched):
    return evaluate(enriched[0])


@pytest.fixture(scope="module")
def wrong_report(sim, tmp_path_factory):
    path, _, _ = _enrich(
        sim, tmp_path_factory.mktemp("wrong") / "sim_session-0.lfads.nwb", lambda t: t[:, ::-1]
    )
    return evaluate(path)


def test_true_rates_recover_truth_and_beat_the_smoothing_baseline(report):
    [s] = report["sessions"]
    m = s["metrics"]
    assert (s["n_trials"], s["n_units"], s["n_heldout"], s["n_eval_trials"]) == (24, 24, 6, 6)
    assert s["eval_trials"] == "split=val"
    assert m["r2_truth"] == pytest.approx(1.0, abs=1e-5)  # float32 storage only
    assert m["r2_truth_heldout_eval"] == pytest.approx(1.0, abs=1e-5)
    assert m["r2_truth_heldin"] == pytest.approx(1.0, abs=1e-5)
    assert m["co_bps_truth"] == pytest.approx(
        m["co_bps"], abs=1e-4
    )  # the rates are the truth (the ceiling)
    assert m["r2_truth_smoothing"] < 0.5
    assert m["bps"] > 0.1 and m["bps_heldin"] > 0.1
    assert m["co_bps"] > m["co_bps_smoothing"] + 0.1
    assert 0 < m["psth_r2"] <= 1
    assert report["overall"]["co_bps"] == m["co_bps"]


def test_wrong_rates_score_worse(report, wrong_report):
    good, bad = report["sessions"][0]["metrics"], wrong_report["sessions"][0]["metrics"]
    for key in ("r2_truth", "r2_truth_heldin", "bps", "bps_heldin", "co_bps", "psth_r2"):
        assert bad[key] < good[key] - 0.1, key
    for key in ("co_bps_smoothing", "co_bps_truth"):  # neither depends on the fitted rates
        assert bad[key] == pytest.approx(good[key]), key


def test_evaluation_json_beside_the_file(enriched, report):
    path = enriched[0]
    out = evaluation_path(path)
    assert out == path.with_name("sim_session-0.lfads.evaluation.json") and report[
        "written"
    ] == str(out)
    saved = json.loads(out.read_text())
    assert saved["sessions"][0]["metrics"]["co_bps"] == pytest.approx(
        report["sessions"][0]["metrics"]["co_bps"]
    )
    assert not list(out.parent.glob(".*tmp*"))


def test_table_lists_metrics(report):
    table = format_evaluation(report)
    assert "co-bps (held-out units, eval trials)" in table and "R^2 vs true rates" in table
    assert f"{report['sessions'][0]['metrics']['co_bps']:.4f}" in table


def test_data_config_from_provenance(enriched):
    cfg = read_data_config(enriched[0])
    assert (cfg.bin_size, cfg.align_to, cfg.window) == (BIN, "move_onset_time", WINDOW)
    assert (cfg.heldout_units, cfg.eval_trials) == ("heldout", "split=val")


def test_run_dir(sim, enriched, tmp_path):
    import shutil

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(CFG.to_yaml())
    (run / "sessions.json").write_text(
        json.dumps([{"source": str(sim), "path": str(sim), "session_id": "sim-0"}])
    )
    shutil.copy(enriched[0], run / "sim_session-0.lfads.nwb")
    rep = evaluate(run)
    assert (run / "evaluation.json").exists() and rep["written"] == str(run / "evaluation.json")
    assert rep["sessions"][0]["metrics"]["r2_truth"] == pytest.approx(1.0, abs=1e-5)


def _targets(path, ds, truth, groups=("mc_maze_small_10",), heldout_spikes=None):
    """nlb_tools make_eval_target_tensors layout from our own session (per bin, NLB unit order)."""
    ho = ds.heldout.values
    split = np.asarray(ds.split.values).astype(str)
    ev, tr = split == "val", split == "train"
    spikes = ds.spikes.values.astype(float)
    rate = truth * BIN
    nlb = np.concatenate([rate[..., ~ho], rate[..., ho]], axis=-1)
    w = np.random.default_rng(0).standard_normal((nlb.shape[2], 2))
    with h5py.File(path, "w") as f:
        for g in groups:
            grp = f.create_group(g)
            grp["eval_spikes_heldout"] = (
                spikes[ev][..., ho] if heldout_spikes is None else heldout_spikes
            )
            grp["train_behavior"] = nlb[tr] @ w
            grp["eval_behavior"] = nlb[ev] @ w
            grp["psth"] = nlb[ev].reshape(
                -1, nlb.shape[2]
            )  # chaotic: trials of a condition share rates
            grp["eval_spikes_heldin_forward"] = np.zeros((int(ev.sum()), 20, int((~ho).sum())))
            grp["eval_spikes_heldout_forward"] = np.zeros((int(ev.sum()), 20, int(ho.sum())))
    return path


def test_targets_scored_like_nlb(enriched, report, tmp_path):
    path, ds, truth = enriched
    targets = _targets(tmp_path / "target_data.h5", ds, truth)
    rep = evaluate(path, targets=targets, write=False)
    m = rep["sessions"][0]["metrics"]
    assert rep["sessions"][0]["targets_dataset"] == "mc_maze_small_10"
    assert m["targets_co_bps"] == pytest.approx(
        report["sessions"][0]["metrics"]["co_bps"], rel=1e-9
    )
    assert m["targets_vel_r2"] > 0.99 and m["targets_psth_r2"] == pytest.approx(1.0, abs=1e-5)
    assert "targets_fp_bps" in rep["sessions"][0]["skipped"] and rep["written"] is None


def test_targets_dataset_choice_and_mismatch(enriched, tmp_path):
    path, ds, truth = enriched
    two = _targets(tmp_path / "two.h5", ds, truth, groups=("mc_maze_small", "mc_maze_small_20"))
    with pytest.raises(TargetsError, match="cannot tell which targets dataset.*--dataset"):
        evaluate(path, targets=two, write=False)
    with pytest.raises(TargetsError, match="no dataset 'mc_maze'"):
        evaluate(path, targets=two, dataset="mc_maze", write=False)
    bad = _targets(tmp_path / "bad.h5", ds, truth, heldout_spikes=np.zeros((3, 100, 6)))
    with pytest.raises(
        TargetsError, match=r"'eval_spikes_heldout' have shape \(3, 100, 6\).*\(6, 100, 6\)"
    ):
        evaluate(path, targets=bad, write=False)
    with pytest.raises(InputFileError, match="targets file not found or not HDF5"):
        evaluate(path, targets=tmp_path / "missing.h5", write=False)


@pytest.fixture(scope="module")
def with_behavior(tmp_path_factory):
    """A simulated session with a hand_vel series that is a linear function of the true rates 100 ms earlier."""
    return _behavior_file(tmp_path_factory.mktemp("behav"), "hand_vel")


def _behavior_file(d, name: str):
    """``d/beh.lfads.nwb``: a simulated session with a 2-channel series ``name`` (a linear
    function of the true rates 100 ms earlier), enriched with the true rates as LFADS rates."""
    from pynwb import TimeSeries

    from nwb_lfads.io.simulated import bin_centres, session_to_nwbfile, write_nwbfile
    from nwb_lfads.synthetic import generate_sessions

    [s] = generate_sessions("chaotic", 1, 2, n_conditions=4, trials_per_condition=8, n_units=20)
    lag = 10
    vel = np.zeros(s.rates_hz.shape[:2] + (2,))
    vel[:, lag:] = s.rates_hz[:, :-lag] @ np.random.default_rng(3).standard_normal((20, 2))
    nwbfile = session_to_nwbfile(s, np.random.default_rng(4))
    nwbfile.add_acquisition(
        TimeSeries(
            name=name,
            data=vel.reshape(-1, 2),
            unit="m/s",
            timestamps=bin_centres(s.start_time, s.rates_hz.shape[1], s.bin_size),
        )
    )
    src = write_nwbfile(nwbfile, d / "beh.nwb")
    cfg = CFG.with_overrides(["data.heldout_units=null", "data.eval_trials=null"])
    from nwb_lfads.io.ground_truth import read_ground_truth
    from nwb_lfads.io.read import read_session
    from nwb_lfads.io.write import write_results

    ds = read_session(src, bin_size=BIN, align_to="move_onset_time", window=WINDOW)
    return write_results(
        src,
        _results(ds, read_ground_truth(src, ds).values),
        d / "beh.lfads.nwb",
        provenance={"config": cfg.to_dict()},
    )


def test_behavior_decoding(with_behavior):
    rep = evaluate(with_behavior, write=False)
    s = rep["sessions"][0]
    m = s["metrics"]
    assert m["decoding_r2_hand_vel"] > 0.95
    assert m["decoding_r2_hand_vel_smoothing"] < m["decoding_r2_hand_vel"] - 0.1
    assert "co_bps" not in m and "no held-out units" in s["skipped"]["co_bps"]
    assert s["eval_trials"] == "all" and "decoding R^2, hand_vel" in format_evaluation(rep)


def test_any_behavior_series_and_lag(tmp_path):
    from click.testing import CliRunner
    from nwb_lfads.cli.main import main

    path = _behavior_file(tmp_path, "lever_speed")  # not one of BEHAVIOR_SERIES
    assert "decoding_r2_lever_speed" not in evaluate(path, write=False)["sessions"][0]["metrics"]
    at = {}
    for lag in (0.1, 0.0, -0.05):
        rep = evaluate(path, behavior=["lever_speed"], lag=lag, write=False)
        at[lag] = rep["sessions"][0]["metrics"]["decoding_r2_lever_speed"]
        assert rep["sessions"][0]["decoding_lag_s"] == lag
    assert at[0.1] > 0.95 and at[0.1] > at[0.0] + 0.05 and at[0.1] > at[-0.05] + 0.05
    result = CliRunner().invoke(
        main, ["evaluate", str(path), "--behavior", "lever_speed", "--lag", "0.1", "--no-write"]
    )
    assert result.exit_code == 0, result.output
    assert "decoding R^2, lever_speed" in result.output
    result = CliRunner().invoke(main, ["evaluate", str(path), "--behavior", "hand_velocity"])
    assert result.exit_code == 2
    (line,) = [x for x in result.output.splitlines() if x.strip()]
    assert "no TimeSeries named 'hand_velocity'" in line and "candidates: lever_speed" in line
    assert "rates" not in line.split("candidates:")[1]  # the model's own series are not offered
    with pytest.raises(ConfigError, match="--lag 2 s is not shorter than the trials"):
        evaluate(path, behavior=["lever_speed"], lag=2.0, write=False)
    with pytest.raises(ConfigError, match="--lag nan"):
        evaluate(path, behavior=["lever_speed"], lag=float("nan"), write=False)


def test_bad_inputs(sim, tmp_path):
    with pytest.raises(InputFileError, match="no such run directory or NWB file"):
        evaluate(tmp_path / "nothing")
    with pytest.raises(
        EvaluationError, match=r"no processing/lfads/rates .*ground_truth.*Pass a run directory"
    ):
        evaluate(sim)
    with pytest.raises(RunDirError, match="not a run directory"):
        evaluate(tmp_path)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(InputFileError, match="not an HDF5 file"):
        evaluate(text)


def test_cli(enriched, sim, tmp_path):
    from click.testing import CliRunner
    from nwb_lfads.cli.main import main

    runner = CliRunner()
    ok = runner.invoke(main, ["evaluate", str(enriched[0]), "--no-write"])
    assert ok.exit_code == 0, ok.output
    assert "co-bps (held-out units, eval trials)" in ok.output and "wrote" not in ok.output
    for bad, message in (
        (tmp_path / "nothing", "no such run directory"),
        (sim, "no processing/lfads/rates"),
    ):
        res = runner.invoke(main, ["evaluate", str(bad)])
        assert res.exit_code == 2 and message in res.output
        assert "Traceback" not in res.output and isinstance(res.exception, SystemExit)
    assert issubclass(EvaluationError, NwbLfadsError)


def test_continuous_mode_samples_merged_windows(a8604, tmp_path):
    """Constant rates survive the window merge exactly, so evaluate's bits/spike equals a direct computation."""
    from nwb_lfads.io.read import read_session
    from nwb_lfads.io.write import write_results
    from nwb_lfads.metrics import bits_per_spike

    cfg = RunConfig().with_overrides(
        ["data.bin_size=0.02", "data.window_length=2.0", "data.overlap=0.4"]
    )
    ds = read_session(a8604, bin_size=0.02, window_length=2.0, overlap=0.4)
    hz = 1.5 * ds.spikes.values.mean(axis=(0, 1)) / 0.02 + np.array(
        [0.0, 0.5, 1.0]
    )  # not the null model
    rates = np.broadcast_to(hz, ds.spikes.shape)
    out = write_results(
        a8604, _results(ds, rates), tmp_path / "a.lfads.nwb", provenance={"config": cfg.to_dict()}
    )
    s = evaluate(out, write=False)["sessions"][0]
    expected = bits_per_spike(
        np.broadcast_to(hz.astype(np.float32) * 0.02, ds.spikes.shape), ds.spikes.values
    )
    assert s["n_trials"] == ds.sizes["trial"] and s["eval_trials"] == "all"
    assert s["metrics"]["bps"] == pytest.approx(expected, rel=1e-6) and expected < 0
    assert set(s["metrics"]) == {"bps"} and "no held-out units" in s["skipped"]["co_bps"]


def test_without_eval_split_the_baseline_is_cross_fitted(enriched):
    import dataclasses

    from nwb_lfads.baselines import smoothing_baseline
    from nwb_lfads.evaluate import SMOOTHING_SIGMA_S, evaluate_session
    from nwb_lfads.metrics import co_bps

    path, ds, truth = enriched
    s = evaluate_session(path, dataclasses.replace(CFG.data, eval_trials=None))
    assert (s["eval_trials"], s["n_eval_trials"]) == ("all", 24)
    k, ho = ds.spikes.values, ds.heldout.values
    in_sample = co_bps(
        smoothing_baseline(k[..., ~ho], k[..., ho], k[..., ~ho], BIN, SMOOTHING_SIGMA_S), k[..., ho]
    )
    assert (
        s["metrics"]["co_bps_smoothing"] < in_sample - 0.05
    )  # never scored on its own training trials
    assert s["metrics"]["co_bps"] == pytest.approx(
        co_bps(truth[..., ho] * BIN, k[..., ho]), rel=1e-5
    )
