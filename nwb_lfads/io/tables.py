"""The Units and trials tables of an open NWB file as plain arrays, plus selections.

Spike times are read once, as the flat ``spike_times`` dataset and its ragged
``spike_times_index`` (never ``to_dataframe()``, which builds one Python object per unit).
Every error names the file (``name``), the object and the fix.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ..errors import AlignmentError, NwbContentError, SelectionError
from ..selection import values_match

DATAFRAME_HINT = "Inspect the file with `nwb-lfads inspect FILE`."


@dataclass(frozen=True)
class SpikeTrains:
    """All units' spike trains, flat.

    Attributes:
        times: seconds, float64 [S], each unit's run sorted.
        bounds: int64 [N], unit ``u`` owns ``times[bounds[u-1]:bounds[u]]``.
        ids: units-table ids, int64 [N].
    """

    times: np.ndarray
    bounds: np.ndarray
    ids: np.ndarray

    def span(self) -> tuple[float, float]:
        """(first, last) spike time over all units, seconds; (nan, nan) without spikes."""
        starts = np.concatenate([[0], self.bounds[:-1]])
        nonempty = self.bounds > starts
        if not nonempty.any():
            return (np.nan, np.nan)
        return (
            float(self.times[starts[nonempty]].min()),
            float(self.times[self.bounds[nonempty] - 1].max()),
        )


def read_array(data) -> np.ndarray:
    """A dataset (h5py, zarr, list or array) as a NumPy array, read in one call."""
    return np.asarray(
        data[:] if hasattr(data, "shape") and not isinstance(data, np.ndarray) else data
    )


def read_spike_trains(nwbfile, name: str) -> SpikeTrains:
    """Read the units table's spike times once, through its ragged index.

    Unsorted trains are sorted (with a warning), since binning needs sorted runs.

    Raises:
        NwbContentError: no units table, no spike_times column, or no units.
    """
    units = nwbfile.units
    if units is None:
        raise NwbContentError(
            f"{name}: no units table (/units), so no spikes to bin. LFADS needs sorted "
            f"spike times; run spike sorting and add them as a Units table first."
        )
    if "spike_times" not in units.colnames:
        raise NwbContentError(
            f"{name}: the units table has no 'spike_times' column (columns: "
            f"{list(units.colnames)}). Add the sorted spike times to the Units table."
        )
    index = units["spike_times"]
    if len(units) == 0:
        raise NwbContentError(
            f"{name}: the units table has no rows. Add at least one unit with spike times."
        )
    from . import checks  # checks builds on this module

    times = checks.numbers(index.target.data, f"{name}: units column 'spike_times'")
    bounds = checks.check_ragged(
        index.data, times.size, len(units), f"{name}: units column 'spike_times'"
    )
    ids = checks.unique_ids(units, name)
    times, bounds = _drop_non_finite(times, bounds, ids, name)
    starts = np.concatenate([[0], bounds[:-1]])
    descending = np.flatnonzero(times[1:] < times[:-1]) + 1  # positions where the order breaks
    if descending.size and np.isin(descending, starts, invert=True).any():
        bad = np.unique(
            np.searchsorted(
                bounds, descending[np.isin(descending, starts, invert=True)], side="right"
            )
        )
        warnings.warn(
            f"{name}: spike times of {bad.size} unit(s) (ids {ids[bad][:10].tolist()}) are not sorted; "
            f"sorting them. Fix the writer so spike_times are ascending within each unit.",
            stacklevel=3,
        )
        times = times.copy()
        for u in bad:
            times[starts[u] : bounds[u]].sort()
    return SpikeTrains(times=times, bounds=bounds, ids=ids)


def _drop_non_finite(times, bounds, ids, name: str):
    """Spike times without NaN or infinite values (float64 [S'], and the ragged index int64
    [N_all] that fits them), with a warning counting what was dropped per unit."""
    bad = ~np.isfinite(times)
    if not bad.any():
        return times, bounds
    owner = np.searchsorted(bounds, np.flatnonzero(bad), side="right")  # unit of each bad time
    per_unit = np.bincount(owner, minlength=bounds.size)
    units = np.flatnonzero(per_unit)
    listed = ", ".join(f"id {ids[u]}: {per_unit[u]}" for u in units[:10])
    warnings.warn(
        f"{name}: {int(bad.sum())} spike time(s) are NaN or infinite in {units.size} unit(s) "
        f"({listed}{', ...' if units.size > 10 else ''}); they are ignored. Fix the writer of "
        f"the units table.",
        stacklevel=4,
    )
    return times[~bad], bounds - np.cumsum(per_unit)


def observed_span(nwbfile) -> tuple[float, float] | None:
    """(earliest start, latest stop) of the units' ``obs_intervals``, seconds; None when absent."""
    units = nwbfile.units
    if units is None or "obs_intervals" not in units.colnames:
        return None
    intervals = np.asarray(
        read_array(units["obs_intervals"].target.data), dtype=np.float64
    ).reshape(-1, 2)
    if intervals.size == 0:
        return None
    return float(np.nanmin(intervals[:, 0])), float(np.nanmax(intervals[:, 1]))


def select_units(nwbfile, ids: np.ndarray, units, name: str) -> np.ndarray:
    """Positions (rows) of the selected units, int64 [N].

    Args:
        ids: all units-table ids, int64 [N_all].
        units: None (all), a list of unit ids, or the name of a boolean units column
            (``"~name"`` selects the units where it is False, e.g. ``"~heldout"``).
    """
    if units is None:
        return np.arange(ids.size)
    if isinstance(units, str):
        negate = units.startswith("~")
        mask = _bool_column(nwbfile.units, units.lstrip("~"), name)
        mask = ~mask if negate else mask
        positions = np.flatnonzero(mask)
        if positions.size == 0:
            raise SelectionError(
                f"{name}: units column '{units}' is False for every unit, so no units are "
                f"left. Pass another column or a list of unit ids."
            )
        return positions
    wanted = np.asarray(list(units), dtype=np.int64)
    missing = wanted[np.isin(wanted, ids, invert=True)]
    if missing.size:
        raise SelectionError(
            f"{name}: unit ids {missing[:10].tolist()} are not in the units table "
            f"(ids run {ids[:5].tolist()}...). Pass ids from the units table's id column."
        )
    if wanted.size == 0:
        raise SelectionError(
            f"{name}: the unit selection is empty. Pass at least one unit id, or units=None."
        )
    lookup = {int(v): i for i, v in enumerate(ids)}
    return np.array([lookup[int(v)] for v in wanted], dtype=np.int64)


def _bool_column(table, column: str, name: str) -> np.ndarray:
    """A boolean column of ``table`` as bool [rows], with a clear error when it is not one."""
    if column not in table.colnames:
        raise SelectionError(
            f"{name}: '{column}' is not a column of the {table.name} table (columns: "
            f"{list(table.colnames)}). Pass the name of a boolean column."
        )
    values = np.asarray(read_array(table[column].data))
    if (
        values.ndim != 1
        or values.dtype.kind not in "bi"
        or (values.dtype.kind == "i" and not np.isin(values, (0, 1)).all())
    ):
        raise SelectionError(
            f"{name}: {table.name} column '{column}' is not boolean (dtype {values.dtype}). "
            f"Pass the name of a boolean column."
        )
    return values.astype(bool)


def heldout_flags(nwbfile, column: str, positions: np.ndarray, name: str) -> np.ndarray:
    """bool [N], the units column ``column`` (e.g. NLB's ``heldout``) at ``positions``."""
    return _bool_column(nwbfile.units, column, name)[positions]


def trial_columns(trials, include: list[str] | None) -> dict[str, np.ndarray]:
    """Per-trial columns to keep as coordinates: every scalar numeric or boolean column, plus
    string and ragged columns named in ``include`` (ragged ones as object arrays of arrays).

    Returns:
        name -> array [n_trials].
    """
    from hdmf.common.table import DynamicTableRegion, VectorIndex

    include = list(include or [])
    unknown = [c for c in include if c not in trials.colnames]
    if unknown:
        raise SelectionError(
            f"include_columns {unknown} are not trials columns (columns: {list(trials.colnames)})."
        )
    out = {}
    for col in trials.colnames:
        obj = trials[col]
        if isinstance(obj, VectorIndex):
            if col in include:
                out[col] = np.array([np.asarray(v) for v in obj[:]] + [None], dtype=object)[:-1]
            continue
        if isinstance(obj, DynamicTableRegion):
            continue
        values = read_array(obj.data)
        if values.ndim != 1:
            continue
        if values.dtype.kind in "biuf":
            out[col] = values
        elif col in include:
            out[col] = np.array(
                [v.decode() if isinstance(v, bytes) else v for v in values], dtype=object
            )
    return out


def numeric_columns(trials) -> list[str]:
    """Names of the trials columns that can serve as ``align_to`` (scalar numeric)."""
    from hdmf.common.table import DynamicTableRegion, VectorIndex

    names = []
    for col in trials.colnames:
        obj = trials[col]
        if isinstance(obj, (VectorIndex, DynamicTableRegion)):
            continue
        if (
            getattr(obj.data, "ndim", np.ndim(obj.data)) == 1
            and np.asarray(obj.data[:1]).dtype.kind in "iuf"
        ):
            names.append(col)
    return names


def event_times(trials, align_to: str, name: str) -> np.ndarray:
    """The ``align_to`` column, seconds, float64 [n_trials].

    Raises:
        AlignmentError: not a column, or not a numeric scalar one; lists those that are.
    """
    usable = numeric_columns(trials)
    if align_to not in usable:
        what = (
            "is not numeric"
            if align_to in trials.colnames
            else "is not a column of the trials table"
        )
        raise AlignmentError(
            f"{name}: align_to='{align_to}' {what}. Numeric trials columns: {usable}. "
            f"Pass one of them, or align_to=None for continuous windows."
        )
    from . import checks

    return checks.numbers(trials[align_to].data, f"{name}: trials column '{align_to}'")


def select_trials(trials, ids: np.ndarray, selection, name: str) -> np.ndarray:
    """Positions (rows) of the selected trials, int64.

    Args:
        ids: trials-table ids, int64 [n_trials].
        selection: None (all), a list of trial ids, or {column: value or list of values}.
    """
    if selection is None:
        return np.arange(ids.size)
    if isinstance(selection, dict):
        keep = np.ones(ids.size, dtype=bool)
        for col, value in selection.items():
            if col not in trials.colnames:
                raise SelectionError(
                    f"{name}: trials selection names '{col}', not a trials column "
                    f"(columns: {list(trials.colnames)})."
                )
            accepted = list(value) if isinstance(value, (list, tuple, set, np.ndarray)) else [value]
            keep &= values_match(read_array(trials[col].data), accepted)
        if not keep.any():
            raise SelectionError(
                f"{name}: no trial matches {selection}. Check the values, e.g. "
                f"`nwb-lfads inspect {name}`."
            )
        return np.flatnonzero(keep)
    wanted = np.asarray(list(selection), dtype=np.int64)
    if wanted.size == 0:
        raise SelectionError(
            f"{name}: the trial selection is empty. Pass trial ids, or trials=None."
        )
    missing = wanted[np.isin(wanted, ids, invert=True)]
    if missing.size:
        raise SelectionError(
            f"{name}: trial ids {missing[:10].tolist()} are not in the trials table "
            f"(ids run {ids[:5].tolist()}...). Pass ids from the trials table's id column."
        )
    lookup = {int(v): i for i, v in enumerate(ids)}
    return np.array([lookup[int(v)] for v in wanted], dtype=np.int64)
