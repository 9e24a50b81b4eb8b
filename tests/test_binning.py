"""Pure binning: exact edges, overlaps, silent units, sample averaging, continuous windows."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nwb_lfads.io import binning
from nwb_lfads.io.binning import (
    average_samples,
    bin_edges,
    bin_index,
    continuous_starts,
    count_spikes,
)


def reference_counts(trains, starts, n_bins, bin_size):
    """np.histogram per window and unit on the documented edges (last edge excluded)."""
    edges = bin_edges(starts, n_bins, bin_size)
    out = np.zeros((len(starts), n_bins, len(trains)), dtype=np.int64)
    for w in range(len(starts)):
        for u, train in enumerate(trains):
            inside = train[train < edges[w, -1]]
            out[w, :, u] = np.histogram(inside, bins=edges[w])[0]
    return out


def flatten(trains):
    return np.concatenate(trains), np.cumsum([len(t) for t in trains])


def test_bin_index_follows_the_documented_edges_exactly():
    start, b = np.float64(0.1), 0.1  # 0.1 + k*0.1 is not representable: rounding matters
    edges = bin_edges(np.array([start]), 10, b)[0]
    k = bin_index(edges[:-1], np.full(10, start), b)
    assert k.tolist() == list(range(10))  # exactly on an edge: the later bin
    below = np.nextafter(edges[1:-1], -np.inf)
    assert bin_index(below, np.full(9, start), b).tolist() == list(range(9))


def test_spike_on_the_stop_edge_is_outside_and_on_the_start_edge_inside():
    starts = np.array([1.0, 5.3])
    edges = bin_edges(starts, 7, 0.03)
    trains = [np.sort(np.concatenate([edges.ravel(), np.nextafter(edges.ravel(), -np.inf)]))]
    counts = count_spikes(*flatten(trains), starts, 7, 0.03)
    assert counts.shape == (2, 7, 1)
    # each bin holds its own left edge and the value just below its right edge
    assert (counts[:, :, 0] == 2).all()


def test_counts_match_histogram_with_overlapping_unsorted_windows(monkeypatch):
    monkeypatch.setattr(binning, "PAIRS_PER_PASS", 7)  # many small passes
    rng = np.random.default_rng(1)
    trains = [np.sort(rng.uniform(0, 20, n)) for n in (300, 0, 50, 1, 800)]
    starts = rng.uniform(-1, 19, 25)  # overlapping, unordered, some before the first spike
    counts = count_spikes(*flatten(trains), starts, 40, 0.025)
    assert counts.dtype == np.int32 and counts.flags.c_contiguous
    np.testing.assert_array_equal(counts, reference_counts(trains, starts, 40, 0.025))
    assert (counts[:, :, 1] == 0).all()  # the silent unit is kept, all zeros


def test_unit_subset_keeps_the_given_order():
    rng = np.random.default_rng(2)
    trains = [np.sort(rng.uniform(0, 5, n)) for n in (40, 60, 80)]
    starts = np.array([0.5, 2.0])
    every = count_spikes(*flatten(trains), starts, 10, 0.1)
    some = count_spikes(*flatten(trains), starts, 10, 0.1, units=np.array([2, 0]))
    np.testing.assert_array_equal(some, every[:, :, [2, 0]])


@settings(max_examples=60, deadline=None)
@given(
    spikes=st.lists(st.floats(0, 10, allow_nan=False), max_size=60),
    starts=st.lists(st.floats(-2, 10, allow_nan=False), min_size=1, max_size=8),
    n_bins=st.integers(1, 12),
    bin_size=st.sampled_from([0.001, 0.01, 0.05, 0.3]),
)
def test_total_counts_equal_spikes_inside_windows(spikes, starts, n_bins, bin_size):
    train, starts = np.sort(np.array(spikes, dtype=float)), np.array(starts)
    counts = count_spikes(train, np.array([train.size]), starts, n_bins, bin_size)
    stops = starts + n_bins * bin_size
    inside = (train[None, :] >= starts[:, None]) & (train[None, :] < stops[:, None])
    assert counts.sum() == inside.sum()
    np.testing.assert_array_equal(counts, reference_counts([train], starts, n_bins, bin_size))


def test_average_samples_means_per_bin_and_nan_where_empty():
    times = np.array([0.01, 0.03, 0.05, 0.31, 0.32, 0.33])  # nothing in bins 1 and 2 (0.1-0.3)
    values = np.stack([times * 10, np.array([1, np.nan, 3, 4, 5, 6])], axis=1)
    out = average_samples(times[::-1], values[::-1], np.array([0.0]), 4, 0.1)  # any order
    assert out.shape == (1, 4, 2)
    np.testing.assert_allclose(out[0, [0, 3], 0], [0.3, 3.2])
    np.testing.assert_allclose(out[0, [0, 3], 1], [2.0, 5.0])  # the NaN sample is ignored
    assert np.isnan(out[0, 1:3]).all()


def test_continuous_windows_cover_the_span_on_one_grid():
    starts = continuous_starts((2.0, 13.37), window_length=1.0, overlap=0.2, bin_size=0.01)
    steps = np.round(np.diff(starts) / 0.01).astype(int)
    assert starts[0] == 2.0
    assert (steps[:-1] == 80).all() and 0 < steps[-1] <= 80  # last one moved back, on the grid
    end = starts[-1] + 1.0
    assert 13.37 - 0.01 < end <= 13.37 + 1e-9
    assert continuous_starts((0.0, 0.5), 1.0, 0.2, 0.01).size == 0


def test_continuous_window_exactly_filling_the_span_is_not_repeated():
    starts = continuous_starts((0.0, 2.6), window_length=1.0, overlap=0.2, bin_size=0.1)
    np.testing.assert_allclose(starts, [0.0, 0.8, 1.6])


@pytest.mark.parametrize("n_bins", [0])
def test_no_bins_gives_empty_counts(n_bins):
    counts = count_spikes(np.array([0.5]), np.array([1]), np.array([0.0]), n_bins, 0.1)
    assert counts.shape == (1, 0, 1)


def test_overlapping_grid_windows_agree_on_edge_spikes():
    """Continuous windows on one grid count a spike on a grid edge in the same global bin."""
    from nwb_lfads.io.binning import count_spikes

    bin_size, origin = 0.01, 0.3
    # spikes exactly on global grid edges (as computed from the grid), far from 0
    k = np.array([7, 13, 21, 33, 34, 50])
    times = origin + k * bin_size
    starts = origin + np.array([0, 5, 10, 15, 20]) * bin_size  # windows of 20 bins, step 5
    counts = count_spikes(times, np.array([times.size]), starts, 20, bin_size, grid_origin=origin)
    offsets = np.array([0, 5, 10, 15, 20])
    for w, off in enumerate(offsets):
        expected = np.zeros(20, int)
        for kk in k:
            if off <= kk < off + 20:
                expected[kk - off] += 1
        np.testing.assert_array_equal(counts[w, :, 0], expected)
