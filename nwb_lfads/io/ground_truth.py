"""True rates stored by ``nwb-lfads simulate`` (``processing/ground_truth/rates``), on a reader grid.

Simulated sessions keep their true rates laid out exactly like ``processing/lfads/rates``
(2-D ``TimeSeries`` in Hz, columns in units-table row order, timestamps at bin centres in
session time), so recovery can be scored from the files alone.
"""

from __future__ import annotations

import numpy as np

from .open import open_nwb

MODULE = "ground_truth"
SERIES = "rates"


def read_ground_truth(source, ds, *, module: str = MODULE, series: str = SERIES):
    """Sample the true rates of ``source`` at the bins of the reader dataset ``ds``.

    Args:
        source: the NWB file ``ds`` was read from (path or open ``NWBFile``).
        ds: reader output (``spikes`` (trial, time, unit); coords ``align_time``, ``time``,
            ``unit``; attrs ``bin_size``).

    Returns:
        ``xarray.DataArray`` of float32 rates in Hz, dims (trial, time, unit) with the
        coordinates of ``ds.spikes``; bins with no true sample within half a bin are NaN.
        ``None`` when the file carries no ground truth.
    """
    import xarray as xr

    with open_nwb(source) as nwbfile:
        if (
            module not in nwbfile.processing
            or series not in nwbfile.processing[module].data_interfaces
        ):
            return None
        ts = nwbfile.processing[module][series]
        data = np.asarray(ts.data[:], dtype=np.float32)
        if ts.timestamps is not None:
            stamps = np.asarray(ts.timestamps[:], dtype=np.float64)
        else:
            stamps = ts.starting_time + np.arange(data.shape[0]) / ts.rate
        unit_ids = np.asarray(nwbfile.units.id[:])
    row_of = {int(u): i for i, u in enumerate(unit_ids)}
    cols = np.array([row_of[int(u)] for u in ds.unit.values])
    centres = ds.align_time.values[:, None] + ds.time.values[None, :]  # [trials, T] session time
    idx = np.clip(np.searchsorted(stamps, centres), 1, len(stamps) - 1)
    left, right = stamps[idx - 1], stamps[idx]
    nearest = np.where(np.abs(centres - left) <= np.abs(right - centres), idx - 1, idx)
    ok = np.abs(stamps[nearest] - centres) <= 0.5 * float(ds.attrs["bin_size"]) + 1e-9
    out = data[nearest][..., cols]  # [trials, T, units]
    out[~ok] = np.nan
    return xr.DataArray(
        out,
        dims=("trial", "time", "unit"),
        coords={k: v for k, v in ds.spikes.coords.items()},
        name="true_rates",
    )
