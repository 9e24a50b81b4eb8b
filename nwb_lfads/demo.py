"""The embedded default: simulate three sessions, fit them jointly, report recovery.

``nwb-lfads demo`` (and ``make demo``) runs :func:`run_demo`: three synthetic sessions that
observe ONE chaotic RNN through different random read-outs (40, 55 and 70 units), one stitched
LFADS model over all of them, enriched NWB copies, and a per-session table of R^2 against the
true rates next to a smoothing baseline. It fits in a few minutes on 2 CPU cores.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

DEMO_UNITS = (40, 55, 70)
DEMO_CONDITIONS = 24
DEMO_TRIALS_PER_CONDITION = 8
DEMO_WINDOW = (-0.25, 0.75)  # around move_onset_time = trial start + 0.25 s: the whole 1 s trial
DEMO_OVERRIDES = (
    "data.align_to=move_onset_time",
    f"data.window=[{DEMO_WINDOW[0]}, {DEMO_WINDOW[1]}]",
    "data.bin_size=0.01",
)


def run_demo(
    out="demo_out",
    *,
    max_minutes: float = 6.0,
    max_epochs: int | None = None,
    seed: int = 0,
    overrides: tuple[str, ...] = (),
    progress: bool = True,
    echo: Callable[[str], None] = print,
):
    """Simulate into ``out/data``, fit into ``out/run`` (replacing an earlier demo), return the ``FitResult``."""
    from .fit import fit
    from .synthetic import simulate

    out = Path(out)
    data_dir, run_dir = out / "data", out / "run"
    for folder in (data_dir, run_dir):
        if folder.exists():
            shutil.rmtree(folder)
    echo(
        f"Simulating {len(DEMO_UNITS)} sessions of one chaotic RNN ({', '.join(map(str, DEMO_UNITS))} units) "
        f"into {data_dir} ..."
    )
    paths = simulate(
        data_dir,
        sessions=len(DEMO_UNITS),
        seed=seed,
        kind="chaotic",
        n_conditions=DEMO_CONDITIONS,
        trials_per_condition=DEMO_TRIALS_PER_CONDITION,
        n_units=list(DEMO_UNITS),
    )
    limits = [f"train.max_minutes={max_minutes}", f"train.seed={seed}"]
    if max_epochs is not None:
        limits.append(f"train.max_epochs={max_epochs}")
    echo(
        f"Fitting one stitched LFADS model to {len(paths)} sessions (at most {max_minutes:g} minutes) ..."
    )
    return fit(
        paths,
        run_dir,
        overrides=[*DEMO_OVERRIDES, *limits, *overrides],
        progress=progress,
        echo=echo,
    )
