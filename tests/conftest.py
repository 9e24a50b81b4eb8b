"""Shared fixtures: paths to the real NWB files in ../shared/data and small synthetic sessions."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
MC_MAZE_SMALL = SHARED_DATA / "sub-Jenkins_ses-small_desc-test_ecephys.nwb"
A8604 = SHARED_DATA / "A8604-211122.nwb"


@pytest.fixture(scope="session")
def mc_maze_small() -> Path:
    if not MC_MAZE_SMALL.exists():
        pytest.skip(f"{MC_MAZE_SMALL} not present")
    return MC_MAZE_SMALL


@pytest.fixture(scope="session")
def a8604() -> Path:
    if not A8604.exists():
        pytest.skip(f"{A8604} not present")
    return A8604
