"""``nwb-lfads transfer``: a new session on a trained model's frozen dynamics (issue 24)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from nwb_lfads.cli.main import main

from nwb_lfads.rundir import RunDir
from nwb_lfads.synthetic import simulate
from nwb_lfads.train.checkpoint import load_params

TINY = [
    "--set",
    "model.gen_dim=8",
    "--set",
    "model.ic_enc_dim=4",
    "--set",
    "model.ci_enc_dim=4",
    "--set",
    "model.con_dim=4",
    "--set",
    "model.co_dim=1",
    "--set",
    "model.fac_dim=3",
    "--set",
    "model.ic_dim=4",
    "--set",
    "train.batch_size=4",
    "--set",
    "train.n_samples=2",
]
QUIET = ["--quiet", "--no-plots"]
WINDOW = ["--align-to", "start_time", "--window", "0", "0.5"]


def invoke(args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.output
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture(scope="module")
def sim_files(tmp_path_factory):
    """Two sessions of one simulated network (5 and 6 units, 2 conditions x 3 trials of 1 s)."""
    return simulate(
        tmp_path_factory.mktemp("sim"),
        sessions=2,
        n_conditions=2,
        trials_per_condition=3,
        n_units=[5, 6],
    )


@pytest.fixture(scope="module")
def trained(sim_files, tmp_path_factory):
    """A tiny single-session fit of session 0 (no read-in: the encoders take its 5 units)."""
    run = tmp_path_factory.mktemp("runs") / "day1"
    result = invoke(["fit", sim_files[0], "--out", run, *WINDOW, "--max-epochs", 2, *TINY, *QUIET])
    assert result.exit_code == 0, result.output
    return run


@pytest.fixture(scope="module")
def transferred(trained, sim_files, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "day2"
    result = invoke(
        ["transfer", trained, sim_files[1], "--out", out, "--max-epochs", 3, "--seed", 1, *QUIET]
    )
    assert result.exit_code == 0, result.output
    assert "read-in start aligned" in result.output
    return out


def test_frozen_parameters_are_bit_identical_and_the_new_readin_readout_trained(
    trained, transferred, sim_files
):
    from nwb_lfads.data import prepare_data
    from nwb_lfads.io.read import read_sessions, reader_options
    from nwb_lfads.train.checkpoint import load_run
    from nwb_lfads.transfer import aligned_readin

    source = load_params(RunDir(trained).checkpoint.params_file())
    new = load_params(RunDir(transferred).checkpoint.best)
    state = load_params(RunDir(transferred).checkpoint.state)
    shared = [m for m in source if not m.endswith(("readin", "readout"))]
    assert "lfads/generator/gru" in shared or any("generator" in m for m in shared)
    for module in shared:
        for name, value in source[module].items():
            assert np.array_equal(new[module][name], value), f"{module}/{name} changed"
            assert np.array_equal(state[module][name], value), f"{module}/{name} changed"
    # the source had no read-in: the new one maps 6 units onto the encoders' 5 inputs
    assert "lfads/readin" not in source and new["lfads/readin"]["w"].shape == (1, 6, 5)
    assert new["lfads/readout"]["w"].shape == (1, 3, 6)
    cfg = RunDir(transferred).read_config()
    assert cfg.model.readin_dim == 5
    # both days have condition_id: the read-in started aligned onto day 1's condition averages
    assert json.loads(RunDir(transferred).transferred_from.read_text())["readin_start"] == "aligned"
    datasets = read_sessions([sim_files[1]], **reader_options(cfg.data))
    src_cfg, params, known = load_run(trained)
    start = aligned_readin(prepare_data(datasets, cfg.data), datasets, params, known, src_cfg)
    assert start.readin_w.shape == (1, 6, 5) and np.abs(start.readin_w).sum() > 0
    assert not np.allclose(new["lfads/readin"]["w"], start.readin_w)  # trained away from the start


def test_the_new_run_records_its_source_and_writes_the_session(trained, transferred):
    import pynwb

    record = json.loads(RunDir(transferred).transferred_from.read_text())
    assert record["run_dir"] == str(trained.resolve())
    assert len(record["config_sha256"]) == 64 and len(record["params_sha256"]) == 64
    assert record["sessions"] == ["sim-0"]
    (written,) = RunDir(transferred).outputs()
    assert written.name == "sim_session-1.lfads.nwb"
    with pynwb.NWBHDF5IO(str(written), "r") as io:
        module = io.read().processing["lfads"]
        rates = module["rates"].data[:]
        provenance = module["provenance"].to_dataframe()
    assert rates.shape == (6 * 50, 6) and np.isfinite(rates).all() and (rates >= 0).all()
    keys = set(provenance["key"])
    assert "transferred_from.run_dir" in keys and "config.model.readin_dim" in keys
    assert json.loads(RunDir(transferred).summary.read_text())[0]["session"] == "sim-1"


def test_infer_and_evaluate_work_on_the_transferred_run(transferred, sim_files, tmp_path):
    from nwb_lfads.evaluate import evaluate

    result = invoke(["infer", transferred, sim_files[1], "--out", tmp_path, "--samples", 2])
    assert result.exit_code == 0, result.output
    assert [p.name for p in tmp_path.glob("*.nwb")] == ["sim_session-1.lfads.nwb"]
    (session,) = evaluate(transferred, write=False)["sessions"]
    assert session["session"] == "sim-1" and np.isfinite(session["metrics"]["r2_truth"])


# ------------------------------------------------------------------ bad input: exit 2, one line


def test_a_folder_that_is_not_a_trained_run_exits_2(sim_files, tmp_path):
    line = one_error_line(invoke(["transfer", tmp_path, sim_files[1], "--out", tmp_path / "o"]))
    assert "not a trained run directory" in line and str(tmp_path) in line
    (tmp_path / "config.yaml").write_text("train:\n  max_epochs: 3\n")  # started, never trained
    line = one_error_line(invoke(["transfer", tmp_path, sim_files[1], "--out", tmp_path / "o"]))
    assert "not a trained run directory" in line
    line = one_error_line(invoke(["transfer", tmp_path / "nope", sim_files[1], "--out", tmp_path]))
    assert "nope" in line and "not a trained run directory" in line


def test_a_session_already_in_the_model_exits_2(trained, sim_files, tmp_path):
    line = one_error_line(invoke(["transfer", trained, sim_files[0], "--out", tmp_path / "o"]))
    assert "already in the model" in line and "nwb-lfads infer" in line
    copy = tmp_path / "renamed.nwb"  # the same session under another name: same identifier
    shutil.copy(sim_files[0], copy)
    line = one_error_line(invoke(["transfer", trained, copy, "--out", tmp_path / "o2"]))
    assert "renamed.nwb" in line and "already in the model" in line
    assert not (tmp_path / "o").exists() and not (tmp_path / "o2").exists()


@pytest.mark.parametrize(
    "options, said",
    [
        (["--window", "0", "0.3"], "--window 0.0 0.3 differs from the run's data.window"),
        (["--bin-size", "0.02"], "--bin-size 0.02 differs from the run's data.bin_size"),
        (["--align-to", "move_onset_time"], "--align-to move_onset_time differs"),
        (["--set", "model.gen_dim=16"], "transfer cannot change model.gen_dim"),
    ],
)
def test_reading_options_or_model_settings_that_differ_exit_2(
    trained, sim_files, tmp_path, options, said
):
    line = one_error_line(
        invoke(["transfer", trained, sim_files[1], "--out", tmp_path / "o", *options])
    )
    assert said in line
    assert not (tmp_path / "o").exists()


def test_matching_reading_options_are_accepted_and_pcr_can_be_asked(trained, sim_files, tmp_path):
    out = tmp_path / "o"
    pcr = ["--set", "model.readin_init=pcr"]
    result = invoke(
        ["transfer", trained, sim_files[1], "--out", out, *WINDOW, "--max-epochs", 1, *pcr, *QUIET]
    )
    assert result.exit_code == 0, result.output
    assert RunDir(out).read_config().model.readin_init == "pcr"
    assert RunDir(out).read_transferred_from()["readin_start"] == "pcr"
