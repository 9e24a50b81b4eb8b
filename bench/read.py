"""Benchmark of ``read_session`` against the plain approach and the bare HDF5 read. Prints JSON.

Session: 200 units, one hour, about 14 million spikes (Poisson, 19.4 Hz mean), a trial every
2 s (1800 trials) aligned to ``move_onset_time`` with window (-0.25, 0.75) s and 10 ms bins,
so the output is 1800 x 100 x 200 int32. The file is written once into ``--cache`` (default:
``$NWB_LFADS_BENCH_DIR`` or the system temp folder) and reused.

- ``bare_read_s``: h5py read of ``units/spike_times`` (and its index) into memory;
- ``plain_s``: that read, then one ``np.searchsorted`` per unit over all trials' bin edges;
- ``read_session_s``: ``nwb_lfads.read_session`` (pynwb open included);
- peak memory of ``read_session`` (tracemalloc, a separate run) against the spike-times array
  plus the output tensor.

Times are the best of ``--repeat`` runs. Usage: ``python bench/read.py [--cache DIR]``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import tracemalloc
from datetime import UTC
from pathlib import Path

import numpy as np

N_UNITS, DURATION, RATE_HZ, TRIAL_EVERY = 200, 3600.0, 19.4, 2.0
BIN, WINDOW = 0.01, (-0.25, 0.75)


def build(path: Path, seed: int = 0) -> None:
    """Write the synthetic session with pynwb (Units built from flat arrays, not add_unit)."""
    from datetime import datetime

    from hdmf.common import ElementIdentifiers, VectorData, VectorIndex
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.epoch import TimeIntervals
    from pynwb.misc import Units

    rng = np.random.default_rng(seed)
    rates = rng.gamma(2.0, 1.0, N_UNITS)
    rates *= RATE_HZ / rates.mean()
    counts = rng.poisson(rates * DURATION)
    times = np.concatenate([np.sort(rng.uniform(0.0, DURATION, c)) for c in counts])
    spike_times = VectorData(name="spike_times", description="spike times (s)", data=times)
    units = Units(
        name="units",
        description="synthetic units",
        id=ElementIdentifiers(name="id", data=np.arange(N_UNITS) + 1000),
        columns=[
            spike_times,
            VectorIndex(name="spike_times_index", data=np.cumsum(counts), target=spike_times),
        ],
    )
    start = np.arange(0.0, DURATION - TRIAL_EVERY + 1e-9, TRIAL_EVERY)
    cols = {"start_time": start, "stop_time": start + 1.5, "move_onset_time": start + 0.5}
    trials = TimeIntervals(
        name="trials",
        description="synthetic trials",
        id=ElementIdentifiers(name="id", data=np.arange(start.size)),
        columns=[VectorData(name=k, description=k, data=v) for k, v in cols.items()],
    )
    nwbfile = NWBFile(
        session_description="read benchmark",
        identifier="bench-read",
        session_start_time=datetime(2024, 1, 1, tzinfo=UTC),
    )
    nwbfile.units = units
    nwbfile.trials = trials
    tmp = path.with_name(path.stem + ".partial.nwb")
    with NWBHDF5IO(str(tmp), "w") as io:
        io.write(nwbfile)
    os.replace(tmp, path)


def bare_read(path: Path):
    import h5py

    with h5py.File(path, "r") as f:
        return f["units/spike_times"][:], f["units/spike_times_index"][:]


def plain(path: Path) -> np.ndarray:
    """The plain approach: raw read, then per unit one searchsorted over every trial's edges."""
    import h5py

    times, index = bare_read(path)
    with h5py.File(path, "r") as f:
        events = f["intervals/trials/move_onset_time"][:]
    n_bins = int(round((WINDOW[1] - WINDOW[0]) / BIN))
    edges = ((events + WINDOW[0])[:, None] + np.arange(n_bins + 1) * BIN).ravel()
    out = np.zeros((events.size, n_bins, index.size), dtype=np.int32)
    bounds = np.concatenate([[0], index])
    for u in range(index.size):
        pos = np.searchsorted(times[bounds[u] : bounds[u + 1]], edges, side="left").reshape(
            events.size, -1
        )
        out[:, :, u] = np.diff(pos, axis=1)
    return out


def ours(path: Path):
    from nwb_lfads.io.read import read_session

    return read_session(path, bin_size=BIN, align_to="move_onset_time", window=WINDOW)


def best_of(fn, repeat: int) -> tuple[float, object]:
    best, result = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cache", default=os.environ.get("NWB_LFADS_BENCH_DIR", tempfile.gettempdir())
    )
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    path = Path(args.cache) / "nwb_lfads_bench_read.nwb"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        build(path)
    import nwb_lfads.io.read  # noqa: F401  (import cost is not reading cost)

    bare_s, (times, _) = best_of(lambda: bare_read(path), args.repeat)
    plain_s, reference = best_of(lambda: plain(path), args.repeat)
    ours_s, ds = best_of(lambda: ours(path), args.repeat)
    identical = bool(np.array_equal(ds["spikes"].values, reference))
    del reference, ds
    tracemalloc.start()
    ds = ours(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    base = times.nbytes + ds["spikes"].values.nbytes
    print(
        json.dumps(
            {
                "units": N_UNITS,
                "spikes": int(times.size),
                "trials": int(ds.sizes["trial"]),
                "output_shape": list(ds["spikes"].shape),
                "counts_identical_to_plain": identical,
                "bare_read_s": round(bare_s, 3),
                "plain_s": round(plain_s, 3),
                "read_session_s": round(ours_s, 3),
                "read_session_over_plain": round(ours_s / plain_s, 3),
                "read_session_over_bare": round(ours_s / bare_s, 3),
                "peak_mem_mb": round(peak / 2**20, 1),
                "spikes_plus_output_mb": round(base / 2**20, 1),
                "peak_over_spikes_plus_output": round(peak / base, 2),
                "load_avg_1min": round(os.getloadavg()[0], 2),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
