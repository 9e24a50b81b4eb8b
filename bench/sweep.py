"""AutoLFADS sweep against the default fit, same wall time and cores: prints one JSON line.

    python bench/sweep.py --minutes 10 --population 4 --workers 2

The chaotic-RNN benchmark of ``nwb-lfads simulate`` (100 conditions x 10 trials, 50 neurons,
10 ms bins, 1 s trials, true rates stored in the file) is fitted twice:

- ``sweep``: ``--population`` members on a local Ray instance with ``--workers`` CPUs (one
  member per CPU at a time), ``--max-minutes`` = ``--minutes``, PBT generations of
  ``--interval`` epochs (short, so a short budget still sees several generations);
- ``fit``: one model with the default configuration, ``train.max_minutes`` = ``--minutes``,
  its process limited to the same ``--workers`` CPUs (``os.sched_setaffinity``).

Reported for each: R^2 of the posterior-mean rates against the true rates (per neuron over all
trials and bins, averaged over neurons; ``summary.json``/``leaderboard.csv``), validation
bits/spike, epochs, wall seconds (reading, training, scoring and writing included). Files go
to ``--out`` (default: a temporary folder, removed afterwards).

Output: ``sweep`` (``best_r2``, ``best_valid_bps``, ``best_trial``, ``best_epochs``,
``exploits``, ``members_r2``, ``wall_s``) and ``fit`` (``r2``, ``valid_bps``, ``smoothing_r2``,
``epochs``, ``wall_s``), with the budget and ``cpus``. A member gets about 1/population of the
fit's CPU time, so short budgets favour the single fit (docs/DESIGN.md, "A sweep needs hundreds
of epochs per member").
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path


def _cpus(n: int) -> set[int]:
    avail = sorted(os.sched_getaffinity(0))
    return set(avail[: max(1, min(n, len(avail)))])


def run_sweep(
    source: Path,
    out: Path,
    minutes: float,
    population: int,
    workers: int,
    interval: int,
    align: list[str],
) -> dict:
    from nwb_lfads.sweep import sweep

    space = {"pbt": {"perturbation_interval": interval}}
    t0 = time.perf_counter()
    result = sweep(
        [source],
        out,
        overrides=align + ["train.max_epochs=100000"],
        search_space=space,
        population=population,
        workers=workers,
        max_minutes=minutes,
        progress=False,
    )
    wall = time.perf_counter() - t0
    best = result.leaderboard[0]
    return {
        "best_r2": round(float(best["r2"]), 4),
        "best_valid_bps": round(float(best["valid_bps"]), 4),
        "best_trial": best["trial_id"],
        "best_epochs": best["epochs"],
        "exploits": result.n_exploits,
        "members_r2": [round(float(r["r2"]), 4) for r in result.leaderboard],
        "wall_s": round(wall, 1),
    }


def run_fit(source: Path, out: Path, minutes: float, workers: int, align: list[str]) -> dict:
    """The default fit in a child process pinned to ``workers`` CPUs (JAX sizes its thread pool
    from the CPUs it may use)."""
    import subprocess

    code = (
        "import json, sys, time; from nwb_lfads.fit import fit; t0 = time.perf_counter(); "
        f"r = fit([{str(source)!r}], {str(out)!r}, overrides={align + [f'train.max_minutes={minutes}']!r}, "
        "progress=False, plots=False); "
        "print(json.dumps({'summary': r.summary, 'epochs': r.epochs, 'wall_s': time.perf_counter() - t0}))"
    )
    cpus = _cpus(workers)
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        preexec_fn=lambda: os.sched_setaffinity(0, cpus),
        check=True,
    )
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    row = res["summary"][0]
    return {
        "r2": round(float(row["r2"]), 4),
        "valid_bps": round(float(row["valid_bps"]), 4),
        "smoothing_r2": round(float(row["smoothing_r2"]), 4),
        "epochs": res["epochs"],
        "wall_s": round(res["wall_s"], 1),
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget of each side")
    parser.add_argument("--population", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2, help="CPUs of each side")
    parser.add_argument("--interval", type=int, default=5, help="epochs per PBT generation")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="keep the files here (default: temporary)")
    args = parser.parse_args(argv)

    from nwb_lfads.synthetic import simulate

    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    try:
        (source,) = simulate(root / "data", sessions=1, seed=args.seed, overwrite=True)
        align = ["data.align_to=move_onset_time"]
        fit_res = run_fit(source, root / "fit", args.minutes, args.workers, align)
        sweep_res = run_sweep(
            source,
            root / "sweep",
            args.minutes,
            args.population,
            args.workers,
            args.interval,
            align,
        )
    finally:
        if not args.out:
            shutil.rmtree(root, ignore_errors=True)
    report = {
        "benchmark": "chaotic_rnn",
        "minutes": args.minutes,
        "workers": args.workers,
        "population": args.population,
        "interval_epochs": args.interval,
        "cpus": os.cpu_count(),
        "sweep": sweep_res,
        "fit": fit_res,
    }
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
