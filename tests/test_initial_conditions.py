"""processing/lfads/initial_conditions end to end: a short fit of a simulated session with 8
conditions, the table's trial ids, the states series, --push-mean / --samples in the
provenance, nwbinspector, and the conditions told apart from ``ic_mean``."""

from __future__ import annotations

import numpy as np
import pynwb
import pytest
from click.testing import CliRunner
from nwb_lfads.cli.main import main

from nwb_lfads.conditions import nearest_centroid_accuracy, stratified_folds
from nwb_lfads.errors import MetricInputError
from nwb_lfads.io.write import new_inspector_findings
from nwb_lfads.synthetic import simulate

N_CONDITIONS, PER_CONDITION = 8, 16
SMALL = [
    *("--set", "model.gen_dim=32", "--set", "model.ic_enc_dim=16", "--set", "model.ic_dim=8"),
    *("--set", "model.ci_enc_dim=8", "--set", "model.con_dim=8", "--set", "model.co_dim=1"),
    *("--set", "model.fac_dim=8", "--set", "train.batch_size=16", "--set", "train.n_samples=3"),
    *("--quiet", "--no-plots", "--seed", "0"),
]


def invoke(args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def sim_run(tmp_path_factory):
    """A simulated chaotic-RNN session (8 conditions x 16 trials, 1 s trials) fitted for 30
    epochs with a small model, ``--write-states --samples 2``."""
    root = tmp_path_factory.mktemp("ic")
    (src,) = simulate(root / "sim", n_conditions=N_CONDITIONS, trials_per_condition=PER_CONDITION)
    run = root / "run"
    result = invoke(
        ["fit", src, "--out", run, "--align-to", "start_time", "--max-epochs", 30, *SMALL]
        + ["--write-states", "--samples", 2]
    )
    assert result.exit_code == 0, result.output
    return src, run, run / "sim_session-0.lfads.nwb"


def read_module(path):
    """(trials table ids [K], condition ids [K], initial_conditions columns, series names,
    provenance {key: text}, factors shape)."""
    with pynwb.NWBHDF5IO(str(path), "r") as io:
        nwb = io.read()
        mod = nwb.processing["lfads"]
        table = mod["initial_conditions"]
        return dict(
            trial_ids=nwb.trials.id[:],
            conditions=np.asarray(nwb.trials["condition_id"][:]),
            table={c: np.asarray(table[c].data[:]) for c in table.colnames},
            series={
                name: (obj.data.shape, obj.rate, obj.starting_time)
                for name, obj in mod.data_interfaces.items()
                if isinstance(obj, pynwb.TimeSeries)
            },
            provenance=dict(mod["provenance"].to_dataframe()[["key", "value"]].values),
        )


def test_fit_writes_initial_conditions_and_states(sim_run):
    src, run, out = sim_run
    got = read_module(out)
    table = got["table"]
    assert list(table) == ["trial_id", "ic_mean", "ic_sd", "g0"]
    np.testing.assert_array_equal(table["trial_id"], got["trial_ids"])  # every trial, in order
    n = N_CONDITIONS * PER_CONDITION
    assert table["ic_mean"].shape == (n, 8) and table["ic_sd"].shape == (n, 8)
    assert table["g0"].shape == (n, 32) and np.all(table["ic_sd"] > 0)
    factors = got["series"]["factors"]
    assert got["series"]["generator_states"][0] == (factors[0][0], 32)
    assert got["series"]["controller_states"][0] == (factors[0][0], 8)
    assert got["series"]["generator_states"][1:] == factors[1:]  # same time base
    assert got["provenance"]["inference.n_samples"] == "2"
    assert got["provenance"]["inference.push_mean"] == "false"
    assert new_inspector_findings(src, out) == []


def test_initial_conditions_identify_the_condition(sim_run):
    """Acceptance: a linear classifier on ``ic_mean`` finds each trial's condition far above
    chance (here after only 30 epochs of a small model); shuffled labels stay near chance."""
    got = read_module(sim_run[2])
    row = {int(i): k for k, i in enumerate(got["trial_ids"])}
    conditions = got["conditions"][[row[int(i)] for i in got["table"]["trial_id"]]]
    accuracy, chance = nearest_centroid_accuracy(got["table"]["ic_mean"], conditions)
    assert chance == pytest.approx(1 / N_CONDITIONS)
    assert accuracy > 3 * chance, accuracy
    shuffled = np.random.default_rng(0).permutation(conditions)
    assert nearest_centroid_accuracy(got["table"]["ic_mean"], shuffled)[0] < 2 * chance


def test_infer_push_mean_without_states(sim_run, tmp_path):
    src, run, fitted = sim_run
    result = invoke(["infer", run, src, "--out", tmp_path / "pm", "--push-mean"])
    assert result.exit_code == 0, result.output
    got = read_module(tmp_path / "pm" / "sim_session-0.lfads.nwb")
    assert "generator_states" not in got["series"] and "controller_states" not in got["series"]
    assert got["provenance"]["inference.push_mean"] == "true"
    assert got["provenance"]["inference.n_samples"] == "1"
    before = read_module(fitted)["table"]
    # the initial-condition posterior is the same model's; g0 is pushed, not averaged
    np.testing.assert_allclose(got["table"]["ic_mean"], before["ic_mean"], rtol=1e-4, atol=1e-5)
    assert not np.allclose(got["table"]["g0"], before["g0"])
    result = invoke(["infer", run, src, "--out", tmp_path / "s", "--samples", 0])
    assert result.exit_code == 2 and "--samples" in result.output


def test_cli_help_lists_the_inference_options():
    for command in ("fit", "infer"):
        text = invoke([command, "--help"]).output
        for option in ("--samples", "--push-mean", "--write-states"):
            assert option in text, (command, option)


def test_nearest_centroid_accuracy():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 10)
    x = rng.normal(size=(40, 3)) * 0.1 + labels[:, None]  # well separated
    assert nearest_centroid_accuracy(x, labels) == (1.0, 0.25)
    noise = rng.normal(size=(40, 3))
    assert nearest_centroid_accuracy(noise, labels)[0] < 0.6
    folds = stratified_folds(labels, 5)
    for k in range(5):  # every fold holds every condition twice
        assert np.array_equal(np.bincount(labels[folds == k], minlength=4), [2, 2, 2, 2])
    with pytest.raises(MetricInputError, match="one condition per row"):
        nearest_centroid_accuracy(x[:5], labels)
    with pytest.raises(MetricInputError, match="at least 2 conditions"):
        nearest_centroid_accuracy(x, np.zeros(40))
    with pytest.raises(MetricInputError, match="n_folds"):
        nearest_centroid_accuracy(x, labels, n_folds=1)
