"""Vectorised binning of event times into windows of equal length (pure NumPy, no NWB).

Glossary: W windows (trials), T bins per window, N units, C channels, S spikes.

**Bin edges.** Window ``w`` starts at ``starts[w]`` (session seconds, float64) and bin ``k``
covers ``[edge(w, k), edge(w, k + 1))`` with ``edge(w, k) = starts[w] + k * bin_size``
computed in float64 exactly as written (see :func:`bin_edges`). Bins are left-closed and
right-open: a time exactly on an edge goes to the later bin, a time exactly on
``edge(w, T)`` (the window's stop) is outside. Every function here obeys that rule exactly,
not to within rounding; windows may overlap, and a time inside several windows is counted in
each of them. Continuous-mode windows lie on one global grid (``grid_origin``): their edges are
``grid_origin + (j + k) * bin_size`` for the window at grid index ``j``, so overlapping windows
give a spike on an edge to the same session-time bin.

The approach: for each unit, two ``np.searchsorted`` of the window starts and stops into the
unit's (sorted) spike train give the range of spikes inside every window; the spikes in those
ranges are gathered once per group of units, their bin computed arithmetically
(``floor((t - start) / bin_size)`` then corrected against the exact edges), and counted as runs
of equal (unit, window, bin) cells, which arrive sorted. Cost is proportional to the spikes
inside windows, not to the number of edges; temporaries stay small (``PAIRS_PER_PASS``).
"""

from __future__ import annotations

import numpy as np

# Target number of (spike, window) pairs handled per vectorised pass: bounds temporaries.
PAIRS_PER_PASS = 1 << 18


def bin_edges(starts: np.ndarray, n_bins: int, bin_size: float) -> np.ndarray:
    """The documented bin edges.

    Args:
        starts: window starts in seconds, float64, shape [W].
        n_bins: T, bins per window.
        bin_size: seconds.

    Returns:
        float64 [W, T + 1], ``edges[w, k] = starts[w] + k * bin_size``.
    """
    starts = np.asarray(starts, dtype=np.float64)
    return starts[:, None] + np.arange(n_bins + 1, dtype=np.float64)[None, :] * float(bin_size)


def window_stops(starts: np.ndarray, n_bins: int, bin_size: float) -> np.ndarray:
    """Exclusive window stops ``starts + n_bins * bin_size`` (float64 [W]), the last edge."""
    return np.asarray(starts, dtype=np.float64) + float(n_bins) * float(bin_size)


def bin_index(times: np.ndarray, starts: np.ndarray, bin_size: float) -> np.ndarray:
    """Exact bin index of each time in the window starting at the matching start.

    Args:
        times: seconds, float64 [P]; each ``times[i] >= starts[i]``.
        starts: the window start of each time, float64 [P].
        bin_size: seconds.

    Returns:
        int64 [P], ``k`` with ``starts + k*bin_size <= times < starts + (k+1)*bin_size``.
    """
    b = float(bin_size)
    k = np.floor((times - starts) / b).astype(np.int64)
    # the division is within one bin of the truth; settle the edge cases on the exact edges
    k -= times < starts + k * b
    k += times >= starts + (k + 1) * b
    return k


def _ragged_arange(lo: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(lo[j], lo[j] + lengths[j])`` over j, int64 [lengths.sum()]."""
    first = np.cumsum(lengths) - lengths  # where each range starts in the output
    positions = np.arange(int(lengths.sum()), dtype=np.int64)
    positions += np.repeat(lo - first, lengths)
    return positions


def count_spikes(
    spike_times: np.ndarray,
    unit_bounds: np.ndarray,
    starts: np.ndarray,
    n_bins: int,
    bin_size: float,
    units: np.ndarray | None = None,
    grid_origin: float | None = None,
) -> np.ndarray:
    """Spike counts per window, bin and unit.

    Args:
        spike_times: all units' spike times concatenated (the NWB ``spike_times`` dataset),
            seconds, float64 [S]; each unit's run sorted ascending.
        unit_bounds: the ragged index (``spike_times_index``), int [N_all]: unit ``u`` owns
            ``spike_times[unit_bounds[u-1]:unit_bounds[u]]`` (``unit_bounds[-1]`` == S).
        starts: window starts, seconds, float64 [W], any order, overlaps allowed.
        n_bins: T.
        bin_size: seconds.
        units: positions (rows of the units table) to count, int [N]; all when None.
        grid_origin: when the windows lie on one global grid (continuous mode: every start is
            ``grid_origin + j * bin_size`` for an integer ``j``), edges are computed from the
            grid, ``grid_origin + (j + k) * bin_size``, so overlapping windows agree exactly on
            which bin a spike on an edge belongs to.

    Returns:
        int32 counts, shape [W, T, N] (C-contiguous).
    """
    starts = np.asarray(starts, dtype=np.float64)
    offsets = None
    if grid_origin is not None:
        offsets = np.round((starts - grid_origin) / bin_size).astype(np.int64)
        starts = grid_origin + offsets * float(bin_size)
    bounds = np.concatenate([[0], np.asarray(unit_bounds, dtype=np.int64)])
    units = np.arange(bounds.size - 1) if units is None else np.asarray(units, dtype=np.int64)
    n_win, n_units = starts.size, units.size
    by_unit = np.zeros((n_units, n_win, n_bins), dtype=np.int32)
    if by_unit.size == 0:
        return by_unit.transpose(1, 2, 0).copy()
    if offsets is None:
        stops = window_stops(starts, n_bins, bin_size)
    else:
        stops = grid_origin + (offsets + n_bins) * float(bin_size)
    # per unit: the half-open range of its spikes inside each window (global positions)
    lo = np.empty((n_units, n_win), dtype=np.int64)
    hi = np.empty((n_units, n_win), dtype=np.int64)
    for j, u in enumerate(units):
        a, b = bounds[u], bounds[u + 1]
        train = spike_times[a:b]
        lo[j] = np.searchsorted(train, starts, side="left") + a  # first spike >= start
        hi[j] = np.searchsorted(train, stops, side="left") + a  # first spike >= stop
    lengths = hi - lo  # [N, W] spikes of unit j inside window w
    pairs_per_unit = lengths.sum(axis=1)
    cells = n_win * n_bins
    cell_base = np.arange(n_win, dtype=np.int64) * n_bins  # first cell of each window
    target = by_unit.reshape(-1)
    j0 = 0
    while j0 < n_units:  # groups of whole units with about PAIRS_PER_PASS pairs each
        cum = np.cumsum(pairs_per_unit[j0:])
        j1 = j0 + max(1, int(np.searchsorted(cum, PAIRS_PER_PASS, side="right")))
        n = lengths[j0:j1].ravel()
        positions = _ragged_arange(lo[j0:j1].ravel(), n)
        base = (np.arange(j0, j1, dtype=np.int64)[:, None] * cells + cell_base[None, :]).ravel()
        flat = np.repeat(base, n)  # cell (unit, window, bin) of every pair
        if offsets is None:
            flat += bin_index(
                spike_times[positions], np.repeat(np.tile(starts, j1 - j0), n), bin_size
            )
        else:  # global grid index minus the window's offset
            flat += bin_index(
                spike_times[positions], np.full(positions.size, float(grid_origin)), bin_size
            )
            flat -= np.repeat(np.tile(offsets, j1 - j0), n)
        # pairs come ordered by (unit, window, time), so ``flat`` is sorted: count runs
        if flat.size:
            run_starts = np.flatnonzero(np.concatenate([[True], flat[1:] != flat[:-1]]))
            target[flat[run_starts]] = np.diff(np.append(run_starts, flat.size))
        j0 = j1
    return np.ascontiguousarray(by_unit.transpose(1, 2, 0))


def average_samples(
    times: np.ndarray, values: np.ndarray, starts: np.ndarray, n_bins: int, bin_size: float
) -> np.ndarray:
    """Mean of the samples of a sampled signal falling in each bin.

    Args:
        times: sample times, seconds, float64 [S] (any order).
        values: samples, float [S, C]; non-finite samples are ignored.
        starts: window starts, seconds, float64 [W].
        n_bins: T.
        bin_size: seconds.

    Returns:
        float64 [W, T, C]: per bin, the mean of the finite samples whose time falls in it,
        NaN where there are none.
    """
    times = np.asarray(times, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(times, kind="stable")
    if np.any(order != np.arange(order.size)):
        times, values = times[order], values[order]
    starts = np.asarray(starts, dtype=np.float64)
    n_win = starts.size
    lo = np.searchsorted(times, starts, side="left")
    hi = np.searchsorted(times, window_stops(starts, n_bins, bin_size), side="left")
    positions = _ragged_arange(lo, hi - lo)
    win = np.repeat(np.arange(n_win, dtype=np.int64), hi - lo)
    flat = win * n_bins + bin_index(times[positions], starts[win], bin_size)
    cells = n_win * n_bins
    out = np.full((cells, values.shape[1]), np.nan)
    for c in range(values.shape[1]):
        v = values[positions, c]
        ok = np.isfinite(v)
        total = np.bincount(flat[ok], weights=v[ok], minlength=cells)
        n = np.bincount(flat[ok], minlength=cells)
        np.divide(total, n, out=out[:, c], where=n > 0)
    return out.reshape(n_win, n_bins, values.shape[1])


def continuous_starts(
    span: tuple[float, float], window_length: float, overlap: float, bin_size: float
) -> np.ndarray:
    """Starts of overlapping windows covering ``span`` on one grid of ``bin_size``.

    Windows are ``window_length`` long, consecutive starts ``window_length - overlap`` apart
    (both whole numbers of bins, checked by the caller). The last window is moved back so it
    ends within one bin of the span's end (on the same grid), so there are no partial windows.

    Args:
        span: (first, last) observed session time, seconds.

    Returns:
        float64 [W] starts in session seconds, increasing; empty when the span is shorter
        than one window.
    """
    t0, t1 = float(span[0]), float(span[1])
    per_window = int(round(window_length / bin_size))
    per_step = int(round((window_length - overlap) / bin_size))
    n_grid = int(np.floor((t1 - t0) / bin_size + 1e-9))  # whole bins inside the span
    if n_grid < per_window:
        return np.empty(0)
    k = np.arange(0, n_grid - per_window + 1, per_step, dtype=np.int64)
    if k[-1] != n_grid - per_window:
        k = np.append(k, n_grid - per_window)
    return t0 + k * float(bin_size)
