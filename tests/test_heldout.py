"""Held-out units and evaluation trials: bad input, from the CLI and the Python API."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import make_session
from nwb_lfads.cli.main import main

from nwb_lfads.config import DataConfig
from nwb_lfads.data import prepare_data
from nwb_lfads.errors import SelectionError
from nwb_lfads.synthetic import simulate

ALIGN = [
    "--align-to",
    "move_onset_time",
    "--window",
    "-0.25",
    "0.75",
    "--max-epochs",
    "1",
    "--quiet",
]


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    (path,) = simulate(
        tmp_path_factory.mktemp("sim"),
        sessions=1,
        n_conditions=2,
        trials_per_condition=4,
        n_units=8,
        heldout_fraction=0.25,
        eval_fraction=0.25,
        seed=3,
    )
    return path


def _one_error_line(result):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and "Traceback" not in result.output
    return lines[0]


@pytest.mark.parametrize(
    "args, match",
    [
        (["--heldout-units", "no_such_column"], "not a column of the units table"),
        (["--heldout-units", "spike_times"], "not boolean"),
        (["--heldout-units", "heldout", "--eval-trials", "split=nope"], "matches no trial"),
        (
            ["--heldout-units", "heldout", "--eval-trials", "nosuchcol=val"],
            "not trials columns|not a trial coordinate",
        ),
    ],
)
def test_bad_heldout_options_exit_2_before_training(session, tmp_path, args, match):
    out = tmp_path / "run"
    line = _one_error_line(
        CliRunner().invoke(main, ["fit", str(session), "--out", str(out), *ALIGN, *args])
    )
    assert __import__("re").search(match, line), line
    assert not out.exists() or not any(out.iterdir())


def _dataset(heldout):
    spikes = np.ones((4, 5, len(heldout)), np.int32)
    return make_session(spikes=spikes, conditions=None, heldout=heldout)


@pytest.mark.parametrize(
    "heldout, match",
    [([False, False, False], "marks no unit"), ([True, True, True], "every unit is held out")],
)
def test_empty_or_full_heldout_set_is_refused(heldout, match):
    with pytest.raises(SelectionError, match=match):
        prepare_data([_dataset(heldout)], DataConfig(heldout_units="heldout"))


def test_eval_trials_mask_heldout_units_only_on_eval_trials():
    ds = _dataset([False, True, False]).assign_coords(
        split=("trial", ["train", "val", "train", "val"])
    )
    data = prepare_data(
        [ds], DataConfig(heldout_units="heldout", eval_trials="split=val", valid_fraction=0.5)
    )
    assert data.input_mask[0].tolist() == [True, False, True]
    np.testing.assert_array_equal(
        data.loss_mask[:, :3], [[1, 1, 1], [1, 0, 1], [1, 1, 1], [1, 0, 1]]
    )
    assert not np.any(data.valid & data.eval)  # eval trials never decide early stopping


# ----------------------------------------------------------------------------- acceptance
def _write_all_heldout(folder):
    """A tiny simulated session whose units table marks every unit held out."""
    import dataclasses

    from nwb_lfads.io.simulated import session_to_nwbfile, write_nwbfile
    from nwb_lfads.synthetic import generate_sessions

    (sim,) = generate_sessions(n_conditions=2, trials_per_condition=2, n_units=4, seed=1)
    sim = dataclasses.replace(sim, heldout=np.ones(4, bool))
    return write_nwbfile(
        session_to_nwbfile(sim, np.random.default_rng(0)), folder / "all_heldout.nwb"
    )


def test_cli_refuses_an_empty_heldout_set_of_a_real_file(mc_maze_small, tmp_path):
    # NLB's test files keep the 'heldout' column but drop the held-out units: it is False everywhere.
    out = tmp_path / "run"
    line = _one_error_line(
        CliRunner().invoke(
            main,
            [
                "fit",
                str(mc_maze_small),
                "--out",
                str(out),
                "--align-to",
                "move_onset_time",
                "--window",
                "-0.25",
                "0.45",
                "--bin-size",
                "0.005",
                "--heldout-units",
                "heldout",
                "--max-epochs",
                "1",
                "--quiet",
            ],
        )
    )
    assert "'heldout' marks no unit" in line and str(mc_maze_small) in line
    assert not out.exists() or not any(out.iterdir())


def test_cli_refuses_a_heldout_set_of_all_units(tmp_path):
    path = _write_all_heldout(tmp_path)
    out = tmp_path / "run"
    line = _one_error_line(
        CliRunner().invoke(
            main, ["fit", str(path), "--out", str(out), *ALIGN, "--heldout-units", "heldout"]
        )
    )
    assert "every unit is held out" in line and "all_heldout.nwb" in line
    assert not out.exists() or not any(out.iterdir())


def _masked_session(eval_heldout=None, train_heldout=None):
    """6 units (the last 2 held out), 24 trials (the last 6 'val'), 12 bins of 10 ms; the held-out
    units' counts on the eval (or training) trials optionally replaced by ``eval_heldout``
    (``train_heldout``)."""
    ds = make_session(
        "s",
        24,
        12,
        6,
        seed=11,
        conditions=3,
        phase_high=6,
        offset=0.5,
        heldout=np.arange(6) >= 4,
        split=np.where(np.arange(24) >= 18, "val", "train"),
    )
    if eval_heldout is not None:
        ds["spikes"][18:, :, 4:] = eval_heldout
    if train_heldout is not None:
        ds["spikes"][:18, :, 4:] = train_heldout
    return ds


def test_eval_trial_heldout_spikes_cannot_influence_the_fitted_parameters():
    """Acceptance: replacing the held-out units' spikes on eval trials by huge counts leaves every
    parameter leaf bit-identical after training, with coordinated dropout, sample validation,
    dropout and the validation-driven learning-rate schedule all active; the same change on the
    training trials does change the fit (so the comparison can fail)."""
    import jax

    from nwb_lfads.config import RunConfig
    from nwb_lfads.train.trainer import Trainer

    cfg = RunConfig().replace(
        data={"heldout_units": "heldout", "eval_trials": "split=val", "valid_fraction": 0.25},
        model={
            "ic_enc_dim": 4,
            "ci_enc_dim": 4,
            "ic_dim": 4,
            "gen_dim": 8,
            "con_dim": 4,
            "co_dim": 1,
            "fac_dim": 3,
            "cd_rate": 0.3,
            "sv_rate": 0.2,
            "dropout_rate": 0.1,
        },
        train={
            "batch_size": 8,
            "steps_per_call": 2,
            "lr_init": 1e-2,
            "lr_patience": 0,
            "kl_increase_epochs": 1,
            "l2_increase_epochs": 1,
            "n_samples": 1,
        },
    )

    def fitted(**change):
        trainer = Trainer(prepare_data([_masked_session(**change)], cfg.data), cfg)
        start = jax.tree_util.tree_map(np.asarray, trainer.params)
        for _ in range(2):
            trainer.train_epoch()
        return start, jax.tree_util.tree_map(np.asarray, trainer.params)

    def leaves_equal(a, b):
        same = jax.tree_util.tree_map(np.array_equal, a, b)
        assert jax.tree_util.tree_structure(same) == jax.tree_util.tree_structure(a)
        return jax.tree_util.tree_leaves(same)

    start, original = fitted()
    moved = leaves_equal(start, original)
    assert moved.count(False) > len(moved) // 2  # training did change the model
    assert all(leaves_equal(original, fitted(eval_heldout=1000)[1]))
    assert not all(leaves_equal(original, fitted(train_heldout=1000)[1]))
