"""Write LFADS results into a copy of an NWB file, as ``processing/lfads``.

The input is opened read-only, ``processing/lfads`` is added in memory, and the whole file is
written with ``NWBHDF5IO.export`` to a hidden temporary file beside the target
(``.<name>.tmp-<pid>.nwb``), given a fresh ``identifier`` (uuid4) and fresh object ids, re-opened
with pynwb as a check, and only then renamed onto the target with ``os.replace`` (atomic on one
file system). On any failure the temporary file is removed and the target is untouched; a full
disk (which HDF5 reports as a ``RuntimeError``) is raised as ``OSError`` naming the target, and
is checked before writing (:func:`check_free_space`): HDF5 can abort the whole process when
the disk fills in the middle of a copy.

What goes into ``processing/lfads`` (docs/DESIGN.md, "NWB layout"):

- ``rates``: ``TimeSeries``, unit ``Hz``, float32, shape ``(n_samples, n_units)``; column ``j`` is
  row ``j`` of the units table; units absent from the results are NaN columns.
- ``factors``: ``TimeSeries``, unit ``a.u.``, float32, ``(n_samples, n_factors)``.
- ``inferred_inputs``: ``TimeSeries``, unit ``a.u.``, float32, ``(n_samples, n_inputs)``, when
  the results hold them.
- ``generator_states``, ``controller_states``: ``TimeSeries``, unit ``a.u.``, float32,
  ``(n_samples, gen_dim)`` and ``(n_samples, con_dim)``, when the results hold them
  (``--write-states``); same time base as ``factors``.
- ``initial_conditions``: a ``DynamicTable``, one row per trial (per window in continuous
  mode), when the results hold ``ic_mean``, ``ic_sd`` and ``g0``
  (:mod:`nwb_lfads.io.initial_conditions`).
- ``fitted_windows``: a ``TimeIntervals``, the intervals where the series have samples (one
  per trial; per run of contiguous bins in continuous mode), for tools such as pynapple that
  take a series' time support from its first to its last sample
  (:mod:`nwb_lfads.io.windows`).
- ``provenance``: a ``DynamicTable`` with two text columns ``key`` and ``value``, one row per
  flattened setting (``config.model.gen_dim`` -> ``64``), the package version and final metrics.
  Text rows rather than one JSON blob: nwbinspector flags dictionaries stored in table cells, and
  Neurosift shows a key/value table as is. The module description repeats it as JSON.

Time axis. Samples are bin centres in session time (``align_time + time``; docs/DESIGN.md, "Bin edges").

- Trial-aligned results (``attrs["align_to"]`` set) become one series with ``timestamps``: the
  trials in order of their event time, concatenated, with gaps between trials. **Overlap rule**:
  when a trial's window runs into the next trial's window, the earlier trial's bins whose centre
  falls at or after the next trial's first bin centre are dropped (the later trial is kept
  whole), so timestamps strictly increase; a ``UserWarning`` gives the count. If the kept
  timestamps happen to be regular (trials tiling time), ``starting_time`` and ``rate`` are
  written instead, as nwbinspector asks.
- Continuous-mode results (``align_to`` None; windows whose ``align_time`` is the window start)
  are merged with the reader's ``merge_windows`` (bins of overlapping windows with the same
  centre are averaged) onto one regular grid, written as ``starting_time`` (first bin centre)
  and ``rate`` (1 / bin size); should the windows leave gaps, ``timestamps`` are written.

HDF5 filters. Every array of ``processing/lfads`` goes through ``filters.compressed``: gzip
alone, no ``shuffle``, which Neurosift undoes wrongly (``nwb_lfads.io.filters``).
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

from ..errors import NwbContentError, NwbLfadsError, ResultsFormatError, SessionMismatchError
from .filters import compressed
from .initial_conditions import has_initial_conditions, initial_conditions_table
from .open import check_nwb_path
from .provenance import module_description, provenance_rows, provenance_table
from .windows import fitted_windows_table, run_intervals, trial_intervals

MODULE_NAME = "lfads"
SERIES = (
    ("rates", "Hz"),
    ("factors", "a.u."),
    ("inferred_inputs", "a.u."),
    ("generator_states", "a.u."),
    ("controller_states", "a.u."),
)


def write_results(
    source, results, out_path=None, *, provenance: dict | None = None, in_place: bool = False
) -> Path:
    """Write ``results`` into a copy of ``source`` with ``processing/lfads`` added.

    Args:
        source: local path of the input NWB file; never modified unless ``in_place``.
        results: ``xarray.Dataset`` as made by ``nwb_lfads.infer`` (docs/DESIGN.md, "Results"): ``rates``
            float32 Hz ``(trial, time, unit)``, ``factors`` ``(trial, time, factor)``, optional
            ``inferred_inputs`` ``(trial, time, input)``, optional ``generator_states`` and
            ``controller_states`` ``(trial, time, <dim>)``, optional ``ic_mean``, ``ic_sd``
            ``(trial, ic_dim)`` and ``g0`` ``(trial, gen_dim)``; coords ``time`` (s, bin centres
            relative to the event or window start), ``unit`` (units-table ids), ``align_time``
            (s, per trial); attrs ``bin_size`` (s), ``align_to`` (None in continuous mode).
        out_path: the file to create or replace (its folder is created); must differ from
            ``source``. With ``in_place``, None or the source path itself.
        provenance: nested dict (e.g. ``{"config": {...}, "metrics": {...}}``; dataclasses are
            accepted) stored in the ``provenance`` table and the module description.
        in_place: replace ``source`` itself, atomically, once the new file re-opens in pynwb.

    Returns:
        The path written.

    Raises:
        InputFileError: ``source`` is missing or not NWB.
        NwbContentError: ``source`` already has ``processing/lfads`` or has no units table.
        SessionMismatchError: ``results`` name units that the units table does not hold.
        ResultsFormatError: ``results`` lacks what docs/DESIGN.md ("Results") requires.
    """
    import pynwb

    src = check_nwb_path(source).resolve()
    target = _target_path(src, out_path, in_place)
    _check_results(results, src)
    target.parent.mkdir(parents=True, exist_ok=True)
    check_free_space(src, results, target)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}.nwb"
    try:
        with pynwb.NWBHDF5IO(str(src), mode="r", load_namespaces=True) as io:
            nwbfile = io.read()
            if MODULE_NAME in nwbfile.processing:
                raise NwbContentError(
                    f"{src}: already has processing/{MODULE_NAME} (an enriched nwb-lfads output?). "
                    f"Pass the original input file, not a '.lfads.nwb' copy."
                )
            module = build_lfads_module(
                nwbfile, results, provenance=provenance, source_name=src.name
            )
            nwbfile.add_processing_module(module)
            nwbfile.generate_new_id()  # fresh object ids for every container of the copy
            with pynwb.NWBHDF5IO(str(tmp), mode="w") as out_io:
                out_io.export(src_io=io, nwbfile=nwbfile)
        _set_identifier(tmp, str(uuid.uuid4()))
        _check_written(tmp, target)
        if in_place:
            os.chmod(tmp, os.stat(src).st_mode & 0o7777)
        os.replace(tmp, target)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        os_error = as_os_error(exc, target)
        if os_error is not None:
            raise os_error from exc
        raise
    return target


def check_free_space(src: Path, results, target: Path) -> None:
    """Refuse to start a write that cannot fit: HDF5 may abort the process (a native double
    free) when the disk fills in the middle of copying a file, so a full disk is told before.

    Needs about the input's size plus the results' arrays uncompressed, plus 10 % and 1 MiB
    for HDF5's own structures (bytes).

    Raises:
        OSError: ENOSPC naming ``target``, with the bytes needed and free.
    """
    import errno
    import shutil

    data = src.stat().st_size + sum(int(v.nbytes) for v in results.data_vars.values())
    need = int(1.1 * data) + 2**20
    free = shutil.disk_usage(target.parent).free
    if free < need:
        raise OSError(
            errno.ENOSPC,
            f"No space left on device (writing it needs about {need / 1e6:.1f} MB, "
            f"{free / 1e6:.1f} MB are free)",
            str(target),
        )


def as_os_error(exc: BaseException, path) -> OSError | None:
    """The operating-system error behind a failed HDF5 write, as an ``OSError`` naming ``path``.

    HDF5 reports a full disk or a lost file as a ``RuntimeError`` (or an ``OSError`` without
    ``errno``) whose text carries ``errno = N``; this finds it in ``exc`` or the exceptions it
    was raised from, so the CLI prints one line (exit 1) instead of a traceback. None when
    there is no such errno (a real bug keeps its traceback).
    """
    import re

    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno:
            return OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(path))
        if isinstance(exc, (RuntimeError, OSError)):
            found = re.search(r"errno = (\d+)", str(exc))
            if found and int(found.group(1)) > 0:
                code = int(found.group(1))
                return OSError(code, os.strerror(code), str(path))
        exc = exc.__cause__ or exc.__context__
    return None


def _target_path(src: Path, out_path, in_place: bool) -> Path:
    if in_place:
        if out_path is not None and Path(out_path).expanduser().resolve() != src:
            raise NwbLfadsError(
                f"{src}: in_place=True writes into the source itself, but out_path "
                f"is {out_path}. Pass out_path=None (or the source path), or in_place=False."
            )
        if not os.access(src, os.W_OK) or not os.access(src.parent, os.W_OK):
            raise NwbLfadsError(
                f"{src}: cannot be replaced in place (file or folder not writable). "
                f"Write a new file with out_path instead."
            )
        return src
    if out_path is None:
        raise NwbLfadsError(
            f"{src}: no out_path given. Pass the output file (e.g. RUN_DIR/"
            f"{src.stem}.lfads.nwb) or in_place=True."
        )
    target = Path(out_path).expanduser().resolve()
    if target == src:
        raise NwbLfadsError(
            f"{src}: out_path is the input file itself. Choose another out_path, "
            f"or pass in_place=True to replace the input."
        )
    if target.is_dir():
        raise NwbLfadsError(
            f"{target}: out_path is a folder; pass a file name such as "
            f"{target / (src.stem + '.lfads.nwb')}."
        )
    return target


def _check_results(results, src: Path) -> None:
    import xarray as xr

    if not isinstance(results, xr.Dataset):
        raise ResultsFormatError(
            f"results for {src}: expected an xarray.Dataset from nwb_lfads.infer, "
            f"got {type(results).__name__}."
        )
    for name in ("rates", "factors"):
        if name not in results:
            raise ResultsFormatError(
                f"results for {src}: no '{name}' variable (found: "
                f"{sorted(results.data_vars)}). Pass the Dataset returned by infer()."
            )
        if results[name].dims[:2] != ("trial", "time") or results[name].ndim != 3:
            raise ResultsFormatError(
                f"results for {src}: '{name}' has dims {results[name].dims}; "
                f"expected ('trial', 'time', <channel>)."
            )
    if results["rates"].dims[2] != "unit":
        raise ResultsFormatError(
            f"results for {src}: 'rates' dims {results['rates'].dims}, expected "
            f"('trial', 'time', 'unit')."
        )
    for coord in ("time", "unit", "align_time"):
        if coord not in results.coords:
            raise ResultsFormatError(
                f"results for {src}: no '{coord}' coordinate "
                f"(found: {sorted(results.coords)}). Pass the Dataset that nwb_lfads.infer returned."
            )
    align = np.asarray(results["align_time"].values, dtype=float)
    if align.shape != (results.sizes["trial"],) or not np.all(np.isfinite(align)):
        raise ResultsFormatError(
            f"results for {src}: 'align_time' must be one finite session time "
            f"per trial, got shape {align.shape} with non-finite values."
        )
    time = np.asarray(results["time"].values, dtype=float)
    if time.size == 0 or results.sizes["trial"] == 0 or np.any(np.diff(time) <= 0):
        raise ResultsFormatError(
            f"results for {src}: need at least one trial and a strictly "
            f"increasing 'time' coordinate."
        )


def build_lfads_module(nwbfile, results, *, provenance: dict | None = None, source_name: str = ""):
    """Return the ``processing/lfads`` ``ProcessingModule`` for ``results`` (not yet added).

    Args:
        nwbfile: the open ``pynwb.NWBFile`` the results belong to (its units table fixes the
            column order of ``rates``).
        results: results ``xarray.Dataset`` (see :func:`write_results`).
        provenance: nested dict stored in the ``provenance`` table.
        source_name: file name shown in descriptions.
    """
    from pynwb import ProcessingModule, TimeSeries

    bin_size = _bin_size(results)
    align_to = results.attrs.get("align_to")
    table_ids = _units_table_ids(nwbfile, source_name)
    columns, missing = unit_columns(np.asarray(results["unit"].values), table_ids, source_name)
    time = np.asarray(results["time"].values, dtype=np.float64)
    align = np.asarray(results["align_time"].values, dtype=np.float64)

    if align_to is None:
        from .read import merge_windows

        with_bin = results.assign_attrs(bin_size=bin_size)
        merged = {
            name: merge_windows(results[name], with_bin)
            for name, _ in SERIES
            if name in results and results[name].size
        }
        stamps = np.asarray(merged["rates"]["time"].values, dtype=np.float64)
        data = {name: np.asarray(m.values, dtype=np.float32) for name, m in merged.items()}
        timing = _timing(stamps, bin_size)
        windows = fitted_windows_table(*run_intervals(stamps, bin_size))
        grid = (
            "one regular grid"
            if "rate" in timing
            else "one time axis (with gaps where no window reaches)"
        )
        layout = (
            f"Continuous mode: {len(align)} overlapping windows of {len(time) * bin_size:g} s "
            f"merged onto {grid}; where windows overlap, their values for the same bin are "
            f"averaged (nwb_lfads.io.read.merge_windows)."
        )
    else:
        order, keep, n_dropped = trial_timeline(align, time, bin_size)
        stamps = (align[order][:, None] + time[None, :])[keep]
        start, stop, rows = trial_intervals(align, time, bin_size, order, keep)
        trial_ids = np.asarray(results["trial"].values)[order][rows]
        windows = fitted_windows_table(start, stop, trial_ids)
        data = {
            name: np.asarray(results[name].values, dtype=np.float32)[order][keep]
            for name, _ in SERIES
            if name in results and results[name].size
        }
        window = results.attrs.get("window", (time[0] - bin_size / 2, time[-1] + bin_size / 2))
        layout = (
            f"Trial-aligned to '{align_to}', window [{window[0]:g}, {window[1]:g}] s around it: "
            f"samples exist only inside the {len(align)} trial windows, concatenated in order "
            f"of the event time (gaps between trials)."
        )
        if n_dropped:
            layout += (
                f" {n_dropped} bins of earlier trials whose windows overlapped the next trial's "
                f"were dropped (the later trial is kept whole)."
            )
            warnings.warn(
                f"{source_name}: {n_dropped} bins dropped where consecutive trial windows "
                f"overlap (the earlier trial's bins at or after the next trial's first bin).",
                UserWarning,
                stacklevel=3,
            )
        timing = _timing(stamps, bin_size)

    rates = np.full((data["rates"].shape[0], len(table_ids)), np.nan, dtype=np.float32)
    rates[:, columns] = data["rates"]
    data["rates"] = rates
    common = (
        f"Each sample is the centre of a {bin_size * 1e3:g} ms bin; times are session time in "
        f"seconds. {layout}"
    )
    miss = ""
    if missing.size:
        shown = ", ".join(str(u) for u in missing[:20]) + (" ..." if missing.size > 20 else "")
        miss = f" {missing.size} units absent from the results are NaN columns (ids {shown})."
    descriptions = {
        "rates": (
            f"LFADS inferred firing rates (posterior mean) in Hz, float32, shape (n_samples, "
            f"n_units) = {rates.shape}. Column j is row j of the units table (/units; ids in "
            f"table order).{miss} {common}"
        ),
        "factors": f"LFADS latent factors (posterior mean, arbitrary units), shape (n_samples, n_factors). {common}",
        "inferred_inputs": (
            f"LFADS inferred inputs from the controller (posterior mean, arbitrary "
            f"units), shape (n_samples, n_inputs). {common}"
        ),
        "generator_states": (
            f"LFADS generator GRU states (posterior mean, arbitrary units), shape (n_samples, "
            f"gen_dim); the factors are a linear map of them. {common}"
        ),
        "controller_states": (
            f"LFADS controller GRU states (posterior mean, arbitrary units), shape (n_samples, "
            f"con_dim); the inferred inputs are read from them. {common}"
        ),
    }
    prov = provenance_rows(results, provenance, source_name)
    table = (
        initial_conditions_table(results, bin_size, source_name)
        if has_initial_conditions(results)
        else None
    )
    contents = list(data) + [windows.name] + ([table.name] if table is not None else [])
    module = ProcessingModule(name=MODULE_NAME, description=module_description(prov, contents))
    for name, unit in SERIES:
        if name not in data:
            continue
        kwargs = dict(timing)
        if "timestamps" in kwargs:
            kwargs["timestamps"] = compressed(kwargs["timestamps"])
        module.add(
            TimeSeries(
                name=name,
                data=compressed(data[name]),
                unit=unit,
                description=descriptions[name],
                **kwargs,
            )
        )
    module.add(windows)
    if table is not None:
        module.add(table)
    module.add(provenance_table(prov))
    return module


def _bin_size(results) -> float:
    bin_size = results.attrs.get("bin_size")
    if bin_size is None:
        time = np.asarray(results["time"].values, dtype=float)
        if time.size < 2:
            raise ResultsFormatError(
                "results: no 'bin_size' attribute and fewer than 2 time bins to infer it."
            )
        bin_size = float(np.median(np.diff(time)))
    bin_size = float(bin_size)
    if not bin_size > 0:
        raise ResultsFormatError(f"results: bin_size must be positive seconds, got {bin_size}.")
    return bin_size


def _units_table_ids(nwbfile, source_name: str) -> np.ndarray:
    if nwbfile.units is None:
        raise NwbContentError(
            f"{source_name}: no units table, so rates have no columns to map onto. "
            f"Pass the NWB file the results were inferred from."
        )
    return np.asarray(nwbfile.units.id[:])


def unit_columns(
    result_ids: np.ndarray, table_ids: np.ndarray, source_name: str = ""
) -> tuple[np.ndarray, np.ndarray]:
    """Map results' unit ids onto units-table rows.

    Args:
        result_ids: int ids, shape [N_results], the ``unit`` coordinate of the results.
        table_ids: int ids, shape [N_table], the units table's ``id`` column in row order.

    Returns:
        ``(columns, missing)``: int row index of each result unit, shape [N_results], and the
        table ids absent from the results, shape [N_missing], in table order.

    Raises:
        SessionMismatchError: a result id is not in the table, or appears twice.
    """
    row_of = {int(u): i for i, u in enumerate(table_ids)}
    unknown = [int(u) for u in result_ids if int(u) not in row_of]
    if unknown:
        raise SessionMismatchError(
            f"{source_name}: the results hold units {unknown[:10]} that the units table does not have "
            f"(table ids: {[int(u) for u in table_ids[:10]]}{' ...' if len(table_ids) > 10 else ''}). "
            f"Write the results into the file they were inferred from."
        )
    if len(set(int(u) for u in result_ids)) != len(result_ids):
        raise SessionMismatchError(f"{source_name}: the results' unit ids are not unique.")
    columns = np.array([row_of[int(u)] for u in result_ids], dtype=np.int64)
    present = np.zeros(len(table_ids), dtype=bool)
    present[columns] = True
    return columns, np.asarray(table_ids)[~present]


def trial_timeline(
    align_time: np.ndarray, time: np.ndarray, bin_size: float
) -> tuple[np.ndarray, np.ndarray, int]:
    """Order trials by event time and decide which bins to keep (the overlap rule).

    Args:
        align_time: float64 session time (s) of each trial's event, shape [B].
        time: float64 bin centres (s) relative to the event, strictly increasing, shape [T].
        bin_size: seconds.

    Returns:
        ``(order, keep, n_dropped)``: trial order (int, shape [B]); ``keep`` bool shape [B, T]
        over the reordered trials; the number of dropped bins. A bin of trial ``i`` is kept
        when its centre is before the first bin centre of trial ``i + 1`` (less a thousandth of
        a bin), so the kept centres ``align_time[order][:, None] + time`` strictly increase.
    """
    order = np.argsort(align_time, kind="stable")
    centres = align_time[order][:, None] + time[None, :]
    cut = np.append(centres[1:, 0], np.inf)
    keep = centres < (cut - 1e-3 * bin_size)[:, None]
    return order, keep, int(keep.size - keep.sum())


def _timing(stamps: np.ndarray, bin_size: float) -> dict:
    """``timestamps``, or ``starting_time``/``rate`` when they are regular at ``bin_size``."""
    steps = np.diff(stamps)
    if steps.size and np.max(np.abs(steps - bin_size)) < 1e-3 * bin_size:
        return {"starting_time": float(stamps[0]), "rate": 1.0 / bin_size}
    return {"timestamps": np.asarray(stamps, dtype=np.float64)}


def _set_identifier(path: Path, identifier: str) -> None:
    """Give the exported copy its own NWB ``identifier`` (pynwb makes it read-only in memory)."""
    import h5py

    with h5py.File(path, "r+") as f:
        f["identifier"][()] = identifier


def _check_written(tmp: Path, target: Path) -> None:
    """Re-open the temporary file in pynwb and check ``processing/lfads/rates`` is there."""
    import pynwb

    from ..errors import NwbLfadsRuntimeError

    try:
        with pynwb.NWBHDF5IO(str(tmp), mode="r", load_namespaces=True) as io:
            nwbfile = io.read()
            rates = nwbfile.processing[MODULE_NAME]["rates"]
            if rates.data.shape[1] != len(nwbfile.units.id):
                raise ValueError(
                    f"rates has {rates.data.shape[1]} columns for {len(nwbfile.units.id)} units"
                )
    except Exception as exc:
        raise NwbLfadsRuntimeError(
            f"{target}: the new file does not re-open cleanly in pynwb "
            f"({type(exc).__name__}: {exc}); nothing was written."
        ) from exc


def new_inspector_findings(
    input_path, output_path, importance: str = "BEST_PRACTICE_VIOLATION"
) -> list:
    """nwbinspector messages at ``importance`` or above found in the output but not the input.

    Messages are matched on (importance, check, object type, object name, location, message),
    counting repeats, so a finding the input already had is not reported again.

    Returns:
        list of ``nwbinspector.InspectorMessage``, empty when the output adds nothing.
    """
    from nwbinspector import Importance, inspect_nwbfile

    threshold = Importance[importance] if isinstance(importance, str) else importance

    def key(m):
        return (
            m.importance.name,
            m.check_function_name,
            m.object_type,
            m.object_name,
            m.location,
            m.message,
        )

    before = Counter(
        key(m)
        for m in inspect_nwbfile(nwbfile_path=str(input_path), importance_threshold=threshold)
        if m is not None
    )
    new = []
    for m in inspect_nwbfile(nwbfile_path=str(output_path), importance_threshold=threshold):
        if m is None:
            continue
        if before[key(m)] > 0:
            before[key(m)] -= 1
        else:
            new.append(m)
    return new
