"""report: the run-directory PNGs and the pure helpers behind them (PCA, smoothing)."""

from __future__ import annotations

import csv
import struct
import sys

import numpy as np
import xarray as xr
from helpers import make_results

from nwb_lfads import report

BIN = 0.01


def fabricate(
    n_trials=12, n_time=70, n_units=20, n_factors=6, n_conditions=3, conditions=True, seed=0
):
    """A reader Dataset and matching results Dataset (docs/DESIGN.md, "Results") with condition structure."""
    rng = np.random.default_rng(seed)
    time = -0.25 + BIN * (np.arange(n_time) + 0.5)
    cond = np.arange(n_trials) % n_conditions
    phase = 2 * np.pi * cond / n_conditions
    latent = np.stack(
        [np.sin(2 * np.pi * time[None, :] + phase[:, None] + j) for j in range(n_factors)], -1
    )
    factors = latent + 0.05 * rng.normal(size=latent.shape)
    rates = 20 * np.exp(
        0.5 * factors @ rng.normal(size=(n_factors, n_units)) / np.sqrt(n_factors)
    )  # Hz
    spikes = rng.poisson(rates * BIN).astype(np.int32)
    coords = {
        "trial": np.arange(100, 100 + n_trials),
        "time": time,
        "unit": np.arange(1000, 1000 + n_units),
        "align_time": ("trial", 1.0 + 0.8 * np.arange(n_trials)),
    }
    if conditions:
        coords["condition_id"] = ("trial", cond)
    attrs = {
        "session_id": "sim-0",
        "bin_size": BIN,
        "align_to": "move_onset_time",
        "window": (-0.25, 0.45),
    }
    ds = xr.Dataset({"spikes": (("trial", "time", "unit"), spikes)}, coords=coords, attrs=attrs)
    return ds, make_results(ds, rates, factors)


def png_size(path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk; fails unless the file is a PNG."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def assert_good_png(path, min_w=400, min_h=300):
    w, h = png_size(path)
    assert min_w <= w <= 4000 and min_h <= h <= 4000
    assert path.stat().st_size > 10_000  # something was drawn


METRICS = [
    {
        "epoch": e,
        "train_loss": 100 / e,
        "valid_loss": 110 / e + 1,
        "kl_ic": 5.0 / e,
        "kl_co": 1.0 + e,
        "l2": 0.5,
        "lr": 4e-3 * 0.95**e,
        "valid_bps": 0.01 * e,
    }
    for e in range(1, 11)
]


def test_learning_curves_from_rows_and_csv(tmp_path):
    [path] = report.plot_learning_curves(METRICS, tmp_path / "run", title="run A")
    assert path == tmp_path / "run" / "learning_curves.png"
    assert_good_png(path, min_w=1200)  # four panels side by side
    csv_path = tmp_path / "metrics.csv"
    with open(csv_path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(METRICS[0]))
        writer.writeheader()
        writer.writerows(METRICS)
    [path2] = report.plot_learning_curves(csv_path, tmp_path / "csv", prefix="s1")
    assert path2.name == "s1_learning_curves.png"
    assert_good_png(path2)
    assert (
        report.plot_learning_curves([], tmp_path) == []
        and report.plot_learning_curves(None, tmp_path) == []
    )
    assert not list((tmp_path / "run").glob(".*"))  # no temporary files left


def test_metric_columns_sorted_into_panels():
    panels = report._panels(
        ["train_loss", "valid_loss", "kl_ic", "kl_co", "l2", "kl_weight", "lr", "valid_bps"]
    )
    assert panels == {
        "loss": ["train_loss", "valid_loss"],
        "KL and L2 penalties": ["kl_ic", "kl_co", "l2"],
        "validation scores": ["valid_bps"],
        "learning rate": ["lr"],
    }


def test_session_report_makes_every_figure(tmp_path):
    ds, res = fabricate()
    paths = report.plot_session_report(ds, res, METRICS, tmp_path, prefix="sim-0")
    assert [p.name for p in paths] == ["sim-0_rasters.png", "sim-0_psths.png", "sim-0_factors.png"]
    for p in paths:
        assert_good_png(p)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)


def test_psths_skipped_without_conditions(tmp_path):
    ds, res = fabricate(conditions=False)
    assert report.plot_psths(ds, res, tmp_path) == []
    paths = report.plot_session_report(ds, res, None, tmp_path)
    assert [p.name for p in paths] == ["rasters.png", "factors.png"]


def test_rasters_follow_results_trials_subset(tmp_path):
    ds, res = fabricate(n_trials=9)
    sub = res.isel(trial=[7, 2, 5])  # results for some trials only, in another order
    [path] = report.plot_rasters(ds, sub, tmp_path, n_trials=4)
    assert_good_png(path)
    assert report._paired(ds, sub)["trial"].values.tolist() == [107, 102, 105]


def test_factor_trajectories_two_factors_is_2d(tmp_path):
    _, res = fabricate(n_factors=2)
    [path] = report.plot_factor_trajectories(res, tmp_path, condition="none")
    assert_good_png(path)


def test_pca_components_orthonormal_and_ordered():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(500, 6)) * np.array([5.0, 3.0, 1.0, 0.5, 0.2, 0.1]) + 7.0
    comps, mean, explained = report.pca(x, 3)
    assert comps.shape == (3, 6)
    np.testing.assert_allclose(comps @ comps.T, np.eye(3), atol=1e-10)
    np.testing.assert_allclose(mean, x.mean(axis=0))
    assert np.all(np.diff(explained) < 0) and 0.9 < explained.sum() < 1
    assert abs(comps[0, 0]) > 0.99  # the widest axis comes first


def test_import_report_does_not_pull_in_matplotlib():
    import subprocess

    code = "import sys, nwb_lfads.report; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
