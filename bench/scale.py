"""Large inputs: read time, peak memory against the data's size, training speed, and the memory
estimate beside the measurement. Prints one JSON line per scenario.

    python bench/scale.py [--scenario long|stitched|both] [--minutes 60 --units 384]
                          [--sessions 20 --trials 200] [--set train.data_placement=stream]
                          [--out bench/results/X.jsonl]

``long``: one continuous session of ``--minutes`` minutes and ``--units`` Poisson units (rates
2-20 Hz, drawn per unit), read at 10 ms bins into 1 s windows overlapping by 0.2 s.
``stitched``: ``--sessions`` simulated sessions (``nwb_lfads.synthetic.simulate``, 20
conditions x ``--trials / 20`` trials, 40-120 units) read aligned to ``move_onset_time``.
Each scenario runs in its own process: it writes the NWB files, reads them (``read_s``, the
peak resident size after reading against the counts' bytes), prepares the data, builds the
trainer with the package defaults (the memory estimate ``fit`` prints), trains ``--epochs``
epochs while a thread samples the resident size every 20 ms, and reports trials/s of the
epochs after the first (which compiles the validation pass) and the measured peak against
the estimate.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path


def write_long_session(path: Path, minutes: float, n_units: int, seed: int) -> int:
    """A units-only NWB file (no trials) with ``n_units`` homogeneous Poisson trains over
    ``minutes``; returns the number of spikes."""
    import numpy as np
    from pynwb import NWBHDF5IO
    from pynwb.testing.mock.file import mock_NWBFile

    rng = np.random.default_rng(seed)
    duration = 60.0 * minutes
    nwbfile = mock_NWBFile()
    total = 0
    for rate in rng.uniform(2.0, 20.0, n_units):
        train = np.sort(rng.uniform(0.0, duration, rng.poisson(rate * duration)))
        nwbfile.add_unit(spike_times=train, obs_intervals=[[0.0, duration]])
        total += train.size
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwbfile)
    return total


class PeakRss:
    """Samples this process's resident size in a thread; ``peak`` in bytes."""

    def __init__(self, every: float = 0.02):
        from nwb_lfads.train.memory import rss

        self.rss, self.every, self.peak = rss, every, rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(self.every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())


def run_scenario(args) -> dict:
    import resource

    import numpy as np

    from nwb_lfads.config import RunConfig
    from nwb_lfads.data import prepare_data
    from nwb_lfads.io.read import read_session, read_sessions
    from nwb_lfads.train.memory import rss

    tmp = Path(tempfile.mkdtemp(dir=args.tmp))
    out = {"scenario": args.scenario}
    t0 = time.perf_counter()
    if args.scenario == "long":
        path = tmp / "long.nwb"
        out["spikes"] = write_long_session(path, args.minutes, args.units, args.seed)
        out.update(minutes=args.minutes, units=args.units, files_mb=path.stat().st_size / 1e6)
        overrides = ["data.window_length=1.0", "data.overlap=0.2"]
        write_s = time.perf_counter() - t0
        base = rss()
        t0 = time.perf_counter()
        datasets = [read_session(path, bin_size=0.01, window_length=1.0, overlap=0.2)]
    else:
        from nwb_lfads.synthetic import simulate

        rng = np.random.default_rng(args.seed)
        units = [int(u) for u in rng.integers(40, 121, args.sessions)]
        paths = simulate(
            tmp / "sim",
            sessions=args.sessions,
            seed=args.seed,
            n_conditions=20,
            trials_per_condition=args.trials // 20,
            n_units=units,
        )
        out.update(
            sessions=len(paths),
            trials_per_session=args.trials,
            units=units,
            files_mb=sum(p.stat().st_size for p in paths) / 1e6,
        )
        overrides = ["data.align_to=move_onset_time"]
        write_s = time.perf_counter() - t0
        base = rss()
        t0 = time.perf_counter()
        datasets = read_sessions(paths, bin_size=0.01, align_to="move_onset_time")
    out["write_s"] = round(write_s, 1)
    out["read_s"] = round(time.perf_counter() - t0, 2)
    counts = sum(int(ds["spikes"].nbytes) for ds in datasets)
    out["counts_mb"] = round(counts / 1e6, 1)
    out["trials"] = sum(int(ds.sizes["trial"]) for ds in datasets)
    out["bins"] = int(datasets[0].sizes["time"])
    out["rss_before_read_mb"] = round(base / 1e6, 1)
    out["rss_after_read_mb"] = round(rss() / 1e6, 1)
    out["peak_rss_read_mb"] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6, 1
    )

    from nwb_lfads.train.trainer import Trainer

    cfg = RunConfig().with_overrides(overrides + [f"train.seed={args.seed}", *args.sets])
    data = prepare_data(datasets, cfg.data)
    with PeakRss() as peak:
        t1 = time.perf_counter()
        trainer = Trainer(data, cfg)
        out["trainer_s"] = round(time.perf_counter() - t1, 1)
        m = trainer.memory
        epochs = []
        for _ in range(args.epochs):
            t2 = time.perf_counter()
            trainer.train_epoch()
            epochs.append(time.perf_counter() - t2)
    steady = epochs[1:] or epochs
    per_epoch = trainer.steps_per_epoch * trainer.batch_size
    out.update(
        model="defaults",
        sets=list(args.sets),
        devices=m.n_devices,
        batch_size=trainer.batch_size,
        steps_per_epoch=trainer.steps_per_epoch,
        streamed=m.streamed,
        epoch_s=[round(e, 1) for e in epochs],
        trials_per_s=round(per_epoch / (sum(steady) / len(steady)), 1),
        estimate_data_mb=round(m.data / 1e6, 1),
        estimate_state_mb=round(m.state / 1e6, 1),
        estimate_step_mb=round(m.step / 1e6, 1),
        estimate_step_source=m.step_source,
        estimate_host_now_mb=round(m.host_now / 1e6, 1),
        estimate_peak_mb=round(m.host / 1e6, 1),
        measured_peak_mb=round(peak.peak / 1e6, 1),
    )
    added_est = m.host - m.host_now
    added = peak.peak - m.host_now
    out["estimate_over_measured_peak"] = round(m.host / peak.peak, 3)
    out["estimate_over_measured_added"] = round(added_est / added, 3) if added > 0 else None
    out["memory_line"] = m.line()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=["long", "stitched", "both"], default="both")
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--units", type=int, default=384)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tmp", type=Path, default=None)
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", type=Path, default=None, help="append the JSON lines here")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.inner:
        print(json.dumps(run_scenario(args)))
        return
    from nwb_lfads.train.host_devices import split_host

    split_host()  # one XLA CPU device per core, as the command line does (inherited)
    for scenario in ("long", "stitched") if args.scenario == "both" else (args.scenario,):
        load = os.getloadavg()
        cmd = [sys.executable, __file__, "--inner", "--scenario", scenario]
        for name in ("minutes", "units", "sessions", "trials", "epochs", "seed", "tmp"):
            value = getattr(args, name)
            if value is not None:
                cmd += [f"--{name}", str(value)]
        for item in args.sets:
            cmd += ["--set", item]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{scenario} failed:\n{done.stderr[-3000:]}")
        record = {
            "bench": "scale",
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "host": platform.node(),
            "cpu_count": os.cpu_count(),
            "load_before": [round(x, 2) for x in load],
            "load_after": [round(x, 2) for x in os.getloadavg()],
            **json.loads(done.stdout.strip().splitlines()[-1]),
        }
        line = json.dumps(record)
        print(line, flush=True)
        if args.out is not None:
            with open(args.out, "a") as fh:
                fh.write(line + "\n")


if __name__ == "__main__":
    main()
