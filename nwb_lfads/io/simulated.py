"""Simulated sessions as NWB files a DANDI user would recognise.

:func:`session_to_nwbfile` turns a :class:`nwb_lfads.synthetic.SyntheticSession` into a
``pynwb.NWBFile``: subject and session metadata, a trials table (``start_time``, ``stop_time``,
``move_onset_time`` = start + 0.25 s, ``condition_id``, optionally ``split``), a Units table
(optionally ``heldout``) whose spike times fall uniformly at random inside their bins, and the
ground truth in ``processing/ground_truth``: ``rates`` (TimeSeries, Hz, float32, shape
[n_samples, n_units], columns in units-table row order, timestamps = bin centres in session
time; the layout of ``processing/lfads/rates``) and ``latents`` (same timestamps). A session
with input pulses (``chaotic-inputs``) also has a trials column ``pulse_time`` (the centre of
each trial's pulse bin) and the TimeSeries ``stimulus/pulse`` (1.0 in the pulse bin, 0 in the
other bins; one sample per bin centre of every trial).
:func:`write_nwbfile` writes atomically (temporary file in the destination folder, then
``os.replace``).
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

import numpy as np

MOVE_ONSET_DELAY = 0.25  # seconds from trial start to the `move_onset_time` event
SAMPLING_RATE = 30_000.0  # Hz: spike times lie on this grid, as from a 30 kHz recording
SESSION_START = datetime.datetime(2024, 1, 15, 9, 30, tzinfo=datetime.UTC)


def spike_times_from_counts(
    rng: np.random.Generator,
    counts: np.ndarray,
    start_time: np.ndarray,
    bin_size: float,
    sampling_rate: float = SAMPLING_RATE,
) -> list[np.ndarray]:
    """Spike times (s) of each unit, uniformly at random inside their bins and sorted.

    Times lie on the grid of a ``sampling_rate`` recording (so the Units table's ``resolution`` is
    ``1 / sampling_rate``): each spike takes a random sample of its bin other than the bin's first,
    so re-binning at ``bin_size`` recovers ``counts`` exactly despite floating-point rounding.

    Args:
        counts: spike counts, int, shape [K, T, N].
        start_time: session time of each trial's first bin edge, seconds, shape [K]; multiples
            of ``1 / sampling_rate``.
        bin_size: bin width in seconds, a multiple of ``1 / sampling_rate``.

    Returns:
        N float64 arrays of session times (s), ascending.
    """
    n_trials, n_bins, n_units = counts.shape
    per_bin = int(round(bin_size * sampling_rate))
    first = np.round(np.asarray(start_time) * sampling_rate).astype(np.int64)
    edges = (first[:, None] + np.arange(n_bins) * per_bin).ravel()  # [K*T] in samples
    flat = counts.reshape(n_trials * n_bins, n_units)
    out = []
    for n in range(n_units):
        samples = np.repeat(edges, flat[:, n]) + rng.integers(
            1, per_bin, size=int(flat[:, n].sum())
        )
        out.append(np.sort(samples) / sampling_rate)
    return out


def bin_centres(start_time: np.ndarray, n_bins: int, bin_size: float) -> np.ndarray:
    """Session times of all bin centres, trials concatenated in order, float64, shape [K*T]."""
    return (start_time[:, None] + (np.arange(n_bins) + 0.5) * bin_size).ravel()


def _compressed(data: np.ndarray, n_bins: int):
    """float32 ``data`` [n_samples, n_columns] wrapped for gzip, chunked by whole trials (~10 per
    chunk); no shuffle, which Neurosift undoes wrongly (``nwb_lfads.io.filters``)."""
    from hdmf.backends.hdf5 import H5DataIO

    from .filters import GZIP_LEVEL

    rows = min(data.shape[0], n_bins * max(1, 10 * 50 // max(1, data.shape[1])))
    return H5DataIO(
        data.astype(np.float32),
        compression="gzip",
        compression_opts=GZIP_LEVEL,
        chunks=(rows, data.shape[1]),
    )


def session_to_nwbfile(
    session, rng: np.random.Generator, *, session_index: int = 0, identifier: str | None = None
) -> pynwb.NWBFile:  # noqa: F821
    """Build the NWB file of one simulated session (in memory; see :func:`write_nwbfile`).

    Args:
        session: a :class:`nwb_lfads.synthetic.SyntheticSession`.
        rng: generator of the spike times' positions inside their bins.
        session_index: index of the session (names the session in the metadata).
        identifier: the file's unique identifier (default: derived from ``session_index``).
    """
    from hdmf.common import VectorData, VectorIndex
    from pynwb import NWBFile, TimeSeries
    from pynwb.epoch import TimeIntervals
    from pynwb.file import Subject
    from pynwb.misc import Units

    n_trials, n_bins, n_units = session.rates_hz.shape
    dt = session.bin_size
    start = np.asarray(session.start_time, dtype=np.float64)
    nwbfile = NWBFile(
        session_description=session.description,
        identifier=identifier or f"nwb-lfads-sim-session{session_index}",
        session_start_time=SESSION_START + datetime.timedelta(days=session_index),
        session_id=f"sim-{session_index}",
        experimenter=["Simulator, Synthetic"],
        institution="nwb-lfads synthetic data",
        lab="nwb-lfads",
        experiment_description=(
            "Simulated delayed-reach-like task: each trial starts from one of a set "
            "of latent initial conditions; spikes are Poisson draws from known rates. "
            "Ground truth in processing/ground_truth."
        ),
        keywords=["LFADS", "latent dynamics", "synthetic data", "Poisson spiking", "ground truth"],
        subject=Subject(
            subject_id="sim01",
            species="Macaca mulatta",
            age="P8Y",
            sex="M",
            description="A simulated subject; the data are generated, not recorded.",
        ),
    )

    stop = start + n_bins * dt
    trial_columns = [
        VectorData(name="start_time", description="Start of the trial (s).", data=start),
        VectorData(name="stop_time", description="End of the trial (s).", data=stop),
        VectorData(
            name="move_onset_time",
            description=f"Movement onset (s): trial start + {MOVE_ONSET_DELAY} s.",
            data=start + MOVE_ONSET_DELAY,
        ),
        VectorData(
            name="condition_id",
            description="Index of the latent initial condition of the trial.",
            data=np.asarray(session.condition_id, dtype=np.int64),
        ),
    ]
    if session.pulse_bin is not None:
        pulse_time = start + (np.asarray(session.pulse_bin) + 0.5) * dt
        trial_columns.append(
            VectorData(
                name="pulse_time",
                description="Time (s) of the input pulse the network received in this trial "
                "(centre of the pulse bin).",
                data=pulse_time,
            )
        )
    if session.split is not None:
        trial_columns.append(
            VectorData(
                name="split",
                description="Neural Latents Benchmark split: 'train' or 'val'.",
                data=[str(v) for v in session.split],
            )
        )
    nwbfile.trials = TimeIntervals(
        name="trials",
        description=f"{n_trials} trials of {n_bins * dt:g} s.",
        columns=trial_columns,
        id=np.arange(n_trials),
    )

    times = spike_times_from_counts(rng, session.spikes, start, dt)
    spike_times = VectorData(
        name="spike_times",
        description="Spike times of each unit (s).",
        data=np.concatenate(times) if times else np.zeros(0),
    )
    unit_columns = [
        spike_times,
        VectorIndex(
            name="spike_times_index",
            target=spike_times,
            data=np.cumsum([t.size for t in times]).astype(np.int64),
        ),
    ]
    if session.heldout.any():
        unit_columns.append(
            VectorData(
                name="heldout",
                data=np.asarray(session.heldout, dtype=bool),
                description="True for units held out from the model inputs (NLB style).",
            )
        )
    nwbfile.units = Units(
        name="units",
        columns=unit_columns,
        id=np.arange(n_units),
        resolution=1 / SAMPLING_RATE,
        description=(
            "Simulated units; spike times uniformly random inside the bins whose counts are Poisson with "
            "the rates in processing/ground_truth/rates (same row order)."
        ),
    )

    timestamps = bin_centres(start, n_bins, dt)
    if session.pulse_bin is not None:
        pulse = np.zeros((n_trials, n_bins), np.float32)
        pulse[np.arange(n_trials), np.asarray(session.pulse_bin)] = 1.0
        nwbfile.add_stimulus(
            TimeSeries(
                name="pulse",
                unit="a.u.",
                timestamps=timestamps,
                data=pulse.ravel(),
                description=(
                    "Input pulse given to the simulated network: 1.0 in the bin of each trial's "
                    "pulse, 0 in its other bins; one sample per bin centre of every trial."
                ),
            )
        )
    module = nwbfile.create_processing_module(
        "ground_truth", "True rates and latent states of the simulation that generated the spikes."
    )
    module.add(
        TimeSeries(
            name="rates",
            unit="Hz",
            timestamps=timestamps,
            data=_compressed(session.rates_hz.reshape(-1, n_units), n_bins),
            description=(
                f"True firing rates (Hz), shape (n_samples, n_units): columns follow the units "
                f"table's row order; samples are the {n_bins} bins of {dt * 1e3:g} ms of every "
                f"trial concatenated in trial order; timestamps are bin centres in session time."
            ),
        )
    )
    module.add(
        TimeSeries(
            name="latents",
            unit="a.u.",
            timestamps=timestamps,
            data=_compressed(session.latents.reshape(n_trials * n_bins, -1), n_bins),
            description=(
                "Latent state driving the rates, shape (n_samples, n_latents), same samples as "
                "rates (tanh of the chaotic RNN state, or the z-scored Lorenz state)."
            ),
        )
    )
    return nwbfile


def write_nwbfile(nwbfile, path) -> Path:
    """Write ``nwbfile`` to ``path`` atomically: a temporary file in the same folder, then ``os.replace``."""
    from pynwb import NWBHDF5IO

    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        with NWBHDF5IO(str(tmp), mode="w") as io:
            io.write(nwbfile)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
