"""HDF5 filters of what nwb-lfads writes: only those Neurosift decodes (nwb_lfads.io.filters).

The allowed set (deflate alone, or no filter) was established with the local Neurosift build
and its checker in bench/viewer_check.py --filters (docs/DESIGN.md, "HDF5 filters"); here h5py
reads the filter pipeline of every dataset the writer and the simulator produce.
"""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest
import xarray as xr

from nwb_lfads.errors import NwbContentError
from nwb_lfads.io.filters import VIEWER_FILTERS, compressed, viewer_unsafe_datasets
from nwb_lfads.io.write import write_results
from nwb_lfads.synthetic import simulate


def pipeline(ds: h5py.Dataset) -> list[int]:
    """The HDF5 filter ids of ``ds``, in pipeline order."""
    plist = ds.id.get_create_plist()
    return [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]


def results_for(path, n_inputs: int = 3) -> xr.Dataset:
    """Trial-aligned results for every unit and trial of ``path`` (10 ms bins, 0.3 s)."""
    with h5py.File(path, "r") as f:
        units = f["units/id"][:]
        trials = f["intervals/trials/id"][:]
        onset = f["intervals/trials/move_onset_time"][:]
    time = -0.1 + 0.01 * (np.arange(30) + 0.5)
    rng = np.random.default_rng(0)
    shape = (len(trials), len(time))
    return xr.Dataset(
        {
            "rates": (("trial", "time", "unit"), rng.gamma(2.0, 5.0, (*shape, len(units)))),
            "factors": (("trial", "time", "factor"), rng.normal(size=(*shape, 6))),
            "inferred_inputs": (("trial", "time", "input"), rng.normal(size=(*shape, n_inputs))),
        },
        coords={"trial": trials, "time": time, "unit": units, "align_time": ("trial", onset)},
        attrs={"bin_size": 0.01, "align_to": "move_onset_time", "window": (-0.1, 0.2)},
    )


@pytest.fixture(scope="module")
def written(mc_maze_small, tmp_path_factory):
    root = tmp_path_factory.mktemp("filters")
    src = root / "in.nwb"
    shutil.copyfile(mc_maze_small, src)
    return write_results(src, results_for(src), root / "in.lfads.nwb", provenance={"a": 1})


def test_written_lfads_datasets_use_only_viewer_filters(written):
    assert viewer_unsafe_datasets(written) == {}
    with h5py.File(written, "r") as f:
        group = f["processing/lfads"]
        assert {"rates", "factors", "inferred_inputs", "provenance"} <= set(group)
        seen = []
        group.visititems(lambda name, obj: seen.append(obj) if isinstance(obj, h5py.Dataset) else 0)
        for ds in seen:
            assert set(pipeline(ds)) <= set(VIEWER_FILTERS), ds.name
            assert not ds.shuffle, ds.name
        for name in ("rates", "factors", "inferred_inputs"):
            data = group[name]["data"]
            assert data.compression == "gzip" and data.shuffle is False, name  # still compressed
            assert pipeline(data) == [h5py.h5z.FILTER_DEFLATE]


def test_written_values_read_back_exactly(written):
    with h5py.File(written, "r") as f:
        data = f["processing/lfads/inferred_inputs/data"][:]
    res = results_for(written.with_name("in.nwb"))
    expected = res["inferred_inputs"].values.astype(np.float32).reshape(-1, data.shape[1])
    np.testing.assert_array_equal(np.sort(data.ravel()), np.sort(expected.ravel()))


def test_simulated_ground_truth_uses_only_viewer_filters(tmp_path):
    paths = simulate(tmp_path, kind="chaotic", sessions=1, seed=1, n_conditions=3)
    for path in paths:
        assert viewer_unsafe_datasets(path, "processing/ground_truth") == {}
        with h5py.File(path, "r") as f:
            assert pipeline(f["processing/ground_truth/rates/data"]) == [h5py.h5z.FILTER_DEFLATE]


def test_unsafe_filters_are_named(tmp_path):
    path = tmp_path / "f.h5"
    x = np.arange(400, dtype=np.float32).reshape(100, 4)
    with h5py.File(path, "w") as f:
        g = f.create_group("processing/lfads")
        g.create_dataset("plain", data=x)
        g.create_dataset("gzip", data=x, compression="gzip")
        g.create_dataset("a/shuffled", data=x, compression="gzip", shuffle=True)
        g.create_dataset("lzf", data=x, compression="lzf")
        g.create_dataset("checksum", data=x, compression="gzip", fletcher32=True)
        f.create_dataset("elsewhere", data=x, shuffle=True, chunks=True)
    unsafe = viewer_unsafe_datasets(path)
    assert unsafe == {
        "/processing/lfads/a/shuffled": ["shuffle"],
        "/processing/lfads/lzf": ["lzf"],
        "/processing/lfads/checksum": ["fletcher32"],
    }
    with pytest.raises(NwbContentError, match="no processing/ground_truth"):
        viewer_unsafe_datasets(path, "processing/ground_truth")


def test_compressed_is_gzip_without_shuffle(tmp_path):
    import pynwb
    from pynwb.testing.mock.file import mock_NWBFile

    nwbfile = mock_NWBFile()
    module = nwbfile.create_processing_module("lfads", "test")
    data = np.random.default_rng(0).normal(size=(500, 7)).astype(np.float32)
    module.add(pynwb.TimeSeries(name="x", data=compressed(data), unit="a.u.", rate=100.0))
    path = tmp_path / "m.nwb"
    with pynwb.NWBHDF5IO(str(path), "w") as io:
        io.write(nwbfile)
    assert viewer_unsafe_datasets(path) == {}
    with h5py.File(path, "r") as f:
        ds = f["processing/lfads/x/data"]
        assert pipeline(ds) == [h5py.h5z.FILTER_DEFLATE]
        np.testing.assert_array_equal(ds[:], data)
