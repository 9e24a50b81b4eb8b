"""pynapple reads the enriched file: the ``fitted_windows`` intervals give the series their time
support (one interval per fitted trial), and nwbinspector finds nothing new (issue 24)."""

from __future__ import annotations

import numpy as np
import pynapple as nap
import pytest
from helpers import make_results

from nwb_lfads.io.read import read_session
from nwb_lfads.io.write import new_inspector_findings, write_results
from nwb_lfads.synthetic import simulate


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    (path,) = simulate(
        tmp_path_factory.mktemp("sim"), n_conditions=2, trials_per_condition=3, n_units=[5]
    )
    return path


def _write(src, out, **read):
    ds = read_session(src, **read)
    rng = np.random.default_rng(0)
    shape = ds.spikes.shape
    res = make_results(ds, rng.uniform(1, 20, shape), rng.standard_normal(shape[:2] + (3,)))
    return ds, write_results(src, res, out)


def test_rates_restricted_to_fitted_windows_have_one_interval_per_trial(sim, tmp_path):
    ds, out = _write(sim, tmp_path / "x.lfads.nwb", align_to="move_onset_time", window=(-0.2, 0.5))
    nwb = nap.load_file(str(out))
    # a simulated file: pynapple names the series lfads/rates beside ground_truth/rates
    rates, windows = nwb["lfads/rates"], nwb["fitted_windows"]
    assert len(rates.time_support) == 1  # pynapple alone: first to last bin, gaps included
    order = np.argsort(ds.align_time.values)
    bin_size = ds.attrs["bin_size"]
    expected_start = ds.align_time.values[order] + ds.time.values[0] - bin_size / 2
    expected_stop = ds.align_time.values[order] + ds.time.values[-1] + bin_size / 2
    np.testing.assert_allclose(windows.start, expected_start, atol=1e-9)
    np.testing.assert_allclose(windows.end, expected_stop, atol=1e-9)
    np.testing.assert_array_equal(windows["trial_id"], ds.trial.values[order])
    restricted = rates.restrict(windows)
    assert len(restricted.time_support) == ds.sizes["trial"] == 6
    np.testing.assert_allclose(restricted.time_support.start, expected_start, atol=1e-9)
    assert len(restricted) == len(rates)  # every sample lies in a window: nothing lost
    np.testing.assert_array_equal(restricted.values, rates.values)
    for t, row in zip(expected_start, np.split(restricted.index, ds.sizes["trial"])):
        assert row.size == ds.sizes["time"] and row[0] == pytest.approx(t + bin_size / 2)
    assert new_inspector_findings(sim, out) == []


def test_continuous_windows_merge_into_runs(sim, tmp_path):
    ds, out = _write(sim, tmp_path / "c.lfads.nwb", align_to=None, window_length=1.0, overlap=0.2)
    nwb = nap.load_file(str(out))
    # a simulated file: pynapple names the series lfads/rates beside ground_truth/rates
    rates, windows = nwb["lfads/rates"], nwb["fitted_windows"]
    assert "trial_id" not in windows.metadata_columns
    restricted = rates.restrict(windows)
    assert len(restricted) == len(rates)
    assert windows.start[0] == pytest.approx(rates.index[0] - ds.attrs["bin_size"] / 2)
    assert windows.end[-1] == pytest.approx(rates.index[-1] + ds.attrs["bin_size"] / 2)
    assert new_inspector_findings(sim, out) == []
