"""Fit LFADS to a real NWB file from Python: read_session -> train -> infer -> write_results.

The file is the Neural Latents Benchmark's MC_Maze_Small test split (DANDI:000140), shipped in
``tests/data``; any NWB file with a Units table and a trials table works the same way.

    python examples/fit_mc_maze_small.py [NWB_FILE] [--out runs/mc_maze_small] [--max-epochs 50]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import nwb_lfads
from nwb_lfads.config import RunConfig
from nwb_lfads.data import prepare_data
from nwb_lfads.infer import infer
from nwb_lfads.train.loop import train

DEFAULT_FILE = (
    Path(__file__).resolve().parents[1] / "tests/data/sub-Jenkins_ses-small_desc-test_ecephys.nwb"
)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("nwb_file", nargs="?", default=str(DEFAULT_FILE))
    parser.add_argument("--out", default="runs/mc_maze_small")
    parser.add_argument("--max-epochs", type=int, default=50)
    args = parser.parse_args(argv)

    # 1. NWB -> xarray: spike counts (trial, time, unit) in 10 ms bins around movement onset (NLB's window)
    ds = nwb_lfads.read_session(
        args.nwb_file, bin_size=0.01, align_to="move_onset_time", window=(-0.25, 0.45)
    )
    print(
        f"{ds.attrs['session_id']}: {ds.sizes['trial']} trials x {ds.sizes['time']} bins x {ds.sizes['unit']} units"
    )

    # 2. one configuration object (frozen dataclasses; saved as config.yaml in the run)
    cfg = RunConfig().replace(
        data={"bin_size": 0.01, "align_to": "move_onset_time", "window": [-0.25, 0.45]},
        train={"max_epochs": args.max_epochs},
    )

    # 3. arrays (train/valid split), training (checkpoints and metrics.csv in the run folder)
    data = prepare_data([ds], cfg.data)
    result = train(data, cfg, args.out)

    # 4. posterior means back to xarray with the input's coordinates: rates in Hz, factors, inferred inputs
    (res,) = infer(result.params, cfg, [ds])
    print(f"mean inferred rate {float(res.rates.mean()):.2f} Hz, factors {dict(res.factors.sizes)}")

    # 5. a copy of the file with processing/lfads (the input is never modified)
    out = nwb_lfads.write_results(
        args.nwb_file,
        res,
        Path(args.out) / "mc_maze_small.lfads.nwb",
        provenance={"config": cfg.to_dict(), "final_metrics": result.history[-1]},
    )
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()
