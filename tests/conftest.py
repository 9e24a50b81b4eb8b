"""Shared fixtures: paths to the real NWB files in tests/data (see tests/data/README.md)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

DATA = Path(__file__).resolve().parent / "data"
MC_MAZE_SMALL = DATA / "sub-Jenkins_ses-small_desc-test_ecephys.nwb"
A8604 = DATA / "A8604-211122.nwb"


def _data_file(path: Path) -> Path:
    """The path of a file in tests/data; a missing file fails the test, it never skips it."""
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: the real NWB files the tests read are committed in tests/data "
            "(see tests/data/README.md); restore them with `git checkout -- tests/data`."
        )
    return path


@pytest.fixture(scope="session")
def mc_maze_small() -> Path:
    """MC_Maze_Small, test split (DANDI:000140, CC-BY-4.0): 107 units, 100 trials."""
    return _data_file(MC_MAZE_SMALL)


@pytest.fixture(scope="session")
def a8604() -> Path:
    """pynapple's A8604-211122 recording (MIT): 3 units, no trials table."""
    return _data_file(A8604)


def pytest_sessionfinish(session, exitstatus):
    """A skipped test fails the run: a fresh clone with the `test` extra runs every test."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if skipped and exitstatus == pytest.ExitCode.OK:
        reporter.write("\n")
        reporter.write_sep(
            "!",
            f"{len(skipped)} test(s) skipped: no test may skip (make its dependency a test "
            "dependency or the test independent of it); failing the run",
            red=True,
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
