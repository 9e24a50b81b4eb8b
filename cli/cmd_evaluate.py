"""``nwb-lfads evaluate RUN_DIR_OR_FILE [--targets FILE] [--nlb-submission OUT.h5 --dataset NAME]``:
NLB metrics, R^2 against truth, NLB submission files."""

from __future__ import annotations

import click


@click.command("evaluate")
@click.argument("path", type=click.Path())
@click.option(
    "--targets",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="FILE",
    help="nlb_tools evaluation targets (HDF5 from make_eval_target_tensors) to score against.",
)
@click.option(
    "--nlb-submission",
    "nlb_submission",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="OUT.h5",
    help="Also write the rates as a Neural Latents Benchmark submission file (float32 counts "
    "per bin: {train,eval}_rates_{heldin,heldout} and the eval _forward arrays of runs fitted "
    "with --forward); needs --dataset and a run with held-out units and a split. An existing "
    "file keeps its other datasets.",
)
@click.option(
    "--dataset",
    default=None,
    metavar="NAME",
    help="NLB dataset: mc_maze, mc_rtt, area2_bump, dmfc_rsg, mc_maze_large, mc_maze_medium, "
    "mc_maze_small (the group is NAME at 5 ms bins, NAME_20 at 20 ms). For --targets: the "
    "group to score against (default: the only one, or the one matching the bin size).",
)
@click.option(
    "--behavior",
    "behavior",
    multiple=True,
    metavar="NAME",
    help="A TimeSeries of the file to decode from the rates (any behaviour series; repeatable). "
    "Default: hand_vel, finger_vel, cursor_vel, hand_pos, finger_pos, cursor_pos when present.",
)
@click.option(
    "--lag",
    type=float,
    default=None,
    metavar="SECONDS",
    help="Decode behaviour at t from rates at t - SECONDS (default 0.1, NLB MC_Maze's lag).",
)
@click.option("--no-write", is_flag=True, help="Print the table only; write no evaluation file.")
def command(path, targets, nlb_submission, dataset, behavior, lag, no_write):
    """Score the rates in a RUN_DIR (every session), one enriched NWB file, or an NLB submission
    file (against --targets, as nlb_tools scores it).

    Reports what the data supports: R^2 against the true rates (simulated sessions), bits per
    spike, co-smoothing bits per spike of held-out units on evaluation trials against NLB's
    smoothing baseline, PSTH R^2 by condition_id, behaviour decoding R^2 (cross-validated ridge,
    NLB's R^2; hand_vel, finger_vel, cursor_pos ... or any series named with --behavior, at
    --lag), and NLB targets when given.

    \b
    Example:
      nwb-lfads evaluate runs/sim
      nwb-lfads evaluate runs/maze --targets eval_data_val.h5 --dataset mc_maze_small
      nwb-lfads evaluate runs/maze --behavior hand_pos --lag 0.12
      nwb-lfads evaluate runs/maze --nlb-submission submission.h5 --dataset mc_maze_small
      nwb-lfads evaluate submission.h5 --targets eval_data_val.h5

    Writes the evaluation as JSON into RUN_DIR, or beside the file.
    """
    from nwb_lfads.evaluate import evaluate, format_evaluation

    report = evaluate(
        path,
        targets=targets,
        dataset=dataset,
        write=not no_write,
        behavior=list(behavior) or None,
        lag=lag,
        nlb_submission=nlb_submission,
    )
    click.echo(format_evaluation(report))
    skipped = {k: v for s in report["sessions"] for k, v in s["skipped"].items()}
    for key, why in skipped.items():
        click.echo(f"not computed: {key}: {why}")
    for s in report["sessions"]:
        if "submission" in s:
            click.echo(
                f"wrote NLB submission {s['submission']} (dataset {s['submission_dataset']})"
            )
    if report["written"]:
        click.echo(f"wrote {report['written']}")
