"""A new recording day on a trained model: ``transfer`` vs a fresh fit, one JSON line.

    nice -n 5 python bench/transfer.py --pretrain-minutes 5 --minutes 2 [--joint-minutes 10]

One chaotic RNN (:func:`nwb_lfads.synthetic.simulate`, ``--conditions`` conditions) is recorded
on two days with different neurons and their own log-linear read-outs: a large day 1
(``--large-trials-per-condition``, default 16 x 20 = 320 trials, ``--units`` 50) and a small
day 2 (``--small-trials-per-condition``, default 2 x 20 = 40 trials, 40 units), written as NWB
files like ``nwb-lfads simulate`` writes them. Day 1 is fitted for ``--pretrain-minutes``
(``nwb_lfads.fit.fit``, the package's default model, aligned on ``start_time``, the whole 1 s
trial). Then, each for ``--minutes`` of training wall time (``train.max_minutes``, the first
epoch's compilation included):

- ``transfer`` (``nwb_lfads.transfer.transfer``): day 2 on day 1's frozen model, once per
  ``model.readin_init`` in ``--readin`` (``auto``: the read-in aligned onto day 1's condition
  averages here, ``pcr``: PCR on day 2's own condition averages, ``random``);
- ``fresh``: ``fit`` of day 2 alone from scratch, same settings;
- ``joint`` (with ``--joint-minutes`` > 0): one stitched ``fit`` of both days.

Score: day 2's R^2 against its true rates (``summary.json``'s ``r2``: per-neuron R^2 of the
posterior-mean rates over all trials and bins, averaged over neurons). ``gain`` = best transfer
minus fresh; ``accept``: gain >= 0.10 (the issue's bar). The machine's load (``uptime``) is
recorded before and after: wall-time budgets on a shared host buy fewer steps under load.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BAR = 0.10


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def commit() -> tuple[str, bool]:
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout

    dirty = bool(git("status", "--porcelain", "nwb_lfads", "bench/transfer.py").strip())
    return git("rev-parse", "--short", "HEAD").strip(), dirty


def row(result, session: str | None = None) -> dict:
    """R^2, epochs and the stop of a FitResult (its session ``session``, default the last)."""
    from nwb_lfads.rundir import RunDir

    rows = result.summary
    mine = next((r for r in rows if r["session"] == session), rows[-1]) if session else rows[-1]
    metrics = RunDir(result.run_dir).read_metrics()
    return {
        "r2": round(float(mine.get("r2", float("nan"))), 4),
        "smoothing_r2": round(float(mine.get("smoothing_r2", float("nan"))), 4),
        "epochs": result.epochs,
        "train_s": round(float(metrics[-1]["elapsed_s"]), 1) if metrics else None,
        "best_epoch": int(metrics[-1]["best_epoch"]) if metrics else None,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pretrain-minutes", type=float, default=5.0)
    p.add_argument("--minutes", type=float, default=2.0)
    p.add_argument("--joint-minutes", type=float, default=0.0)
    p.add_argument("--conditions", type=int, default=20)
    p.add_argument("--large-trials-per-condition", type=int, default=16)
    p.add_argument("--small-trials-per-condition", type=int, default=2)
    p.add_argument("--units", type=int, nargs=2, default=[50, 40])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--readin", nargs="+", default=["auto", "random"])
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", default=None, help="keep the run directories here")
    p.add_argument("--tag", default="")
    args = p.parse_args(argv)

    from nwb_lfads.train.host_devices import split_host

    split_host()  # one XLA CPU device per core, before JAX starts (as the CLI does)
    from nwb_lfads.fit import fit
    from nwb_lfads.rundir import RunDir
    from nwb_lfads.synthetic import simulate
    from nwb_lfads.transfer import transfer

    t0 = time.perf_counter()
    work = Path(args.out or tempfile.mkdtemp(prefix="bench_transfer_"))
    files = simulate(
        work / "sim",
        sessions=2,
        seed=args.seed,
        n_conditions=args.conditions,
        trials_per_condition=[args.large_trials_per_condition, args.small_trials_per_condition],
        n_units=list(args.units),
        overwrite=True,
    )
    base = ["data.align_to=start_time", *args.sets]
    quiet = dict(progress=False, plots=False, echo=lambda *_: None)
    out = {
        "bench": "transfer",
        "settings": {
            "pretrain_minutes": args.pretrain_minutes,
            "minutes": args.minutes,
            "joint_minutes": args.joint_minutes,
            "conditions": args.conditions,
            "trials": [
                args.conditions * args.large_trials_per_condition,
                args.conditions * args.small_trials_per_condition,
            ],
            "units": list(args.units),
            "seed": args.seed,
        },
        "sets": args.sets,
        "load_before": load(),
    }
    out["commit"], out["dirty"] = commit()
    day1 = fit(
        [files[0]],
        work / "day1",
        overrides=[*base, f"train.max_minutes={args.pretrain_minutes}"],
        **quiet,
    )
    out["pretrain"] = row(day1)
    budget = f"train.max_minutes={args.minutes}"
    out["transfer"] = {}
    for method in args.readin:
        sets = [budget] + ([] if method == "auto" else [f"model.readin_init={method}"])
        res = transfer(
            day1.run_dir, [files[1]], work / f"transfer_{method}", overrides=sets, **quiet
        )
        start = RunDir(res.run_dir).read_transferred_from() or {}
        out["transfer"][method] = {
            **row(res),
            "readin_init": str(res.config.model.readin_init),
            "readin_start": start.get("readin_start"),
        }
    out["fresh"] = row(fit([files[1]], work / "fresh", overrides=[*base, budget], **quiet))
    if args.joint_minutes > 0:
        joint = fit(
            list(files),
            work / "joint",
            overrides=[*base, f"train.max_minutes={args.joint_minutes}"],
            **quiet,
        )
        out["joint"] = {
            "day2": row(joint, session="sim-1"),
            "day1": row(joint, session="sim-0"),
        }
    best = max(v["r2"] for v in out["transfer"].values())
    out["gain"] = round(best - out["fresh"]["r2"], 4)
    out["accept"] = out["gain"] >= BAR
    out["load_after"] = load()
    out["total_s"] = round(time.perf_counter() - t0, 1)
    line = json.dumps(out)
    print(line)
    date = time.strftime("%Y-%m-%d", time.gmtime())
    name = f"transfer_cpu{os.cpu_count()}_{date}" + (f"_{args.tag}" if args.tag else "") + ".jsonl"
    with open(ROOT / "bench" / "results" / name, "a") as fh:
        fh.write(line + "\n")
    print(
        f"day 2 R^2: transfer {out['transfer']}  fresh {out['fresh']['r2']}  gain {out['gain']}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
