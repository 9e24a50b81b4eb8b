"""What an NWB session holds, as far as nwb-lfads cares: units, duration, trials, intervals, series.

:func:`summarize` returns a JSON-ready dict (plain Python types); :func:`format_summary` renders
it for a person. Spike counts come from the Units table's ragged index (the end offsets of
``spike_times``) and the first and last spike of each unit are read by index, so a large or remote
file is never loaded whole.

A trials-table column can serve as ``--align-to`` when it is a scalar float column with at least
one non-NaN value and all its values lie within the trials' overall span (event times do; a
condition number or an angle in degrees usually does not). A units column can serve as
``--heldout-units`` when it is boolean.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .open import open_nwb, source_name

MAX_SERIES_PREVIEW = 50  # objects listed per processing module
MAX_DISTINCT_TEXT = (
    10  # text columns with at most this many distinct values list them (--eval-trials COL=VALUE)
)


def _py(value):
    """numpy scalars -> Python scalars (for JSON)."""
    return value.item() if isinstance(value, np.generic) else value


def _dtype(data) -> np.dtype:
    """dtype of an h5py dataset, array or (in-memory table) list."""
    return np.dtype(data.dtype) if hasattr(data, "dtype") else np.asarray(data).dtype


def _take(data, index: np.ndarray) -> np.ndarray:
    """``data[index]`` as float64 for an h5py dataset (increasing index), array or list."""
    if isinstance(data, (list, tuple)):
        return np.asarray(data, dtype=np.float64)[index]
    return np.asarray(data[index.tolist()], dtype=np.float64)


def _units_summary(units, name: str) -> dict[str, Any] | None:
    if units is None:
        return None
    n_units = len(units.id)
    out: dict[str, Any] = {
        "count": n_units,
        "columns": list(units.colnames),
        "heldout_candidates": [],
        "total_spikes": 0,
        "silent_units": 0,
        "firing_rate_hz": None,
        "first_spike": None,
        "last_spike": None,
    }
    for name in units.colnames:
        col = units[name]
        if type(col).__name__ == "VectorData" and _dtype(col.data) == np.bool_:
            out["heldout_candidates"].append(name)
    if "spike_times" not in units.colnames or n_units == 0:
        return out
    from .checks import check_ragged

    ends = check_ragged(
        units.spike_times_index.data,
        len(units.spike_times.data),
        n_units,
        f"{name}: units column 'spike_times'",
    )
    counts = np.diff(np.concatenate([[0], ends]))
    active = np.flatnonzero(counts > 0)
    out["total_spikes"] = int(ends[-1])
    out["silent_units"] = int(n_units - active.size)
    if active.size == 0:
        return out
    flat = units.spike_times.data
    if _dtype(flat).kind not in "biuf" or getattr(flat, "ndim", 1) != 1:
        from ..errors import NwbContentError

        raise NwbContentError(
            f"{name}: units column 'spike_times' is not a 1-D column of numbers (dtype "
            f"{_dtype(flat)}). Fix the writer of the file."
        )
    firsts = _take(flat, ends[active] - counts[active])
    lasts = _take(flat, ends[active] - 1)
    out["first_spike"], out["last_spike"] = float(firsts.min()), float(lasts.max())
    observed = _observed_seconds(units, n_units)
    if observed is None:
        observed = np.full(n_units, out["last_spike"] - out["first_spike"])
    with np.errstate(divide="ignore", invalid="ignore"):
        rates = np.where(observed > 0, counts / observed, np.nan)
    if np.isfinite(rates).any():
        out["firing_rate_hz"] = {
            "min": float(np.nanmin(rates)),
            "median": float(np.nanmedian(rates)),
            "max": float(np.nanmax(rates)),
            "over": "obs_intervals"
            if "obs_intervals" in units.colnames
            else "first to last spike of the session",
        }
    return out


def _observed_seconds(units, n_units: int) -> np.ndarray | None:
    """Total length (s) of each unit's ``obs_intervals``, shape [n_units]; None without the column."""
    if "obs_intervals" not in units.colnames:
        return None
    ends = np.asarray(units.obs_intervals_index.data[:], dtype=np.int64)
    intervals = np.asarray(units.obs_intervals.data[:], dtype=np.float64).reshape(-1, 2)
    lengths = np.concatenate([[0.0], np.cumsum(intervals[:, 1] - intervals[:, 0])])
    starts = np.concatenate([[0], ends[:-1]])
    return lengths[ends] - lengths[starts]


def _obs_extent(units) -> tuple[float, float] | None:
    if units is None or "obs_intervals" not in units.colnames or len(units.obs_intervals.data) == 0:
        return None
    intervals = np.asarray(units.obs_intervals.data[:], dtype=np.float64).reshape(-1, 2)
    return float(intervals[:, 0].min()), float(intervals[:, 1].max())


def _table_columns(table, span: tuple[float, float] | None) -> list[dict[str, Any]]:
    """One entry per column of a DynamicTable: name, dtype, numeric, non-NaN count, align candidate."""
    cols = []
    for name in table.colnames:
        col = table[name]
        kind = type(col).__name__
        entry: dict[str, Any] = {
            "name": name,
            "kind": kind,
            "dtype": None,
            "numeric": False,
            "non_nan": None,
            "align_candidate": False,
        }
        if kind == "VectorData":
            values = np.asarray(col.data[:])
            entry["dtype"] = "text" if values.dtype.kind in "OSU" else str(values.dtype)
            if entry["dtype"] == "text" and values.ndim == 1:
                distinct = sorted({v.decode() if isinstance(v, bytes) else str(v) for v in values})
                if len(distinct) <= MAX_DISTINCT_TEXT:
                    entry["values"] = distinct
            if values.ndim == 1 and values.dtype.kind in "biuf":
                finite = np.isfinite(values.astype(np.float64))
                entry["numeric"] = True
                entry["non_nan"] = int(finite.sum())
                if values.dtype.kind == "f" and finite.any() and span is not None:
                    v = values[finite]
                    entry["align_candidate"] = bool(v.min() >= span[0] and v.max() <= span[1])
        elif kind == "VectorIndex":
            entry["kind"] = "ragged"
        cols.append(entry)
    return cols


def _trials_summary(trials) -> dict[str, Any] | None:
    if trials is None:
        return None
    n = len(trials.id)
    span = None
    if n:
        start, stop = (np.asarray(trials[c].data[:]) for c in ("start_time", "stop_time"))
        if start.dtype.kind in "iuf" and stop.dtype.kind in "iuf":
            span = (float(np.nanmin(start)), float(np.nanmax(stop)))
    columns = _table_columns(trials, span)
    return {
        "count": n,
        "span": list(span) if span else None,
        "columns": columns,
        "align_candidates": [c["name"] for c in columns if c["align_candidate"]],
    }


def _series_entry(name: str, obj) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "type": type(obj).__name__}
    data = getattr(obj, "data", None)
    if data is not None and hasattr(data, "shape"):
        entry["shape"] = [int(d) for d in data.shape]
    elif hasattr(obj, "id") and hasattr(obj, "colnames"):
        entry["rows"] = len(obj.id)
    if getattr(obj, "unit", None) is not None and isinstance(obj.unit, str):
        entry["unit"] = obj.unit
    return entry


def _container_entries(name: str, obj) -> list[dict[str, Any]]:
    """A TimeSeries as one entry; a container of series (Position, BehavioralTimeSeries...) as its children."""
    children = getattr(obj, "time_series", None) or getattr(obj, "spatial_series", None)
    if isinstance(children, dict) and children:
        return [
            dict(_series_entry(child, c), name=f"{name}/{child}") for child, c in children.items()
        ]
    return [_series_entry(name, obj)]


def _is_behaviour(entry: dict[str, Any]) -> bool:
    """Acquisition series that could serve as behaviour: low-dimensional, not raw voltage or images."""
    shape = entry.get("shape")
    return (
        entry["type"]
        not in ("ElectricalSeries", "ImageSeries", "TwoPhotonSeries", "OnePhotonSeries")
        and shape is not None
        and 1 <= len(shape) <= 2
        and (len(shape) == 1 or shape[1] <= 64)
    )


def summarize(source) -> dict[str, Any]:
    """Summarize an NWB session for nwb-lfads.

    Args:
        source: a local ``.nwb`` path or an open ``pynwb.NWBFile`` (see
            :func:`nwb_lfads.io.open.open_nwb`).

    Returns:
        a dict of plain Python types with keys ``source``, ``identifier``,
        ``session_description``, ``session_start_time`` (ISO 8601), ``subject``, ``units``
        (``count``, ``total_spikes``, ``silent_units``, ``firing_rate_hz`` {min, median, max},
        ``columns``, ``heldout_candidates``, ``first_spike``, ``last_spike``), ``duration``
        (``start``, ``stop``, ``seconds``, ``from``), ``trials`` (``count``, ``span``, ``columns``,
        ``align_candidates``; None without a trials table), ``intervals`` (name, rows, columns),
        ``processing`` {module: [objects]} and ``acquisition`` ([series, ``behaviour_candidate``]).

    Raises:
        InputFileError: missing, non-HDF5 or non-NWB source.
    """
    with open_nwb(source) as nwbfile:
        units = _units_summary(nwbfile.units, source_name(source))
        extent = _obs_extent(nwbfile.units)
        if extent is not None:
            duration = {"start": extent[0], "stop": extent[1], "from": "obs_intervals"}
        elif units and units["first_spike"] is not None:
            duration = {
                "start": units["first_spike"],
                "stop": units["last_spike"],
                "from": "spike times",
            }
        else:
            duration = {"start": None, "stop": None, "from": None}
        if duration["start"] is not None:
            duration["seconds"] = duration["stop"] - duration["start"]
        intervals = [
            {"name": name, "rows": len(table.id), "columns": list(table.colnames)}
            for name, table in nwbfile.intervals.items()
        ]
        processing = {}
        for mod_name, module in nwbfile.processing.items():
            entries = []
            for name, obj in list(module.data_interfaces.items())[:MAX_SERIES_PREVIEW]:
                entries.extend(_container_entries(name, obj))
            processing[mod_name] = entries
        acquisition = []
        for name, obj in nwbfile.acquisition.items():
            for entry in _container_entries(name, obj):
                entry["behaviour_candidate"] = _is_behaviour(entry)
                acquisition.append(entry)
        subject = None
        if nwbfile.subject is not None:
            subject = {
                k: _py(getattr(nwbfile.subject, k, None))
                for k in ("subject_id", "species", "sex", "age")
            }
        return {
            "source": source_name(source),
            "identifier": nwbfile.identifier,
            "session_description": nwbfile.session_description,
            "session_start_time": nwbfile.session_start_time.isoformat()
            if nwbfile.session_start_time
            else None,
            "subject": subject,
            "units": units,
            "duration": duration,
            "trials": _trials_summary(nwbfile.trials),
            "intervals": intervals,
            "processing": processing,
            "acquisition": acquisition,
        }


def _fmt_time(seconds) -> str:
    return "?" if seconds is None else f"{seconds:.3f} s"


def format_summary(summary: dict[str, Any]) -> str:
    """Render :func:`summarize`'s dict as indented text for a person."""
    lines = [
        summary["source"],
        f"  identifier: {summary['identifier']}",
        f"  session: {summary['session_description']} (start {summary['session_start_time']})",
    ]
    subject = summary.get("subject")
    if subject and any(subject.values()):
        lines.append("  subject: " + ", ".join(f"{k} {v}" for k, v in subject.items() if v))
    dur = summary["duration"]
    if dur["start"] is not None:
        lines.append(
            f"  duration: {dur['seconds']:.3f} s ({_fmt_time(dur['start'])} to "
            f"{_fmt_time(dur['stop'])}, from {dur['from']})"
        )
    units = summary["units"]
    if units is None:
        lines.append("  units: none (no Units table; nwb-lfads needs spike times)")
    else:
        rate = units["firing_rate_hz"]
        rate_txt = (
            f"; firing rate {rate['min']:.2f}-{rate['max']:.2f} Hz (median {rate['median']:.2f})"
            if rate
            else ""
        )
        lines.append(
            f"  units: {units['count']} ({units['silent_units']} silent), "
            f"{units['total_spikes']:,} spikes{rate_txt}"
        )
        lines.append(f"    columns: {', '.join(units['columns']) or '-'}")
        if units["heldout_candidates"]:
            lines.append(f"    usable as --heldout-units: {', '.join(units['heldout_candidates'])}")
    trials = summary["trials"]
    if trials is None:
        lines.append("  trials: none (fit without --align-to: continuous windows)")
    else:
        lines.append(f"  trials: {trials['count']}")
        for c in trials["columns"]:
            tags = [c["dtype"] or c["kind"]]
            if c["numeric"]:
                tags.append(f"{c['non_nan']} non-NaN")
            if c.get("values"):
                tags.append("values " + ", ".join(c["values"]))
            if c["align_candidate"]:
                tags.append("usable as --align-to")
            lines.append(f"    {c['name']}: {', '.join(tags)}")
    if summary["intervals"]:
        lines.append(
            "  intervals: "
            + ", ".join(f"{i['name']} ({i['rows']} rows)" for i in summary["intervals"])
        )
    for mod, entries in summary["processing"].items():
        lines.append(f"  processing/{mod}:")
        lines.extend(f"    {_entry_text(e)}" for e in entries)
    if summary["acquisition"]:
        lines.append("  acquisition:")
        lines.extend(
            f"    {_entry_text(e)}{' (usable as behaviour)' if e['behaviour_candidate'] else ''}"
            for e in summary["acquisition"]
        )
    return "\n".join(lines)


def _entry_text(entry: dict[str, Any]) -> str:
    extra = ""
    if "shape" in entry:
        extra = " shape (" + ", ".join(str(d) for d in entry["shape"]) + ")"
    elif "rows" in entry:
        extra = f" {entry['rows']} rows"
    unit = f" [{entry['unit']}]" if entry.get("unit") else ""
    return f"{entry['name']}: {entry['type']}{extra}{unit}"
