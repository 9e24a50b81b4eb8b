"""read_session, read_sessions and merge_windows on small pynwb files and the real files."""

from __future__ import annotations

import shutil
import warnings
from datetime import UTC, datetime

import h5py
import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from nwb_lfads.errors import (
    AlignmentError,
    InputFileError,
    NwbContentError,
    SelectionError,
    SessionMismatchError,
)
from nwb_lfads.io.binning import bin_edges
from nwb_lfads.io.read import merge_windows, read_session, read_sessions

UNIT_IDS = [7, 3, 100, 42]  # not 0..N-1; unit 100 is silent
STARTS = np.array([0.5, 1.7, 4.0, 4.9, 9.3, 15.0, 22.2, 28.9])  # irregular gaps
DURATIONS = np.array([1.0, 0.9, 0.8, 1.2, 1.0, 1.1, 0.95, 1.0])


def make_nwbfile(seed=0, identifier="mock-session", with_trials=True, with_units=True):
    """A small in-memory session: 4 units, 8 irregular trials (one NaN `go`), 2 behaviour series."""
    from pynwb import NWBFile, TimeSeries

    rng = np.random.default_rng(seed)
    nwbfile = NWBFile(
        session_description="test",
        identifier=identifier,
        session_start_time=datetime(2024, 1, 1, tzinfo=UTC),
        session_id=identifier,
    )
    if with_units:
        nwbfile.add_unit_column("heldout", "held out in evaluation")
        edges = (
            -0.2 + (STARTS[0] + 0.3) + np.arange(15) * 0.05
        )  # trial 0's edges, window (-0.2, 0.5)
        for uid, rate in zip(UNIT_IDS, (20.0, 35.0, 0.0, 8.0)):
            train = np.sort(rng.uniform(0.0, 30.0, rng.poisson(rate * 30.0)))
            if uid == 7:
                train = np.sort(np.concatenate([train, edges]))
            nwbfile.add_unit(
                spike_times=train, id=uid, heldout=uid == 3, obs_intervals=[[0.0, 29.5]]
            )
    if with_trials:
        nwbfile.add_trial_column("go", "go cue time (s)")
        nwbfile.add_trial_column("cond", "condition id")
        nwbfile.add_trial_column("split", "train or test")
        for i, (start, dur) in enumerate(zip(STARTS, DURATIONS)):
            go = np.nan if i == 2 else start + 0.3
            nwbfile.add_trial(
                start_time=start,
                stop_time=start + dur,
                go=go,
                cond=i % 3,
                split="test" if i % 4 == 3 else "train",
            )
    ts = np.arange(0.0, 30.0, 0.001) + 0.00025  # samples clear of the bin edges
    nwbfile.add_acquisition(
        TimeSeries(name="hand_vel", data=np.stack([ts, -ts], 1), unit="m/s", timestamps=ts)
    )
    module = nwbfile.create_processing_module("behavior", "behaviour")
    module.add(
        TimeSeries(name="cursor_pos", data=2 * ts, unit="m", starting_time=0.00025, rate=1000.0)
    )
    return nwbfile


def write(nwbfile, path):
    from pynwb import NWBHDF5IO

    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwbfile)
    return path


@pytest.fixture(scope="module")
def mock_path(tmp_path_factory):
    return write(make_nwbfile(), tmp_path_factory.mktemp("nwb") / "mock.nwb")


def reference(path, starts, n_bins, bin_size, unit_rows=None, grid_origin=None):
    """Independent counts: raw h5py + np.histogram per window and unit (stop edge excluded).

    With ``grid_origin`` (continuous mode) the edges are those of the one global grid,
    ``grid_origin + (j + k) * bin_size`` for the window starting at grid index ``j``."""
    with h5py.File(path, "r") as f:
        times, index = f["units/spike_times"][:], f["units/spike_times_index"][:]
    bounds = np.concatenate([[0], index])
    rows = range(index.size) if unit_rows is None else unit_rows
    edges = bin_edges(starts, n_bins, bin_size)
    if grid_origin is not None:
        j = np.round((np.asarray(starts) - grid_origin) / bin_size).astype(np.int64)
        edges = grid_origin + (j[:, None] + np.arange(n_bins + 1)[None, :]) * bin_size
    out = np.zeros((len(starts), n_bins, len(rows)), dtype=np.int64)
    for w in range(len(starts)):
        for j, u in enumerate(rows):
            train = times[bounds[u] : bounds[u + 1]]
            out[w, :, j] = np.histogram(train[train < edges[w, -1]], bins=edges[w])[0]
    return out


def read_quiet(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return read_session(*args, **kwargs)


@pytest.fixture(scope="module")
def aligned(mock_path):
    """The mock session aligned to `go`, window (-0.2, 0.5), 50 ms bins, and its warnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = read_session(
            mock_path, bin_size=0.05, align_to="go", window=(-0.2, 0.5), heldout="heldout"
        )
    return ds, [str(w.message) for w in caught]


def test_trial_aligned_counts_match_reference(mock_path, aligned):
    ds, _ = aligned
    assert ds["spikes"].dims == ("trial", "time", "unit") and ds["spikes"].dtype == np.int32
    np.testing.assert_allclose(ds["time"], -0.2 + 0.025 + 0.05 * np.arange(14))
    assert ds["cond"].values.tolist() == [0, 1, 0, 1, 2, 0] and "split" not in ds.coords
    assert ds.attrs["window"] == (-0.2, 0.5) and ds.attrs["bin_size"] == 0.05
    assert ds.attrs["session_id"] == "mock-session" and ds.attrs["align_to"] == "go"
    assert ds["heldout"].values.tolist() == [False, True, False, False]
    starts = ds["align_time"].values - 0.2
    np.testing.assert_array_equal(ds["spikes"].values, reference(mock_path, starts, 14, 0.05))


def test_unit_ids_that_are_not_a_range_are_kept(aligned):
    assert aligned[0]["unit"].values.tolist() == UNIT_IDS


def test_silent_unit_is_kept_with_zero_counts(aligned):
    ds = aligned[0]
    assert (ds["spikes"].sel(unit=100) == 0).all() and int(ds["spikes"].sel(unit=7).sum()) > 0


def test_nan_event_and_window_outside_span_are_dropped_and_reported(aligned):
    ds, messages = aligned
    assert ds.attrs["dropped_trials"] == [2, 7]  # NaN go; window past obs_intervals' end (29.5 s)
    assert any(
        "dropped 2 of 8 trials (1 with NaN go; 1 with window reaching outside the recorded span "
        "[0, 29.5] s)" in m
        for m in messages
    )


def test_irregular_trial_gaps_keep_their_ids_and_event_times(aligned):
    ds = aligned[0]
    assert ds["trial"].values.tolist() == [0, 1, 3, 4, 5, 6]
    np.testing.assert_allclose(ds["align_time"], STARTS[[0, 1, 3, 4, 5, 6]] + 0.3)
    np.testing.assert_allclose(ds["start_time"], STARTS[[0, 1, 3, 4, 5, 6]])


def test_merge_windows_in_trial_mode_concatenates_trials_in_time_order(aligned):
    ds = aligned[0]
    merged = merge_windows(ds["spikes"], ds)
    assert merged.dims == ("time", "unit") and merged.sizes["time"] == ds.sizes["trial"] * 14
    assert (np.diff(merged["time"].values) > 0).all()
    np.testing.assert_array_equal(
        merged.values, ds["spikes"].values.reshape(-1, 4)
    )  # no overlaps here
    with pytest.raises(SelectionError, match=r"expected \(6, 14, ...\)"):
        merge_windows(np.zeros((5, 14)), ds)


@settings(max_examples=15, deadline=None)
@given(
    events=st.lists(st.floats(0.0, 9.0), min_size=1, max_size=5),
    w0=st.sampled_from([-0.3, -0.1, 0.0, 0.2]),
    n_bins=st.integers(1, 30),
)
def test_read_session_total_equals_spikes_inside_windows(events, w0, n_bins):
    from pynwb.testing.mock.file import mock_NWBFile

    rng = np.random.default_rng(len(events) * 31 + n_bins)
    nwbfile = mock_NWBFile()
    trains = [np.sort(rng.uniform(0, 10, n)) for n in (40, 25)]
    for train in trains:
        nwbfile.add_unit(spike_times=train, obs_intervals=[[-1.0, 11.0]])
    for e in events:
        nwbfile.add_trial(start_time=e, stop_time=e + 1.0)
    ds = read_session(
        nwbfile, bin_size=0.02, align_to="start_time", window=(w0, w0 + n_bins * 0.02)
    )
    starts = ds["align_time"].values + w0
    stops = starts + n_bins * 0.02
    inside = sum(((t[None] >= starts[:, None]) & (t[None] < stops[:, None])).sum() for t in trains)
    assert int(ds["spikes"].sum()) == inside


def test_spikes_exactly_on_edges_go_to_the_later_bin(mock_path):
    ds = read_quiet(mock_path, bin_size=0.05, align_to="go", window=(-0.2, 0.5))
    with h5py.File(mock_path, "r") as f:
        train = f["units/spike_times"][: f["units/spike_times_index"][0]]
    edges = bin_edges(np.array([STARTS[0] + 0.3 - 0.2]), 14, 0.05)[0]
    expected = np.histogram(train[train < edges[-1]], bins=edges)[0]
    assert np.isin(edges, train).all()  # the file holds a spike on every edge
    np.testing.assert_array_equal(ds["spikes"].sel(trial=0, unit=7).values, expected)


def test_selections_by_column_ids_and_boolean_units(mock_path):
    ds = read_quiet(
        mock_path,
        bin_size=0.05,
        align_to="go",
        window=(-0.2, 0.5),
        trials={"split": "test"},
        units="heldout",
        include_columns=["split"],
    )
    assert ds["trial"].values.tolist() == [3] and ds["unit"].values.tolist() == [3]
    assert ds["split"].values.tolist() == ["test"]
    ds = read_quiet(
        mock_path,
        bin_size=0.05,
        align_to="go",
        window=(-0.2, 0.5),
        units="~heldout",
        trials={"cond": [0, 2]},
    )
    assert ds["unit"].values.tolist() == [7, 100, 42] and ds["trial"].values.tolist() == [
        0,
        3,
        5,
        6,
    ]
    ds = read_quiet(
        mock_path, bin_size=0.05, align_to="go", window=(-0.2, 0.5), trials=[5, 0], units=[42, 7]
    )
    assert ds["trial"].values.tolist() == [5, 0] and ds["unit"].values.tolist() == [42, 7]
    np.testing.assert_array_equal(
        ds["spikes"].values, reference(mock_path, ds["align_time"].values - 0.2, 14, 0.05, [3, 0])
    )


def test_default_window_runs_to_the_shortest_trial_end(mock_path):
    ds = read_quiet(mock_path, bin_size=0.05, align_to="go")
    shortest = (DURATIONS - 0.3)[[0, 1, 3, 4, 5, 6, 7]].min()  # trial 2 has no go time
    assert ds.attrs["window"] == pytest.approx((0.0, np.floor(shortest / 0.05 + 1e-6) * 0.05))
    assert ds.sizes["time"] == 12  # 0.6 s: trial 1 is 0.9 s long, go at 0.3 s


def test_clip_to_trial_drops_windows_past_their_trial(mock_path):
    with pytest.warns(UserWarning, match="clip_to_trial"):
        ds = read_session(
            mock_path, bin_size=0.05, align_to="go", window=(-0.2, 0.65), clip_to_trial=True
        )
    # window = [start + 0.1, start + 0.95): trial 1 (0.9 s) cannot hold it; trial 6 (0.95 s) just does
    assert ds["trial"].values.tolist() == [0, 3, 4, 5, 6]
    assert ds.attrs["dropped_trials"] == [1, 2, 7]


def test_behaviour_series_with_timestamps_and_with_rate(mock_path):
    ds = read_quiet(
        mock_path,
        bin_size=0.05,
        align_to="start_time",
        window=(0.0, 0.5),
        behavior=["hand_vel", "cursor_pos"],
    )
    assert (
        ds["hand_vel"].dims == ("trial", "time", "hand_vel_channel")
        and ds.sizes["hand_vel_channel"] == 2
    )
    session_time = ds["align_time"] + ds["time"] - 0.00025  # mean of a bin's 50 sample times
    np.testing.assert_allclose(ds["hand_vel"].isel(hand_vel_channel=0), session_time, atol=1e-9)
    np.testing.assert_allclose(ds["hand_vel"].isel(hand_vel_channel=1), -session_time, atol=1e-9)
    np.testing.assert_allclose(
        ds["cursor_pos"].squeeze("cursor_pos_channel"), 2 * session_time, atol=1e-9
    )


def test_in_memory_nwbfile_and_unsorted_spike_times():
    nwbfile = make_nwbfile(with_units=False)
    nwbfile.add_unit(spike_times=[0.9, 0.55, 0.56, 0.7], id=1)
    with pytest.warns(UserWarning, match=r"not sorted; sorting them"):
        ds = read_session(
            nwbfile, bin_size=0.1, align_to="start_time", window=(0.0, 0.5), trials=[0]
        )
    assert ds["spikes"].values[0, :, 0].tolist() == [2, 0, 1, 0, 1]


def test_continuous_mode_windows_and_merge_round_trip(mock_path):
    ds = read_session(mock_path, bin_size=0.05, window_length=2.0, overlap=0.5)
    assert ds.attrs["align_to"] is None and ds.attrs["window"] == (0.0, 2.0)
    assert ds.attrs["window_length"] == 2.0 and ds.attrs["overlap"] == 0.5
    assert ds["trial"].values.tolist() == list(range(ds.sizes["trial"]))
    np.testing.assert_array_equal(
        ds["spikes"].values,
        reference(
            mock_path, ds["align_time"].values, 40, 0.05, grid_origin=ds["align_time"].values[0]
        ),
    )
    # a known continuous signal, cut into the windows, merges back onto one regular grid
    signal = lambda t: np.sin(t)[..., None] * np.arange(1, 4)  # noqa: E731
    windows = xr.DataArray(
        signal(ds["align_time"].values[:, None] + ds["time"].values[None, :]),
        dims=("trial", "time", "channel"),
    )
    merged = merge_windows(windows, ds)
    assert merged.dims == ("time", "channel")
    step = np.diff(merged["time"].values)
    np.testing.assert_allclose(step, 0.05, atol=1e-9)
    np.testing.assert_allclose(
        merged["time"].values[[0, -1]],
        [ds["align_time"].values[0] + 0.025, ds["align_time"].values[-1] + 1.975],
    )
    np.testing.assert_allclose(merged.values, signal(merged["time"].values), atol=1e-12)
    counts = merge_windows(ds["spikes"].values, ds)  # ndarray input, unit axis recognised
    assert counts.dims == ("time", "unit") and counts["unit"].values.tolist() == UNIT_IDS


def test_mc_maze_small_matches_nlb_shape_and_reference(mc_maze_small):
    ds = read_session(
        mc_maze_small,
        bin_size=0.005,
        align_to="move_onset_time",
        window=(-0.25, 0.45),
        heldout="heldout",
    )
    assert ds["spikes"].shape == (100, 140, 107)
    assert ds.attrs["dropped_trials"] == [] and ds.attrs["session_id"] == "small"
    starts = ds["align_time"].values - 0.25
    np.testing.assert_array_equal(ds["spikes"].values, reference(mc_maze_small, starts, 140, 0.005))
    assert int(ds["spikes"].sum()) == 32897  # the windows are exactly the trials: every spike


def test_a8604_continuous_matches_reference(a8604):
    ds = read_session(a8604, bin_size=0.01)
    assert ds.sizes["unit"] == 3 and ds.sizes["time"] == 100
    starts = ds["align_time"].values
    np.testing.assert_array_equal(
        ds["spikes"].values, reference(a8604, starts, 100, 0.01, grid_origin=starts[0])
    )
    # overlapping windows agree on every shared bin (one global grid of edges)
    merged = merge_windows(ds["spikes"].astype(float), ds)
    assert np.allclose(merged.values, np.round(merged.values))
    merged = merge_windows(ds["spikes"], ds)
    assert merged.sizes["time"] == int(
        round((ds["align_time"].values[-1] + 1.0 - ds["align_time"].values[0]) / 0.01)
    )


@pytest.mark.filterwarnings("ignore:.*dropped")
def test_read_sessions_checks_duplicates_and_windows(mock_path, tmp_path):
    other = write(make_nwbfile(seed=1, identifier="other"), tmp_path / "other.nwb")
    both = read_sessions([mock_path, other], bin_size=0.05, align_to="go", window=(-0.2, 0.5))
    assert [d.attrs["session_id"] for d in both] == ["mock-session", "other"]
    with pytest.raises(SessionMismatchError, match="same file as"):
        read_sessions([mock_path, str(mock_path)], bin_size=0.05, align_to="go", window=(-0.2, 0.5))
    shutil.copy(mock_path, tmp_path / "copy.nwb")
    with pytest.raises(SessionMismatchError, match="same NWB identifier 'mock-session'"):
        read_sessions(
            [mock_path, tmp_path / "copy.nwb"], bin_size=0.05, align_to="go", window=(-0.2, 0.5)
        )
    short = make_nwbfile(identifier="short")
    short.trials["stop_time"].data[:] = (STARTS + 0.6).tolist()
    with pytest.raises(SessionMismatchError, match="window=.*differs"):
        read_sessions([mock_path, short], bin_size=0.05, align_to="go")


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (
            dict(align_to="nope"),
            AlignmentError,
            r"'nope' is not a column.*\['start_time', 'stop_time', 'go', 'cond'\]",
        ),
        (dict(align_to="split"), AlignmentError, "'split' is not numeric"),
        (dict(align_to="go", window=(0.5, 0.5)), AlignmentError, "starts at or after its stop"),
        (
            dict(align_to="go", window=(0.0, 0.52)),
            AlignmentError,
            "not a whole number of 0.05 s bins",
        ),
        (dict(align_to="go", bin_size=0.0), AlignmentError, "bin_size=0.0 must be a positive"),
        (dict(align_to="go", bin_size=-1), AlignmentError, "must be a positive"),
        (dict(align_to="go", trials={"split": "valid"}), SelectionError, "no trial matches"),
        (
            dict(align_to="go", trials={"missing": 1}),
            SelectionError,
            "'missing', not a trials column",
        ),
        (dict(align_to="go", trials=[99]), SelectionError, r"trial ids \[99\] are not in"),
        (
            dict(align_to="go", window=(0, 0.5), trials=[2]),
            SelectionError,
            "no trials left after dropping 1 with NaN go",
        ),
        (dict(align_to="go", units=[]), SelectionError, "unit selection is empty"),
        (dict(align_to="go", units=[5]), SelectionError, r"unit ids \[5\] are not in"),
        (dict(align_to="go", units="cond"), SelectionError, "'cond' is not a column of the units"),
        (dict(trials=[1]), AlignmentError, "need align_to"),
        (dict(overlap=1.0), AlignmentError, "shorter than window_length"),
        (dict(window_length=100.0), AlignmentError, "shorter than one window"),
        (
            dict(align_to="go", behavior=["nope"]),
            SelectionError,
            r"no TimeSeries named 'nope'.*cursor_pos",
        ),
    ],
)
def test_bad_input_raises_with_file_and_fix(mock_path, kwargs, error, match):
    kwargs = {"bin_size": 0.05, **kwargs}
    with pytest.raises(error, match=match) as info:
        read_quiet(mock_path, **kwargs)
    assert str(mock_path) in str(info.value)


def test_bad_files_raise_content_errors(tmp_path):
    with pytest.raises(NwbContentError, match="no units table"):
        read_session(make_nwbfile(with_units=False), align_to="go")
    nwbfile = make_nwbfile(with_units=False)
    nwbfile.add_unit_column("quality", "sorting quality")
    nwbfile.add_unit(quality=1.0)
    with pytest.raises(NwbContentError, match="no 'spike_times' column"):
        read_session(nwbfile, align_to="go")
    with pytest.raises(NwbContentError, match="needs a trials table.*align_to=None"):
        read_session(make_nwbfile(with_trials=False), align_to="go")
    text = tmp_path / "notes.nwb"
    text.write_text("not an nwb file")
    with pytest.raises(InputFileError, match="not an HDF5 file"):
        read_session(text)
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(InputFileError, match="without NWB structure"):
        read_session(plain)
