"""Held-out units and evaluation trials (issue 8): bad input, from the CLI and the Python API."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

from nwb_lfads.cli.main import main
from nwb_lfads.data import prepare_data
from nwb_lfads.errors import SelectionError
from nwb_lfads.synthetic import simulate
from nwb_lfads.train.config import DataConfig

ALIGN = ["--align-to", "move_onset_time", "--window", "-0.25", "0.75", "--max-epochs", "1", "--quiet"]


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    (path,) = simulate(tmp_path_factory.mktemp("sim"), sessions=1, n_conditions=2, trials_per_condition=4,
                       n_units=8, heldout_fraction=0.25, eval_fraction=0.25, seed=3)
    return path


def _one_error_line(result):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and "Traceback" not in result.output
    return lines[0]


@pytest.mark.parametrize("args, match", [
    (["--heldout-units", "no_such_column"], "not a column of the units table"),
    (["--heldout-units", "spike_times"], "not boolean"),
    (["--heldout-units", "heldout", "--eval-trials", "split=nope"], "matches no trial"),
    (["--heldout-units", "heldout", "--eval-trials", "nosuchcol=val"], "not trials columns|not a trial coordinate"),
])
def test_bad_heldout_options_exit_2_before_training(session, tmp_path, args, match):
    out = tmp_path / "run"
    line = _one_error_line(CliRunner().invoke(main, ["fit", str(session), "--out", str(out), *ALIGN, *args]))
    assert __import__("re").search(match, line), line
    assert not out.exists() or not any(out.iterdir())


def _dataset(heldout):
    n = len(heldout)
    return xr.Dataset({"spikes": (("trial", "time", "unit"), np.ones((4, 5, n), np.int32))},
                      coords={"trial": np.arange(4), "unit": np.arange(n), "heldout": ("unit", np.array(heldout))},
                      attrs={"session_id": "s", "source": "s.nwb", "bin_size": 0.01})


@pytest.mark.parametrize("heldout, match", [([False, False, False], "marks no unit"),
                                            ([True, True, True], "every unit is held out")])
def test_empty_or_full_heldout_set_is_refused(heldout, match):
    with pytest.raises(SelectionError, match=match):
        prepare_data([_dataset(heldout)], DataConfig(heldout_units="heldout"))


def test_eval_trials_mask_heldout_units_only_on_eval_trials():
    ds = _dataset([False, True, False]).assign_coords(split=("trial", ["train", "val", "train", "val"]))
    data = prepare_data([ds], DataConfig(heldout_units="heldout", eval_trials="split=val", valid_fraction=0.5))
    assert data.input_mask[0].tolist() == [True, False, True]
    np.testing.assert_array_equal(data.loss_mask[:, :3], [[1, 1, 1], [1, 0, 1], [1, 1, 1], [1, 0, 1]])
    assert not np.any(data.valid & data.eval)  # eval trials never decide early stopping
