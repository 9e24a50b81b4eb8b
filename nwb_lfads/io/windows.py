"""The ``fitted_windows`` table of ``processing/lfads``: where the written series have samples.

The series of ``processing/lfads`` are continuous ``TimeSeries`` with gaps between trials, and
a reader that sees only their timestamps takes them to span one interval from the first to the
last bin: pynapple (0.11) builds every ``TimeSeries``' time support that way and reads nothing
else for it. This table is a ``TimeIntervals`` that lists the fitted windows, in session
seconds, so that tools can restrict the series to them; pynapple loads it as an
``IntervalSet``::

    nwb = nap.load_file("X.lfads.nwb")
    rates = nwb["rates"].restrict(nwb["fitted_windows"])   # time support: one interval per trial

Rows: trial-aligned results, one row per trial in order of the event time, ``start_time`` /
``stop_time`` the outer edges of the trial's written bins (a window that runs into the next
trial's ends where the next begins, as the series' overlap rule keeps it) and ``trial_id``
(the trials table's ``id``); continuous-mode results, one row per run of contiguous written
bins (overlapping windows merge into one run). Every column is written with
:func:`nwb_lfads.io.filters.compressed` (gzip, no shuffle).

Shape glossary: B trials (or windows), T bins per trial, S written samples, R rows.
"""

from __future__ import annotations

import numpy as np

from .filters import compressed

TABLE_NAME = "fitted_windows"
GAP_BINS = 1.5  # samples further apart than this many bins start a new run (continuous mode)


def trial_intervals(
    align_time: np.ndarray, time: np.ndarray, bin_size: float, order: np.ndarray, keep: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per trial (event order) the outer bin edges of its written bins.

    Args:
        align_time: float64 [B] session time (s) of each trial's event.
        time: float64 [T] bin centres (s) relative to the event.
        bin_size: s. order, keep: from :func:`nwb_lfads.io.write.trial_timeline` (int [B],
            bool [B, T] over the reordered trials).

    Returns:
        ``(start, stop, rows)``: float64 [R] session seconds and int [R] indices into ``order``
        of the trials with at least one written bin; intervals never overlap (an interval ends
        no later than the next one starts).
    """
    centres = align_time[order][:, None] + time[None, :]
    rows = np.flatnonzero(keep.any(axis=1))
    first = np.array([centres[i][keep[i]][0] for i in rows], dtype=np.float64)
    last = np.array([centres[i][keep[i]][-1] for i in rows], dtype=np.float64)
    start = first - bin_size / 2
    stop = last + bin_size / 2
    if stop.size > 1:
        stop[:-1] = np.minimum(stop[:-1], start[1:])
    return start, stop, rows


def run_intervals(stamps: np.ndarray, bin_size: float) -> tuple[np.ndarray, np.ndarray]:
    """Runs of contiguous samples: ``stamps`` float64 [S] increasing bin centres (s) ->
    ``(start, stop)`` float64 [R], the outer bin edges of each run (a new run starts where two
    samples are more than ``GAP_BINS`` bins apart)."""
    stamps = np.asarray(stamps, dtype=np.float64)
    if stamps.size == 0:
        return np.zeros(0), np.zeros(0)
    breaks = np.flatnonzero(np.diff(stamps) > GAP_BINS * bin_size)
    firsts = np.concatenate([[0], breaks + 1])
    lasts = np.concatenate([breaks, [stamps.size - 1]])
    return stamps[firsts] - bin_size / 2, stamps[lasts] + bin_size / 2


def fitted_windows_table(start: np.ndarray, stop: np.ndarray, trial_id: np.ndarray | None = None):
    """The ``fitted_windows`` ``TimeIntervals`` (not yet added to a module).

    Args:
        start, stop: float64 [R] session seconds, ``start < stop``, non-overlapping, ascending.
        trial_id: int [R] ids of the trials table, or None (continuous mode).
    """
    from hdmf.common import ElementIdentifiers, VectorData
    from pynwb.epoch import TimeIntervals

    n = len(start)
    columns = [
        VectorData(
            name="start_time",
            description="session time (s) where the window's written samples start (the left "
            "edge of its first bin)",
            data=compressed(np.asarray(start, dtype=np.float64)),
        ),
        VectorData(
            name="stop_time",
            description="session time (s) where the window's written samples end (the right "
            "edge of its last bin)",
            data=compressed(np.asarray(stop, dtype=np.float64)),
        ),
    ]
    if trial_id is not None:
        columns.append(
            VectorData(
                name="trial_id",
                description="id of the trial in the trials table (/intervals/trials)",
                data=compressed(np.asarray(trial_id, dtype=np.int64)),
            )
        )
        rows = "one row per fitted trial, in order of the event time"
    else:
        rows = (
            "one row per run of contiguous samples (overlapping windows of continuous time merge)"
        )
    return TimeIntervals(
        name=TABLE_NAME,
        description=(
            f"Where the series of this module have samples: {rows}. Restrict the series to "
            f"these intervals to get their time support (pynapple: "
            f"nwb['rates'].restrict(nwb['fitted_windows']))."
        ),
        id=ElementIdentifiers(name="id", data=compressed(np.arange(n, dtype=np.int64))),
        columns=columns,
    )
