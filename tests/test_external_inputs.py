"""External inputs (``--external-input``): the three kinds put on the bin grid against an
independent loop in numpy, the bad-input exits, the model's parameters with and without
inputs, the hand-written backward pass with inputs, and a tiny fit + infer round trip on the
simulated chaotic RNN with input pulses."""

from __future__ import annotations

import datetime

import jax
import jax.numpy as jnp
import numpy as np
import pynwb
import pytest
from click.testing import CliRunner
from nwb_lfads.cli.main import main

import nwb_lfads
from nwb_lfads.config import ModelConfig, RunConfig
from nwb_lfads.errors import ConfigError, ExternalInputError
from nwb_lfads.io.simulated import write_nwbfile
from nwb_lfads.model.control_loop import _forward, control_loop
from nwb_lfads.model.lfads import Batch, make_lfads
from nwb_lfads.synthetic import simulate

BIN = 0.01
STARTS = np.array([1.0, 4.0, 7.0, 10.0, 13.0, 16.0])
WINDOW = (0.0, 1.5)


def invoke(args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def session_file(tmp_path_factory):
    """A file with spikes over 0-20 s, six 2-s trials (``cue_time`` events, one NaN and one
    outside the window; numeric ``contrast``), a 2-column irregularly sampled
    ``stimulus/drive`` with a sampling gap, ``acquisition/short`` covering only 0-5 s, and two
    TimeSeries named ``dup``."""
    from hdmf.common import VectorData
    from pynwb import NWBFile, ProcessingModule, TimeSeries
    from pynwb.epoch import TimeIntervals

    rng = np.random.default_rng(0)
    nwb = NWBFile(
        session_description="external inputs test",
        identifier="ext-test",
        session_start_time=datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC),
        session_id="ext",
    )
    for _ in range(4):
        nwb.add_unit(spike_times=np.sort(rng.uniform(0, 20, 300)))
    cue = STARTS + rng.uniform(0.1, 1.4, STARTS.size)
    cue[2], cue[4] = np.nan, STARTS[4] + 1.8  # no event; an event after the window
    nwb.trials = TimeIntervals(
        name="trials",
        description="trials",
        columns=[
            VectorData(name="start_time", description="s", data=STARTS),
            VectorData(name="stop_time", description="s", data=STARTS + 2.0),
            VectorData(name="cue_time", description="s", data=cue),
            VectorData(name="contrast", description="a.u.", data=np.arange(6) * 0.25),
        ],
        id=np.arange(6) + 10,
    )
    t = np.sort(rng.uniform(0.5, 19.5, 4000))
    t = t[(t < 7.2) | (t > 7.35)]  # a gap: bins of trial 12 with no sample are interpolated
    nwb.add_stimulus(
        TimeSeries(name="drive", data=rng.normal(size=(t.size, 2)), timestamps=t, unit="V")
    )
    nwb.add_acquisition(
        TimeSeries(name="short", data=np.ones(50), timestamps=np.linspace(0, 5, 50), unit="V")
    )
    nwb.add_acquisition(
        TimeSeries(name="dup", data=np.ones(3), timestamps=[0.0, 10.0, 20.0], unit="V")
    )
    mod = ProcessingModule(name="behavior", description="b")
    nwb.add_processing_module(mod)
    mod.add(TimeSeries(name="dup", data=np.zeros(3), timestamps=[0.0, 10.0, 20.0], unit="V"))
    path = tmp_path_factory.mktemp("ext") / "ext.nwb"
    write_nwbfile(nwb, path)
    return path, t, cue


def expected_series(times, values, starts, n_bins):
    """Loop reference: mean of the samples in [edge_k, edge_k+1), else interpolated at the centre."""
    out = np.zeros((starts.size, n_bins, values.shape[1]))
    for w, s in enumerate(starts):
        for k in range(n_bins):
            lo, hi = s + k * BIN, s + (k + 1) * BIN
            inside = (times >= lo) & (times < hi)
            for c in range(values.shape[1]):
                if inside.any():
                    out[w, k, c] = values[inside, c].mean()
                else:
                    out[w, k, c] = np.interp(lo + BIN / 2, times, values[:, c])
    return out


def test_three_kinds_match_numpy(session_file):
    path, t, cue = session_file
    ds = nwb_lfads.read_session(
        path,
        bin_size=BIN,
        align_to="start_time",
        window=WINDOW,
        external_inputs=["drive", "cue_time", "contrast"],
    )
    ext = ds["external_inputs"]
    assert ext.dims == ("trial", "time", "input") and ext.dtype == np.float32
    assert list(ext.coords["input"].values) == ["drive[0]", "drive[1]", "cue_time", "contrast"]
    assert ext.attrs["units"] == ["V", "V", "pulse", "a.u."]
    assert ext.attrs["sources"][0] == "stimulus/drive"
    n_bins = ds.sizes["time"]
    with pynwb.NWBHDF5IO(str(path), "r") as io:
        values = io.read().stimulus["drive"].data[:]
    want = expected_series(t, values, STARTS, n_bins)
    np.testing.assert_allclose(ext.values[:, :, :2], want, rtol=1e-5, atol=1e-6)
    pulses = np.zeros((STARTS.size, n_bins))
    for w, (s, c) in enumerate(zip(STARTS, cue)):
        if np.isfinite(c) and s <= c < s + WINDOW[1]:
            pulses[w, int((c - s) // BIN)] = 1.0
    np.testing.assert_array_equal(ext.values[:, :, 2], pulses)
    assert pulses.sum() == 4  # a NaN event and one past the window give no pulse
    np.testing.assert_array_equal(
        ext.values[:, :, 3], np.repeat(np.arange(6)[:, None] * 0.25, n_bins, 1)
    )


def test_continuous_mode_pulses_every_event(session_file):
    path, _, cue = session_file
    ds = nwb_lfads.read_session(
        path, bin_size=BIN, window_length=1.0, overlap=0.2, external_inputs=["cue_time"]
    )
    starts = ds["align_time"].values
    want = np.zeros((starts.size, ds.sizes["time"]))
    for w, s in enumerate(starts):
        for c in cue[np.isfinite(cue)]:
            if s <= c < s + 1.0:
                want[w, int(np.floor((c - s) / BIN))] = 1.0
    np.testing.assert_array_equal(ds["external_inputs"].values[:, :, 0], want)


def test_path_resolves_an_ambiguous_name(session_file):
    path, _, _ = session_file
    with pytest.raises(
        ExternalInputError, match=r"ambiguous.*acquisition/dup.*processing/behavior/dup"
    ):
        nwb_lfads.read_session(path, align_to="start_time", window=WINDOW, external_inputs=["dup"])
    ds = nwb_lfads.read_session(
        path, align_to="start_time", window=WINDOW, external_inputs=["processing/behavior/dup"]
    )
    assert ds["external_inputs"].attrs["sources"] == ["processing/behavior/dup"]


def test_unknown_name_exits_2_listing_candidates(session_file, tmp_path):
    path, _, _ = session_file
    args = ["fit", path, "--out", tmp_path / "run", "--align-to", "start_time", "--window", 0, 1.5]
    result = invoke(args + ["--external-input", "nope"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "'nope' matches nothing" in lines[0]
    for candidate in ("stimulus/drive", "acquisition/short", "cue_time", "contrast"):
        assert candidate in lines[0]
    assert not (tmp_path / "run" / "config.yaml").exists()


def test_series_not_covering_a_trial_exits_2(session_file, tmp_path):
    path, _, _ = session_file
    args = ["fit", path, "--out", tmp_path / "run", "--align-to", "start_time", "--window", 0, 1.5]
    result = invoke(args + ["--external-input", "short"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert "acquisition/short (samples [0, 5] s) does not cover trial 11" in lines[0]
    assert "--window" in lines[0]


def test_config_round_trip_and_checks():
    cfg = RunConfig().with_overrides(['data.external_inputs=["pulse_time", "stimulus/x"]'])
    assert cfg.data.external_inputs == ("pulse_time", "stimulus/x")
    assert RunConfig.from_yaml(cfg.to_yaml()) == cfg
    with pytest.raises(ConfigError, match="data.external_inputs.*twice"):
        RunConfig().with_overrides(["data.external_inputs=[a, a]"])


# ------------------------------------------------------------------------- model
SMALL_MODEL = ModelConfig(
    ic_enc_dim=8, ci_enc_dim=8, ic_dim=8, gen_dim=16, con_dim=8, co_dim=2, fac_dim=4
)


def _batch(x: int, B=3, T=12, N=5):
    rng = np.random.default_rng(0)
    ones = jnp.ones((B, N))
    spikes = jnp.asarray(rng.poisson(1.0, (B, T, N)), jnp.float32)
    ext = None if x == 0 else jnp.asarray(rng.normal(size=(B, T, x)), jnp.float32)
    return Batch(spikes, jnp.zeros(B, jnp.int32), ones, ones, None, ext)


@pytest.mark.parametrize(
    "cfg",
    [
        SMALL_MODEL,
        SMALL_MODEL.__class__(
            ic_enc_dim=8, ic_dim=8, gen_dim=16, ci_enc_dim=0, con_dim=0, co_dim=0, fac_dim=4
        ),
    ],
)
def test_parameters_without_inputs_unchanged_and_inputs_widen_only_input_weights(cfg):
    model = make_lfads(cfg, np.ones((1, 5), bool))
    shapes = {
        x: jax.tree_util.tree_map(lambda a: a.shape, model.init(jax.random.key(0), _batch(x), True))
        for x in (0, 3)
    }
    U, G, K, I2, F = cfg.co_dim, cfg.gen_dim, cfg.con_dim, 2 * cfg.ci_enc_dim, cfg.fac_dim
    assert shapes[0]["lfads/generator/gru"]["w_i"] == (U, 3 * G)  # the model before inputs
    assert shapes[3]["lfads/generator/gru"]["w_i"] == (U + 3, 3 * G)
    if U:
        assert shapes[0]["lfads/controller/gru"]["w_i"] == (I2 + F, 3 * K)
        assert shapes[3]["lfads/controller/gru"]["w_i"] == (I2 + 3 + F, 3 * K)
    changed = {
        (m, k) for m in shapes[0] for k in shapes[0][m] if shapes[0][m][k] != shapes[3][m][k]
    }
    assert changed == {("lfads/generator/gru", "w_i")} | (
        {("lfads/controller/gru", "w_i")} if U else set()
    )
    # inputs change the rates, and a zero input with zero input weights changes nothing
    params = model.init(jax.random.key(0), _batch(3), True)
    a = model.apply(params, jax.random.key(1), _batch(3), False, False).log_rates
    zeroed = _batch(3)._replace(ext_inputs=jnp.zeros((3, 12, 3)))
    b = model.apply(params, jax.random.key(1), zeroed, False, False).log_rates
    assert float(jnp.max(jnp.abs(a - b))) > 1e-4
    base = model.init(jax.random.key(0), _batch(0), True)
    no_ext = model.apply(base, jax.random.key(1), _batch(0), False, False).log_rates
    padded = jax.tree_util.tree_map(lambda p: p, base)
    gw = base["lfads/generator/gru"]["w_i"]
    padded["lfads/generator/gru"] = {
        **base["lfads/generator/gru"],
        "w_i": jnp.concatenate([gw[:U], jnp.zeros((3, 3 * G)), gw[U:]]),
    }
    if U:
        cw = base["lfads/controller/gru"]["w_i"]
        padded["lfads/controller/gru"] = {
            **base["lfads/controller/gru"],
            "w_i": jnp.concatenate([cw[:I2], jnp.zeros((3, 3 * K)), cw[I2:]]),
        }
    with_ext = model.apply(padded, jax.random.key(1), _batch(3), False, False).log_rates
    np.testing.assert_allclose(with_ext, no_ext, atol=1e-5)


def test_control_loop_backward_with_inputs_matches_autodiff():
    B, T, K, G, U, I2, X = 3, 9, 4, 6, 2, 5, 3
    ks = jax.random.split(jax.random.key(2), 12)
    params = (
        jax.random.normal(ks[0], (I2 + G + K, 4 * K)) * 0.3,
        jnp.zeros(4 * K),
        jax.random.normal(ks[1], (K, 2 * U)) * 0.3,
        jnp.zeros(2 * U),
        jax.random.normal(ks[2], (U + X + G, 4 * G)) * 0.3,
        jnp.zeros(4 * G),
    )
    g0 = jax.random.normal(ks[3], (B, G))
    ci = jax.random.normal(ks[4], (T, B, I2))
    eps = jax.random.normal(ks[5], (T, B, U))
    keep = jnp.ones((T, B, G))
    ext = jax.random.normal(ks[6], (T, B, X))
    shapes = [(T, B, G), (T, B, U), (T, B, U), (T, B, U)]
    cots = [jax.random.normal(k, s) for k, s in zip(ks[7:], shapes)]

    def custom(p, g, c):
        outs = control_loop(p, g, c, eps, keep, 0.9, 1e-2, ext)
        return sum(jnp.sum(o * w) for o, w in zip(outs, cots))

    def reference(p, g, c):
        _, _, gm, mean, var, u = _forward(p, g, c, eps, keep, 0.9, 1e-2, ext)
        return sum(jnp.sum(o * w) for o, w in zip((gm, mean, var, u), cots))

    got = jax.grad(custom, argnums=(0, 1, 2))(params, g0, ci)
    want = jax.grad(reference, argnums=(0, 1, 2))(params, g0, ci)
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------- end to end
SMALL = [
    *("--set", "model.gen_dim=16", "--set", "model.ic_enc_dim=8", "--set", "model.ic_dim=8"),
    *("--set", "model.ci_enc_dim=8", "--set", "model.con_dim=8", "--set", "model.co_dim=1"),
    *("--set", "model.fac_dim=4", "--set", "train.batch_size=8", "--set", "train.n_samples=2"),
    *("--quiet", "--no-plots", "--seed", "0", "--max-epochs", "2"),
]


def test_fit_and_infer_round_trip_with_an_input(tmp_path):
    (src,) = simulate(
        tmp_path / "sim", kind="chaotic-inputs", n_conditions=4, trials_per_condition=6
    )
    with pynwb.NWBHDF5IO(str(src), "r") as io:
        nwb = io.read()
        pulse_time = nwb.trials["pulse_time"][:]
        starts = nwb.trials["start_time"][:]
        assert nwb.stimulus["pulse"].data.shape == (24 * 100,)
    assert np.all((pulse_time - starts > 0.25) & (pulse_time - starts < 0.75))
    run = tmp_path / "run"
    result = invoke(
        [
            "fit",
            src,
            "--out",
            run,
            "--align-to",
            "start_time",
            "--external-input",
            "pulse_time",
            *SMALL,
        ]
    )
    assert result.exit_code == 0, result.output
    assert RunConfig.from_yaml(run / "config.yaml").data.external_inputs == ("pulse_time",)

    def provenance(path):
        with pynwb.NWBHDF5IO(str(path), "r") as io:
            mod = io.read().processing["lfads"]
            return dict(mod["provenance"].to_dataframe()[["key", "value"]].values), mod[
                "inferred_inputs"
            ].data.shape

    prov, shape = provenance(run / "sim_session-0.lfads.nwb")
    assert prov["external_inputs"] == '["pulse_time"]' and shape == (24 * 100, 1)
    assert "unit pulse" in prov["external_input_sources"]
    out = tmp_path / "inferred"
    result = invoke(["infer", run, src, "--out", out, "--samples", 2])
    assert result.exit_code == 0, result.output
    prov, _ = provenance(out / "sim_session-0.lfads.nwb")
    assert prov["external_inputs"] == '["pulse_time"]'
    result = invoke(["infer", run, src, "--out", tmp_path / "bad", "--external-input", "pulse"])
    assert result.exit_code == 2 and "trained with external inputs ['pulse_time']" in result.output


def test_sessions_must_share_their_inputs():
    from helpers import make_session

    from nwb_lfads.config import DataConfig
    from nwb_lfads.data import prepare_data
    from nwb_lfads.errors import SessionMismatchError

    def with_inputs(ds, labels):
        values = np.ones((ds.sizes["trial"], ds.sizes["time"], len(labels)), np.float32)
        return ds.assign(external_inputs=(("trial", "time", "input"), values)).assign_coords(
            input=labels
        )

    a = with_inputs(make_session("a", n_trials=12), ["pulse_time"])
    b = with_inputs(make_session("b", n_trials=10, seed=1), ["pulse_time"])
    data = prepare_data([a, b], DataConfig())
    assert data.ext_inputs.shape == (22, 20, 1)
    with pytest.raises(SessionMismatchError, match=r"b.nwb: external inputs \['cue'\] differ"):
        prepare_data([a, with_inputs(make_session("b", seed=1), ["cue"])], DataConfig())
    with pytest.raises(SessionMismatchError, match=r"external inputs \[\] differ"):
        prepare_data([a, make_session("b", seed=1)], DataConfig())
