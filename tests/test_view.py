"""`nwb-lfads view FILE`: runs `neurosift view-nwb` when the package is there, else says how to
install it. The neurosift package and Node.js are not test dependencies: they are stood in for."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import types

import pytest
from click.testing import CliRunner
from nwb_lfads.cli.main import main


@pytest.fixture
def calls(monkeypatch, tmp_path):
    """Stand-ins: the neurosift package, its `neurosift` command, npm and node; the arguments of
    every subprocess.run are recorded (and the fake command exits with ``calls.code``)."""
    real_find_spec, real_run = importlib.util.find_spec, subprocess.run
    record = types.SimpleNamespace(args=[], code=0)

    def find_spec(name, *a, **k):
        return object() if name == "neurosift" else real_find_spec(name, *a, **k)

    def run(args, *a, **kwargs):
        if not (isinstance(args, list) and args and str(args[0]).startswith("/opt/bin/")):
            return real_run(args, *a, **kwargs)
        record.args.append(list(args))
        return subprocess.CompletedProcess(args, record.code)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.setattr(shutil, "which", lambda name, path=None: f"/opt/bin/{name}")
    monkeypatch.setattr(subprocess, "run", run)
    return record


def test_view_runs_neurosift_on_the_file(calls, a8604):
    result = CliRunner().invoke(main, ["view", str(a8604)])
    assert result.exit_code == 0, result.output
    assert calls.args == [["/opt/bin/neurosift", "view-nwb", str(a8604.resolve())]]


def test_view_passes_a_neurosift_url(calls, a8604):
    url = "http://localhost:5173"
    result = CliRunner().invoke(main, ["view", str(a8604), "--neurosift-url", url])
    assert result.exit_code == 0, result.output
    assert calls.args[0][-2:] == ["--neurosift-url", url]


def test_view_reports_a_failing_viewer(calls, a8604):
    calls.code = 3
    result = CliRunner().invoke(main, ["view", str(a8604)])
    assert result.exit_code == 1
    assert "exited with status 3" in result.output


def test_view_without_neurosift_says_how_to_install(monkeypatch, a8604):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a, **k: None if name == "neurosift" else real_find_spec(name, *a, **k),
    )
    result = CliRunner().invoke(main, ["view", str(a8604)])
    assert result.exit_code == 2
    assert "needs the Python package 'neurosift'" in result.output
    assert 'pip install "nwb-lfads[view]"' in result.output


def test_view_without_node_says_so(calls, monkeypatch, a8604):
    monkeypatch.setattr(
        shutil, "which", lambda name, path=None: None if name == "npm" else f"/opt/bin/{name}"
    )
    result = CliRunner().invoke(main, ["view", str(a8604)])
    assert result.exit_code == 2
    assert "Node.js" in result.output and calls.args == []


def test_view_refuses_a_missing_or_non_nwb_file(calls, tmp_path):
    result = CliRunner().invoke(main, ["view", str(tmp_path / "none.nwb")])
    assert result.exit_code == 2 and "file not found" in result.output
    text = tmp_path / "notes.nwb"
    text.write_text("not hdf5")
    result = CliRunner().invoke(main, ["view", str(text)])
    assert result.exit_code == 2 and str(text) in result.output
    assert calls.args == []
