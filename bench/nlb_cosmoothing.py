"""Co-smoothing on a simulated session with held-out units and an eval split: prints JSON.

Simulates one session observing a chaotic RNN (log-linear read-out, rates 1-40 Hz, 10 ms bins),
marks 25% of the units as held out and 20% of the trials as NLB's ``split=val``, fits with the
default model and training settings for a wall-time budget (``--heldout-units heldout
--eval-trials split=val``, NLB's window of -0.25 to 0.45 s around movement onset), then
evaluates (:func:`nwb_lfads.evaluate.evaluate`) and prints JSON:

- ``co_bps``: LFADS co-smoothing bits/spike of the held-out units on the eval trials;
- ``co_bps_smoothing``: NLB's baseline on the same spikes (Gaussian-smoothed held-in spikes ->
  Poisson GLM per held-out unit, fitted on the other trials);
- ``co_bps_truth``: the true rates' co-bps (the ceiling any model can reach on these spikes);
- ``r2_truth_heldout_eval`` / ``r2_truth_heldin``: mean per-unit R^2 of the rates against the
  true rates, held-out units on eval trials / held-in units on all trials;
- ``train_minutes`` (training loop, from metrics.csv) and ``fit_wall_s`` (read, compile, train,
  infer, write).

    python bench/nlb_cosmoothing.py [--minutes 7] [--units 80] [--conditions 40] [--trials 10]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

KEYS = (
    "co_bps",
    "co_bps_smoothing",
    "co_bps_truth",
    "r2_truth_heldout_eval",
    "r2_truth_heldin",
    "r2_truth",
    "r2_truth_smoothing",
    "bps_heldin",
)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--minutes", type=float, default=7.0, help="training wall-time budget (train.max_minutes)"
    )
    p.add_argument("--units", type=int, default=80)
    p.add_argument("--conditions", type=int, default=40)
    p.add_argument("--trials", type=int, default=10, help="trials per condition")
    p.add_argument(
        "--window", type=float, nargs=2, default=(-0.25, 0.45), help="s around move_onset_time"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="folder to keep (default: a temporary one)")
    args = p.parse_args(argv)

    from nwb_lfads.evaluate import evaluate
    from nwb_lfads.fit import fit, read_metrics
    from nwb_lfads.synthetic import simulate

    root = Path(args.out or tempfile.mkdtemp(prefix="nlb-bench-"))
    (path,) = simulate(
        root / "data",
        sessions=1,
        seed=args.seed,
        n_conditions=args.conditions,
        trials_per_condition=args.trials,
        n_units=[args.units],
        heldout_fraction=0.25,
        eval_fraction=0.2,
        overwrite=True,
    )
    load_start = os.getloadavg()[0]
    start = time.perf_counter()
    result = fit(
        [path],
        root / "run",
        progress=False,
        plots=False,
        overrides=[
            "data.align_to=move_onset_time",
            f"data.window=[{args.window[0]}, {args.window[1]}]",
            "data.heldout_units=heldout",
            "data.eval_trials=split=val",
            f"train.max_minutes={args.minutes}",
            f"train.seed={args.seed}",
        ],
    )
    wall = time.perf_counter() - start
    history = read_metrics(root / "run")
    report = evaluate(root / "run", write=True)
    session = report["sessions"][0]
    metrics = session["metrics"]
    print(
        json.dumps(
            {
                "units": session["n_units"],
                "heldout_units": session["n_heldout"],
                "trials": session["n_trials"],
                "eval_trials": session["n_eval_trials"],
                "window_s": list(args.window),
                "bin_size_s": 0.01,
                "train_minutes": round(history[-1]["elapsed_s"] / 60, 2) if history else None,
                "epochs": result.epochs,
                "steps": int(history[-1]["step"]) if history else 0,
                "best_epoch": int(history[-1]["best_epoch"]) if history else None,
                "fit_wall_s": round(wall, 1),
                "cpu_count": os.cpu_count(),
                "load_avg_start": round(load_start, 2),
                "load_avg_end": round(os.getloadavg()[0], 2),
                **{k: (round(metrics[k], 4) if k in metrics else None) for k in KEYS},
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
