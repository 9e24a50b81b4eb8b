"""``nwb-lfads sweep SOURCES... --out DIR``: AutoLFADS population-based training on Ray Tune."""

from __future__ import annotations

import sys

import click

from .cmd_fit import fit_overrides, training_options
from .options import forward_option, reading_options


@click.command("sweep")
@click.argument("sources", nargs=-1, required=True)
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder of the sweep: a leaderboard, figures, best/ (a RUN_DIR) and Ray's state.",
)
@reading_options
@forward_option
@training_options
@click.option(
    "--population",
    type=int,
    default=None,
    help="Members trained side by side (>= 2; default 8; AutoLFADS used 20).",
)
@click.option(
    "--workers",
    type=int,
    default=None,
    help="Members trained at once (default: this machine's CPUs, or whatever the cluster offers).",
)
@click.option(
    "--search-space",
    "search_space",
    type=click.Path(dir_okay=False),
    default=None,
    help="YAML file overriding the searched hyperparameters and the PBT schedule.",
)
@click.option(
    "--address",
    default=None,
    metavar="RAY_ADDRESS",
    help="Join an existing Ray cluster: 'auto' (started here with `ray start --head`), HOST:PORT or "
    "ray://HOST:PORT. Default: a private local Ray instance.",
)
@click.option(
    "--gpus-per-trial",
    type=float,
    default=0.0,
    show_default=True,
    help="GPUs per member; a fraction (e.g. 0.25) lets several members share one GPU.",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the interrupted sweep in --out with its saved settings.",
)
@click.option("--no-plots", is_flag=True, help="Skip the PNG figures.")
@click.option("--quiet", is_flag=True, help="No progress lines.")
def command(
    sources,
    out,
    align_to,
    window,
    bin_size,
    forward,
    config_file,
    sets,
    max_epochs,
    max_minutes,
    seed,
    heldout_units,
    eval_trials,
    cache_dir,
    population,
    workers,
    search_space,
    address,
    gpus_per_trial,
    resume,
    no_plots,
    quiet,
):
    """Search LFADS hyperparameters on SOURCES with population-based training (AutoLFADS).

    A population of models trains side by side on Ray Tune. Every generation
    (pbt.perturbation_interval epochs) the worst quarter is replaced by copies of the best,
    whose dropout, coordinated dropout, KL and L2 weights and learning rate are perturbed.
    Members are ranked by their smoothed validation reconstruction loss.

    --max-epochs is each member's length, --max-minutes the whole sweep's budget.

    \b
    Examples:
      nwb-lfads sweep 'sim/*.nwb' --align-to move_onset_time --out sweeps/sim --population 8
      ray start --head    # or a SLURM/Kubernetes cluster started with Ray's own tools
      nwb-lfads sweep data.nwb --out sweeps/d --address auto --population 20 --gpus-per-trial 0.25

    \b
    DIR gets a leaderboard (one row per member), figures of the validation loss over time (exploits
    marked) and of the hyperparameters, and best/: a RUN_DIR of the best model that
    `nwb-lfads infer` and `evaluate` accept.
    Ctrl-C stops after saving Ray's state; rerun with --resume to continue.
    """
    from nwb_lfads.sweep.cluster import import_ray

    import_ray()  # fail fast, before reading anything, when the extra is not installed
    from nwb_lfads.config import RunConfig
    from nwb_lfads.sweep import sweep

    config = RunConfig.from_yaml(config_file) if config_file else None
    overrides = fit_overrides(
        align_to,
        window,
        bin_size,
        max_epochs,
        None,
        seed,
        heldout_units,
        eval_trials,
        sets,
        forward=forward,
    )
    try:
        result = sweep(
            sources,
            out,
            config=config,
            overrides=overrides,
            search_space=search_space,
            population=population,
            workers=workers,
            max_minutes=max_minutes,
            address=address,
            gpus_per_trial=gpus_per_trial,
            resume=resume,
            plots=not no_plots,
            progress=not quiet,
            cache_dir=cache_dir,
            echo=click.echo,
        )
    except KeyboardInterrupt:
        click.echo(
            f"\nInterrupted. Continue with:\n  nwb-lfads sweep {' '.join(sources)} --out {out} --resume",
            err=True,
        )
        sys.exit(130)
    click.echo(
        f"\nPopulation of {len(result.leaderboard)}, {result.n_exploits} exploits. Leaderboard:\n"
        f"{result.table}\n"
    )
    if result.interrupted:
        click.echo(
            f"The sweep was interrupted; continue with --resume. Best so far in {result.best_dir}"
        )
    else:
        click.echo(f"best model: {result.best_dir}")
