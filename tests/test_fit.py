"""End to end: `nwb-lfads fit` on the real files, resume, infer, bad input."""

from __future__ import annotations

import csv
import hashlib
import shutil

import numpy as np
import pynwb
import pytest
from click.testing import CliRunner
from nwb_lfads.cli.main import main

TINY = [
    "--set",
    "model.gen_dim=12",
    "--set",
    "model.ic_enc_dim=8",
    "--set",
    "model.ci_enc_dim=8",
    "--set",
    "model.con_dim=8",
    "--set",
    "model.fac_dim=4",
    "--set",
    "model.ic_dim=8",
    "--set",
    "model.co_dim=2",
    "--set",
    "train.batch_size=16",
    "--set",
    "train.n_samples=3",
    "--quiet",
    "--no-plots",
]
NLB = ["--align-to", "move_onset_time", "--window", "-0.25", "0.45", "--bin-size", "0.01"]


def sha256(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def invoke(args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def maze_copy(tmp_path_factory, mc_maze_small):
    path = tmp_path_factory.mktemp("maze") / mc_maze_small.name
    shutil.copy(mc_maze_small, path)
    return path


@pytest.fixture(scope="module")
def maze_run(tmp_path_factory, maze_copy):
    before = sha256(maze_copy)
    run = tmp_path_factory.mktemp("runs") / "maze"
    result = invoke(["fit", maze_copy, "--out", run, *NLB, "--max-epochs", 3, *TINY])
    assert result.exit_code == 0, result.output
    return run, before, result.output


def test_fit_writes_enriched_copy_as_the_contract_says(maze_run, maze_copy):
    run, before, output = maze_run
    out = run / "sub-Jenkins_ses-small_desc-test_ecephys.lfads.nwb"
    assert out.exists() and "wrote" in output and "valid bits/spike" in output
    assert sha256(maze_copy) == before  # the input's bytes are unchanged
    for name in ("config.yaml", "metrics.csv", "summary.json"):
        assert (run / name).exists()
    assert (run / "checkpoint").is_dir()
    with pynwb.NWBHDF5IO(str(out), "r") as io, pynwb.NWBHDF5IO(str(maze_copy), "r") as io_in:
        nwb, src = io.read(), io_in.read()
        lfads = nwb.processing["lfads"]
        rates = lfads["rates"]
        assert rates.data.shape == (7000, 107) and rates.unit == "Hz"
        values = rates.data[:]
        assert np.all(np.isfinite(values)) and values.min() >= 0 and 0.1 < values.mean() < 500
        stamps = rates.timestamps[:] if rates.timestamps is not None else None
        if stamps is not None:
            assert np.all(np.diff(stamps) > 0)
            onset = src.trials["move_onset_time"][:]
            inside = [(stamps >= t - 0.25) & (stamps < t + 0.45) for t in onset]
            assert np.all(np.any(inside, axis=0))  # every sample lies inside an aligned window
        assert lfads["factors"].data.shape == (7000, 4)
        assert lfads["inferred_inputs"].data.shape == (7000, 2)
        np.testing.assert_array_equal(
            nwb.units["spike_times"].data[:], src.units["spike_times"].data[:]
        )
        np.testing.assert_array_equal(
            nwb.trials["move_onset_time"][:], src.trials["move_onset_time"][:]
        )
        assert nwb.identifier != src.identifier


def test_fit_adds_no_inspector_findings(maze_run, maze_copy):
    from nwb_lfads.io.write import new_inspector_findings

    run, _, _ = maze_run
    assert (
        new_inspector_findings(maze_copy, run / "sub-Jenkins_ses-small_desc-test_ecephys.lfads.nwb")
        == []
    )


def test_resume_continues_to_more_epochs(maze_run, maze_copy):
    run, _, _ = maze_run
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert len(rows) == 3
    result = invoke(
        ["fit", maze_copy, "--out", run, "--resume", "--max-epochs", 5, "--quiet", "--no-plots"]
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert len(rows) == 5
    assert [int(float(r["epoch"])) for r in rows] == sorted(int(float(r["epoch"])) for r in rows)


def test_infer_applies_the_run_to_new_trial_selection(maze_run, maze_copy, tmp_path):
    run, _, _ = maze_run
    result = invoke(["infer", run, maze_copy, "--out", tmp_path, "--trials", "split=test"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "sub-Jenkins_ses-small_desc-test_ecephys.lfads.nwb"
    with pynwb.NWBHDF5IO(str(out), "r") as io:
        assert io.read().processing["lfads"]["rates"].data.shape[1] == 107


@pytest.mark.parametrize("case", ["missing", "corrupt", "align", "existing_run"])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(case, maze_run, maze_copy, tmp_path):
    run, _, _ = maze_run
    source, out, extra = maze_copy, tmp_path / "run", []
    if case == "missing":
        source = tmp_path / "nope.nwb"
    elif case == "corrupt":
        source = tmp_path / "corrupt.nwb"
        source.write_bytes(open(maze_copy, "rb").read()[:5000])
    elif case == "align":
        extra = ["--align-to", "no_such_column"]
    else:
        out = run
    before = sorted(p.name for p in out.glob("*")) if out.exists() else []
    args = ["fit", source, "--out", out, *(extra or NLB), "--max-epochs", 1, *TINY]
    if case == "align":
        args = [
            "fit",
            source,
            "--out",
            out,
            "--align-to",
            "no_such_column",
            "--max-epochs",
            1,
            *TINY,
        ]
    result = invoke(args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.output
    assert "Traceback" not in result.output
    if case == "align":
        assert "move_onset_time" in lines[0]  # the message lists the columns that exist
    if case == "existing_run":
        assert "--resume" in lines[0]
        assert sorted(p.name for p in out.glob("*")) == before
    else:
        assert not list(out.glob("*.lfads.nwb")) and not (out / "config.yaml").exists()


def test_ctrl_c_exits_130_with_a_resume_hint(monkeypatch, tmp_path):
    import nwb_lfads.fit

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(nwb_lfads.fit, "fit", interrupted)
    result = invoke(["fit", "x.nwb", "--out", tmp_path / "r"])
    assert result.exit_code == 130
    assert "--resume" in result.output


def test_continuous_mode_on_a_recording_without_trials(a8604, tmp_path):
    src = tmp_path / a8604.name
    shutil.copy(a8604, src)
    run = tmp_path / "run"
    result = invoke(
        [
            "fit",
            src,
            "--out",
            run,
            "--max-epochs",
            1,
            "--set",
            "data.window_length=2.0",
            "--set",
            "data.overlap=0.5",
            "--set",
            "data.bin_size=0.02",
            *TINY,
        ]
    )
    assert result.exit_code == 0, result.output
    with pynwb.NWBHDF5IO(str(run / "A8604-211122.lfads.nwb"), "r") as io:
        rates = io.read().processing["lfads"]["rates"]
        assert rates.data.shape[1] == 3
        assert rates.rate == pytest.approx(50.0)  # one regular grid of 20 ms bins
        assert rates.data.shape[0] > 50_000 * 0.9 / 2  # ~1,087 s of 20 ms bins
