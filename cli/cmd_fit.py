"""``nwb-lfads fit SOURCES... --out RUN_DIR``: read, train one model, write every session enriched."""

from __future__ import annotations

import sys

import click

from .options import external_input_option, forward_option, inference_options, reading_options


def fit_overrides(
    align_to,
    window,
    bin_size,
    max_epochs,
    max_minutes,
    seed,
    heldout_units,
    eval_trials,
    sets,
    devices=None,
    external_inputs=(),
    forward=None,
) -> list[str]:
    """Turn CLI options into ``SECTION.FIELD=VALUE`` overrides (``--set`` ones last, so they win)."""
    import json

    pairs = [
        ("data.align_to", align_to),
        ("data.window", list(window) if window else None),
        ("data.bin_size", bin_size),
        ("train.max_epochs", max_epochs),
        ("train.max_minutes", max_minutes),
        ("train.seed", seed),
        ("data.heldout_units", heldout_units),
        ("data.eval_trials", eval_trials),
        ("train.devices", devices),
        ("data.external_inputs", json.dumps(list(external_inputs)) if external_inputs else None),
        ("data.forward", forward),
    ]
    out = [f"{key}={value}" for key, value in pairs if value is not None]
    return out + list(sets)


def training_options(func):
    """Options shared by ``fit`` and ``sweep`` besides the reading ones."""
    options = [
        click.option(
            "--config",
            "config_file",
            type=click.Path(dir_okay=False),
            default=None,
            help="YAML file with data/model/train sections (the config a run saves is one).",
        ),
        click.option(
            "--set",
            "sets",
            multiple=True,
            metavar="KEY=VALUE",
            help="Override one setting, e.g. --set model.gen_dim=64 --set train.lr_init=1e-3. Repeatable.",
        ),
        click.option(
            "--max-epochs", type=int, default=None, help="Stop after this many epochs in total."
        ),
        click.option(
            "--max-minutes", type=float, default=None, help="Stop training after this many minutes."
        ),
        click.option(
            "--seed", type=int, default=None, help="Random seed of the model and batches."
        ),
        click.option(
            "--heldout-units",
            default=None,
            metavar="COLUMN",
            help="Boolean units column (NLB: heldout): units never given to the encoders, only predicted.",
        ),
        click.option(
            "--eval-trials",
            default=None,
            metavar="COLUMN=VALUE",
            help="Trials whose held-out units are unobserved (NLB: split=val).",
        ),
        click.option(
            "--cache-dir",
            type=click.Path(file_okay=False),
            default=None,
            help="Where DANDI assets are downloaded (default: the user cache folder).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def start_distributed() -> None:
    """``jax.distributed.initialize()`` with the cluster's own settings; ConfigError when none are found."""
    import jax

    from nwb_lfads.errors import ConfigError

    try:
        jax.distributed.initialize()
    except (ValueError, RuntimeError) as exc:
        raise ConfigError(
            f"--distributed: jax.distributed.initialize() could not set up the processes ({exc}). Start one "
            f"process per host under srun (SLURM) or mpirun (Open MPI), or call jax.distributed.initialize("
            f"coordinator_address=..., num_processes=..., process_id=...) in Python before nwb_lfads.fit.fit "
            f"(README: Several GPUs)."
        ) from None


@click.command("fit")
@click.argument("sources", nargs=-1, required=True)
@click.option(
    "--out", "out", required=True, type=click.Path(file_okay=False), help="Run directory to create."
)
@reading_options
@external_input_option
@forward_option
@training_options
@click.option(
    "--devices",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Split each batch over N JAX devices (GPUs) of this machine: data parallelism, the same "
    "result as one device up to float rounding (train.devices; default: one GPU, or every CPU "
    "core, each a JAX device, on CPU). "
    "train.batch_size must divide by N.",
)
@click.option(
    "--distributed",
    is_flag=True,
    help="Several hosts: call jax.distributed.initialize() first (it finds SLURM, Open MPI, "
    "Kubernetes or Cloud TPU settings); run one process per host, each with --devices N "
    "of its own devices and its own --out. See the README.",
)
@click.option(
    "--resume", is_flag=True, help="Continue the run in --out (e.g. to a larger --max-epochs)."
)
@click.option(
    "--in-place",
    is_flag=True,
    help="Write processing/lfads into the input files themselves (atomic replace).",
)
@inference_options
@click.option("--no-plots", is_flag=True, help="Skip the PNG figures.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def command(
    sources,
    out,
    align_to,
    window,
    bin_size,
    external_inputs,
    forward,
    config_file,
    sets,
    max_epochs,
    max_minutes,
    seed,
    heldout_units,
    eval_trials,
    cache_dir,
    devices,
    distributed,
    resume,
    in_place,
    n_samples,
    push_mean,
    write_states,
    no_plots,
    quiet,
):
    """Fit one LFADS model to SOURCES and write each session back enriched.

    SOURCES are NWB files, quoted globs ('data/*.nwb'), DANDI identifiers (dandi:000128/sub-Jenkins/*.nwb)
    or DANDI URLs. Several sessions are stitched: per-session read-in/read-out, shared dynamics.

    \b
    Example (NLB MC_Maze):
      nwb-lfads fit sub-Jenkins_ses-full_desc-train_behavior+ecephys.nwb --out runs/maze \\
          --align-to move_onset_time --window -0.25 0.45 --bin-size 0.005 --heldout-units heldout

    RUN_DIR gets the resolved config, a checkpoint, per-epoch metrics, an enriched copy of each
    session (processing/lfads added) and PNG figures; README lists the files.
    Ctrl-C saves a checkpoint; rerun with --resume to continue.
    """
    if distributed:  # before anything else touches JAX
        start_distributed()
    from nwb_lfads.config import RunConfig
    from nwb_lfads.fit import fit
    from nwb_lfads.train.parallel import check_devices

    config = RunConfig.from_yaml(config_file) if config_file else None
    overrides = fit_overrides(
        align_to,
        window,
        bin_size,
        max_epochs,
        max_minutes,
        seed,
        heldout_units,
        eval_trials,
        sets,
        devices,
        external_inputs,
        forward,
    )
    if not resume:  # device count and batch divisibility before any data is read
        train_cfg = (config or RunConfig()).with_overrides(overrides).train
        check_devices(train_cfg.devices, train_cfg.batch_size)
    elif devices is not None:
        check_devices(devices)
    try:
        result = fit(
            sources,
            out,
            config=config,
            overrides=overrides,
            resume=resume,
            in_place=in_place,
            progress=not quiet,
            plots=not no_plots,
            cache_dir=cache_dir,
            echo=click.echo,
            n_samples=n_samples,
            push_mean=push_mean,
            write_states=write_states,
        )
    except KeyboardInterrupt:
        click.echo(
            f"\nInterrupted: checkpoint saved in {out}/checkpoint. Continue with:\n"
            f"  nwb-lfads fit {' '.join(sources)} --out {out} --resume",
            err=True,
        )
        sys.exit(130)
    click.echo(f"\nTrained {result.epochs} epochs. Per-session summary:\n{result.table}\n")
    for path in result.outputs:
        click.echo(f"wrote {path}")
    if result.plots:
        click.echo(f"figures: {len(result.plots)} PNG files in {result.run_dir}")
