"""Co-smoothing on a simulated session with held-out units and an eval split (issue 8).

Simulates one session observing a chaotic RNN (log-linear read-out), marks 25% of the units as
held out and 20% of the trials as NLB's ``split=val``, fits with the default settings for a wall
time budget (``--heldout-units heldout --eval-trials split=val``), then evaluates: co-bps of
LFADS against NLB's smoothing + Poisson GLM baseline, and R^2 of the held-out units' rates on the
eval trials against their true rates. Prints JSON.

    python bench/nlb_cosmoothing.py [--minutes 5] [--units 80] [--conditions 40] [--trials 10]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=5.0)
    p.add_argument("--units", type=int, default=80)
    p.add_argument("--conditions", type=int, default=40)
    p.add_argument("--trials", type=int, default=10, help="trials per condition")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="folder to keep (default: a temporary one)")
    args = p.parse_args(argv)

    from nwb_lfads.evaluate import evaluate
    from nwb_lfads.fit import fit
    from nwb_lfads.synthetic import simulate

    root = Path(args.out or tempfile.mkdtemp(prefix="nlb-bench-"))
    (path,) = simulate(root / "data", sessions=1, seed=args.seed, n_conditions=args.conditions,
                       trials_per_condition=args.trials, n_units=[args.units], heldout_fraction=0.25,
                       eval_fraction=0.2, overwrite=True)
    start = time.perf_counter()
    result = fit([path], root / "run", progress=False, plots=False,
                 overrides=["data.align_to=move_onset_time", "data.window=[-0.25, 0.75]",
                            "data.heldout_units=heldout", "data.eval_trials=split=val",
                            f"train.max_minutes={args.minutes}", f"train.seed={args.seed}"])
    wall = time.perf_counter() - start
    report = evaluate(root / "run", write=False)
    metrics = report["sessions"][0]["metrics"]
    keys = ("co_bps", "co_bps_smoothing", "r2_truth_heldout_eval", "r2_truth", "r2_truth_smoothing", "bps_heldin")
    print(json.dumps({"units": args.units, "heldout_units": round(args.units * 0.25), "trials":
                      args.conditions * args.trials, "fit_wall_s": round(wall, 1), "epochs": result.epochs,
                      "cpu_count": os.cpu_count(), "load_avg": os.getloadavg()[0],
                      **{k: (round(metrics[k], 4) if k in metrics else None) for k in keys}}, indent=1))


if __name__ == "__main__":
    main()
