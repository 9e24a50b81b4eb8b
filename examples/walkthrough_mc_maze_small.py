# %% [markdown]
# # From an NWB file to single-trial latent dynamics: a walk-through
#
# Notebook-style script (open it in VS Code or Jupyter with jupytext, or run it top to bottom
# with `python examples/walkthrough_mc_maze_small.py`). It uses the Neural Latents Benchmark's
# MC_Maze_Small test file (monkey Jenkins, M1/PMd, 107 units, 100 reaches; DANDI:000140),
# which lies in `tests/data`. On the full MC_Maze (DANDI:000128) the same cells apply:
# fetch it with `nwb-lfads download dandi:000128 --out data/`.

# %%
from pathlib import Path

import numpy as np

import nwb_lfads
from nwb_lfads.io.inspect import format_summary, summarize

NWB = Path(__file__).resolve().parents[1] / "tests/data/sub-Jenkins_ses-small_desc-test_ecephys.nwb"
RUN = Path("runs/walkthrough")
EPOCHS = 30  # a quick look; 200+ for a real fit

# %% [markdown]
# ## 1. What is in the file?
# `summarize` is what `nwb-lfads inspect` prints: units, trials columns usable for alignment,
# boolean units columns usable as held-out units.

# %%
print(format_summary(summarize(NWB)))

# %% [markdown]
# ## 2. Spikes as an aligned trial tensor
# 10 ms bins from 250 ms before to 450 ms after movement onset (NLB's window).

# %%
ds = nwb_lfads.read_session(NWB, bin_size=0.01, align_to="move_onset_time", window=(-0.25, 0.45))
print(ds)
print("mean firing rate (Hz):", float(ds.spikes.mean()) / ds.attrs["bin_size"])

# %% [markdown]
# ## 3. One call: read, train, write the enriched copy, plot
# `fit` is what `nwb-lfads fit` runs. Options are config overrides (`SECTION.FIELD=VALUE`).
# The run folder gets `config.yaml`, `checkpoint/`, `metrics.csv`, PNG figures and
# `<stem>.lfads.nwb`.

# %%
import shutil

from nwb_lfads.fit import fit

shutil.rmtree(RUN, ignore_errors=True)
result = fit(
    [NWB],
    RUN,
    overrides=[
        "data.align_to=move_onset_time",
        "data.window=[-0.25, 0.45]",
        "data.bin_size=0.01",
        f"train.max_epochs={EPOCHS}",
    ],
)
print(result.table)

# %% [markdown]
# ## 4. Read the inferred rates back with pynwb
# `processing/lfads/rates` is a 2-D TimeSeries (samples x units, Hz) whose timestamps are bin
# centres in session time, so it lines up with the original spikes and trials.

# %%
import pynwb

with pynwb.NWBHDF5IO(str(result.outputs[0]), "r") as io:
    nwbfile = io.read()
    rates = nwbfile.processing["lfads"]["rates"]
    print(rates.description)
    data = rates.data[:]
    t = (
        rates.timestamps[:]
        if rates.timestamps is not None
        else rates.starting_time + np.arange(len(data)) / rates.rate
    )
    onset = nwbfile.trials["move_onset_time"][:]
# rates of unit 0 in the first trial's window
first = (t >= onset[0] - 0.25) & (t < onset[0] + 0.45)
print("unit 0, trial 0 (Hz):", np.round(data[first, 0], 1))

# %% [markdown]
# ## 5. Score it
# `evaluate` reports what the file supports (bits/spike; co-bps with held-out units; PSTH R^2
# with conditions; R^2 against ground truth for simulated files).

# %%
from nwb_lfads.evaluate import evaluate, format_evaluation

print(format_evaluation(evaluate(RUN)))
