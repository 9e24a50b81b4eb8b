"""Option factories shared by several commands (reading options of fit, infer and sweep;
inference options and ``--external-input`` of fit and infer; ``--forward`` of fit and sweep)."""

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


def inference_options(func):
    """``--samples``, ``--push-mean``, ``--write-states``: how the posterior is summarised and
    what of it is written (fit and infer)."""
    options = [
        click.option(
            "--samples",
            "n_samples",
            type=click.IntRange(min=1),
            default=None,
            metavar="N",
            help="Posterior samples averaged per trial (default: the run's train.n_samples).",
        ),
        click.option(
            "--push-mean",
            "push_mean",
            is_flag=True,
            help="Push the posterior means (of the initial condition and the inferred inputs) "
            "through the generator once instead of averaging sampled rates.",
        ),
        click.option(
            "--write-states",
            "write_states",
            is_flag=True,
            help="Also write the generator and controller states (processing/lfads/"
            "generator_states, controller_states).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


EXTERNAL_INPUT_HELP = (
    "A known input of the session fed to the generator and the controller at every bin "
    "(repeatable): a TimeSeries in stimulus/, acquisition/ or processing/ (name or path; "
    "samples averaged per bin), a trials event column ending in _time (a unit pulse in the "
    "bin of each trial's event) or a numeric trials column (constant over the trial)."
)


def external_input_option(func):
    """``--external-input NAME`` (repeatable): known inputs of the sessions (data.external_inputs)."""
    return click.option(
        "--external-input",
        "external_inputs",
        multiple=True,
        metavar="NAME",
        help=EXTERNAL_INPUT_HELP,
    )(func)


def forward_option(func):
    """``--forward SECONDS``: forward prediction after each window (data.forward)."""
    return click.option(
        "--forward",
        type=float,
        default=None,
        metavar="SECONDS",
        help="Forward prediction (NLB: 0.2): also bin SECONDS after each window; the encoders "
        "never see them, the generator runs on through them, the loss scores them (not on "
        "--eval-trials) and their rates are written. Needs --align-to (data.forward).",
    )(func)
