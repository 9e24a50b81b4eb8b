"""``nwb-lfads infer RUN_DIR SOURCES... --out DIR``: apply a trained run and write sessions enriched."""

from __future__ import annotations

import click

from .options import external_input_option, inference_options


@click.command("infer")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.argument("sources", nargs=-1, required=True)
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder for the enriched copies of the sessions.",
)
@click.option(
    "--trials",
    "trials",
    default=None,
    metavar="COLUMN=VALUE",
    help="Only trials whose trials-table COLUMN equals VALUE (default: all trials).",
)
@external_input_option
@inference_options
@click.option(
    "--in-place",
    is_flag=True,
    help="Write processing/lfads into the inputs themselves (atomic replace).",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Where DANDI assets are downloaded.",
)
def command(
    run_dir,
    sources,
    out,
    trials,
    external_inputs,
    n_samples,
    push_mean,
    write_states,
    in_place,
    cache_dir,
):
    """Apply the model in RUN_DIR to SOURCES (sessions it was trained on) and write them enriched.

    Sessions are matched by session id or file name; every trial (or those chosen with --trials)
    is read with the run's alignment, window, bin size and external inputs (the names saved in
    the run's config; --external-input, if given, must repeat them).
    """
    from nwb_lfads.fit import infer_run
    from nwb_lfads.selection import TrialSelector

    selection = None
    if trials is not None:
        selector = TrialSelector.parse(trials, option="--trials")
        selection = {selector.column: selector.value}
    for path in infer_run(
        run_dir,
        sources,
        out,
        trials=selection,
        external_inputs=external_inputs,
        in_place=in_place,
        cache_dir=cache_dir,
        n_samples=n_samples,
        push_mean=push_mean,
        write_states=write_states,
    ):
        click.echo(f"wrote {path}")
