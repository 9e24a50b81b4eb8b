"""Faults a user meets: a crash before the first checkpoint, a corrupt checkpoint, a full disk,
a second fit on the same run directory, non-finite spike times. Each ends in one line and a run
that one documented command continues."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from click.testing import CliRunner
from nwb_lfads.cli.main import main

from nwb_lfads.errors import RunDirError
from nwb_lfads.rundir import RunDir

TINY = [
    *("--set", "model.gen_dim=12", "--set", "model.ic_enc_dim=8", "--set", "model.ci_enc_dim=8"),
    *("--set", "model.con_dim=8", "--set", "model.fac_dim=4", "--set", "model.ic_dim=8"),
    *("--set", "model.co_dim=2", "--set", "train.batch_size=16", "--set", "train.n_samples=3"),
    *("--align-to", "move_onset_time", "--quiet", "--no-plots"),
]


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def sha256(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    from nwb_lfads.synthetic import simulate

    out = tmp_path_factory.mktemp("sim")
    return simulate(out, seed=4, n_conditions=8, trials_per_condition=6, n_units=[12])[0]


@pytest.fixture(scope="module")
def finished(tmp_path_factory, session):
    """A run directory of a finished 2-epoch fit (copied by each test that changes it)."""
    run = tmp_path_factory.mktemp("runs") / "done"
    result = invoke("fit", session, "--out", run, "--max-epochs", 2, *TINY)
    assert result.exit_code == 0, result.output
    return run


def test_a_run_killed_before_its_first_checkpoint_resumes_from_the_beginning(
    finished, session, tmp_path
):
    run = RunDir(tmp_path / "early")
    run.write_config(RunDir(finished).read_config())  # what a kill in epoch 1 leaves
    run.append_metrics({"epoch": 1, "train_loss": 1.0})
    again = invoke("fit", session, "--out", run.path, "--max-epochs", 2, *TINY)
    assert again.exit_code == 2 and "--resume" in again.output  # a run is there
    result = invoke("fit", session, "--out", run.path, "--resume", "--max-epochs", 2, *TINY)
    assert result.exit_code == 0, result.output
    assert "no checkpoint yet" in result.output and "from the beginning" in result.output
    assert [r["epoch"] for r in run.read_metrics()] == [1.0, 2.0]  # the stale row is gone
    assert run.checkpoint.has_state() and run.output(session).exists()


def test_a_checkpoint_is_written_after_the_first_epoch(session, tmp_path):
    from nwb_lfads.config import RunConfig
    from nwb_lfads.data import prepare_data
    from nwb_lfads.io.read import read_sessions
    from nwb_lfads.train.loop import train

    cfg = RunConfig().with_overrides(
        [f"{a}" for a in TINY[1:18:2]] + ["data.align_to=move_onset_time", "train.max_epochs=3"]
    )
    datasets = read_sessions([session], bin_size=0.01, align_to="move_onset_time")
    seen = []

    def after_epoch(trainer, row):
        seen.append(RunDir(tmp_path / "run").checkpoint.has_state())

    data = prepare_data(datasets, cfg.data)
    train(data, cfg, tmp_path / "run", progress=False, callback=after_epoch)
    # the callback runs before the epoch's checkpoint: none before epoch 1 ended, then kept
    assert seen == [False, True, True]


def test_a_corrupt_checkpoint_is_named_with_the_fix(finished, session, tmp_path):
    run = tmp_path / "corrupt"
    shutil.copytree(finished, run)
    state = RunDir(run).checkpoint.state
    state.write_bytes(state.read_bytes()[:1000])  # cut short
    result = invoke("fit", session, "--out", run, "--resume", "--max-epochs", 3, *TINY)
    assert result.exit_code == 2
    assert "cannot be read" in result.output and str(state) in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    state.unlink()  # the documented fix: train again from the beginning with the saved config
    result = invoke("fit", session, "--out", run, "--resume", "--max-epochs", 2, *TINY)
    assert result.exit_code == 0, result.output


def test_a_full_disk_is_one_line_and_keeps_the_previous_checkpoint(
    finished, session, tmp_path, monkeypatch
):
    import nwb_lfads.train.checkpoint as ckpt

    run = tmp_path / "full"
    shutil.copytree(finished, run)
    state = RunDir(run).checkpoint.state
    before = sha256(state)

    def no_space(file, **arrays):
        file.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device", str(file.name))

    monkeypatch.setattr(ckpt.np, "savez", no_space)
    result = invoke("fit", session, "--out", run, "--resume", "--max-epochs", 3, *TINY)
    assert result.exit_code == 1
    assert "No space left on device" in result.output and "free space" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert sha256(state) == before  # the previous checkpoint survives
    assert not list(state.parent.glob("*.tmp"))  # and no temporary file is left
    monkeypatch.undo()
    result = invoke("fit", session, "--out", run, "--resume", "--max-epochs", 3, *TINY)
    assert result.exit_code == 0, result.output  # space again: the same command continues


def test_a_second_fit_on_a_run_directory_in_use_is_refused(session, tmp_path):
    run = RunDir(tmp_path / "busy")
    with run.lock():
        result = invoke("fit", session, "--out", run.path, "--max-epochs", 1, *TINY)
        assert result.exit_code == 2
        assert (
            f"pid {os.getpid()}" in result.output and "another nwb-lfads process" in result.output
        )
        with pytest.raises(RunDirError, match="another nwb-lfads process"):
            with RunDir(run.path).lock():
                pass
    with run.lock():  # released when its owner is done
        pass


def test_the_lock_of_a_killed_process_is_gone(tmp_path):
    code = textwrap.dedent(f"""
        import sys, time
        from nwb_lfads.rundir import RunDir
        with RunDir({str(tmp_path / "run")!r}).lock():
            print("locked", flush=True)
            time.sleep(60)
    """)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "locked"
        with pytest.raises(RunDirError, match=f"pid {child.pid}"):
            with RunDir(tmp_path / "run").lock():
                pass
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        with RunDir(tmp_path / "run").lock():  # kill -9 left the lock file, not the lock
            assert (tmp_path / "run" / ".lock").exists()
    finally:
        child.kill()


def test_non_finite_spike_times_are_dropped_and_counted(tmp_path):
    from pynwb import NWBHDF5IO
    from pynwb.testing.mock.file import mock_NWBFile

    from nwb_lfads.io.read import read_session

    nwbfile = mock_NWBFile()
    nwbfile.add_unit(spike_times=[0.1, np.nan, 0.5, 0.9])
    nwbfile.add_unit(spike_times=[0.2, 0.3, 2.0])
    nwbfile.add_unit(spike_times=[np.inf, 0.7, np.nan])
    path = tmp_path / "nan.nwb"
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwbfile)
    with pytest.warns(UserWarning, match=r"3 spike time\(s\) are NaN or infinite in 2 unit") as w:
        ds = read_session(path, bin_size=0.1, window_length=0.5, overlap=0.0)
    (message,) = [str(m.message) for m in w if "NaN or infinite" in str(m.message)]
    assert "id 0: 1, id 2: 2" in message
    assert ds["spikes"].sum(dim=("trial", "time")).values.tolist() == [3, 2, 1]


def _units_file(path, trains, obs=None, trial_stop=10.0, series_end=None):
    """A file with one unit per train, two trials in [0, trial_stop], optionally obs_intervals
    and an acquisition series sampled at 100 Hz up to ``series_end``."""
    from pynwb import NWBHDF5IO, TimeSeries
    from pynwb.testing.mock.file import mock_NWBFile

    nwbfile = mock_NWBFile()
    for train in trains:
        nwbfile.add_unit(spike_times=train, **({"obs_intervals": [obs]} if obs else {}))
    nwbfile.add_trial(start_time=0.0, stop_time=trial_stop / 2)
    nwbfile.add_trial(start_time=trial_stop / 2, stop_time=trial_stop)
    if series_end is not None:
        data = np.zeros(int(series_end * 100))
        nwbfile.add_acquisition(
            TimeSeries(name="lick", data=data, unit="V", starting_time=0.0, rate=100.0)
        )
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwbfile)
    return path


def _messages(record, phrase):
    return [str(m.message) for m in record if phrase in str(m.message)]


def test_spike_times_outside_the_recording_are_counted_per_unit(tmp_path):
    from nwb_lfads.io.read import read_session

    trains = [[-0.5, 1.0, 2.0], [3.0, 4.0], [5.0, 11.0, 12.0, 13.5]]
    path = _units_file(tmp_path / "outside.nwb", trains)  # recording: 0 to the trials' 10 s
    with pytest.warns(UserWarning, match="outside the recording") as record:
        ds = read_session(path, bin_size=0.5, align_to="start_time", window=(0.0, 5.0))
    (message,) = _messages(record, "outside the recording")
    assert "4 spike time(s) in 2 unit(s)" in message and "[0, 10] s" in message
    assert "id 0: 1, id 2: 3" in message and "\n" not in message
    assert int(ds["spikes"].sum()) == 5  # kept, and binned where a window covers them
    # a series that runs to 14 s moves the recording's end: only the negative time is left
    path = _units_file(tmp_path / "series.nwb", trains, series_end=14.0)
    with pytest.warns(UserWarning, match="outside the recording") as record:
        read_session(path, bin_size=0.5, align_to="start_time", window=(0.0, 5.0))
    (message,) = _messages(record, "outside the recording")
    assert "1 spike time(s) in 1 unit(s)" in message and "id 0: 1" in message
    # obs_intervals decide when present
    path = _units_file(tmp_path / "obs.nwb", trains, obs=[1.0, 12.0], series_end=14.0)
    with pytest.warns(UserWarning, match="outside the recording") as record:
        read_session(path, bin_size=0.5, align_to="start_time", window=(1.0, 5.0))
    (message,) = _messages(record, "outside the recording")
    assert "[1, 12] s" in message and "id 0: 1, id 2: 1" in message


def test_units_without_a_spike_in_any_window_are_named(tmp_path):
    import warnings

    from nwb_lfads.io.read import read_session

    trains = [[1.0, 6.0], [8.0, 9.0], [0.5, 5.5], []]  # unit 1 only after the windows, 3 never
    path = _units_file(tmp_path / "silent.nwb", trains)
    with pytest.warns(UserWarning, match="no spike in any window") as record:
        ds = read_session(path, bin_size=0.5, align_to="start_time", window=(0.0, 2.0))
    (message,) = _messages(record, "no spike in any window")
    assert "2 of 4 unit(s)" in message and "(ids 1, 3)" in message and "\n" not in message
    assert ds.sizes["unit"] == 4  # kept
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean file warns about nothing
        read_session(path, bin_size=0.5, align_to="start_time", window=(0.0, 2.0), units=[0, 2])


def one_line(result) -> str:
    lines = result.output.strip().splitlines()
    assert "Traceback" not in result.output and len(lines) == 1, result.output
    return lines[0]


def no_space_at(suffix):
    """An ``os.replace`` that raises ENOSPC for a destination ending in ``suffix``."""
    real = os.replace

    def replace(src, dst, **kwargs):
        if str(dst).endswith(suffix):
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return real(src, dst, **kwargs)

    return replace


def hdf5_full_disk(self, **kwargs):
    """What h5py raises when the disk fills in the middle of an export (after writing some)."""
    with open(self.source, "ab") as fh:
        fh.write(b"\0" * 4096)
    raise RuntimeError(
        "Unable to synchronously copy object (file write failed: time = Sat Dec  5 2026, "
        f"filename = '{self.source}', errno = 28, error message = 'No space left on device')"
    )


@pytest.mark.parametrize("how", ["free space checked", "rename", "hdf5 write"])
def test_a_full_disk_at_the_final_write_leaves_no_output_and_resumes(
    finished, session, tmp_path, monkeypatch, how
):
    import shutil as sh

    import pynwb

    run = RunDir(tmp_path / "full")
    shutil.copytree(finished, run.path)
    run.output(session).unlink()  # as if the final write had not happened yet
    before, state = sha256(session), sha256(run.checkpoint.state)
    if how == "free space checked":
        usage = sh.disk_usage(tmp_path)
        monkeypatch.setattr(sh, "disk_usage", lambda p: usage._replace(free=100_000))
    elif how == "rename":
        monkeypatch.setattr(os, "replace", no_space_at(".lfads.nwb"))
    else:
        monkeypatch.setattr(pynwb.NWBHDF5IO, "export", hdf5_full_disk)
    result = invoke("fit", session, "--out", run.path, "--resume", "--max-epochs", 2, *TINY)
    assert result.exit_code == 1
    line = one_line(result)
    assert str(run.output(session)) in line and "No space left on device" in line
    assert "free space" in line and "--resume" in line
    assert not run.outputs() and not run.temporaries()  # no partial output, no temporary file
    assert sha256(session) == before and sha256(run.checkpoint.state) == state
    monkeypatch.undo()
    result = invoke("fit", session, "--out", run.path, "--resume", "--max-epochs", 2, *TINY)
    assert result.exit_code == 0, result.output  # the same command, with space again
    assert run.outputs() == [run.output(session)] and sha256(session) == before


def test_a_full_disk_at_the_checkpoint_rename_keeps_the_previous_one(
    finished, session, tmp_path, monkeypatch
):
    run = RunDir(tmp_path / "full")
    shutil.copytree(finished, run.path)
    state = sha256(run.checkpoint.state)
    monkeypatch.setattr(os, "replace", no_space_at("state.npz"))
    result = invoke("fit", session, "--out", run.path, "--resume", "--max-epochs", 3, *TINY)
    assert result.exit_code == 1 and "No space left on device" in one_line(result)
    assert sha256(run.checkpoint.state) == state and not run.temporaries()
    monkeypatch.undo()
    result = invoke("fit", session, "--out", run.path, "--resume", "--max-epochs", 3, *TINY)
    assert result.exit_code == 0, result.output
    assert [r["epoch"] for r in run.read_metrics()] == [1.0, 2.0, 3.0]


def test_temporaries_of_a_killed_write_are_removed_by_the_next_owner(tmp_path):
    run = RunDir(tmp_path / "run")
    run.checkpoint.path.mkdir(parents=True)
    left = [
        run.path / ".s.lfads.nwb.tmp-999.nwb",
        run.path / ".metrics.csv.tmp-999",
        run.checkpoint.path / "state.npz.tmp",
    ]
    for path in left:
        path.write_bytes(b"half")
    kept = run.checkpoint.state
    kept.write_bytes(b"whole")
    assert run.temporaries() == sorted(left)
    with run.lock():
        assert not run.temporaries() and kept.exists()


def locked(path) -> bool:
    try:
        with RunDir(path).lock():
            return False
    except RunDirError:
        return True


def test_a_concurrent_second_fit_on_the_same_out_is_one_line(session, tmp_path):
    run = RunDir(tmp_path / "busy")
    args = [str(session), "--out", str(run.path), "--max-epochs", "500", *TINY]
    child = subprocess.Popen(
        [sys.executable, "-m", "nwb_lfads.cli.main", "fit", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(1200):  # until the first fit holds the lock and wrote its config
            if child.poll() is not None or (run.config.exists() and locked(run.path)):
                break
            time.sleep(0.1)
        assert child.poll() is None
        for resume in ([], ["--resume"]):
            result = invoke("fit", *args, *resume)
            assert result.exit_code == 2
            line = one_line(result)
            assert str(run.path) in line and ("--resume" in line or "another nwb-lfads" in line)
        result = invoke("fit", *args, "--resume")
        assert f"pid {child.pid}" in result.output
    finally:
        child.kill()
        child.wait(timeout=30)


def test_a_truncated_input_is_one_line_exit_2(session, tmp_path):
    cut = tmp_path / "cut.nwb"
    data = open(session, "rb").read()
    cut.write_bytes(data[: len(data) // 2])
    before = sha256(cut)
    for args in (["inspect", cut], ["fit", cut, "--out", tmp_path / "run", *TINY]):
        result = invoke(*args)
        assert result.exit_code == 2, result.output
        assert str(cut) in one_line(result)
    assert sha256(cut) == before and not RunDir(tmp_path / "run").holds_run()


def test_resume_of_a_folder_killed_before_its_config_starts_the_run(finished, session, tmp_path):
    run = RunDir(tmp_path / "bare")
    with run.lock():  # what a kill while reading the data leaves: the lock file alone
        pass
    result = invoke("fit", session, "--out", run.path, "--resume", "--max-epochs", 2, *TINY)
    assert result.exit_code == 0, result.output
    assert "no run here yet" in result.output and run.output(session).exists()
