"""Does a known input help? The chaotic RNN with input pulses, fitted with and without it.

    python bench/external_inputs.py --minutes 10 [--conditions 100 --trials 10] [--set K=V ...]

Simulates ``nwb-lfads simulate --kind chaotic-inputs`` (by default 100 conditions x 10 trials,
50 neurons observed as in the TF LFADS benchmark, 1 s trials of 10 ms bins; every trial gets
one input pulse at a random time in its middle half, recorded as the trials column
``pulse_time``), then fits it twice with ``nwb_lfads.fit.fit`` aligned on ``start_time``, each
for ``--minutes`` of training and the same seed: without external inputs, and with
``--external-input pulse_time`` (a unit pulse in the pulse's bin). Prints one JSON line per
fit and a last one comparing them.

Per fit: ``r2`` (per neuron, 1 - SSE/SST of the posterior-mean rates against the true rates
over all trials and bins, averaged over neurons, as ``session_summary`` reports it), and the
inferred inputs read back from ``processing/lfads/inferred_inputs``: ``u_abs_mean`` (mean
absolute value over trials, bins and inputs), ``u_abs_pulse`` (the same over the pulse bin and
the 4 bins after it) and ``u_abs_rest`` (all other bins). The load average before and after
each fit is recorded: the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

AFTER_PULSE = 5  # bins from the pulse bin counted as "at the pulse"


def _git(*args) -> str:
    try:
        return subprocess.run(
            ["git", *args], capture_output=True, text=True, cwd=Path(__file__).parent, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def inferred_input_sizes(path, pulse_bins) -> dict:
    """Mean |u| of ``processing/lfads/inferred_inputs`` of the enriched file ``path``: overall,
    in the ``AFTER_PULSE`` bins from each trial's pulse bin (``pulse_bins`` int [K]), elsewhere."""
    import numpy as np
    import pynwb

    with pynwb.NWBHDF5IO(str(path), "r") as io:
        u = np.abs(np.asarray(io.read().processing["lfads"]["inferred_inputs"].data[:]))
    K = len(pulse_bins)
    u = u.reshape(K, -1, u.shape[-1])  # aligned trials are written in trial order, T bins each
    at = np.zeros(u.shape[:2], bool)
    for k, b in enumerate(pulse_bins):
        at[k, b : b + AFTER_PULSE] = True
    return {
        "u_abs_mean": round(float(u.mean()), 4),
        "u_abs_pulse": round(float(u[at].mean()), 4),
        "u_abs_rest": round(float(u[~at].mean()), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--conditions", type=int, default=100)
    parser.add_argument("--trials", type=int, default=10, help="trials per condition")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()

    import numpy as np
    import pynwb

    from nwb_lfads.fit import fit
    from nwb_lfads.synthetic import simulate

    common = {
        "bench": "external_inputs",
        "commit": _git("rev-parse", "--short", "HEAD"),
        "conditions": args.conditions,
        "trials_per_condition": args.trials,
        "seed": args.seed,
        "minutes": args.minutes,
        "cpus": os.cpu_count(),
        "sets": args.sets,
    }
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        (src,) = simulate(
            Path(tmp) / "sim",
            kind="chaotic-inputs",
            n_conditions=args.conditions,
            trials_per_condition=args.trials,
            seed=args.seed,
        )
        with pynwb.NWBHDF5IO(str(src), "r") as io:
            trials = io.read().trials
            pulse_bins = np.floor(
                (np.asarray(trials["pulse_time"][:]) - np.asarray(trials["start_time"][:])) / 0.01
            ).astype(int)
        for inputs in ((), ("pulse_time",)):
            overrides = [
                "data.align_to=start_time",
                f"train.max_minutes={args.minutes}",
                f"train.seed={args.seed}",
                f"data.external_inputs={json.dumps(list(inputs))}",
                *args.sets,
            ]
            load_start = [round(x, 2) for x in os.getloadavg()]
            t0 = time.perf_counter()
            result = fit(
                [src],
                Path(tmp) / f"run{len(inputs)}",
                overrides=overrides,
                progress=False,
                plots=False,
            )
            line = {
                **common,
                "external_inputs": list(inputs),
                "epochs": result.epochs,
                "wall_s": round(time.perf_counter() - t0, 1),
                "r2": round(result.summary[0]["r2"], 4),
                **inferred_input_sizes(result.outputs[0], pulse_bins),
                "load_avg_start": load_start,
                "load_avg_end": [round(x, 2) for x in os.getloadavg()],
            }
            lines.append(line)
            print(json.dumps(line), flush=True)
    without, with_ = lines
    print(
        json.dumps(
            {
                **common,
                "comparison": True,
                "r2_without": without["r2"],
                "r2_with": with_["r2"],
                "r2_gain": round(with_["r2"] - without["r2"], 4),
                "u_abs_mean_without": without["u_abs_mean"],
                "u_abs_mean_with": with_["u_abs_mean"],
                "u_abs_pulse_without": without["u_abs_pulse"],
                "u_abs_pulse_with": with_["u_abs_pulse"],
            }
        )
    )


if __name__ == "__main__":
    main()
