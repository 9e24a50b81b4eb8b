"""kill -9 at random moments of a fit, then the documented continue command. Prints one JSON line.

    python bench/faults.py [--draws 20] [--seed 0] [--epochs 15] [--out bench/results/X.jsonl]

Simulates one small session (8 conditions x 6 trials, 12 units), times one uninterrupted
``nwb-lfads fit`` of a tiny model (when training starts: ``config.yaml`` appears; when the final
write starts: the hidden temporary ``.<stem>.lfads.nwb.tmp-<pid>.nwb`` appears; the end), then
for each draw starts the same command in a subprocess and sends SIGKILL either at a uniform
random moment between the start and the final write ("training": reading, compiling,
training, checkpoints) or a uniform random delay after the final write's temporary file
appears ("write"). After each kill it runs the continue command the README gives (the same
command plus ``--resume``) and checks: it exits 0, the enriched file opens in pynwb with
``processing/lfads/rates``, no temporary file is left, and the input's SHA-256 is unchanged.
Before the continue command it counts partial outputs: a ``*.lfads.nwb`` that does not open
or lacks ``processing/lfads``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TINY = [
    *("--set", "model.gen_dim=12", "--set", "model.ic_enc_dim=8", "--set", "model.ci_enc_dim=8"),
    *("--set", "model.con_dim=8", "--set", "model.fac_dim=4", "--set", "model.ic_dim=8"),
    *("--set", "model.co_dim=2", "--set", "train.batch_size=16", "--set", "train.n_samples=3"),
    *("--align-to", "move_onset_time", "--quiet", "--no-plots"),
]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def command(source: Path, out: Path, epochs: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "nwb_lfads.cli.main",
        "fit",
        str(source),
        "--out",
        str(out),
        "--max-epochs",
        str(epochs),
        *TINY,
    ]


def temporaries(run: Path) -> list[Path]:
    from nwb_lfads.rundir import RunDir

    return RunDir(run).temporaries()


def writing(run: Path) -> bool:
    """The final write has started: the writer's hidden temporary file exists."""
    return run.is_dir() and any(p.name.endswith(".nwb") for p in run.glob(".*.lfads.nwb.tmp-*"))


def checkpointed(run: Path) -> bool:
    """Training has saved its first checkpoint."""
    from nwb_lfads.rundir import RunDir

    return RunDir(run).checkpoint.has_state()


def complete(path: Path) -> bool:
    """An enriched file that opens and holds processing/lfads/rates."""
    import pynwb

    try:
        with pynwb.NWBHDF5IO(str(path), "r") as io:
            return "rates" in io.read().processing["lfads"].data_interfaces
    except Exception:
        return False


def timed_run(cmd: list[str], run: Path) -> dict:
    """One uninterrupted fit: seconds to config.yaml, to the final write, to the end."""
    t0 = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    marks = {}
    while child.poll() is None:
        now = time.perf_counter() - t0
        if "train_start_s" not in marks and (run / "config.yaml").exists():
            marks["train_start_s"] = now
        if "checkpoint_s" not in marks and checkpointed(run):
            marks["checkpoint_s"] = now
        if "write_start_s" not in marks and writing(run):
            marks["write_start_s"] = now
        time.sleep(0.002)
    marks["end_s"] = time.perf_counter() - t0
    if child.returncode != 0:
        raise SystemExit(f"the uninterrupted fit failed: {child.stderr.read()[-2000:]}")
    marks.setdefault("write_start_s", marks["end_s"])
    return marks


def draw(cmd, run: Path, phase: str, delay: float, source: Path, before: str) -> dict:
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.perf_counter()
    if phase in ("write", "checkpointed"):
        ready = writing if phase == "write" else checkpointed
        while child.poll() is None and not ready(run):
            time.sleep(0.001)
        t0 = time.perf_counter()
    while child.poll() is None and time.perf_counter() - t0 < delay:
        time.sleep(0.001)
    killed = child.poll() is None
    if killed:
        os.kill(child.pid, signal.SIGKILL)
    child.wait()
    outputs = sorted(run.glob("*.lfads.nwb")) if run.is_dir() else []
    partial = [p.name for p in outputs if not complete(p)]
    left = [p.name for p in temporaries(run)]
    state = sorted(p.name for p in run.iterdir()) if run.is_dir() else []
    t1 = time.perf_counter()
    cont = subprocess.run([*cmd, "--resume"], capture_output=True, text=True)
    outputs = sorted(run.glob("*.lfads.nwb"))
    ok = cont.returncode == 0 and len(outputs) == 1 and complete(outputs[0])
    return {
        "phase": phase,
        "delay_s": round(delay, 3),
        "killed": killed,
        "state_after_kill": state,
        "partial_outputs": partial,
        "temporaries_after_kill": left,
        "continue_rc": cont.returncode,
        "continue_s": round(time.perf_counter() - t1, 1),
        "continue_note": next(
            (line for line in cont.stdout.splitlines() + cont.stderr.splitlines() if "run" in line),
            "",
        )[:200],
        "continued": ok,
        "temporaries_after_continue": [p.name for p in temporaries(run)],
        "input_unchanged": sha256(source) == before,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument(
        "--phases",
        default="training,write",
        help="comma-separated, cycled over the draws: training (start to final write), write "
        "(into the final write), checkpointed (after the first checkpoint, before the write)",
    )
    parser.add_argument("--out", type=Path, default=None, help="append the JSON line here")
    args = parser.parse_args()

    import numpy as np

    from nwb_lfads.synthetic import simulate

    rng = np.random.default_rng(args.seed)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (source,) = simulate(
            tmp / "sim", seed=4, n_conditions=8, trials_per_condition=6, n_units=[12]
        )
        before = sha256(source)
        baseline = timed_run(command(source, tmp / "baseline", args.epochs), tmp / "baseline")
        write_s = max(baseline["end_s"] - baseline["write_start_s"], 0.05)
        draws = []
        phases = args.phases.split(",")
        span = {
            "training": baseline["write_start_s"],
            "write": write_s,
            "checkpointed": baseline["write_start_s"] - baseline.get("checkpoint_s", 0.0),
        }
        for i in range(args.draws):
            phase = phases[i % len(phases)]
            delay = rng.uniform(0.0, max(span[phase], 0.05))
            run = tmp / f"draw{i}"
            record = draw(command(source, run, args.epochs), run, phase, delay, source, before)
            draws.append(record)
            print(json.dumps({"draw": i, **record}), file=sys.stderr, flush=True)
    killed = [d for d in draws if d["killed"]]
    result = {
        "bench": "faults",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpu_count": os.cpu_count(),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "epochs": args.epochs,
        "seed": args.seed,
        "baseline_s": {k: round(v, 2) for k, v in baseline.items()},
        "draws": len(draws),
        "killed": len(killed),
        "killed_training": sum(d["phase"] == "training" for d in killed),
        "killed_write": sum(d["phase"] == "write" for d in killed),
        "killed_checkpointed": sum(d["phase"] == "checkpointed" for d in killed),
        "phases": phases,
        "continued": sum(d["continued"] for d in draws),
        "unusable_run_dirs": sum(not d["continued"] for d in draws),
        "partial_outputs": sum(bool(d["partial_outputs"]) for d in draws),
        "temporaries_left_after_continue": sum(
            bool(d["temporaries_after_continue"]) for d in draws
        ),
        "input_changed": sum(not d["input_unchanged"] for d in draws),
        "continue_s_mean": round(float(np.mean([d["continue_s"] for d in draws])), 1),
        "per_draw": draws,
    }
    line = json.dumps(result)
    print(line)
    if args.out is not None:
        with open(args.out, "a") as fh:
            fh.write(line + "\n")


if __name__ == "__main__":
    main()
