"""The ``initial_conditions`` table of ``processing/lfads``: one row per trial (or window).

LFADS infers, for each trial, a Gaussian posterior over the initial condition (``ic_dim``
values) and from it g0, the generator's initial state (``gen_dim`` values): the model's
summary of how a trial starts, where condition structure shows first. The table holds them
aligned to the trials table (docs/DESIGN.md, "NWB layout"):

- trial-aligned results: ``trial_id`` (int, the trials table's ``id`` of the row), then
  ``ic_mean`` and ``ic_sd`` float32 ``(n_rows, ic_dim)`` and ``g0`` float32
  ``(n_rows, gen_dim)``: fixed-width vectors per row (2-D columns, not ragged);
- continuous-mode results (windows of continuous time, no trials): ``start_time`` and
  ``stop_time`` (float64, session seconds: the window's first bin's left edge and last bin's
  right edge) instead of ``trial_id``.

Rows follow the results' trial order. Every dataset is written with
:func:`nwb_lfads.io.filters.compressed` (gzip, no shuffle).
"""

from __future__ import annotations

import numpy as np

from ..errors import ResultsFormatError
from .filters import compressed

TABLE_NAME = "initial_conditions"
COLUMNS = ("ic_mean", "ic_sd", "g0")


def has_initial_conditions(results) -> bool:
    """True when ``results`` holds ``ic_mean``, ``ic_sd`` and ``g0`` (what ``infer`` returns)."""
    return all(name in results for name in COLUMNS)


def initial_conditions_table(results, bin_size: float, source_name: str = ""):
    """Build the ``initial_conditions`` ``DynamicTable`` (not yet added to a module).

    Args:
        results: results ``xarray.Dataset`` (docs/DESIGN.md, "Results") with ``ic_mean`` and
            ``ic_sd`` float32 ``(trial, ic_dim)``, ``g0`` float32 ``(trial, gen_dim)``, the
            ``trial`` coordinate (trials-table ids, or window indices in continuous mode),
            ``align_time`` (s) and ``time`` (s, bin centres); attr ``align_to`` (None in
            continuous mode).
        bin_size: seconds per bin.
        source_name: file name used in error messages.

    Returns:
        ``hdmf.common.DynamicTable`` named ``initial_conditions`` with one row per trial.

    Raises:
        ResultsFormatError: a column is not 2-D with one row per trial.
    """
    from hdmf.common import DynamicTable, ElementIdentifiers, VectorData

    n = results.sizes["trial"]
    arrays = {}
    for name in COLUMNS:
        values = np.asarray(results[name].values, dtype=np.float32)
        if values.ndim != 2 or values.shape[0] != n or results[name].dims[0] != "trial":
            raise ResultsFormatError(
                f"results for {source_name}: '{name}' has dims {results[name].dims} and shape "
                f"{values.shape}; expected ('trial', <dim>) with {n} rows."
            )
        arrays[name] = values
    ic_dim, gen_dim = arrays["ic_mean"].shape[1], arrays["g0"].shape[1]
    columns = []
    if results.attrs.get("align_to") is None:
        time = np.asarray(results["time"].values, dtype=np.float64)
        align = np.asarray(results["align_time"].values, dtype=np.float64)
        start = align + time[0] - bin_size / 2
        stop = align + time[-1] + bin_size / 2
        rows = "one row per window of continuous time (the session has no trials here)"
        columns += [
            VectorData(
                name="start_time",
                description="session time (s) of the window's start (its first bin's left edge)",
                data=compressed(start),
            ),
            VectorData(
                name="stop_time",
                description="session time (s) of the window's end (its last bin's right edge)",
                data=compressed(stop),
            ),
        ]
    else:
        rows = "one row per trial, in the results' trial order"
        columns.append(
            VectorData(
                name="trial_id",
                description="id of the trial in the trials table (/intervals/trials)",
                data=compressed(np.asarray(results["trial"].values, dtype=np.int64)),
            )
        )
    columns += [
        VectorData(
            name="ic_mean",
            description=(
                f"posterior mean of the LFADS initial condition (arbitrary units), float32, "
                f"shape (n_rows, ic_dim) = (n_rows, {ic_dim})"
            ),
            data=compressed(arrays["ic_mean"]),
        ),
        VectorData(
            name="ic_sd",
            description=(
                f"posterior standard deviation of the LFADS initial condition (arbitrary "
                f"units), float32, shape (n_rows, ic_dim) = (n_rows, {ic_dim})"
            ),
            data=compressed(arrays["ic_sd"]),
        ),
        VectorData(
            name="g0",
            description=(
                f"g0, the generator's initial state (a linear map of the initial condition, "
                f"clipped), averaged over posterior samples (arbitrary units), float32, shape "
                f"(n_rows, gen_dim) = (n_rows, {gen_dim})"
            ),
            data=compressed(arrays["g0"]),
        ),
    ]
    return DynamicTable(
        name=TABLE_NAME,
        description=(
            f"LFADS initial conditions: {rows}; the posterior mean and standard deviation of "
            f"the initial condition ({ic_dim} values) and g0, the generator's initial state "
            f"({gen_dim} values)."
        ),
        id=ElementIdentifiers(name="id", data=compressed(np.arange(n, dtype=np.int64))),
        columns=columns,
    )
