"""``nwb-lfads transfer RUN_DIR SOURCES... --out DIR``: a new recording day on a trained model."""

from __future__ import annotations

import sys

import click

from .options import inference_options, reading_options


@click.command("transfer")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.argument("sources", nargs=-1, required=True)
@click.option(
    "--out", "out", required=True, type=click.Path(file_okay=False), help="Run directory to create."
)
@reading_options
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a training setting (train.*, or model.readin_init=pcr|random). Repeatable.",
)
@click.option("--max-epochs", type=int, default=None, help="Stop after this many epochs.")
@click.option(
    "--max-minutes", type=float, default=None, help="Stop training after this many minutes."
)
@click.option(
    "--seed", type=int, default=None, help="Random seed of the new read-in/out and batches."
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Where DANDI assets are downloaded (default: the user cache folder).",
)
@inference_options
@click.option("--no-plots", is_flag=True, help="Skip the PNG figures.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def command(
    run_dir,
    sources,
    out,
    align_to,
    window,
    bin_size,
    sets,
    max_epochs,
    max_minutes,
    seed,
    cache_dir,
    n_samples,
    push_mean,
    write_states,
    no_plots,
    quiet,
):
    """Fit new sessions (SOURCES: a new recording day, other neurons) to the trained model in RUN_DIR.

    The trained encoders, controller and generator are frozen; each new session gets its own
    read-in and read-out, which alone are trained, then the sessions are written enriched into
    --out, a run directory that infer and evaluate accept and that records the source run. The
    read-in starts aligned onto the trained sessions' condition averages when the new session
    shares condition_id values with them (random otherwise; --set model.readin_init=pcr|random
    to choose). Sessions are read with the run's alignment, window and bin size: --align-to,
    --window and --bin-size, when given, must match them.

    \b
    Example:
      nwb-lfads transfer runs/day1 day2.nwb --out runs/day2 --max-minutes 2
    """
    from nwb_lfads.transfer import transfer

    pairs = [
        ("train.max_epochs", max_epochs),
        ("train.max_minutes", max_minutes),
        ("train.seed", seed),
    ]
    overrides = [f"{k}={v}" for k, v in pairs if v is not None] + list(sets)
    reading = {"align_to": align_to, "window": window or None, "bin_size": bin_size}
    try:
        result = transfer(
            run_dir,
            sources,
            out,
            overrides=overrides,
            reading=reading,
            progress=not quiet,
            plots=not no_plots,
            cache_dir=cache_dir,
            echo=click.echo,
            n_samples=n_samples,
            push_mean=push_mean,
            write_states=write_states,
        )
    except KeyboardInterrupt:
        click.echo(f"\nInterrupted: {out} holds a checkpoint of the partial transfer.", err=True)
        sys.exit(130)
    click.echo(f"\nTrained {result.epochs} epochs. Per-session summary:\n{result.table}\n")
    for path in result.outputs:
        click.echo(f"wrote {path}")
    if result.plots:
        click.echo(f"figures: {len(result.plots)} PNG files in {result.run_dir}")
