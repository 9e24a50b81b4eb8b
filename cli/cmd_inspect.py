"""``nwb-lfads inspect FILE [--json]``: what a session holds and which columns nwb-lfads can use."""

from __future__ import annotations

import click


@click.command("inspect")
@click.argument("source", metavar="FILE")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON (for scripts).")
def command(source: str, as_json: bool) -> None:
    """Summarize an NWB session: units, spikes, duration, trials columns, intervals, series.

    \b
    Lists which trials-table columns can serve as --align-to (numeric event times), which
    boolean units columns can serve as --heldout-units, the processing modules and the
    acquisition series usable as behaviour.
    """
    from nwb_lfads.io.inspect import format_summary, summarize

    summary = summarize(source)
    if as_json:
        import json

        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(format_summary(summary))
