"""`nwb-lfads inspect` and nwb_lfads.io.inspect.summarize on real, simulated and mock sessions."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from nwb_lfads.cli.main import main

from nwb_lfads.errors import InputFileError
from nwb_lfads.io.inspect import format_summary, summarize
from nwb_lfads.synthetic import generate_sessions, simulate

SIM = dict(
    kind="chaotic",
    sessions=1,
    seed=2,
    n_conditions=3,
    trials_per_condition=2,
    n_units=12,
    heldout_fraction=0.25,
    eval_fraction=0.5,
)


@pytest.fixture(scope="session")
def sim_file(tmp_path_factory):
    return simulate(tmp_path_factory.mktemp("inspect") / "sim", **SIM)[0]


def test_mc_maze_small(mc_maze_small):
    s = summarize(mc_maze_small)
    assert s["units"]["count"] == 107 and s["units"]["total_spikes"] == 32897
    assert s["units"]["heldout_candidates"] == ["heldout"]
    assert set(s["units"]["columns"]) == {"heldout", "spike_times", "obs_intervals", "electrodes"}
    assert s["trials"]["count"] == 100
    assert "move_onset_time" in s["trials"]["align_candidates"]
    cols = {c["name"]: c for c in s["trials"]["columns"]}
    assert cols["move_onset_time"]["non_nan"] == 100 and cols["split"]["dtype"] == "text"
    assert not cols["split"]["align_candidate"] and cols["split"]["values"] == ["test"]
    assert s["duration"]["from"] == "obs_intervals" and s["duration"]["seconds"] == pytest.approx(
        79.9
    )
    rate = s["units"]["firing_rate_hz"]
    assert 0 < rate["min"] < rate["median"] < rate["max"] < 100
    assert s["subject"]["species"] == "Macaca mulatta"


def test_a8604_continuous(a8604):
    s = summarize(a8604)
    assert s["units"]["count"] == 3 and s["units"]["total_spikes"] == 21354
    assert s["trials"] is None
    assert [i["name"] for i in s["intervals"]] == ["epochs"]
    assert s["duration"]["from"] == "spike times"
    assert s["duration"]["seconds"] == pytest.approx(1087, abs=1)
    assert s["units"]["heldout_candidates"] == []
    # mean rate over the recording: 21354 spikes / ~1087 s / 3 units ~ 6.5 Hz
    rate = s["units"]["firing_rate_hz"]
    assert rate["min"] < 21354 / 1087.3 / 3 < rate["max"]
    assert "trials: none" in format_summary(s)


def test_simulated_file(sim_file):
    s = summarize(sim_file)
    truth = generate_sessions(**SIM)[0]
    assert s["units"]["count"] == 12 and s["units"]["total_spikes"] == int(truth.spikes.sum())
    assert s["units"]["heldout_candidates"] == ["heldout"]
    assert s["trials"]["count"] == 6
    assert s["trials"]["align_candidates"] == ["start_time", "stop_time", "move_onset_time"]
    cols = {c["name"]: c for c in s["trials"]["columns"]}
    assert cols["condition_id"]["numeric"] and not cols["condition_id"]["align_candidate"]
    assert cols["split"]["values"] == ["train", "val"]
    gt = {e["name"]: e for e in s["processing"]["ground_truth"]}
    assert (
        gt["rates"]["shape"] == [600, 12]
        and gt["rates"]["unit"] == "Hz"
        and gt["latents"]["shape"] == [600, 50]
    )
    assert s["subject"]["species"] == "Macaca mulatta"


def test_in_memory_file_with_behaviour_and_silent_unit():
    from pynwb import TimeSeries
    from pynwb.behavior import Position, SpatialSeries
    from pynwb.testing.mock.file import mock_NWBFile

    nwbfile = mock_NWBFile()
    nwbfile.add_unit(spike_times=[0.5, 1.0, 1.5, 9.5])
    nwbfile.add_unit(spike_times=[])
    nwbfile.add_unit(spike_times=[2.0, 3.0])
    nwbfile.add_trial_column("go_cue_time", "go cue (s)")
    nwbfile.add_trial_column("reach_angle", "target angle (degrees)")
    nwbfile.add_trial(start_time=1.0, stop_time=2.0, go_cue_time=1.2, reach_angle=90.0)
    nwbfile.add_trial(start_time=3.0, stop_time=4.0, go_cue_time=np.nan, reach_angle=180.0)
    nwbfile.add_acquisition(
        TimeSeries(name="hand_vel", data=np.zeros((100, 2)), unit="m/s", rate=100.0)
    )
    nwbfile.add_acquisition(
        TimeSeries(name="video", data=np.zeros((10, 8, 8)), unit="a.u.", rate=10.0)
    )
    module = nwbfile.create_processing_module("behavior", "behaviour")
    module.add(
        Position(
            spatial_series=SpatialSeries(
                name="xy", data=np.zeros((50, 2)), reference_frame="origin", rate=50.0
            )
        )
    )
    s = summarize(nwbfile)
    assert s["units"]["total_spikes"] == 6 and s["units"]["silent_units"] == 1
    assert s["duration"] == {"start": 0.5, "stop": 9.5, "from": "spike times", "seconds": 9.0}
    assert s["units"]["firing_rate_hz"]["max"] == pytest.approx(4 / 9.0)
    cols = {c["name"]: c for c in s["trials"]["columns"]}
    assert cols["go_cue_time"]["non_nan"] == 1 and cols["go_cue_time"]["align_candidate"]
    assert not cols["reach_angle"]["align_candidate"]  # degrees, outside the trials' span
    acq = {e["name"]: e for e in s["acquisition"]}
    assert acq["hand_vel"]["behaviour_candidate"] and acq["hand_vel"]["shape"] == [100, 2]
    assert not acq["video"]["behaviour_candidate"]
    assert s["processing"]["behavior"][0]["name"] == "Position/xy"
    text = format_summary(s)
    assert "hand_vel: TimeSeries shape (100, 2) [m/s] (usable as behaviour)" in text
    assert "go_cue_time: float64, 1 non-NaN, usable as --align-to" in text


def test_cli_human_and_json(sim_file):
    runner = CliRunner()
    human = runner.invoke(main, ["inspect", str(sim_file)])
    assert human.exit_code == 0, human.output
    assert "move_onset_time: float64, 6 non-NaN, usable as --align-to" in human.output
    assert "usable as --heldout-units: heldout" in human.output
    assert "processing/ground_truth:" in human.output
    as_json = runner.invoke(main, ["inspect", str(sim_file), "--json"])
    assert as_json.exit_code == 0
    assert json.loads(as_json.output) == json.loads(json.dumps(summarize(sim_file)))


@pytest.fixture
def bad_files(tmp_path):
    import h5py

    text = tmp_path / "notes.nwb"
    text.write_text("not hdf5")
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as f:
        f["x"] = np.arange(3)
    return {
        "missing": (tmp_path / "absent.nwb", "file not found"),
        "text": (text, "not an HDF5 file"),
        "hdf5": (plain, "HDF5 file without NWB structure"),
    }


@pytest.mark.parametrize("case", ["missing", "text", "hdf5"])
def test_bad_input_exits_2_with_one_line(bad_files, case):
    path, message = bad_files[case]
    with pytest.raises(InputFileError, match=message):
        summarize(path)
    result = CliRunner().invoke(main, ["inspect", str(path)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert (
        len(lines) == 1
        and lines[0].startswith("Error: ")
        and message in lines[0]
        and str(path) in lines[0]
    )
    assert "Traceback" not in result.output
