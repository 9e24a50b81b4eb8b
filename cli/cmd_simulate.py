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
    "trial (trials column pulse_time, TimeSeries stimulus/pulse), or a Lorenz attractor.",
)
@click.option(
    "--conditions",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Number of conditions (initial states), shared by all sessions.",
)
@click.option(
    "--trials-per-condition",
    type=click.IntRange(min=1),
    default=None,
    help="Trials per condition in every session [default: 10; several sessions 10, 8, 12].",
)
@click.option(
    "--units",
    "units",
    multiple=True,
    metavar="N[,N...]",
    help="Units per session, one value or one per session (e.g. 40,55,70) "
    "[default: 50 for one chaotic session (the TF benchmark), 30 for one Lorenz "
    "session, else 40, 55, 70 cycled].",
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
    overwrite,
) -> None:
    """Write synthetic NWB sessions (sim_session-<i>.nwb) into OUT_DIR.

    \b
    One chaotic session is the TF LFADS benchmark (50-unit chaotic RNN, rates up to 30 Hz,
    Poisson spikes). Each file has a trials table with move_onset_time and condition_id, a
    Units table, and the true rates in processing/ground_truth/rates.
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
    )
    for path in paths:
        click.echo(str(path))
