"""write_results: processing/lfads in an exported copy, on the real MC_Maze_Small and A8604 files.

Results Datasets are fabricated here following docs/DESIGN.md ("Results"), so these tests do
not depend on the model.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from helpers import make_results

from nwb_lfads.errors import (
    InputFileError,
    NwbContentError,
    NwbLfadsError,
    NwbLfadsRuntimeError,
    ResultsFormatError,
    SessionMismatchError,
)
from nwb_lfads.io import write as W
from nwb_lfads.io.write import (
    new_inspector_findings,
    trial_timeline,
    write_results,
)

BIN = 0.01
WINDOW = (-0.25, 0.45)
PROV = {
    "config": {"model": {"gen_dim": 64, "co_dim": 2}, "train": {"lr": 0.01}},
    "metrics": {"valid_loss": 0.123, "epoch": 3},
}


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_file(path):
    import pynwb

    io = pynwb.NWBHDF5IO(str(path), mode="r", load_namespaces=True)
    return io, io.read()


def centres(window=WINDOW, bin_size=BIN) -> np.ndarray:
    n = int(round((window[1] - window[0]) / bin_size))
    return window[0] + bin_size * (np.arange(n) + 0.5)


def fabricate(
    unit_ids,
    align_time,
    time,
    *,
    align_to="move_onset_time",
    trial_ids=None,
    n_factors=8,
    n_inputs=2,
    rates=None,
    seed=0,
    ic_dim=0,
    gen_dim=0,
    con_dim=0,
) -> xr.Dataset:
    """A results Dataset as nwb_lfads.infer makes it (docs/DESIGN.md, "Results").

    ``ic_dim`` > 0 adds ``ic_mean``, ``ic_sd`` (trial, ic_dim) and ``g0`` (trial, gen_dim);
    ``con_dim`` > 0 adds ``generator_states`` (trial, time, gen_dim) and ``controller_states``
    (trial, time, con_dim), as ``infer(..., states=True)`` does.
    """
    rng = np.random.default_rng(seed)
    n_trial, n_time, n_unit = len(align_time), len(time), len(unit_ids)
    if rates is None:
        rates = rng.gamma(2.0, 5.0, (n_trial, n_time, n_unit))
    data = {
        "rates": (("trial", "time", "unit"), np.asarray(rates, dtype=np.float32)),
        "factors": (
            ("trial", "time", "factor"),
            rng.normal(size=(n_trial, n_time, n_factors)).astype(np.float32),
        ),
    }
    if n_inputs:
        data["inferred_inputs"] = (
            ("trial", "time", "input"),
            rng.normal(size=(n_trial, n_time, n_inputs)).astype(np.float32),
        )
    if ic_dim:
        f32 = np.float32
        data["ic_mean"] = (("trial", "ic_dim"), rng.normal(size=(n_trial, ic_dim)).astype(f32))
        data["ic_sd"] = (("trial", "ic_dim"), rng.uniform(0.1, 1, (n_trial, ic_dim)).astype(f32))
        data["g0"] = (("trial", "gen_dim"), rng.normal(size=(n_trial, gen_dim)).astype(f32))
    if con_dim:
        for name, dim, size in (
            ("generator_states", "gen_dim", gen_dim),
            ("controller_states", "con_dim", con_dim),
        ):
            values = rng.normal(size=(n_trial, n_time, size)).astype(np.float32)
            data[name] = (("trial", "time", dim), values)
    trial_ids = np.arange(n_trial) if trial_ids is None else trial_ids
    return xr.Dataset(
        data,
        coords={
            "trial": trial_ids,
            "time": time,
            "unit": np.asarray(unit_ids),
            "align_time": ("trial", np.asarray(align_time, dtype=float)),
        },
        attrs={
            "bin_size": BIN,
            "align_to": align_to,
            "window": WINDOW,
            "session_id": "test",
            "dropped_trials": [],
        },
    )


@pytest.fixture(scope="module")
def mc_meta(mc_maze_small):
    io, nwb = read_file(mc_maze_small)
    meta = {
        "unit_ids": nwb.units.id[:],
        "trial_ids": nwb.trials.id[:],
        "move_onset": nwb.trials["move_onset_time"][:],
        "spikes": [np.asarray(nwb.units.get_unit_spike_times(i)) for i in range(len(nwb.units))],
        "trials": {c: nwb.trials[c][:] for c in nwb.trials.colnames},
    }
    io.close()
    return meta


@pytest.fixture(scope="module")
def mc_written(mc_maze_small, mc_meta, tmp_path_factory):
    """MC_Maze_Small copy + results with the units in a shuffled order, written once."""
    root = tmp_path_factory.mktemp("mc")
    src = root / "in.nwb"
    shutil.copyfile(mc_maze_small, src)
    before = sha256(src)
    perm = np.random.default_rng(1).permutation(len(mc_meta["unit_ids"]))
    res = fabricate(
        mc_meta["unit_ids"][perm],
        mc_meta["move_onset"],
        centres(),
        trial_ids=mc_meta["trial_ids"],
        ic_dim=4,
        gen_dim=6,
    )
    res.attrs.update(n_samples=7, push_mean=False)
    out = write_results(src, res, root / "run" / "in.lfads.nwb", provenance=PROV)
    return {
        "src": src,
        "out": out,
        "results": res,
        "perm": perm,
        "sha_before": before,
        "root": root,
    }


def test_mc_rates_shape_unit_and_timestamps(mc_written, mc_meta):
    io, nwb = read_file(mc_written["out"])
    try:
        rates = nwb.processing["lfads"]["rates"]
        assert rates.data.shape == (7000, 107)
        assert rates.data.dtype == np.float32
        assert rates.unit == "Hz"
        stamps = rates.timestamps[:]
        assert np.all(np.diff(stamps) > 0)
        expected = (mc_meta["move_onset"][:, None] + centres()[None, :]).ravel()
        np.testing.assert_allclose(stamps, expected, rtol=0, atol=1e-9)
        assert "row j of the units table" in rates.description and "10 ms" in rates.description
        # column j holds the results of the unit in table row j, whatever order the results had
        res = mc_written["results"]["rates"].values
        col_of_result = mc_written["perm"]
        np.testing.assert_array_equal(rates.data[:70, col_of_result[5]], res[0, :, 5])
        np.testing.assert_array_equal(rates.data[:, :][70:140][:, col_of_result], res[1])
    finally:
        io.close()


def test_mc_factors_inputs_and_provenance(mc_written):
    io, nwb = read_file(mc_written["out"])
    try:
        mod = nwb.processing["lfads"]
        res = mc_written["results"]
        assert mod["factors"].data.shape == (7000, 8) and mod["factors"].unit == "a.u."
        assert mod["inferred_inputs"].data.shape == (7000, 2)
        np.testing.assert_array_equal(mod["factors"].data[:70], res["factors"].values[0])
        np.testing.assert_array_equal(
            mod["inferred_inputs"].timestamps[:], mod["rates"].timestamps[:]
        )
        table = mod["provenance"].to_dataframe().set_index("key")["value"]
        import nwb_lfads

        assert table["nwb_lfads_version"] == nwb_lfads.__version__
        assert table["config.model.gen_dim"] == "64"
        assert table["metrics.valid_loss"] == "0.123"
        assert table["align_to"] == "move_onset_time"
        assert nwb_lfads.__version__ in mod.description and "valid_loss=0.123" in mod.description
    finally:
        io.close()


def test_mc_initial_conditions_table(mc_written, mc_meta):
    """One row per trial, trial ids of the trials table, 2-D columns, gzip without shuffle."""
    import h5py

    from nwb_lfads.io.filters import viewer_unsafe_datasets

    io, nwb = read_file(mc_written["out"])
    try:
        mod = nwb.processing["lfads"]
        res = mc_written["results"]
        table = mod["initial_conditions"]
        assert table.colnames == ("trial_id", "ic_mean", "ic_sd", "g0")
        np.testing.assert_array_equal(table["trial_id"].data[:], nwb.trials.id[:])
        np.testing.assert_array_equal(table["trial_id"].data[:], mc_meta["trial_ids"])
        assert table["ic_mean"].data.shape == (100, 4) and table["g0"].data.shape == (100, 6)
        np.testing.assert_array_equal(table["ic_mean"].data[:], res["ic_mean"].values)
        np.testing.assert_array_equal(table["ic_sd"].data[:], res["ic_sd"].values)
        np.testing.assert_array_equal(table["g0"].data[:], res["g0"].values)
        assert table["ic_mean"].data.dtype == np.float32
        assert "start_time" not in table.colnames
        assert "generator_states" not in mod.data_interfaces  # only with --write-states
        assert "controller_states" not in mod.data_interfaces
        assert "initial_conditions" in mod.description
        prov = mod["provenance"].to_dataframe().set_index("key")["value"]
        assert prov["inference.n_samples"] == "7" and prov["inference.push_mean"] == "false"
    finally:
        io.close()
    assert viewer_unsafe_datasets(mc_written["out"]) == {}
    with h5py.File(mc_written["out"], "r") as f:
        for name in ("id", "trial_id", "ic_mean", "ic_sd", "g0"):
            dset = f[f"processing/lfads/initial_conditions/{name}"]
            assert dset.compression == "gzip" and not dset.shuffle


def test_mc_rest_of_file_unchanged_and_new_identifier(mc_written, mc_meta, mc_maze_small):
    io, nwb = read_file(mc_written["out"])
    io0, nwb0 = read_file(mc_maze_small)
    try:
        np.testing.assert_array_equal(nwb.units.id[:], mc_meta["unit_ids"])
        for i, spikes in enumerate(mc_meta["spikes"]):
            np.testing.assert_array_equal(nwb.units.get_unit_spike_times(i), spikes)
        assert list(nwb.trials.colnames) == list(mc_meta["trials"])
        for col, values in mc_meta["trials"].items():
            np.testing.assert_array_equal(nwb.trials[col][:], values)
        np.testing.assert_array_equal(nwb.units["heldout"][:], nwb0.units["heldout"][:])
        assert (
            nwb.session_id == nwb0.session_id and nwb.subject.subject_id == nwb0.subject.subject_id
        )
        assert len(nwb.electrodes) == len(nwb0.electrodes)
        assert nwb.identifier != nwb0.identifier and nwb.object_id != nwb0.object_id
        assert len(nwb.identifier) == 36  # a uuid4
    finally:
        io.close()
        io0.close()


def test_mc_input_bytes_unchanged_and_no_temp_left(mc_written):
    assert sha256(mc_written["src"]) == mc_written["sha_before"]
    assert sorted(p.name for p in mc_written["out"].parent.iterdir()) == ["in.lfads.nwb"]


def test_mc_no_new_inspector_findings(mc_written):
    assert new_inspector_findings(mc_written["src"], mc_written["out"]) == []


def test_inspector_helper_reports_new_findings(a8604, tmp_path):
    """The helper must not be blind: a series without unit is a new BEST_PRACTICE_VIOLATION."""
    import pynwb
    from pynwb import TimeSeries

    src = tmp_path / "in.nwb"
    shutil.copyfile(a8604, src)
    with pynwb.NWBHDF5IO(str(src), "r") as io:
        nwb = io.read()
        mod = nwb.create_processing_module("extra", "test")
        mod.add(
            TimeSeries(
                name="x",
                data=np.zeros(10),
                unit="",
                timestamps=np.arange(10) ** 2.0,
                description="d",
            )
        )
        with pynwb.NWBHDF5IO(str(tmp_path / "out.nwb"), "w") as out:
            out.export(src_io=io, nwbfile=nwb)
    found = new_inspector_findings(src, tmp_path / "out.nwb")
    assert [m.check_function_name for m in found] == ["check_missing_unit"]


@pytest.fixture()
def a8604_copy(a8604, tmp_path) -> Path:
    src = tmp_path / "A8604.nwb"
    shutil.copyfile(a8604, src)
    return src


def test_continuous_windows_merge_back_to_signal(a8604_copy, tmp_path):
    """Windows cut from a known signal (units 206 and 6 only, permuted) merge back onto it."""
    n_bins, win, step, t0 = 400, 100, 60, 12.34
    k = np.arange(n_bins)[:, None]
    signal = np.hstack([10 + 5 * np.sin(k / 7.0), 20 + np.cos(k / 3.0)]).astype(
        np.float32
    )  # [bins, 2]
    starts = np.arange(0, n_bins - win + 1, step)
    assert starts[-1] + win == n_bins
    windows = np.stack([signal[s : s + win] for s in starts])
    time = BIN * (np.arange(win) + 0.5)
    res = fabricate(
        [206, 6],
        t0 + starts * BIN,
        time,
        align_to=None,
        rates=windows,
        n_inputs=0,
        ic_dim=3,
        gen_dim=5,
        con_dim=2,
    )
    res.attrs.update(window=(0.0, win * BIN), window_length=win * BIN, overlap=(win - step) * BIN)
    res.attrs.update(n_samples=1, push_mean=True)
    out = write_results(a8604_copy, res, tmp_path / "out" / "A8604.lfads.nwb")
    io, nwb = read_file(out)
    try:
        mod = nwb.processing["lfads"]
        table = mod["initial_conditions"]  # one row per window, with its start time
        assert table.colnames == ("start_time", "stop_time", "ic_mean", "ic_sd", "g0")
        np.testing.assert_allclose(table["start_time"].data[:], t0 + starts * BIN)
        np.testing.assert_allclose(table["stop_time"].data[:], t0 + (starts + win) * BIN)
        assert table["ic_mean"].data.shape == (len(starts), 3)
        assert table["g0"].data.shape == (len(starts), 5)
        np.testing.assert_array_equal(table["g0"].data[:], res["g0"].values)
        for name, width in (("generator_states", 5), ("controller_states", 2)):
            series = mod[name]  # the same time base as the factors, windows merged
            assert series.data.shape == (n_bins, width) and series.unit == "a.u."
            assert series.rate == mod["factors"].rate
            assert series.starting_time == mod["factors"].starting_time
        merged = mod["generator_states"].data[:]
        np.testing.assert_allclose(merged[:step], res["generator_states"].values[0, :step])
        prov = mod["provenance"].to_dataframe().set_index("key")["value"]
        assert prov["inference.n_samples"] == "1" and prov["inference.push_mean"] == "true"
        rates = nwb.processing["lfads"]["rates"]
        assert rates.timestamps is None
        assert rates.rate == pytest.approx(100.0)
        assert rates.starting_time == pytest.approx(t0 + BIN / 2)
        assert rates.data.shape == (n_bins, 3)
        ids = list(nwb.units.id[:])
        np.testing.assert_allclose(rates.data[:, ids.index(6)], signal[:, 1], rtol=1e-6)
        np.testing.assert_allclose(rates.data[:, ids.index(206)], signal[:, 0], rtol=1e-6)
        assert np.all(np.isnan(rates.data[:, ids.index(191)]))
        assert "1 units absent from the results are NaN columns (ids 191)" in rates.description
        assert "inferred_inputs" not in nwb.processing["lfads"].data_interfaces
        assert nwb.processing["lfads"]["factors"].data.shape == (n_bins, 8)
    finally:
        io.close()
    assert new_inspector_findings(a8604_copy, out) == []


def test_continuous_overlaps_averaged_and_gaps_written_as_timestamps(a8604_copy, tmp_path):
    time = BIN * (np.arange(4) + 0.5)
    rates = np.stack([np.ones((4, 3)), 3 * np.ones((4, 3)), 5 * np.ones((4, 3))])
    # windows at 1.00 and 1.02 overlap by 2 bins; the third leaves a 2-bin gap
    res = fabricate([6, 191, 206], [1.0, 1.02, 1.08], time, align_to=None, rates=rates, n_inputs=0)
    out = write_results(a8604_copy, res, tmp_path / "o.nwb")
    io, nwb = read_file(out)
    try:
        series = nwb.processing["lfads"]["rates"]
        np.testing.assert_allclose(
            series.timestamps[:], 1.005 + BIN * np.array([0, 1, 2, 3, 4, 5, 8, 9, 10, 11])
        )
        np.testing.assert_allclose(series.data[:, 1], [1, 1, 2, 2, 3, 3, 5, 5, 5, 5])
        assert "with gaps" in series.description
    finally:
        io.close()


def test_trial_timeline_overlap_rule():
    time = centres()  # 70 bins, -0.245 .. 0.445
    align = np.array([2.0, 1.0, 1.5, 3.0])  # unsorted; 1.0 and 1.5 overlap by 0.2 s
    order, keep, dropped = trial_timeline(align, time, BIN)
    np.testing.assert_array_equal(order, [1, 2, 0, 3])
    assert dropped == 20 + 20  # 1.0 runs 0.2 s into 1.5's window, 1.5 into 2.0's
    assert keep[3].all() and keep[0, :50].all() and not keep[0, 50:].any()
    stamps = (align[order][:, None] + time)[keep]
    assert np.all(np.diff(stamps) > 0)


def test_overlapping_trials_written_with_warning(a8604_copy, tmp_path):
    time = centres()
    align = np.array([10.0, 10.5, 20.0, 30.0])  # first two windows overlap by 0.2 s = 20 bins
    res = fabricate([6, 191, 206], align, time, align_to="event", n_inputs=0)
    with pytest.warns(UserWarning, match="20 bins dropped"):
        out = write_results(a8604_copy, res, tmp_path / "o.nwb")
    io, nwb = read_file(out)
    try:
        rates = nwb.processing["lfads"]["rates"]
        stamps = rates.timestamps[:]
        assert rates.data.shape == (4 * 70 - 20, 3) and np.all(np.diff(stamps) > 0)
        assert stamps[49] == pytest.approx(10.0 + 0.245) and stamps[50] == pytest.approx(
            10.5 - 0.245
        )
        np.testing.assert_array_equal(rates.data[:50], res["rates"].values[0, :50])
        np.testing.assert_array_equal(rates.data[50:120], res["rates"].values[1])
        assert "20 bins of earlier trials" in rates.description
    finally:
        io.close()


def test_trials_tiling_time_use_starting_time_and_rate(a8604_copy, tmp_path):
    res = fabricate(
        [6, 191, 206], 5.0 + 0.7 * np.arange(30), centres(), align_to="event", n_inputs=0
    )
    out = write_results(a8604_copy, res, tmp_path / "o.nwb")
    io, nwb = read_file(out)
    try:
        rates = nwb.processing["lfads"]["rates"]
        assert rates.timestamps is None and rates.rate == pytest.approx(100.0)
        assert rates.starting_time == pytest.approx(5.0 - 0.245)
    finally:
        io.close()
    assert new_inspector_findings(a8604_copy, out) == []


def test_failure_midway_leaves_no_partial_file(a8604_copy, tmp_path, monkeypatch):
    from hdmf.backends.hdf5.h5tools import HDF5IO

    out = tmp_path / "run" / "A8604.lfads.nwb"
    out.parent.mkdir()
    out.write_bytes(b"previous run")  # an older result must survive a failed rewrite
    original = HDF5IO.write_dataset
    seen = []

    def failing(self, *args, **kwargs):
        builder = args[1] if len(args) > 1 else kwargs["builder"]
        seen.append(builder.name)
        if builder.name == "spike_times":  # late in the export: processing/lfads already written
            assert any(p.name.startswith(".A8604.lfads.nwb.tmp-") for p in out.parent.iterdir())
            raise OSError("disk full")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(HDF5IO, "write_dataset", failing)
    res = fabricate([6, 191, 206], [10.0, 20.0], centres(), align_to="event")
    with pytest.raises(OSError, match="disk full"):
        write_results(a8604_copy, res, out)
    assert "spike_times" in seen and len(seen) > 10  # it failed midway, after much of the copy
    assert sorted(p.name for p in out.parent.iterdir()) == ["A8604.lfads.nwb"]
    assert out.read_bytes() == b"previous run"


def test_existing_lfads_module_refused(a8604_copy, tmp_path):
    res = fabricate([6, 191, 206], [10.0, 20.0], centres(), align_to="event")
    first = write_results(a8604_copy, res, tmp_path / "first.lfads.nwb")
    with pytest.raises(
        NwbContentError, match=r"already has processing/lfads.*Pass the original input"
    ):
        write_results(first, res, tmp_path / "second.lfads.nwb")
    assert not (tmp_path / "second.lfads.nwb").exists()
    assert not list(tmp_path.glob(".*tmp-*"))


def test_in_place_replaces_atomically(a8604_copy):
    res = fabricate([6, 191, 206], [10.0, 20.0], centres(), align_to="event")
    inode = os.stat(a8604_copy).st_ino
    out = write_results(a8604_copy, res, None, in_place=True)
    assert out == a8604_copy.resolve()
    assert os.stat(a8604_copy).st_ino != inode  # a new file renamed over the old one
    io, nwb = read_file(a8604_copy)
    try:
        assert nwb.processing["lfads"]["rates"].data.shape == (140, 3)
        assert len(nwb.units) == 3 and nwb.identifier != "A8604-211122"
    finally:
        io.close()
    assert [p.name for p in a8604_copy.parent.iterdir()] == [a8604_copy.name]


def test_in_place_keeps_source_when_new_file_does_not_validate(a8604_copy, monkeypatch):
    before = sha256(a8604_copy)

    def broken(tmp, target):
        raise NwbLfadsRuntimeError(f"{target}: the new file does not re-open cleanly")

    monkeypatch.setattr(W, "_check_written", broken)
    res = fabricate([6, 191, 206], [10.0, 20.0], centres(), align_to="event")
    with pytest.raises(NwbLfadsRuntimeError, match="does not re-open cleanly"):
        write_results(a8604_copy, res, a8604_copy, in_place=True)
    assert sha256(a8604_copy) == before
    assert [p.name for p in a8604_copy.parent.iterdir()] == [a8604_copy.name]


def test_bad_arguments_and_results(a8604_copy, tmp_path):
    res = fabricate([6, 191, 206], [10.0, 20.0], centres(), align_to="event")
    with pytest.raises(InputFileError, match="file not found"):
        write_results(tmp_path / "missing.nwb", res, tmp_path / "o.nwb")
    with pytest.raises(NwbLfadsError, match="out_path is the input file itself"):
        write_results(a8604_copy, res, a8604_copy)
    with pytest.raises(NwbLfadsError, match="in_place=True writes into the source"):
        write_results(a8604_copy, res, tmp_path / "other.nwb", in_place=True)
    with pytest.raises(NwbLfadsError, match="no out_path given"):
        write_results(a8604_copy, res, None)
    with pytest.raises(
        SessionMismatchError, match=r"units \[999\] that the units table does not have"
    ):
        write_results(
            a8604_copy, fabricate([6, 999], [10.0], centres(), align_to="event"), tmp_path / "o.nwb"
        )
    with pytest.raises(ResultsFormatError, match="no 'factors' variable"):
        write_results(a8604_copy, res.drop_vars("factors"), tmp_path / "o.nwb")
    bad = res.assign_coords(align_time=("trial", [10.0, np.nan]))
    with pytest.raises(ResultsFormatError, match="one finite session time per trial"):
        write_results(a8604_copy, bad, tmp_path / "o.nwb")
    assert not (tmp_path / "o.nwb").exists()


def test_continuous_session_from_the_reader_round_trip(a8604_copy, tmp_path):
    """read_session(align_to=None) -> results -> one regular series covering the whole span."""
    import nwb_lfads

    ds = nwb_lfads.read_session(a8604_copy, bin_size=BIN, align_to=None)
    res = make_results(ds, ds["spikes"].values / BIN, np.zeros(ds["spikes"].shape[:2] + (4,)))
    out = write_results(a8604_copy, res, tmp_path / "A8604.lfads.nwb")
    io, nwb = read_file(out)
    try:
        rates = nwb.processing["lfads"]["rates"]
        starts = ds["align_time"].values
        n_bins = int(round((starts[-1] - starts[0]) / BIN)) + ds.sizes["time"]
        assert rates.timestamps is None and rates.rate == pytest.approx(1 / BIN)
        assert rates.starting_time == pytest.approx(starts[0] + BIN / 2)
        assert rates.data.shape == (n_bins, 3)
        n_spikes = sum(len(nwb.units.get_unit_spike_times(i)) for i in range(3))
        assert np.nansum(rates.data[:] * BIN) == pytest.approx(
            n_spikes, rel=1e-3
        )  # averaging keeps spikes
    finally:
        io.close()
