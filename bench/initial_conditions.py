"""Do the written initial conditions tell the conditions apart? Prints one JSON line.

    python bench/initial_conditions.py --minutes 4 [--conditions 100 --trials 10] [--set K=V ...]

Simulates the chaotic-RNN benchmark (``nwb_lfads.synthetic.simulate``: by default 100
conditions x 10 trials, 50 neurons, 1 s trials of 10 ms bins), fits it with
``nwb_lfads.fit.fit`` aligned on ``start_time`` for ``--minutes`` of training, reads
``processing/lfads/initial_conditions`` back from the enriched NWB file and scores a
cross-validated nearest-centroid classifier (``nwb_lfads.conditions``, 5 stratified folds) of
each trial's ``condition_id`` from ``ic_mean`` and from ``g0``. For reference the same
classifier on each unit's spike count in the first 100 ms and in the whole trial, and chance
(the most frequent condition's share).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--conditions", type=int, default=100)
    parser.add_argument("--trials", type=int, default=10, help="trials per condition")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()

    import numpy as np
    import pynwb

    from nwb_lfads.conditions import nearest_centroid_accuracy
    from nwb_lfads.fit import fit
    from nwb_lfads.io.read import read_session
    from nwb_lfads.synthetic import simulate

    with tempfile.TemporaryDirectory() as tmp:
        (src,) = simulate(
            Path(tmp) / "sim",
            n_conditions=args.conditions,
            trials_per_condition=args.trials,
            seed=args.seed,
        )
        overrides = [
            "data.align_to=start_time",
            f"train.max_minutes={args.minutes}",
            f"train.seed={args.seed}",
            *args.sets,
        ]
        t0 = time.perf_counter()
        result = fit([src], Path(tmp) / "run", overrides=overrides, progress=False, plots=False)
        wall = time.perf_counter() - t0
        with pynwb.NWBHDF5IO(str(result.outputs[0]), "r") as io:
            nwb = io.read()
            table = nwb.processing["lfads"]["initial_conditions"]
            ids = np.asarray(table["trial_id"].data[:])
            row = {int(i): k for k, i in enumerate(nwb.trials.id[:])}
            conditions = np.asarray(nwb.trials["condition_id"][:])[[row[int(i)] for i in ids]]
            ic_mean, g0 = np.asarray(table["ic_mean"].data[:]), np.asarray(table["g0"].data[:])
        ds = read_session(src, align_to="start_time", bin_size=0.01)
        ds = ds.sel(trial=ids)
        counts = ds["spikes"].values.astype(float)  # [M, T, N]
        scores = {
            "ic_mean": nearest_centroid_accuracy(ic_mean, conditions),
            "g0": nearest_centroid_accuracy(g0, conditions),
            "counts_first_100ms": nearest_centroid_accuracy(counts[:, :10].sum(1), conditions),
            "counts_whole_trial": nearest_centroid_accuracy(counts.sum(1), conditions),
        }
    summary = result.summary[0]
    line = {
        "bench": "initial_conditions",
        "conditions": args.conditions,
        "trials_per_condition": args.trials,
        "seed": args.seed,
        "minutes": args.minutes,
        "epochs": result.epochs,
        "wall_s": round(wall, 1),
        "r2_vs_truth": round(summary["r2"], 4) if "r2" in summary else None,
        "chance": round(scores["ic_mean"][1], 4),
        **{f"accuracy_{name}": round(acc, 4) for name, (acc, _) in scores.items()},
        "sets": args.sets,
    }
    print(json.dumps(line))


if __name__ == "__main__":
    main()
