"""Forward prediction: fp-bps of a fitted model against the true rates' own fp-bps (simulated
session) and on MC_Maze_Small (pseudo-held-out units): prints one JSON line per fit.

``--part sim``: one simulated chaotic-RNN session (``--conditions`` x ``--trials`` trials, 1 s
each, a quarter of the units held out, a fifth of the trials ``split=val``), fitted with the
default settings on ``--window -0.25 0.55 --forward 0.2 --bin-size 0.01`` (the window and its
forward bins cover the simulated trial, where the true rates are known), for ``--minutes`` of
training. Reports fp-bps of the fitted rates and of the true rates over the forward bins of the
eval trials (NLB's fp-bps: held-in and held-out units together, and each part), co-bps of both.

``--part maze``: the MC_Maze_Small test file with pseudo-held-out units and a pseudo val split
(as ``bench/nlb_mc_maze_small.py``), NLB's recipe plus ``--forward 0.2`` (NLB's 200 ms).

    python bench/forward.py --part sim|maze [--minutes 5] [--seed 0] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _fit_and_score(sources, run, overrides, minutes, seed) -> dict:
    from nwb_lfads.evaluate import evaluate
    from nwb_lfads.fit import fit, read_metrics

    load_start = os.getloadavg()[0]
    start = time.perf_counter()
    fit(
        sources,
        run,
        progress=False,
        plots=False,
        overrides=[*overrides, f"train.max_minutes={minutes}", f"train.seed={seed}"],
    )
    wall = time.perf_counter() - start
    history = read_metrics(run)
    session = evaluate(run, write=True)["sessions"][0]
    m = session["metrics"]
    keys = (
        "fp_bps",
        "fp_bps_heldin",
        "fp_bps_heldout",
        "fp_bps_truth",
        "co_bps",
        "co_bps_truth",
        "co_bps_smoothing",
        "bps_heldin",
    )
    return {
        "units": session["n_units"],
        "heldout_units": session["n_heldout"],
        "trials": session["n_trials"],
        "eval_trials": session["n_eval_trials"],
        "train_minutes": round(history[-1]["elapsed_s"] / 60, 2),
        "epochs": len(history),
        "best_epoch": int(history[-1]["best_epoch"]),
        "fit_wall_s": round(wall, 1),
        "cpu_count": os.cpu_count(),
        "load_avg_start": round(load_start, 2),
        "load_avg_end": round(os.getloadavg()[0], 2),
        **{k: round(m[k], 4) for k in keys if k in m},
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=("sim", "maze"), required=True)
    p.add_argument("--minutes", type=float, default=5.0, help="training budget (max_minutes)")
    p.add_argument("--seed", type=int, default=0, help="training seed (and the pseudo split's)")
    p.add_argument("--conditions", type=int, default=20, help="sim: conditions")
    p.add_argument("--trials", type=int, default=8, help="sim: trials per condition")
    p.add_argument("--out", default=None, help="folder to keep (default: a temporary one)")
    p.add_argument("--tag", default="", help="free text stored in the JSON line")
    args = p.parse_args(argv)
    root = Path(args.out or tempfile.mkdtemp(prefix=f"forward-{args.part}-"))
    root.mkdir(parents=True, exist_ok=True)
    common = [
        "data.align_to=move_onset_time",
        "data.heldout_units=heldout",
        "data.eval_trials=split=val",
        "data.forward=0.2",
    ]
    if args.part == "sim":
        from nwb_lfads.synthetic import simulate

        [source] = simulate(
            root / "sim",
            sessions=1,
            seed=100 + args.seed,
            n_conditions=args.conditions,
            trials_per_condition=args.trials,
            heldout_fraction=0.25,
            eval_fraction=0.2,
            overwrite=True,
        )
        recipe = [*common, "data.window=[-0.25, 0.55]", "data.bin_size=0.01"]
    else:
        from nlb_mc_maze_small import SOURCE, pseudo_heldout_copy

        source = pseudo_heldout_copy(SOURCE, root / "mc_maze_small_pseudo.nwb", 27, 20, args.seed)
        recipe = [*common, "data.window=[-0.25, 0.45]", "data.bin_size=0.005"]
    row = {
        "bench": "forward",
        "part": args.part,
        "seed": args.seed,
        "budget_minutes": args.minutes,
        "recipe": recipe,
        "tag": args.tag,
        **_fit_and_score([source], root / "run", recipe, args.minutes, args.seed),
    }
    print(json.dumps(row))


if __name__ == "__main__":
    main()
