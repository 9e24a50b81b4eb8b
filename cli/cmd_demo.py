"""``nwb-lfads demo``: simulate three sessions, fit them jointly, report recovery of the true rates."""

from __future__ import annotations

import sys

import click


@click.command("demo")
@click.option(
    "--out",
    "out",
    default="demo_out",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder for the simulated sessions (data/) and the run (run/); replaced if it holds a demo.",
)
@click.option(
    "--max-minutes", type=float, default=6.0, show_default=True, help="Training time budget."
)
@click.option(
    "--max-epochs", type=int, default=None, help="Stop after this many epochs (for a quick look)."
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed of the simulation and the fit."
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a setting, e.g. model.gen_dim=64.",
)
@click.option("--quiet", is_flag=True, help="No progress bars.")
def command(out, max_minutes, max_epochs, seed, sets, quiet):
    """Simulate three sessions of one chaotic RNN, fit one stitched model, report recovery.

    Prints, per session, the R^2 of the inferred rates against the true rates next to a
    Gaussian-smoothing baseline, and where the enriched NWB files and figures are.
    """
    from nwb_lfads.demo import run_demo

    try:
        result = run_demo(
            out,
            max_minutes=max_minutes,
            max_epochs=max_epochs,
            seed=seed,
            overrides=tuple(sets),
            progress=not quiet,
            echo=click.echo,
        )
    except KeyboardInterrupt:
        click.echo("\nInterrupted.", err=True)
        sys.exit(130)
    click.echo(f"\nRecovery of the true rates after {result.epochs} epochs:\n{result.table}\n")
    click.echo(f"Enriched NWB files: {', '.join(str(p) for p in result.outputs)}")
    if result.plots:
        click.echo(
            f"Figures ({len(result.plots)} PNG): {result.run_dir}/*.png, e.g. {result.plots[0]}"
        )
    click.echo(f"Score again any time with: nwb-lfads evaluate {result.run_dir}")
