"""Co-smoothing on real data: NLB's MC_Maze_Small with pseudo-held-out units: prints JSON.

The NLB test file in ``tests/data`` (107 units, 100 trials) holds no held-out units: its
``heldout`` column is False everywhere and its trials are all ``split=test``. This bench copies
it into ``--out`` (the input is never modified), marks ``--heldout`` randomly chosen units as
held out and ``--eval`` randomly chosen trials as ``split=val`` (the rest ``train``) in the copy
(h5py, in place of the existing columns), fits with the default settings and NLB's MC_Maze
recipe (``--align-to move_onset_time --window -0.25 0.45 --bin-size 0.005 --heldout-units
heldout --eval-trials split=val``) for ``--minutes`` of training, evaluates and prints JSON:
co-bps of LFADS (``co_bps``) and of NLB's smoothing + Poisson GLM baseline
(``co_bps_smoothing``) on the eval trials' held-out units, ``bps_heldin`` and ``bps``, with the
counts, training minutes, steps and load average of the run.

    python bench/nlb_mc_maze_small.py [--minutes 5] [--heldout 27] [--eval 20] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

SOURCE = (
    Path(__file__).resolve().parents[1] / "tests/data/sub-Jenkins_ses-small_desc-test_ecephys.nwb"
)


def pseudo_heldout_copy(source: Path, target: Path, n_heldout: int, n_eval: int, seed: int) -> Path:
    """Copy ``source`` to ``target`` and mark ``n_heldout`` units held out and ``n_eval`` trials
    ``split=val`` there (the other trials ``train``)."""
    import h5py

    shutil.copyfile(source, target)
    os.chmod(target, 0o644)
    rng = np.random.default_rng(seed)
    with h5py.File(target, "r+") as f:
        held = f["units/heldout"]
        mask = np.zeros(held.shape[0], bool)
        mask[rng.choice(held.shape[0], n_heldout, replace=False)] = True
        held[...] = mask
        split = f["intervals/trials/split"]
        values = np.array(["train"] * split.shape[0], dtype=object)
        values[rng.choice(split.shape[0], n_eval, replace=False)] = "val"
        split[...] = values
    return target


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--minutes", type=float, default=5.0, help="training wall-time budget (train.max_minutes)"
    )
    p.add_argument(
        "--heldout", type=int, default=27, help="units to mark held out (NLB: 35 of 142)"
    )
    p.add_argument("--eval", type=int, default=20, help="trials to mark split=val (NLB: 25 of 100)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--source", default=str(SOURCE))
    p.add_argument("--out", default=None, help="folder to keep (default: a temporary one)")
    p.add_argument(
        "--set", action="append", default=[], help="config override KEY=VALUE (after the recipe's)"
    )
    args = p.parse_args(argv)

    from nwb_lfads.evaluate import evaluate
    from nwb_lfads.fit import fit, read_metrics

    root = Path(args.out or tempfile.mkdtemp(prefix="nlb-maze-small-"))
    root.mkdir(parents=True, exist_ok=True)
    path = pseudo_heldout_copy(
        Path(args.source), root / "mc_maze_small_pseudo.nwb", args.heldout, args.eval, args.seed
    )
    load_start = os.getloadavg()[0]
    start = time.perf_counter()
    fit(
        [path],
        root / "run",
        progress=False,
        plots=False,
        overrides=[
            "data.align_to=move_onset_time",
            "data.window=[-0.25, 0.45]",
            "data.bin_size=0.005",
            "data.heldout_units=heldout",
            "data.eval_trials=split=val",
            f"train.max_minutes={args.minutes}",
            f"train.seed={args.seed}",
            *args.set,
        ],
    )
    wall = time.perf_counter() - start
    history = read_metrics(root / "run")
    session = evaluate(root / "run", write=True)["sessions"][0]
    m = session["metrics"]
    print(
        json.dumps(
            {
                "units": session["n_units"],
                "heldout_units": session["n_heldout"],
                "trials": session["n_trials"],
                "eval_trials": session["n_eval_trials"],
                "bin_size_s": 0.005,
                "train_minutes": round(history[-1]["elapsed_s"] / 60, 2),
                "steps": int(history[-1]["step"]),
                "best_epoch": int(history[-1]["best_epoch"]),
                "fit_wall_s": round(wall, 1),
                "cpu_count": os.cpu_count(),
                "load_avg_start": round(load_start, 2),
                "load_avg_end": round(os.getloadavg()[0], 2),
                "overrides": args.set,
                **{
                    k: (round(m[k], 4) if k in m else None)
                    for k in ("co_bps", "co_bps_smoothing", "bps_heldin", "bps")
                },
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
