"""Checks of what a session's tables hold, before and after binning.

Damaged tables are refused with one line naming the file, the column and the fix
(:class:`~nwb_lfads.errors.NwbContentError`): a ragged index that does not fit its data, times
that are not 1-D numbers, repeated ids, a count tensor larger than the machine. Suspicious but
usable data is kept and counted in one warning line per kind, naming the units: spike times
outside the recording (:func:`recording_bounds`) and units without a spike in any window.
"""

from __future__ import annotations

import os
import warnings

import numpy as np

from ..errors import NwbContentError
from .tables import DATAFRAME_HINT, SpikeTrains, read_array


def numbers(data, what: str) -> np.ndarray:
    """A 1-D dataset of numbers as float64 [n].

    Args:
        what: ``"<file>: <table> column '<name>'"`` for the message.

    Raises:
        NwbContentError: not one-dimensional, or not numbers (text, references, compounds).
    """
    values = read_array(data)
    if values.ndim != 1 or values.dtype.kind not in "biuf":
        found = f"{values.ndim}-D" if values.ndim != 1 else f"of dtype {values.dtype}"
        raise NwbContentError(
            f"{what} is {found}, not a 1-D column of numbers (seconds). Fix the writer of the "
            f"file. {DATAFRAME_HINT}"
        )
    return values.astype(np.float64)


def check_ragged(index, n_data: int, n_rows: int, what: str) -> np.ndarray:
    """A ragged column's index (end offsets) as int64 [n_rows], checked against its data.

    Raises:
        NwbContentError: not one end per row, not whole numbers, decreasing, negative, or past
            the end of the data (``n_data`` values).
    """
    ends = read_array(index)
    problem = None
    if ends.ndim != 1 or ends.size != n_rows:
        problem = f"has {ends.size} end offsets for {n_rows} rows"
    elif ends.dtype.kind not in "iuf" or not np.all(np.isfinite(ends) & (ends == np.round(ends))):
        problem = f"holds values that are not whole numbers (dtype {ends.dtype})"
    else:
        ends = ends.astype(np.int64)
        if ends.size and (ends.min() < 0 or np.any(np.diff(ends) < 0)):
            problem = "decreases or is negative"
        elif ends.size and ends[-1] > n_data:
            problem = f"points past the end of the data ({ends[-1]} > {n_data} values)"
    if problem:
        raise NwbContentError(
            f"{what}: its index {problem}, so rows cannot be told apart. The table is damaged; "
            f"rewrite it with pynwb. {DATAFRAME_HINT}"
        )
    return ends


def unique_ids(table, name: str) -> np.ndarray:
    """A table's ``id`` column as int64 [rows], or NwbContentError when ids repeat (results
    are matched to rows by id)."""
    ids = read_array(table.id.data)
    if ids.ndim != 1 or ids.dtype.kind not in "iu":
        raise NwbContentError(
            f"{name}: the {table.name} table's ids are not integers (dtype {ids.dtype}). "
            f"Fix the writer of the file."
        )
    ids = ids.astype(np.int64)
    values, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        repeated = values[counts > 1]
        raise NwbContentError(
            f"{name}: the {table.name} table's ids repeat (id {repeated[0]} appears "
            f"{counts[counts > 1][0]} times; {repeated.size} repeated id(s)), so rows cannot be "
            f"matched by id. Give each row its own id when writing the file."
        )
    return ids


def recording_bounds(nwbfile) -> tuple[float, float | None]:
    """(start, stop) of the recording in session seconds, against which spike times are checked.

    With the units' ``obs_intervals``: their hull. Otherwise the start is 0 (NWB times count
    from ``timestamps_reference_time``, so an earlier time precedes the session) and the stop
    is the latest end of the session's other data: the trials' and epochs' ``stop_time`` and
    every ``TimeSeries`` (last timestamp, or ``starting_time + n / rate``); None when the file
    holds nothing but units.
    """
    from .tables import observed_span

    span = observed_span(nwbfile)
    if span is not None:
        return span
    from pynwb import TimeSeries

    ends = []
    for table in (nwbfile.trials, nwbfile.epochs):
        if table is not None and len(table) and "stop_time" in table.colnames:
            ends.append(_last_finite(table["stop_time"].data))  # None when not numbers
    for obj in nwbfile.objects.values():
        if isinstance(obj, TimeSeries):
            ends.append(_series_end(obj))
    ends = [e for e in ends if e is not None and np.isfinite(e)]
    return 0.0, (max(ends) if ends else None)


def _last_finite(data) -> float | None:
    values = read_array(data)
    if values.dtype.kind not in "biuf":
        return None
    values = values.astype(np.float64).ravel()
    values = values[np.isfinite(values)]
    return float(values.max()) if values.size else None


def _series_end(series) -> float | None:
    """Session seconds of a TimeSeries' last sample (its end, for a regular rate); None when
    it cannot be told (no samples, no timing, values that are not numbers)."""
    try:
        if series.timestamps is not None:
            ts = series.timestamps
            if getattr(ts, "shape", (len(ts),))[0] == 0:
                return None
            return float(np.asarray(ts[-1:], dtype=np.float64)[0])
        if series.rate and series.data is not None:
            n = getattr(series.data, "shape", (len(series.data),))[0]
            return float(series.starting_time or 0.0) + n / float(series.rate)
    except (TypeError, ValueError, IndexError, AttributeError):
        return None
    return None


def warn_outside_recording(spikes: SpikeTrains, bounds, name: str) -> None:
    """Warn once (one line) about spike times before ``bounds[0]`` or after ``bounds[1]`` (a
    stop of None is not checked), with the count per unit. They are kept: binned where a
    window covers them.

    Args:
        spikes: all units' trains. bounds: (start, stop) from :func:`recording_bounds`.
    """
    start, stop = bounds
    bad = spikes.times < start - 1e-9
    if stop is not None:
        bad |= spikes.times > stop + 1e-9
    if not bad.any():
        return
    owner = np.searchsorted(spikes.bounds, np.flatnonzero(bad), side="right")
    per_unit = np.bincount(owner, minlength=spikes.bounds.size)
    units = np.flatnonzero(per_unit)
    listed = ", ".join(f"id {spikes.ids[u]}: {per_unit[u]}" for u in units[:10])
    where = f"[{start:g}, {stop:g}] s" if stop is not None else f"from {start:g} s on"
    warnings.warn(
        f"{name}: {int(bad.sum())} spike time(s) in {units.size} unit(s) lie outside the "
        f"recording {where} ({listed}{', ...' if units.size > 10 else ''}); they are kept. "
        f"Check the units table's time base (obs_intervals, timestamps_reference_time).",
        stacklevel=3,
    )


def warn_silent_units(counts: np.ndarray, ids: np.ndarray, name: str) -> None:
    """Warn once (one line) naming the units without a spike in any window.

    Args:
        counts: int spike counts [W windows, T bins, N units]. ids: unit ids int64 [N].
    """
    silent = np.flatnonzero(counts.sum(axis=(0, 1)) == 0) if counts.size else np.arange(ids.size)
    if not silent.size:
        return
    listed = ", ".join(str(i) for i in ids[silent[:10]])
    warnings.warn(
        f"{name}: {silent.size} of {ids.size} unit(s) have no spike in any window (ids "
        f"{listed}{', ...' if silent.size > 10 else ''}); they are kept and will get rates near "
        f"zero. Pass units= (or a units column) to leave them out.",
        stacklevel=3,
    )


def host_memory() -> int:
    """This machine's physical memory, bytes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_tensor_size(n_counts: float, name: str, what: str) -> None:
    """Refuse a count tensor (int32) larger than half the machine's memory, before allocating.

    Raises:
        NwbContentError: naming what was to be binned and the likely cause.
    """
    need = 4.0 * n_counts
    if need > host_memory() / 2:
        raise NwbContentError(
            f"{name}: binning {what} would take {need / 1e9:.3g} GB, more than half of this "
            f"machine's {host_memory() / 1e9:.3g} GB. A spike time far from the others (see "
            f"first/last spike in `nwb-lfads inspect`) points to a damaged units table; "
            f"otherwise use a larger bin_size or fewer units."
        )
