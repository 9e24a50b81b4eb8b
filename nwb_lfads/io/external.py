"""External inputs: known signals of a session (a stimulus, a cue) on the spikes' bin grid.

Shape glossary: W windows (trials), T bins per window, X input columns (all names together),
C columns of one input, S samples of a TimeSeries.

Each name given to ``--external-input`` (``DataConfig.external_inputs``) is resolved in this
order, and the first kind that matches wins:

1. a ``TimeSeries`` in ``stimulus/``, ``acquisition/`` or ``processing/*`` (nested containers
   too), by its name or its path (``stimulus/pulse``, ``processing/behavior/Position/hand``);
   data ``(S,)`` or ``(S, C)``. The samples falling in a bin are averaged (the left-closed,
   right-open bins of :mod:`nwb_lfads.io.binning`); a bin with no sample gets the value
   linearly interpolated at its centre. A window with a bin before the first or after the last
   sample is not covered: :class:`~nwb_lfads.errors.ExternalInputError`.
2. a trials-table event column: a numeric column whose name ends in ``_time`` or ``_times``
   (e.g. ``pulse_time``). Each trial gets a unit pulse (1.0) in the bin holding its own event
   time (none when the time is NaN or outside the window); in continuous mode every event of
   the table falling in a bin gives that bin a 1.0.
3. any other numeric trials-table column: its value, constant over the trial (continuous mode:
   over the bins whose centre lies in the trial, 0 elsewhere).

A name that matches nothing, or several TimeSeries, is an ``ExternalInputError`` listing the
candidates. :func:`bin_external_inputs` returns float32 [W, T, X] with one label, unit and
source per column; :func:`nwb_lfads.io.read.read_session` stores it as the variable
``external_inputs`` (trial, time, input).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ExternalInputError
from . import tables
from .behavior import sample_times
from .binning import average_samples, bin_edges, bin_index, window_stops

EVENT_SUFFIXES = ("_time", "_times")
TOP_GROUPS = ("stimulus", "acquisition", "processing")


@dataclass(frozen=True)
class ExternalInputs:
    """Binned external inputs of one session.

    values: float32 [W, T, X]. labels, units, sources: one string per column X (``name`` or
    ``name[c]`` for a C-column series; its unit; where it came from).
    """

    values: np.ndarray
    labels: tuple[str, ...]
    units: tuple[str, ...]
    sources: tuple[str, ...]


def find_series(nwbfile) -> dict[str, object]:
    """Every ``TimeSeries`` under ``stimulus/``, ``acquisition/`` and ``processing/*``, by path."""
    from pynwb import TimeSeries

    out: dict[str, object] = {}

    def walk(obj, path):
        if isinstance(obj, TimeSeries):
            out[path] = obj
            return
        for child in getattr(obj, "children", ()) or ():
            if hasattr(child, "name") and not hasattr(child, "colnames"):
                walk(child, f"{path}/{child.name}")

    for group in TOP_GROUPS:
        for name, obj in (getattr(nwbfile, group, None) or {}).items():
            walk(obj, f"{group}/{name}")
    return out


def trial_input_columns(nwbfile) -> tuple[list[str], list[str]]:
    """``(event_columns, numeric_columns)`` of the trials table usable as inputs (both empty
    without a trials table)."""
    trials = nwbfile.trials
    if trials is None or len(trials) == 0:
        return [], []
    cols = tables.numeric_columns(trials)
    events = [c for c in cols if c.endswith(EVENT_SUFFIXES)]
    return events, [c for c in cols if c not in events]


def _candidates(series, events, numeric) -> str:
    return (
        f"TimeSeries {sorted(series) or 'none'}; trials event columns {events or 'none'}; "
        f"numeric trials columns {numeric or 'none'}"
    )


def resolve(nwbfile, name: str, source: str) -> tuple[str, str, object]:
    """What ``name`` refers to: ``("series", path, TimeSeries)``, ``("event", column, None)``
    or ``("numeric", column, None)``.

    Raises:
        ExternalInputError: nothing matches, or several TimeSeries do; lists the candidates.
    """
    series = find_series(nwbfile)
    hits = [p for p, ts in series.items() if p == name or ts.name == name or p.endswith("/" + name)]
    if len(hits) == 1:
        return "series", hits[0], series[hits[0]]
    if len(hits) > 1:
        raise ExternalInputError(
            f"{source}: --external-input {name!r} is ambiguous: several TimeSeries match "
            f"({sorted(hits)}); pass the path of one of them."
        )
    events, numeric = trial_input_columns(nwbfile)
    if name in events:
        return "event", name, None
    if name in numeric:
        return "numeric", name, None
    raise ExternalInputError(
        f"{source}: --external-input {name!r} matches nothing in the session; candidates: "
        f"{_candidates(series, events, numeric)}. Pass one of them."
    )


def _trial_rows(trials, trial_ids: np.ndarray) -> np.ndarray:
    ids = np.asarray(tables.read_array(trials.id.data), dtype=np.int64)
    lookup = {int(v): i for i, v in enumerate(ids)}
    return np.array([lookup[int(t)] for t in trial_ids], dtype=np.int64)


def _column(nwbfile, column: str) -> np.ndarray:
    return np.asarray(tables.read_array(nwbfile.trials[column].data), dtype=np.float64)


def bin_series(ts, path, starts, n_bins, bin_size, trial_ids, source) -> np.ndarray:
    """A TimeSeries averaged onto the windows' bins, empty bins interpolated at their centres.

    Args:
        starts: window starts, session seconds, float64 [W]. trial_ids: int [W] (for messages).

    Returns:
        float64 [W, T, C].

    Raises:
        ExternalInputError: data not (S,) or (S, C), or a window the samples do not cover.
    """
    times = sample_times(ts)
    shape = tuple(ts.data.shape) if hasattr(ts.data, "shape") else np.shape(ts.data)
    if len(shape) not in (1, 2) or times.size != shape[0]:
        raise ExternalInputError(
            f"{source}: external input {path} has data of shape {shape} and "
            f"{times.size} timestamps; expected (time,) or (time, k) with one timestamp per "
            f"sample. Fix the series or leave it out."
        )
    full = f"[{times.min():g}, {times.max():g}] s" if times.size else "no samples"
    lo, hi = 0, times.size
    if times.size > 1 and np.all(np.diff(times) >= 0):  # read only the samples the windows need
        stops = window_stops(starts, n_bins, bin_size)
        lo = max(int(np.searchsorted(times, starts.min(), side="left")) - 1, 0)
        hi = min(int(np.searchsorted(times, stops.max(), side="right")) + 1, times.size)
    values = np.asarray(ts.data[lo:hi], dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    order = np.argsort(times[lo:hi], kind="stable")
    times, values = times[lo:hi][order], values[order]
    out = average_samples(times, values, starts, n_bins, bin_size)
    centres = starts[:, None] + (np.arange(n_bins) + 0.5) * bin_size  # [W, T]
    for c in range(values.shape[1]):
        ok = np.isfinite(values[:, c])
        t, v = times[ok], values[ok, c]
        empty = np.isnan(out[:, :, c])
        inside = (centres >= t[0]) & (centres <= t[-1]) if t.size else np.zeros_like(empty)
        bad = empty & ~inside
        if bad.any():
            w = int(np.flatnonzero(bad.any(axis=1))[0])
            span = full if t.size else "no finite samples"
            stop = window_stops(starts[w : w + 1], n_bins, bin_size)[0]
            raise ExternalInputError(
                f"{source}: external input {path} (samples {span}) does not cover trial "
                f"{trial_ids[w]}'s window [{starts[w]:g}, {stop:g}) s; choose a --window inside "
                f"the series' time range, or leave this input out."
            )
        if empty.any():
            out[:, :, c][empty] = np.interp(centres[empty], t, v)
    return out


def event_pulses(events, starts, n_bins, bin_size, per_trial: bool) -> np.ndarray:
    """Unit pulses at event times on the windows' bins, float64 [W, T].

    Args:
        events: session seconds, float64: [W] (one per window, ``per_trial``) or [E] (every
            event, continuous mode). NaN = no event.
        starts: window starts, float64 [W].
    """
    W = starts.size
    out = np.zeros((W, n_bins))
    if per_trial:
        stops = window_stops(starts, n_bins, bin_size)
        inside = np.isfinite(events) & (events >= starts) & (events < stops)
        w = np.flatnonzero(inside)
        out[w, bin_index(events[w], starts[w], bin_size)] = 1.0
        return out
    ev = np.sort(events[np.isfinite(events)])
    counts = np.diff(np.searchsorted(ev, bin_edges(starts, n_bins, bin_size), side="left"), axis=1)
    return (counts > 0).astype(np.float64)


def trial_constant(values, trial_start, trial_stop, starts, n_bins, bin_size) -> np.ndarray:
    """Continuous mode: each bin takes the value of the trial whose [start, stop) holds its
    centre, 0 outside trials; float64 [W, T]. ``values``, ``trial_start``, ``trial_stop``: [n]."""
    order = np.argsort(trial_start, kind="stable")
    ts, te, v = trial_start[order], trial_stop[order], values[order]
    centres = starts[:, None] + (np.arange(n_bins) + 0.5) * bin_size
    i = np.searchsorted(ts, centres, side="right") - 1
    ok = (i >= 0) & (centres < te[np.maximum(i, 0)])
    return np.where(ok, v[np.maximum(i, 0)], 0.0)


def bin_external_inputs(
    nwbfile, names, starts, n_bins: int, bin_size: float, trial_ids, *, aligned: bool, source: str
) -> ExternalInputs:
    """Resolve ``names`` (see the module docstring) and put them on the windows' bins.

    Args:
        starts: window starts, session seconds, float64 [W].
        trial_ids: trials-table ids of the windows (aligned) or window indices, int [W].
        aligned: windows are trials (``align_to`` given); else continuous windows.

    Returns:
        :class:`ExternalInputs` with values float32 [W, T, X].

    Raises:
        ExternalInputError: unknown or ambiguous name, uncovered window, NaN trial value.
    """
    starts = np.asarray(starts, dtype=np.float64)
    trial_ids = np.asarray(trial_ids)
    blocks, labels, units, sources = [], [], [], []
    for name in names:
        kind, where, ts = resolve(nwbfile, name, source)
        if kind == "series":
            block = bin_series(ts, where, starts, n_bins, bin_size, trial_ids, source)
            unit = str(getattr(ts, "unit", "") or "")
            origin = where
        else:
            col = _column(nwbfile, where)
            if aligned:
                col = col[_trial_rows(nwbfile.trials, trial_ids)]
            if kind == "event":
                block = event_pulses(col, starts, n_bins, bin_size, per_trial=aligned)
                unit, origin = "pulse", f"trials/{where} (unit pulse at the event)"
            else:
                if aligned:
                    bad = ~np.isfinite(col)
                    if bad.any():
                        raise ExternalInputError(
                            f"{source}: external input {where!r} is NaN on trial "
                            f"{trial_ids[np.flatnonzero(bad)[0]]}; fill the column or leave "
                            f"those trials out (--trials)."
                        )
                    block = np.repeat(col[:, None], n_bins, axis=1)
                else:
                    block = trial_constant(
                        np.nan_to_num(col),
                        _column(nwbfile, "start_time"),
                        _column(nwbfile, "stop_time"),
                        starts,
                        n_bins,
                        bin_size,
                    )
                unit, origin = "a.u.", f"trials/{where} (constant over the trial)"
            block = block[:, :, None]
        C = block.shape[2]
        blocks.append(block)
        labels += [name] if C == 1 else [f"{name}[{c}]" for c in range(C)]
        units += [unit] * C
        sources += [origin] * C
    values = np.concatenate(blocks, axis=2).astype(np.float32)
    return ExternalInputs(values, tuple(labels), tuple(units), tuple(sources))
