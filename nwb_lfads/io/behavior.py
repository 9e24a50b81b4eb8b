"""Behavioural TimeSeries (e.g. ``hand_vel``, ``cursor_pos``) found anywhere in an NWB file,
averaged onto the spike bin grid."""

from __future__ import annotations

import numpy as np

from ..errors import SelectionError
from .binning import average_samples


def find_timeseries(nwbfile, series: str, name: str):
    """The one ``TimeSeries`` called ``series`` anywhere in the file (acquisition, processing
    modules, nested containers).

    Raises:
        SelectionError: none or several have that name; lists the TimeSeries that exist.
    """
    from pynwb import TimeSeries

    found = [obj for obj in nwbfile.objects.values() if isinstance(obj, TimeSeries)]
    matches = [obj for obj in found if obj.name == series]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        available = sorted({obj.name for obj in found})
        raise SelectionError(
            f"{name}: no TimeSeries named '{series}' (TimeSeries in the file: "
            f"{available or 'none'}). Pass one of those names in behavior=[...]."
        )
    paths = [_path(obj) for obj in matches]
    raise SelectionError(
        f"{name}: several TimeSeries are named '{series}' ({paths}); the name is ambiguous. "
        f"Read them with pynwb directly, or rename one."
    )


def _path(obj) -> str:
    parts = []
    while obj is not None:
        parts.append(obj.name)
        obj = obj.parent
    return "/".join(reversed(parts[:-1]))


def sample_times(ts) -> np.ndarray:
    """Session time of every sample of ``ts``, seconds, float64 [S]; handles ``timestamps`` and
    ``starting_time`` + ``rate``."""
    n = len(ts.data)
    if ts.timestamps is not None:
        return np.asarray(ts.timestamps[:], dtype=np.float64)
    start = float(ts.starting_time or 0.0)
    return start + np.arange(n, dtype=np.float64) / float(ts.rate)


def bin_timeseries(ts, starts: np.ndarray, n_bins: int, bin_size: float, name: str) -> np.ndarray:
    """Average ``ts`` onto the windows' bins.

    Args:
        starts: window starts, seconds, float64 [W].

    Returns:
        float64 [W, T, C]: the mean of the samples in each bin, NaN where none fall.
    """
    values = np.asarray(ts.data[:], dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2:
        raise SelectionError(
            f"{name}: TimeSeries '{ts.name}' has {values.ndim}-D data {values.shape}; only "
            f"(samples,) or (samples, channels) can be binned. Leave it out of behavior=[...]."
        )
    times = sample_times(ts)
    if times.size != values.shape[0]:
        raise SelectionError(
            f"{name}: TimeSeries '{ts.name}' has {values.shape[0]} samples but {times.size} "
            f"timestamps. Fix the file's timestamps."
        )
    return average_samples(times, values, starts, n_bins, bin_size)
