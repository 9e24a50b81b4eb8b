"""``nwb-lfads simulate OUT_DIR``: write synthetic NWB sessions with known latent dynamics."""

from __future__ import annotations

import click

from nwb_lfads.config import SimulationKind, choices
from nwb_lfads.errors import ConfigError


def _parse_units(values: tuple[str, ...]) -> list[int] | None:
    """``--units 40,55 --units 70`` -> [40, 55, 70]; None when not given."""
    if not values:
        return None
    out = []
    for value in values:
        for part in value.split(","):
            try:
                out.append(int(part))
            except ValueError:
                raise ConfigError(
                    f"--units: {part!r} is not an integer; give unit counts like "
                    f"'--units 40,55,70' or '--units 50'."
                ) from None
    return out


@click.command("simulate")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option(
    "--sessions",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Number of sessions (several: one shared latent system, a read-out per session).",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed of the whole simulation."
)
@click.option(
    "--kind",
    type=click.Choice(choices(SimulationKind)),
    default="chaotic",
    show_default=True,
    help="Latent system: the LFADS chaotic RNN, the chaotic RNN with one known input pulse per "
    "trial (trials column pulse_time, TimeSeries stimulus/pulse), a Lorenz attractor, or "
    "calcium: two-photon imaging of a chaotic RNN (dF/F at 30 Hz in processing/ophys, "
    "noise-free dF/F and true rates in processing/ground_truth).",
)
@click.option(
    "--conditions",
    type=click.IntRange(min=1),
    default=None,
    help="Number of conditions (initial states), shared by all sessions [default: 100; "
    "calcium 40].",
)
@click.option(
    "--trials-per-condition",
    type=click.IntRange(min=1),
    default=None,
    help="Trials per condition in every session [default: 10; several sessions 10, 8, 12; "
    "calcium 8].",
)
@click.option(
    "--units",
    "units",
    multiple=True,
    metavar="N[,N...]",
    help="Units per session, one value or one per session (e.g. 40,55,70) "
    "[default: 50 for one chaotic session (the TF benchmark), 30 for one Lorenz "
    "session, 60 ROIs for calcium, else 40, 55, 70 cycled].",
)
@click.option(
    "--heldout-fraction",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.0,
    show_default=True,
    help="Fraction of units marked in a boolean units column 'heldout'.",
)
@click.option(
    "--eval-fraction",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.0,
    show_default=True,
    help="Fraction of trials marked 'val' in a trials column 'split' (the rest 'train').",
)
@click.option(
    "--noise",
    "noise_scale",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="calcium: sd of the dF/F noise, in one-spike transients of each ROI.",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Write into a non-empty OUT_DIR, replacing files of the same name.",
)
def command(
    out_dir,
    sessions,
    seed,
    kind,
    conditions,
    trials_per_condition,
    units,
    heldout_fraction,
    eval_fraction,
    noise_scale,
    overwrite,
) -> None:
    """Write synthetic NWB sessions (sim_session-<i>.nwb) into OUT_DIR.

    \b
    One chaotic session is the TF LFADS benchmark (50-unit chaotic RNN, rates up to 30 Hz,
    Poisson spikes). Each file has a trials table with move_onset_time and condition_id, a
    Units table, and the true rates in processing/ground_truth/rates. --kind calcium writes
    imaging sessions instead: 60 ROIs, 320 trials of 1.5 s, dF/F at 30 Hz
    (processing/ophys/DfOverF/dff), noise-free dF/F and true rates in processing/ground_truth.
    """
    from nwb_lfads.synthetic import simulate

    n_units = _parse_units(units)
    if n_units is not None and len(n_units) == 1:
        n_units = n_units[0]
    paths = simulate(
        out_dir,
        sessions=sessions,
        seed=seed,
        kind=kind,
        n_conditions=conditions,
        trials_per_condition=trials_per_condition,
        n_units=n_units,
        heldout_fraction=heldout_fraction,
        eval_fraction=eval_fraction,
        overwrite=overwrite,
        noise_scale=noise_scale,
    )
    for path in paths:
        click.echo(str(path))
