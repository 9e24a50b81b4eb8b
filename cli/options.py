"""Option factories shared by several commands (reading options of fit, infer and sweep)."""

from __future__ import annotations

import click


def reading_options(func):
    """``--align-to``, ``--window``, ``--bin-size``: how spikes are cut into trials."""
    options = [
        click.option(
            "--align-to",
            "align_to",
            default=None,
            metavar="COLUMN",
            help="Trials-table column to align on (e.g. move_onset_time). "
            "Without it, sessions are cut into overlapping windows of continuous time.",
        ),
        click.option(
            "--window",
            nargs=2,
            type=float,
            default=None,
            metavar="START STOP",
            help="Window around the alignment event in seconds, e.g. -0.25 0.45.",
        ),
        click.option(
            "--bin-size",
            "bin_size",
            type=float,
            default=None,
            metavar="S",
            help="Bin width in seconds (default 0.01).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func
