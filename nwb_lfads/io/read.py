"""Read NWB sessions into trial-aligned (or continuous, windowed) spike-count tensors.

``read_session`` returns an ``xarray.Dataset`` (docs/DESIGN.md, "Reader output"):

- ``spikes``: int32 counts, dims ``("trial", "time", "unit")``;
- coords ``trial`` (trials-table ids, or window index 0..W-1 in continuous mode), ``time``
  (bin centres, seconds, relative to the event or to the window start), ``unit`` (units-table
  ids), ``align_time`` (per trial: session seconds of the event, or of the window start), one
  per-trial coordinate per scalar numeric trials column, optional unit coordinate ``heldout``;
- ``external_inputs``: float32 ``("trial", "time", "input")`` when ``external_inputs`` names
  any (:mod:`nwb_lfads.io.external`), coordinate ``input`` (one label per column), variable
  attrs ``names``, ``units``, ``sources``;
- behaviour: ``<name>`` float64 ``("trial", "time", "<name>_channel")``, the mean of the
  samples in each bin (NaN where none fall);
- attrs ``session_id``, ``identifier``, ``source``, ``bin_size``, ``align_to``, ``window``,
  ``dropped_trials``, and in continuous mode ``window_length``, ``overlap``, ``span``;
  with ``forward`` > 0 also ``forward`` (s) and ``forward_bins`` (T_f).

Forward prediction (``forward`` seconds, trial-aligned mode): the last ``forward_bins`` bins of
the time axis continue each window past ``window[1]`` (``time`` keeps counting from the event);
``window`` stays the observed window, and a trial is dropped when its window together with the
forward bins reaches outside the recording.

The session time of a bin centre is always ``align_time + time``. Bin ``k`` of a window covers
``[start + k*bin_size, start + (k+1)*bin_size)`` with ``start = event + window[0]`` (float64,
left-closed, right-open: a spike exactly on an edge goes to the later bin, one exactly at the
window's stop is outside); see :mod:`nwb_lfads.io.binning`.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import AlignmentError, NwbContentError, SelectionError, SessionMismatchError
from . import checks, tables
from .behavior import bin_timeseries, find_timeseries
from .binning import continuous_starts, count_spikes, window_stops
from .open import open_nwb, source_name

RESERVED = {"trial", "time", "unit", "align_time", "spikes", "heldout", "input", "external_inputs"}


@dataclass
class _Plan:
    """Where the windows are: everything the tensor's trial and time axes need."""

    starts: np.ndarray  # float64 [W], session seconds of each window's first edge
    align_time: np.ndarray  # float64 [W]
    trial_ids: np.ndarray  # int64 [W]
    window: tuple[float, float]
    n_bins: int
    coords: dict = field(default_factory=dict)  # per-trial coordinates, name -> [W]
    dropped: list = field(default_factory=list)
    attrs: dict = field(default_factory=dict)
    grid_origin: float | None = None  # continuous mode: windows lie on one grid from here


def _whole_bins(length: float, bin_size: float, what: str, name: str) -> int:
    """``length / bin_size`` as an int, or AlignmentError when it is not a whole number."""
    n = int(round(length / bin_size))
    if abs(n * bin_size - length) > 1e-6 * bin_size:
        raise AlignmentError(
            f"{name}: {what} of {length:g} s is not a whole number of {bin_size:g} s bins "
            f"({length / bin_size:.4f} bins). Choose a {what} that is a multiple of bin_size."
        )
    return n


def _tolerance(bin_size: float) -> float:
    return 1e-6 * bin_size


def _trial_plan(
    nwbfile, name, bin_size, align_to, window, selection, clip, include, spikes, n_forward=0
) -> _Plan:
    trials = nwbfile.trials
    if trials is None or len(trials) == 0:
        raise NwbContentError(
            f"{name}: align_to='{align_to}' needs a trials table, and the file has none (or an "
            f"empty one). "
            f"Pass align_to=None to cut the recording into continuous windows."
        )
    events = tables.event_times(trials, align_to, name)
    ids = checks.unique_ids(trials, name)
    rows = tables.select_trials(trials, ids, selection, name)
    start_time = checks.numbers(trials["start_time"].data, f"{name}: trials column 'start_time'")
    stop_time = checks.numbers(trials["stop_time"].data, f"{name}: trials column 'stop_time'")
    backwards = np.flatnonzero(stop_time < start_time)
    if backwards.size:
        raise NwbContentError(
            f"{name}: {backwards.size} trial(s) stop before they start (ids "
            f"{ids[backwards[:10]].tolist()}: stop_time < start_time). Fix the trials table."
        )
    if window is None:  # default: from the event to the end of the shortest trial
        after = (stop_time - events)[rows]
        after = after[np.isfinite(after)]
        if after.size == 0:
            raise AlignmentError(
                f"{name}: no default window: no selected trial has a finite '{align_to}'. "
                f"Choose another align_to or other trials."
            )
        n = int(math.floor(after.min() / bin_size + 1e-6))
        if n < 1:
            raise AlignmentError(
                f"{name}: no default window: the shortest time from '{align_to}' to a trial's "
                f"stop_time is under one bin. Pass window=(start, stop) in seconds."
            )
        window = (0.0, n * bin_size)
    window = (float(window[0]), float(window[1]))
    if not window[0] < window[1]:
        raise AlignmentError(
            f"{name}: window {window} starts at or after its stop. "
            f"Pass window=(start, stop) with start < stop, in seconds around the event."
        )
    n_bins = _whole_bins(window[1] - window[0], bin_size, "window length", name) + n_forward

    checks.check_tensor_size(
        float(rows.size) * n_bins * spikes.ids.size,
        name,
        f"{rows.size} trials of {n_bins} bins x {spikes.ids.size} units",
    )
    starts = events[rows] + window[0]
    stops = window_stops(starts, n_bins, bin_size)
    tol = _tolerance(bin_size)
    span = tables.observed_span(nwbfile)
    if span is None:
        first, last = spikes.span()
        span = (np.nanmin([first, np.nanmin(start_time)]), np.nanmax([last, np.nanmax(stop_time)]))
    reasons = {f"NaN {align_to}": ~np.isfinite(starts)}
    finite = np.isfinite(starts)
    outside = np.zeros_like(finite)
    outside[finite] = (starts[finite] < span[0] - tol) | (stops[finite] > span[1] + tol)
    what = "window (with its forward bins)" if n_forward else "window"
    reasons[f"{what} reaching outside the recorded span [{span[0]:g}, {span[1]:g}] s"] = outside
    if clip:
        beyond = np.zeros_like(finite)
        beyond[finite] = (starts[finite] < start_time[rows][finite] - tol) | (
            stops[finite] > stop_time[rows][finite] + tol
        )
        reasons[f"{what} reaching past the trial's start_time/stop_time (clip_to_trial=True)"] = (
            beyond & ~outside
        )
    drop = np.zeros(rows.size, dtype=bool)
    summary = []
    for why, mask in reasons.items():
        mask = mask & ~drop
        if mask.any():
            summary.append(f"{int(mask.sum())} with {why}")
        drop |= mask
    dropped = ids[rows[drop]].tolist()
    if drop.all():
        raise SelectionError(
            f"{name}: no trials left after dropping {'; '.join(summary)}. "
            f"Check align_to and window={window}."
        )
    if dropped:
        warnings.warn(
            f"{name}: dropped {len(dropped)} of {rows.size} trials ({'; '.join(summary)}); "
            f"their ids are in attrs['dropped_trials'].",
            stacklevel=3,
        )
    rows = rows[~drop]
    coords = {}
    for col, values in tables.trial_columns(trials, include).items():
        coords[f"trials_{col}" if col in RESERVED else col] = values[rows]
    return _Plan(
        starts=starts[~drop],
        align_time=events[rows],
        trial_ids=ids[rows],
        window=window,
        n_bins=n_bins,
        coords=coords,
        dropped=dropped,
    )


def _continuous_plan(
    nwbfile, name, bin_size, window, window_length, overlap, selection, spikes
) -> _Plan:
    if selection is not None or window is not None:
        raise AlignmentError(
            f"{name}: trials= and window= need align_to (a trials column). In continuous "
            f"mode (align_to=None) set window_length= and overlap= instead."
        )
    n_bins = _whole_bins(float(window_length), bin_size, "window_length", name)
    if n_bins < 1:
        raise AlignmentError(
            f"{name}: window_length={window_length} s is shorter than one bin. "
            f"Pass a window_length of at least bin_size={bin_size}."
        )
    if not 0 <= overlap < window_length:
        raise AlignmentError(
            f"{name}: overlap={overlap} s must be >= 0 and shorter than "
            f"window_length={window_length} s."
        )
    _whole_bins(float(overlap), bin_size, "overlap", name)
    span = tables.observed_span(nwbfile) or spikes.span()
    step = float(window_length) - float(overlap)
    n_windows = max(0.0, (span[1] - span[0] - float(window_length)) / step) + 2
    checks.check_tensor_size(
        n_windows * n_bins * spikes.ids.size,
        name,
        f"{n_windows:.3g} windows of {window_length:g} s over the recording from {span[0]:g} to "
        f"{span[1]:g} s",
    )
    starts = continuous_starts(span, window_length, overlap, bin_size)
    if starts.size == 0:
        raise AlignmentError(
            f"{name}: the recording spans {span[1] - span[0]:g} s ({span[0]:g} to "
            f"{span[1]:g}), shorter than one window of {window_length:g} s. "
            f"Pass a smaller window_length."
        )
    return _Plan(
        starts=starts,
        align_time=starts,
        trial_ids=np.arange(starts.size),
        n_bins=n_bins,
        grid_origin=float(span[0]),
        window=(0.0, float(window_length)),
        attrs={
            "window_length": float(window_length),
            "overlap": float(overlap),
            "span": (float(span[0]), float(span[1])),
        },
    )


def read_session(
    source,
    bin_size: float = 0.01,
    align_to: str | None = None,
    window: tuple[float, float] | None = None,
    *,
    window_length: float = 1.0,
    overlap: float = 0.2,
    trials=None,
    units=None,
    heldout: str | None = None,
    behavior: list[str] | None = None,
    clip_to_trial: bool = False,
    include_columns: list[str] | None = None,
    external_inputs: list[str] | tuple[str, ...] | None = None,
    forward: float = 0.0,
):
    """Bin one NWB session's spikes into an ``xarray.Dataset`` of counts (trial, time, unit).

    Args:
        source: a path to a local ``.nwb`` file or an open ``pynwb.NWBFile`` (anything
            :func:`nwb_lfads.io.open.open_nwb` accepts).
        bin_size: seconds, > 0.
        align_to: a numeric trials column (e.g. ``"move_onset_time"``, ``"start_time"``) for
            trial-aligned windows; None for continuous mode.
        window: (start, stop) seconds around the event, a whole number of bins. Default:
            (0, the shortest time from the event to a selected trial's ``stop_time``, rounded down
            to whole bins). Windows may reach past a trial's own start/stop (NLB convention).
        window_length, overlap: continuous mode: windows of ``window_length`` s, consecutive
            ones overlapping by ``overlap`` s (whole numbers of bins), over the span the units
            were observed (hull of ``obs_intervals``, else first to last spike); the last window
            is moved back to end within a bin of the span's end.
        trials: ``{column: value or [values]}`` or a list of trial ids.
        units: a list of unit ids, or the name of a boolean units column (``"~heldout"``: the
            units where that column is False).
        heldout: a boolean units column (NLB ``heldout``) kept as unit coordinate ``heldout``.
        behavior: TimeSeries names (anywhere in the file) averaged onto the bins.
        clip_to_trial: drop (and report) trials whose window reaches past their own
            ``start_time``/``stop_time`` instead of counting neighbouring trials' spikes.
        include_columns: string or ragged trials columns to keep as coordinates too.
        external_inputs: names of known inputs (TimeSeries, trials event or numeric columns)
            put on the bins as variable ``external_inputs`` (:mod:`nwb_lfads.io.external`).
        forward: seconds (a whole number of bins, >= 0) binned after each window for forward
            prediction: the time axis gets ``forward / bin_size`` more bins (attrs ``forward``,
            ``forward_bins``); trial-aligned mode only.

    Returns:
        ``xarray.Dataset`` with ``spikes`` int32 [trial, time, unit]; see the module docstring.
        Trials with a NaN event time or a window outside the recorded span (``obs_intervals``
        hull, else the hull of the spikes and the trials) are dropped, listed in
        ``attrs["dropped_trials"]`` and reported in a warning. Spike times outside the recording
        (:func:`nwb_lfads.io.checks.recording_bounds`) and units without a spike in any window
        are kept and reported in one warning line each.
    """
    import xarray as xr

    name = source_name(source)
    if not (isinstance(bin_size, (int, float, np.floating, np.integer)) and bin_size > 0):
        raise AlignmentError(
            f"{name}: bin_size={bin_size!r} must be a positive number of seconds, e.g. 0.01."
        )
    bin_size = float(bin_size)
    with open_nwb(source) as nwbfile:
        spikes = tables.read_spike_trains(nwbfile, name)
        if spikes.times.size == 0:
            raise NwbContentError(
                f"{name}: the units table holds no spike times at all. "
                f"Add the sorted spike times of each unit."
            )
        checks.warn_outside_recording(spikes, checks.recording_bounds(nwbfile), name)
        positions = tables.select_units(nwbfile, spikes.ids, units, name)
        if not (isinstance(forward, (int, float, np.floating, np.integer)) and forward >= 0):
            raise AlignmentError(
                f"{name}: forward={forward!r} must be seconds >= 0 after each window, e.g. 0.2."
            )
        n_forward = _whole_bins(float(forward), bin_size, "forward period", name) if forward else 0
        if n_forward and align_to is None:
            raise AlignmentError(
                f"{name}: forward={forward:g} needs align_to (a trials column): forward "
                f"prediction continues each trial's window. Pass align_to= or forward=0."
            )
        if align_to is None:
            plan = _continuous_plan(
                nwbfile, name, bin_size, window, window_length, overlap, trials, spikes
            )
        else:
            plan = _trial_plan(
                nwbfile,
                name,
                bin_size,
                align_to,
                window,
                trials,
                clip_to_trial,
                include_columns,
                spikes,
                n_forward,
            )
        counts = count_spikes(
            spikes.times,
            spikes.bounds,
            plan.starts,
            plan.n_bins,
            bin_size,
            positions,
            grid_origin=plan.grid_origin,
        )
        checks.warn_silent_units(counts, spikes.ids[positions], name)
        time = plan.window[0] + (np.arange(plan.n_bins) + 0.5) * bin_size
        data_vars = {"spikes": (("trial", "time", "unit"), counts)}
        for series in behavior or []:
            ts = find_timeseries(nwbfile, series, name)
            data_vars[series] = (
                ("trial", "time", f"{series}_channel"),
                bin_timeseries(ts, plan.starts, plan.n_bins, bin_size, name),
            )
        if external_inputs:
            from .external import bin_external_inputs

            ext = bin_external_inputs(
                nwbfile,
                list(external_inputs),
                plan.starts,
                plan.n_bins,
                bin_size,
                plan.trial_ids,
                aligned=align_to is not None,
                source=name,
            )
            data_vars["external_inputs"] = (
                ("trial", "time", "input"),
                ext.values,
                {
                    "names": list(external_inputs),
                    "units": list(ext.units),
                    "sources": list(ext.sources),
                },
            )
        coords = {
            "trial": plan.trial_ids,
            "time": time,
            "unit": spikes.ids[positions],
            "align_time": ("trial", plan.align_time),
        }
        if external_inputs:
            coords["input"] = list(ext.labels)
        coords.update({k: ("trial", v) for k, v in plan.coords.items() if k not in data_vars})
        if heldout is not None:
            coords["heldout"] = ("unit", tables.heldout_flags(nwbfile, heldout, positions, name))
        attrs = {
            "session_id": nwbfile.session_id or nwbfile.identifier or _stem(source),
            "identifier": nwbfile.identifier,
            "source": name,
            "bin_size": bin_size,
            "align_to": align_to,
            "window": plan.window,
            "dropped_trials": plan.dropped,
            **plan.attrs,
        }
        if n_forward:
            attrs.update(forward=float(forward), forward_bins=n_forward)
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def _stem(source) -> str:
    return Path(str(source)).name.split(".")[0]


def merge_windows(array, ds):
    """Average overlapping windows back onto one time axis of session time.

    Every bin's centre in session time is ``align_time + time``; bins of different windows with
    the same centre (to within 1e-6 of a bin) are averaged, ignoring NaN. In continuous mode the
    result is one regular grid of ``bin_size`` from the first window's start to the last's
    stop; for trial-aligned data, the centres of all trials, strictly increasing.

    Args:
        array: values per window and bin, shape [W, T, ...] matching ``ds``'s ``trial`` and
            ``time``: an ``xarray.DataArray`` with dims ``("trial", "time", ...)`` or an ndarray
            (a 3-D one whose last axis matches ``ds.unit`` gets dim ``unit`` and its coordinate).
        ds: the dataset ``read_session`` returned.

    Returns:
        ``xarray.DataArray`` dims ``("time", ...rest)``, float (the input's float dtype, else
        float64), coordinate ``time`` = bin centres in session seconds, increasing.
    """
    import xarray as xr

    if isinstance(array, xr.DataArray):
        missing = {"trial", "time"} - set(array.dims)
        if missing:
            raise SelectionError(
                f"merge_windows: array lacks dims {sorted(missing)} (dims {array.dims}); "
                f"pass a DataArray with dims ('trial', 'time', ...)."
            )
        array = array.transpose("trial", "time", ...)
        rest_dims = array.dims[2:]
        rest_coords = {k: v for k, v in array.coords.items() if set(v.dims) <= set(rest_dims)}
        values = array.values
    else:
        values = np.asarray(array)
        rest_dims = tuple(f"dim_{i}" for i in range(2, values.ndim))
        rest_coords = {}
        if values.ndim == 3 and "unit" in ds.sizes and values.shape[2] == ds.sizes["unit"]:
            rest_dims, rest_coords = ("unit",), {"unit": ds["unit"].values}
    n_win, n_bins = ds.sizes["trial"], ds.sizes["time"]
    if values.shape[:2] != (n_win, n_bins):
        raise SelectionError(
            f"merge_windows: array has shape {values.shape}, expected ({n_win}, {n_bins}, ...) "
            f"to match the dataset's trial and time axes."
        )
    centres = (ds["align_time"].values[:, None] + ds["time"].values[None, :]).ravel()
    flat = values.reshape(n_win * n_bins, -1)
    dtype = values.dtype if values.dtype.kind == "f" else np.float64
    order = np.argsort(centres, kind="stable")
    centres, flat = centres[order], flat[order].astype(np.float64)
    new = np.concatenate([[True], np.diff(centres) > 1e-6 * float(ds.attrs["bin_size"])])
    first = np.flatnonzero(new)
    finite = np.isfinite(flat)
    total = np.add.reduceat(np.where(finite, flat, 0.0), first, axis=0)
    n = np.add.reduceat(finite, first, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, total / np.maximum(n, 1), np.nan)
    mean = mean.reshape((first.size,) + values.shape[2:]).astype(dtype)
    return xr.DataArray(
        mean,
        dims=("time",) + tuple(rest_dims),
        coords={"time": centres[first], **rest_coords},
        attrs={"bin_size": ds.attrs["bin_size"], "session_id": ds.attrs.get("session_id")},
    )


def read_sessions(sources, **kwargs) -> list:
    """``read_session`` for several files with the same options, checked to fit together.

    Returns:
        list of ``xarray.Dataset``, one per source, in order.

    Raises:
        SessionMismatchError: a file given twice (same resolved path or same NWB identifier),
            or sessions that ended with different bin sizes or windows (e.g. default windows).
    """
    sources = list(sources)
    seen = {}
    for src in sources:
        if isinstance(src, (str, os.PathLike)) and Path(src).exists():
            key = Path(src).resolve()
            if key in seen:
                raise SessionMismatchError(
                    f"{src}: the same file as {seen[key]}; each session may be given "
                    f"once. Remove the duplicate from the sources."
                )
            seen[key] = src
    datasets, identifiers = [], {}
    for src in sources:
        ds = read_session(src, **kwargs)
        ident = ds.attrs["identifier"]
        if ident in identifiers:
            raise SessionMismatchError(
                f"{ds.attrs['source']}: same NWB identifier '{ident}' as "
                f"{identifiers[ident]}, so the same session twice. Remove one of them."
            )
        identifiers[ident] = ds.attrs["source"]
        datasets.append(ds)
    ref = datasets[0].attrs if datasets else {}
    for ds in datasets[1:]:
        for key in ("bin_size", "window"):
            if not np.allclose(ds.attrs[key], ref[key], rtol=0, atol=1e-9):
                raise SessionMismatchError(
                    f"{ds.attrs['source']}: {key}={ds.attrs[key]} differs from "
                    f"{ref['source']} ({ref[key]}). Sessions trained together need one "
                    f"bin size and window: pass bin_size= and window= explicitly."
                )
    return datasets


def reader_options(data_cfg) -> dict:
    """``read_session`` keyword arguments from a ``DataConfig``."""
    opts = {
        "bin_size": data_cfg.bin_size,
        "align_to": data_cfg.align_to,
        "window": data_cfg.window,
        "heldout": data_cfg.heldout_units,
    }
    if data_cfg.external_inputs:
        opts["external_inputs"] = list(data_cfg.external_inputs)
    if data_cfg.forward:
        opts["forward"] = data_cfg.forward
    if data_cfg.align_to is None:
        opts.update(window_length=data_cfg.window_length, overlap=data_cfg.overlap)
    elif data_cfg.eval_selector is not None:  # text columns (NLB's split) are read when asked
        opts["include_columns"] = [data_cfg.eval_selector.column]
    return opts
