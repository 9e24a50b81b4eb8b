"""Synthetic sessions: generator statistics, the NWB files they become, and `nwb-lfads simulate`."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from nwb_lfads.cli.main import main

from nwb_lfads.errors import ConfigError, NwbLfadsError, OutputDirError
from nwb_lfads.io import read
from nwb_lfads.synthetic import (
    benchmark_rates,
    chaotic_rnn_weights,
    generate_sessions,
    integrate_lorenz,
    loglinear_readout,
    lorenz_latents,
    run_chaotic_rnn,
    simulate,
)

BENCH = dict(kind="chaotic", sessions=1, seed=3, n_conditions=6, trials_per_condition=8)
MULTI = dict(
    kind="chaotic", sessions=3, seed=5, n_conditions=4, heldout_fraction=0.2, eval_fraction=0.25
)
LORENZ = dict(kind="lorenz", sessions=1, seed=7, n_conditions=4, trials_per_condition=5)


@pytest.fixture(scope="session")
def sim_files(tmp_path_factory):
    """Files of the three variants: {"bench": [path], "multi": [3 paths], "lorenz": [path]}."""
    root = tmp_path_factory.mktemp("sim")
    return {
        name: simulate(root / name, **kw)
        for name, kw in (("bench", BENCH), ("multi", MULTI), ("lorenz", LORENZ))
    }


def read_file(path) -> dict:
    """Spikes re-binned at 10 ms per trial [K, T, N], the ground truth and the tables of a simulated file."""
    import pynwb

    with pynwb.NWBHDF5IO(str(path), "r") as io:
        f = io.read()
        rates_ts = f.processing["ground_truth"]["rates"]
        rates = rates_ts.data[:]
        out = {
            "start": f.trials["start_time"].data[:],
            "stop": f.trials["stop_time"].data[:],
            "move": f.trials["move_onset_time"].data[:],
            "condition": f.trials["condition_id"].data[:],
            "split": f.trials["split"].data[:] if "split" in f.trials.colnames else None,
            "heldout": f.units["heldout"].data[:] if "heldout" in f.units.colnames else None,
            "rates_unit": rates_ts.unit,
            "rates_dtype": rates.dtype,
            "rates": rates,
            "timestamps": rates_ts.timestamps[:],
            "latents": f.processing["ground_truth"]["latents"].data[:],
            "species": f.subject.species,
            "resolution": f.units.resolution,
            "start_time_tz": f.session_start_time.tzinfo,
        }
        ends = f.units.spike_times_index.data[:]
        flat = f.units.spike_times.data[:]
        units = np.split(flat, ends[:-1])
    n_trials, n_units = len(out["start"]), len(units)
    edges = out["start"][:, None] + np.arange(101) * 0.01  # [K, T+1] bin edges in session time
    counts = np.stack(
        [np.diff(np.searchsorted(u, edges, side="left"), axis=1) for u in units], axis=-1
    )
    out["spikes"], out["units"] = counts, units
    out["rates3"] = rates.reshape(n_trials, 100, n_units)
    return out


# ---------------------------------------------------------------- generators


def test_weights_have_benchmark_scale():
    w = chaotic_rnn_weights(np.random.default_rng(0), 50, 1.5)
    assert w.shape == (50, 50)
    assert w.std() * np.sqrt(50) == pytest.approx(1.5, rel=0.06)
    assert np.abs(np.linalg.eigvals(w)).max() == pytest.approx(1.5, abs=0.3)  # circular law


def test_weights_refuse_non_chaotic_gain():
    with pytest.raises(ConfigError, match="no draw of W"):
        chaotic_rnn_weights(np.random.default_rng(0), 20, gamma=0.5, max_draws=3)


def test_rnn_is_euler_integration_of_the_rate_equation():
    rng = np.random.default_rng(1)
    w, x0 = chaotic_rnn_weights(rng, sustained=False), rng.standard_normal((2, 50))
    x = run_chaotic_rnn(w, x0, n_bins=3, dt=0.01, tau=0.025)
    assert x.shape == (2, 3, 50)
    np.testing.assert_allclose(x[:, 0], x0)
    np.testing.assert_allclose(x[:, 1], x0 + 0.4 * (-x0 + np.tanh(x0) @ w.T))


def test_benchmark_statistics():
    (s,) = generate_sessions(**BENCH)
    assert s.rates_hz.shape == (48, 100, 50) and s.latents.shape == (48, 100, 50)
    # every trace is min-max normalised to exactly [0, 30] Hz: max 0.3 expected spikes per 10 ms bin
    np.testing.assert_allclose(s.rates_hz.min(axis=1), 0.0, atol=1e-9)
    np.testing.assert_allclose(s.rates_hz.max(axis=1), 30.0)
    assert (s.rates_hz * s.bin_size).max() == pytest.approx(0.3)
    lat = s.latents  # tanh(x): the rates are its min-max normalisation over time
    span = lat.max(axis=1, keepdims=True) - lat.min(axis=1, keepdims=True)
    np.testing.assert_allclose(
        s.rates_hz, 30 * (lat - lat.min(axis=1, keepdims=True)) / span, atol=1e-9
    )
    np.testing.assert_allclose(
        benchmark_rates(np.zeros((1, 2, 1)) + [[[0.0], [1.0]]]), [[[0.0], [30.0]]]
    )
    # all trials of a condition share x0, hence rates; conditions differ; dynamics do not die out
    for c in range(6):
        trials = s.rates_hz[s.condition_id == c]
        assert len(trials) == 8 and np.all(trials == trials[0])
    assert not np.allclose(s.rates_hz[s.condition_id == 0][0], s.rates_hz[s.condition_id == 1][0])
    assert s.latents[:, 50:].std(axis=1).mean(axis=-1).min() > 0.05


def test_poisson_counts_match_rates_in_generator():
    s = generate_sessions(
        kind="chaotic", sessions=1, seed=0, n_conditions=20, trials_per_condition=10
    )[0]
    lam = s.rates_hz * s.bin_size
    z = (s.spikes.sum() - lam.sum()) / np.sqrt(lam.sum())
    assert abs(z) < 5


def test_lorenz_latents_are_bounded_and_chaotic():
    z = lorenz_latents(np.random.default_rng(0), n_conditions=8, n_bins=100)
    assert z.shape == (8, 100, 3)
    np.testing.assert_allclose(z.mean(axis=(0, 1)), 0, atol=1e-9)
    assert np.abs(z).max() < 4.0  # z-scored Lorenz attractor stays within a few SD
    assert z.std(axis=1).sum(axis=-1).min() > 0.3  # no condition sits at a fixed point
    a = np.array([[1.0, 1.0, 20.0], [1.0 + 1e-8, 1.0, 20.0]])
    b = integrate_lorenz(a, 0.0015, 4000)  # 6 model time units
    assert np.linalg.norm(b[0] - b[1]) > 100 * 1e-8  # nearby states diverge
    assert np.abs(b).max() < 60


def test_loglinear_readout_spans_plausible_rates():
    latents = np.random.default_rng(0).standard_normal((5, 100, 3))
    rates = loglinear_readout(np.random.default_rng(1), latents, 30)
    assert rates.shape == (5, 100, 30)
    assert rates.min() >= 1.0 - 1e-9 and rates.max() <= 40.0 + 1e-9
    ratio = rates.max(axis=(0, 1)) / rates.min(axis=(0, 1))
    assert ratio.min() > 1.5  # every unit is modulated by the latent


def test_multi_session_shares_latent_and_differs_in_readout():
    sessions = generate_sessions(**MULTI)
    assert [s.rates_hz.shape[2] for s in sessions] == [40, 55, 70]
    assert [len(s.condition_id) for s in sessions] == [40, 32, 48]  # 10, 8, 12 trials per condition
    for c in range(4):
        first = [s.latents[s.condition_id == c][0] for s in sessions]
        np.testing.assert_array_equal(first[0], first[1])
        np.testing.assert_array_equal(first[0], first[2])
    for s in sessions:
        assert 1.0 - 1e-9 <= s.rates_hz.min() and s.rates_hz.max() <= 40.0 + 1e-9
        assert s.heldout.sum() == round(0.2 * s.rates_hz.shape[2])
        assert (s.split == "val").sum() == round(0.25 * len(s.condition_id))


def test_seed_determines_everything():
    a, b, c = (
        generate_sessions(kind="lorenz", seed=seed, n_conditions=2, trials_per_condition=2)[0]
        for seed in (1, 1, 2)
    )
    np.testing.assert_array_equal(a.spikes, b.spikes)
    np.testing.assert_array_equal(a.start_time, b.start_time)
    assert not np.array_equal(a.rates_hz, c.rates_hz)


def test_condition_seed_keeps_the_network_and_draws_new_conditions():
    a = generate_sessions(**BENCH)[0]
    b, b2 = (generate_sessions(**BENCH, condition_seed=1)[0] for _ in range(2))
    np.testing.assert_array_equal(b.spikes, b2.spikes)
    assert not np.allclose(a.latents[:, 0], b.latents[:, 0])  # new initial states
    assert not np.array_equal(a.spikes, b.spikes)

    def steps(s):  # one Euler step per bin: tanh(x_t) W^T = (x_{t+1} - 0.6 x_t) / 0.4
        x = np.arctanh(s.latents)
        return np.tanh(x[:, :-1]).reshape(-1, 50), ((x[:, 1:] - 0.6 * x[:, :-1]) / 0.4).reshape(
            -1, 50
        )

    r, target = steps(a)
    w_t = np.linalg.lstsq(r, target, rcond=None)[
        0
    ]  # the network's weights, from seed 3's conditions
    r, target = steps(b)
    np.testing.assert_allclose(r @ w_t, target, atol=1e-5)  # the new conditions obey the same W
    other = generate_sessions(**{**BENCH, "seed": 4})[0]
    r, target = steps(other)
    assert np.abs(r @ w_t - target).max() > 0.1  # another seed's network does not


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(kind="rossler"), "unknown kind 'rossler'"),
        (dict(sessions=2, n_units=[40, 50, 60]), "n_units has 3 values for 2 sessions"),
        (dict(trials_per_condition=0), "trials_per_condition must be at least 1"),
        (dict(heldout_fraction=1.0), r"heldout_fraction must be in \[0, 1\)"),
        (dict(n_conditions=0), "must be at least 1"),
    ],
)
def test_bad_arguments_raise_config_error(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        generate_sessions(**{"n_conditions": 2, **kwargs})


# ---------------------------------------------------------------- NWB files


def test_spike_counts_in_file_are_poisson_with_stored_rates(sim_files):
    (path,) = sim_files["bench"]
    f = read_file(path)
    np.testing.assert_array_equal(
        f["spikes"], generate_sessions(**BENCH)[0].spikes
    )  # file encodes counts exactly
    lam = f["rates3"].astype(np.float64) * 0.01  # [K, T, N] expected counts
    assert lam.max() == pytest.approx(0.3, rel=1e-6)
    # the 8 trials of a condition share their rates: per (condition, bin, unit) sample mean and variance
    cond = f["condition"]
    groups = np.stack([f["spikes"][cond == c] for c in range(6)])  # [C, R, T, N]
    lam_g = np.stack([lam[cond == c][0] for c in range(6)])  # [C, T, N]
    r = groups.shape[1]
    mean, var = groups.mean(axis=1), groups.var(axis=1, ddof=1)
    se_mean = np.sqrt(lam_g.sum() / r)
    assert abs(mean.sum() - lam_g.sum()) < 5 * se_mean
    var_of_var = (lam_g + 3 * lam_g**2) / r - lam_g**2 * (r - 3) / (
        r * (r - 1)
    )  # Poisson sample variance
    assert abs(var.sum() - lam_g.sum()) < 5 * np.sqrt(var_of_var.sum())
    # and per rate level: counts at high-rate bins are higher (mean follows the rate)
    high, low = lam > 0.2, lam < 0.05
    assert f["spikes"][high].mean() == pytest.approx(lam[high].mean(), rel=0.1)
    assert f["spikes"][low].mean() == pytest.approx(lam[low].mean(), abs=0.01)


def test_file_layout_matches_contract(sim_files):
    (path,) = sim_files["bench"]
    f = read_file(path)
    k = len(f["start"])
    assert (
        f["rates"].shape == (k * 100, 50)
        and f["rates_dtype"] == np.float32
        and f["rates_unit"] == "Hz"
    )
    assert f["latents"].shape == (k * 100, 50)
    expected = (f["start"][:, None] + (np.arange(100) + 0.5) * 0.01).ravel()
    np.testing.assert_allclose(f["timestamps"], expected)
    assert np.all(np.diff(f["timestamps"]) > 0)
    np.testing.assert_allclose(f["stop"] - f["start"], 1.0)
    np.testing.assert_allclose(f["move"] - f["start"], 0.25)
    gaps = f["start"][1:] - f["stop"][:-1]
    assert gaps.min() >= 0.1 - 1e-9 and gaps.max() <= 0.6 + 1e-9
    assert f["condition"].dtype.kind == "i" and set(f["condition"]) == set(range(6))
    assert f["species"] == "Macaca mulatta" and f["start_time_tz"] is not None
    assert f["resolution"] == pytest.approx(1 / 30000)
    for u in f["units"]:
        assert np.all(np.diff(u) >= 0)
        offset = (u - f["start"][np.searchsorted(f["start"], u, side="right") - 1]) % 0.01
        assert offset.min() > 0 and offset.max() < 0.01  # never on a bin edge
    assert f["split"] is None and f["heldout"] is None


def test_multi_session_files_share_latent_and_mark_splits(sim_files):
    files = [read_file(p) for p in sim_files["multi"]]
    assert [f["rates"].shape[1] for f in files] == [40, 55, 70]
    for c in range(4):
        lat = [
            f["latents"].reshape(len(f["start"]), 100, -1)[f["condition"] == c][0] for f in files
        ]
        np.testing.assert_array_equal(lat[0], lat[1])
        np.testing.assert_array_equal(lat[0], lat[2])
    for f in files:
        assert f["heldout"].dtype == bool and f["heldout"].sum() == round(0.2 * f["rates"].shape[1])
        assert set(f["split"]) == {"train", "val"}
        lam = f["rates3"] * 0.01
        assert abs(f["spikes"].sum() - lam.sum()) < 5 * np.sqrt(lam.sum())


@pytest.mark.parametrize("variant", ["bench", "multi", "lorenz"])
def test_files_pass_nwbinspector(sim_files, variant):
    from nwbinspector import Importance, inspect_nwbfile

    for path in sim_files[variant]:
        bad = [
            f"{m.check_function_name}: {m.message}"
            for m in inspect_nwbfile(nwbfile_path=str(path))
            if m.importance.value >= Importance.BEST_PRACTICE_VIOLATION.value
        ]
        assert bad == []


def test_writes_are_atomic_and_named_by_session(sim_files):
    folder = sim_files["multi"][0].parent
    assert sorted(p.name for p in folder.iterdir()) == [
        "sim_session-0.nwb",
        "sim_session-1.nwb",
        "sim_session-2.nwb",
    ]


# ---------------------------------------------------------------- simulate / CLI


def test_simulate_refuses_non_empty_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(OutputDirError, match="folder is not empty"):
        simulate(tmp_path, n_conditions=2, trials_per_condition=1)
    assert issubclass(OutputDirError, NwbLfadsError)
    (tmp_path / "file.nwb").write_text("x")
    with pytest.raises(OutputDirError, match="not a folder"):
        simulate(tmp_path / "file.nwb", n_conditions=2, trials_per_condition=1)


def test_cli_simulate_refuses_then_overwrites(tmp_path):
    out = tmp_path / "sim"
    runner = CliRunner()
    args = [
        "simulate",
        str(out),
        "--conditions",
        "2",
        "--trials-per-condition",
        "2",
        "--kind",
        "lorenz",
    ]
    first = runner.invoke(main, args)
    assert first.exit_code == 0, first.output
    assert str(out / "sim_session-0.nwb") in first.output
    before = read_file(out / "sim_session-0.nwb")["spikes"]

    again = runner.invoke(main, args + ["--seed", "1"])
    assert again.exit_code == 2
    assert "folder is not empty" in again.output and "--overwrite" in again.output
    assert "Traceback" not in again.output

    forced = runner.invoke(main, args + ["--seed", "1", "--overwrite"])
    assert forced.exit_code == 0, forced.output
    after = read_file(out / "sim_session-0.nwb")["spikes"]
    assert not np.array_equal(before, after)


def test_cli_simulate_units_and_sessions(tmp_path):
    out = tmp_path / "multi"
    result = CliRunner().invoke(
        main,
        [
            "simulate",
            str(out),
            "--sessions",
            "2",
            "--conditions",
            "2",
            "--trials-per-condition",
            "1",
            "--units",
            "12,17",
            "--heldout-fraction",
            "0.25",
            "--eval-fraction",
            "0.5",
        ],
    )
    assert result.exit_code == 0, result.output
    files = [read_file(out / f"sim_session-{i}.nwb") for i in range(2)]
    assert [f["rates"].shape[1] for f in files] == [12, 17]
    assert [int(f["heldout"].sum()) for f in files] == [3, 4]
    assert all(list(f["split"]).count("val") == 1 for f in files)


def test_cli_simulate_bad_units_exit_2(tmp_path):
    result = CliRunner().invoke(main, ["simulate", str(tmp_path / "x"), "--units", "ten"])
    assert result.exit_code == 2
    assert "--units: 'ten' is not an integer" in result.output
    result = CliRunner().invoke(
        main, ["simulate", str(tmp_path / "y"), "--sessions", "2", "--units", "1,2,3"]
    )
    assert result.exit_code == 2 and "n_units has 3 values for 2 sessions" in result.output


def test_reader_recovers_generator_counts_and_timestamps(sim_files):
    """The contract's reader, aligned on move_onset_time with window (-0.25, 0.75), sees the true bins."""
    path = sim_files["multi"][1]
    ds = read.read_session(
        str(path), bin_size=0.01, align_to="move_onset_time", window=(-0.25, 0.75)
    )
    truth = generate_sessions(**MULTI)[1]
    np.testing.assert_array_equal(ds["spikes"].values, truth.spikes)
    np.testing.assert_array_equal(ds["condition_id"].values, truth.condition_id)
    f = read_file(path)
    np.testing.assert_allclose((ds["align_time"] + ds["time"]).values.ravel(), f["timestamps"])
