"""`nwb-lfads simulate --kind calcium`: the imaging generator's statistics and its ophys NWB file."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from nwb_lfads.cli.main import main

from nwb_lfads.synthetic import simulate
from nwb_lfads.synthetic_calcium import generate_calcium_session, indicator_trace

SMALL = dict(seed=2, n_rois=12, n_conditions=4, trials_per_condition=5)


@pytest.fixture(scope="module")
def session():
    return generate_calcium_session(**SMALL)


@pytest.fixture(scope="module")
def calcium_file(tmp_path_factory):
    (path,) = simulate(
        tmp_path_factory.mktemp("calcium"),
        kind="calcium",
        seed=2,
        n_conditions=4,
        trials_per_condition=5,
        n_units=12,
        eval_fraction=0.25,
    )
    return path


def test_indicator_is_an_exponential_filter():
    spikes = np.zeros((40, 2))
    spikes[3, 0] = 1
    spikes[5, 1] = 2
    trace = indicator_trace(spikes, np.array([10.0, 5.0]), np.array([0.5, 1.0]))
    np.testing.assert_allclose(trace[3:20, 0], 0.5 * np.exp(-np.arange(17) / 10.0))
    np.testing.assert_allclose(trace[5:20, 1], 2.0 * np.exp(-np.arange(15) / 5.0))
    assert np.all(trace[:3, 0] == 0) and np.all(trace[:5, 1] == 0)


def test_session_statistics(session):
    s = session
    n_frames, n_rois = s.dff.shape
    assert n_rois == 12 and s.dff.dtype == np.float32
    assert s.condition_id.size == 20 and np.bincount(s.condition_id).tolist() == [5] * 4
    assert np.all((0.4 <= s.decay) & (s.decay <= 1.0))
    assert np.all(s.dff_clean >= 0)
    # noise: sd of one spike's transient per ROI
    resid = (s.dff - s.dff_clean).std(axis=0)
    np.testing.assert_allclose(resid, s.noise_sd, rtol=0.1)
    np.testing.assert_allclose(s.noise_sd, s.amplitude)
    # every trial is 45 frames; trials start half a frame before a frame, in order, no overlap
    frames = s.trial_frames
    assert frames.shape == (20, 45) and frames.max() < n_frames
    np.testing.assert_allclose(frames[:, 0] / s.frame_rate - s.start_time, 0.5 / s.frame_rate)
    assert np.all(frames[1:, 0] > frames[:-1, -1])
    # trials of one condition share the latent trajectory, not the spikes
    same = np.flatnonzero(s.condition_id == s.condition_id[0])
    np.testing.assert_array_equal(s.latents[frames[same[0]]], s.latents[frames[same[1]]])
    assert not np.array_equal(s.dff_clean[frames[same[0]]], s.dff_clean[frames[same[1]]])


def test_noise_scale_and_seed():
    quiet = generate_calcium_session(**SMALL, noise_scale=0.0)
    np.testing.assert_array_equal(quiet.dff, quiet.dff_clean)
    again = generate_calcium_session(**SMALL, noise_scale=0.0)
    np.testing.assert_array_equal(quiet.dff, again.dff)


def test_file_is_a_complete_ophys_session(calcium_file, session):
    import pynwb

    with pynwb.NWBHDF5IO(str(calcium_file), "r") as io:
        f = io.read()
        series = f.processing["ophys"]["DfOverF"]["dff"]
        assert isinstance(series, pynwb.ophys.RoiResponseSeries)
        assert series.rate == 30.0 and series.starting_time == 0.0 and series.unit == "dF/F"
        dff = series.data[:]
        planes = f.processing["ophys"]["ImageSegmentation"]["PlaneSegmentation"]
        assert len(planes) == 12 and planes["image_mask"].data[:].shape == (12, 64, 64)
        assert series.rois.table is planes and list(series.rois.data[:]) == list(range(12))
        plane = planes.imaging_plane
        assert plane.imaging_rate == 30.0 and plane.device.name == "Microscope"
        assert plane.optical_channel[0].emission_lambda == 510.0
        truth = f.processing["ground_truth"]
        clean, rates = truth["dff"].data[:], truth["rates"].data[:]
        trials = f.trials.to_dataframe()
    assert dff.shape == session.dff.shape and dff.dtype == np.float32
    np.testing.assert_array_equal(clean, session.dff_clean)  # same seed, same session
    np.testing.assert_array_equal(rates, session.rates_hz)
    assert len(trials) == 20 and set(trials["split"]) == {"train", "val"}
    np.testing.assert_allclose(trials["stop_time"] - trials["start_time"], 1.5)
    np.testing.assert_allclose(trials["move_onset_time"] - trials["start_time"], 0.25)


def test_file_passes_nwbinspector(calcium_file):
    from nwbinspector import Importance, inspect_nwbfile

    bad = [
        f"{m.check_function_name}: {m.message}"
        for m in inspect_nwbfile(nwbfile_path=str(calcium_file))
        if m.importance.value >= Importance.BEST_PRACTICE_VIOLATION.value
    ]
    assert bad == []


def test_cli_simulate_calcium(tmp_path):
    out = tmp_path / "sim"
    args = ["simulate", str(out), "--kind", "calcium", "--conditions", "2"]
    args += ["--trials-per-condition", "2", "--units", "5,7", "--sessions", "2", "--noise", "0.5"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    import h5py

    shapes = []
    for i in range(2):
        with h5py.File(out / f"sim_session-{i}.nwb", "r") as f:
            obs = f["processing/ophys/DfOverF/dff/data"][:]
            clean = f["processing/ground_truth/dff/data"][:]
            shapes.append(obs.shape[1])
            assert len(f["intervals/trials/id"]) == 4
            assert 0.2 < (obs - clean).std() < 0.8  # half a one-spike transient (0.5-1.5)
    assert shapes == [5, 7]
