"""NLB submission files: the documented layout read back with h5py, scored by ``evaluate
--targets`` exactly like ``evaluate`` on the run directory, and the bad inputs."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from helpers import make_results
from nwb_lfads.cli.main import main

from nwb_lfads.config import RunConfig
from nwb_lfads.errors import EvaluationError, TargetsError
from nwb_lfads.evaluate import evaluate
from nwb_lfads.nlb_submission import FORWARD_KEYS, SUBMISSION_KEYS, is_submission

BIN = 0.01
WINDOW = (-0.25, 0.75)
CFG = RunConfig().with_overrides(
    [
        "data.align_to=move_onset_time",
        f"data.window={list(WINDOW)}",
        f"data.bin_size={BIN}",
        "data.heldout_units=heldout",
        "data.eval_trials=split=val",
    ]
)


def _make_run(tmp_path_factory, heldout_fraction=0.25, cfg=CFG):
    """A run directory of one simulated session whose rates are the true rates with noise."""
    from nwb_lfads.io.ground_truth import read_ground_truth
    from nwb_lfads.io.read import read_session
    from nwb_lfads.io.write import write_results
    from nwb_lfads.synthetic import simulate

    [sim] = simulate(
        tmp_path_factory.mktemp("sim"),
        sessions=1,
        seed=3,
        n_conditions=4,
        trials_per_condition=6,
        n_units=24,
        heldout_fraction=heldout_fraction,
        eval_fraction=0.25,
    )
    ds = read_session(
        sim,
        bin_size=BIN,
        align_to="move_onset_time",
        window=WINDOW,
        heldout=cfg.data.heldout_units,
        include_columns=["split"],
    )
    truth = read_ground_truth(sim, ds).values
    rng = np.random.default_rng(0)
    rates = (truth * rng.lognormal(0.0, 0.3, truth.shape)).astype(np.float32)
    results = make_results(ds, rates, np.zeros(rates.shape[:2] + (3,), np.float32))
    rd = tmp_path_factory.mktemp("run")
    write_results(
        sim, results, rd / "sim_session-0.lfads.nwb", provenance={"config": cfg.to_dict()}
    )
    (rd / "config.yaml").write_text(cfg.to_yaml())
    (rd / "sessions.json").write_text(
        json.dumps([{"source": str(sim), "path": str(sim), "session_id": "sim-0"}])
    )
    return rd, ds, truth, rates


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return _make_run(tmp_path_factory)


def _nlb_targets(path, ds, truth, group):
    """nlb_tools' make_eval_target_tensors layout, from the simulated session: NLB's PSTH
    [C, T, N] with eval_cond_idx (variable-length), behaviour, forward spikes."""
    ho = ds.heldout.values
    split = np.asarray(ds.split.values).astype(str)
    ev, tr = split == "val", split == "train"
    spikes = ds.spikes.values.astype(float)
    nlb = np.concatenate([truth[..., ~ho], truth[..., ho]], axis=-1) * BIN
    w = np.random.default_rng(1).standard_normal((nlb.shape[2], 2))
    cond = ds.condition_id.values
    labels = np.unique(cond)
    with h5py.File(path, "w") as f:
        g = f.create_group(group)
        g["eval_spikes_heldout"] = spikes[ev][..., ho]
        g["train_behavior"] = nlb[tr] @ w
        g["eval_behavior"] = nlb[ev] @ w
        g["psth"] = np.stack([nlb[cond == c].mean(0) for c in labels])
        idx = g.create_dataset("eval_cond_idx", (len(labels),), dtype=h5py.vlen_dtype("int32"))
        for i, c in enumerate(labels):
            idx[i] = np.flatnonzero(cond[ev] == c).astype(np.int32)
        g["eval_spikes_heldin_forward"] = np.zeros((int(ev.sum()), 20, int((~ho).sum())))
        g["eval_spikes_heldout_forward"] = np.zeros((int(ev.sum()), 20, int(ho.sum())))
    return path


def test_submission_layout_read_back(run, tmp_path):
    rd, ds, _, rates = run
    out = tmp_path / "submission.h5"
    res = CliRunner().invoke(
        main,
        ["evaluate", str(rd), "--nlb-submission", str(out), "--dataset", "mc_maze_small"],
    )
    assert res.exit_code == 0, res.output
    assert f"wrote NLB submission {out} (dataset mc_maze_small_10)" in res.output
    ho = ds.heldout.values
    split = np.asarray(ds.split.values).astype(str)
    expected = {}
    for name, sel in (("train", split == "train"), ("eval", split == "val")):
        expected[f"{name}_rates_heldin"] = rates[sel][..., ~ho] * BIN
        expected[f"{name}_rates_heldout"] = rates[sel][..., ho] * BIN
    with h5py.File(out, "r") as f:
        assert list(f) == ["mc_maze_small_10"]
        g = f["mc_maze_small_10"]
        assert sorted(g) == sorted(SUBMISSION_KEYS)  # no forward bins in this run
        for key, want in expected.items():
            assert g[key].dtype == np.float32 and g[key].shape == want.shape
            np.testing.assert_allclose(g[key][()], want, rtol=1e-6)
    assert is_submission(out) and not is_submission(rd / "sim_session-0.lfads.nwb")
    # a second dataset joins the file; the first is kept unchanged
    evaluate(rd, nlb_submission=out, dataset="mc_maze_medium_10", write=False)
    with h5py.File(out, "r") as f:
        assert sorted(f) == ["mc_maze_medium_10", "mc_maze_small_10"]
        np.testing.assert_array_equal(
            f["mc_maze_medium_10/eval_rates_heldout"][()],
            f["mc_maze_small_10/eval_rates_heldout"][()],
        )


def test_submission_scored_like_the_run(run, tmp_path):
    rd, ds, truth, _ = run
    targets = _nlb_targets(tmp_path / "targets.h5", ds, truth, "mc_maze_small_10")
    sub = tmp_path / "sub.h5"
    direct = evaluate(
        rd, targets=targets, nlb_submission=sub, dataset="mc_maze_small", write=False
    )["sessions"][0]
    res = CliRunner().invoke(main, ["evaluate", str(sub), "--targets", str(targets)])
    assert res.exit_code == 0, res.output
    assert "targets: co-bps" in res.output and "fit with --forward" in res.output
    scored = json.loads((tmp_path / "sub.evaluation.json").read_text())["sessions"][0]
    assert scored["session"] == "mc_maze_small_10" and scored["n_eval_trials"] == 6
    m, d = scored["metrics"], direct["metrics"]
    assert m["targets_co_bps"] == pytest.approx(d["co_bps"], abs=1e-6)
    for key in ("targets_co_bps", "targets_vel_r2", "targets_psth_r2"):
        assert m[key] == pytest.approx(d[key], abs=1e-6), key
    assert 0.5 < m["targets_psth_r2"] < 1.0 and m["targets_vel_r2"] > 0.5
    assert "targets_fp_bps" in scored["skipped"] and "targets_fp_bps" in direct["skipped"]


def test_bad_inputs_exit_2(run, tmp_path, tmp_path_factory):
    rd, ds, truth, _ = run
    runner = CliRunner()
    out = tmp_path / "s.h5"
    cfg = CFG.with_overrides(["data.heldout_units=null"])
    no_ho = _make_run(tmp_path_factory, heldout_fraction=0.0, cfg=cfg)[0]
    targets = _nlb_targets(tmp_path / "t.h5", ds, truth, "mc_rtt_10")
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5")
    for args, message in (
        (["--nlb-submission", str(out), "--dataset", "mc_mazes"], "not a Neural Latents"),
        (["--nlb-submission", str(out)], "name the NLB dataset with --dataset"),
        (["--nlb-submission", str(text), "--dataset", "mc_maze"], "is not an HDF5 submission"),
    ):
        res = runner.invoke(main, ["evaluate", str(rd), *args])
        assert res.exit_code == 2 and message in res.output, res.output
        assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1
    res = runner.invoke(
        main, ["evaluate", str(no_ho), "--nlb-submission", str(out), "--dataset", "mc_maze"]
    )
    assert res.exit_code == 2 and "an NLB submission needs held-out units" in res.output
    assert not out.exists()
    with pytest.raises(EvaluationError, match="pass --targets FILE"):
        sub = tmp_path / "ok.h5"
        evaluate(rd, nlb_submission=sub, dataset="mc_maze_small", write=False)
        evaluate(sub)
    with pytest.raises(TargetsError, match="holds none of the submission's datasets"):
        evaluate(tmp_path / "ok.h5", targets=targets)
    assert FORWARD_KEYS == ("eval_rates_heldin_forward", "eval_rates_heldout_forward")


def test_decode_masks_one_decoder_each(run, tmp_path):
    """area2_bump's targets carry train/eval_decode_mask: one decoder per mask, R^2 averaged."""
    from nwb_lfads.metrics import ridge_decoding_r2

    rd, ds, truth, _ = run
    targets = _nlb_targets(tmp_path / "t.h5", ds, truth, "area2_bump_10")
    split = np.asarray(ds.split.values).astype(str)
    ev, tr = split == "val", split == "train"
    cond = ds.condition_id.values
    with h5py.File(targets, "a") as f:
        g = f["area2_bump_10"]
        g["train_decode_mask"] = np.stack([cond[tr] % 2 == 0, cond[tr] % 2 == 1], axis=1)
        g["eval_decode_mask"] = np.stack([cond[ev] % 2 == 0, cond[ev] % 2 == 1], axis=1)
        b_tr, b_ev = g["train_behavior"][()], g["eval_behavior"][()]
    sub = tmp_path / "s.h5"
    evaluate(rd, nlb_submission=sub, dataset="area2_bump", write=False)
    got = evaluate(sub, targets=targets, write=False)["sessions"][0]["metrics"]
    with h5py.File(sub, "r") as f:
        g = f["area2_bump_10"]
        r_tr = np.concatenate([g["train_rates_heldin"][()], g["train_rates_heldout"][()]], -1)
        r_ev = np.concatenate([g["eval_rates_heldin"][()], g["eval_rates_heldout"][()]], -1)
    want = []
    for parity in (0, 1):
        a, b = cond[tr] % 2 == parity, cond[ev] % 2 == parity
        x = np.concatenate([r_tr[a], r_ev[b]]).astype(float)
        y = np.concatenate([b_tr[a], b_ev[b]])
        n = int(a.sum())
        want.append(ridge_decoding_r2(x, y, np.arange(n), np.arange(n, len(x))))
    assert got["targets_vel_r2"] == pytest.approx(np.mean(want), abs=1e-9)
