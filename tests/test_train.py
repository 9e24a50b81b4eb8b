"""The trainer: learning, determinism, checkpoints and resume, non-finite steps, held-out data."""

import math
import os
import signal

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import make_session

from nwb_lfads.config import RunConfig
from nwb_lfads.data import prepare_data
from nwb_lfads.errors import ConfigError, RunDirError, TrainingDivergedError
from nwb_lfads.train.loop import train
from nwb_lfads.train.schedules import ramp
from nwb_lfads.train.trainer import Trainer

M, T, N = 48, 20, 10
CFG = RunConfig().replace(
    model=dict(ic_enc_dim=8, ci_enc_dim=8, ic_dim=8, gen_dim=16, con_dim=8, co_dim=2, fac_dim=6),
    train=dict(
        batch_size=16,
        steps_per_call=10,
        lr_init=1e-2,
        kl_increase_epochs=2,
        l2_increase_epochs=2,
        n_samples=2,
    ),
    data=dict(valid_fraction=0.25),
)


def _session(seed=0, heldout=False):
    return make_session(
        "s",
        M,
        T,
        N,
        seed=seed,
        conditions=6,
        split=np.where(np.arange(M) < 36, "train", "val"),
        heldout=np.arange(N) >= N - 3 if heldout else None,
    )


@pytest.fixture(scope="module")
def data():
    return prepare_data([_session()], CFG.data)


def _flat(params):
    return np.concatenate([np.ravel(np.asarray(p)) for p in jax.tree_util.tree_leaves(params)])


def test_ramp_schedule():
    s = ramp(1, 2, 10)
    assert [float(s(k)) for k in (0, 10, 20, 30, 40)] == [0.0, 0.0, 0.5, 1.0, 1.0]
    assert [float(ramp(1, 0, 10)(k)) for k in (9, 10)] == [0.0, 1.0]


def test_thirty_steps_lower_validation_loss_and_same_seed_same_params(data):
    a = Trainer(data, CFG)
    before = a.evaluate()["valid_recon"]
    rows = [a.train_epoch() for _ in range(3)]
    assert rows[-1]["step"] == 30 and a.steps_per_call == 10
    assert rows[-1]["valid_recon"] < before
    assert all(r["n_skipped_nonfinite"] == 0 for r in rows)
    assert {
        "train_loss",
        "valid_loss",
        "train_kl_ic",
        "valid_kl_co",
        "lr",
        "kl_weight",
        "valid_recon_s",
    } <= set(rows[0])
    b = Trainer(data, CFG)
    for _ in range(3):
        b.train_epoch()
    np.testing.assert_array_equal(_flat(a.params), _flat(b.params))
    c = Trainer(data, CFG.replace(train={"seed": 1}))
    assert not np.array_equal(_flat(c.params), _flat(Trainer(data, CFG).params))


def test_checkpoint_resume_gives_the_same_next_step(data, tmp_path):
    straight = Trainer(data, CFG)
    straight.train_epoch()
    straight.train_epoch()
    first = Trainer(data, CFG)
    first.train_epoch()
    first.save(tmp_path / "ckpt")
    assert not any(tmp_path.joinpath("ckpt").glob("*.tmp"))
    resumed = Trainer(data, CFG)
    resumed.restore(tmp_path / "ckpt")
    assert resumed.epoch == 1 and int(resumed.state.step) == 10
    resumed.train_epoch()
    np.testing.assert_array_equal(_flat(resumed.params), _flat(straight.params))
    np.testing.assert_array_equal(_flat(resumed.state.opt_state), _flat(straight.state.opt_state))
    np.testing.assert_array_equal(_flat(resumed.averaged_params), _flat(straight.averaged_params))
    np.testing.assert_array_equal(_flat(resumed.best_params), _flat(straight.best_params))
    other = prepare_data([_session()], CFG.data.__class__(valid_fraction=0.25, split_seed=9))
    with pytest.raises(RunDirError, match="another train/validation split"):
        Trainer(other, CFG).restore(tmp_path / "ckpt")


def test_parameter_average_is_what_validation_scores_and_best_keeps(data):
    tr = Trainer(data, CFG.replace(train={"ema_decay": 0.5}))
    average = _flat(tr.params)
    for _ in range(2):
        tr.train_epoch()
        average = 0.5 * average + 0.5 * _flat(tr.params)
        np.testing.assert_allclose(_flat(tr.averaged_params), average, rtol=1e-6, atol=1e-7)
    assert not np.allclose(_flat(tr.averaged_params), _flat(tr.params))
    assert tr.evaluate() == tr.evaluate(tr.averaged_params) != tr.evaluate(tr.params)
    np.testing.assert_array_equal(
        _flat(tr.best_params), _flat(tr.averaged_params)
    )  # still ramping: latest
    plain = Trainer(data, CFG.replace(train={"ema_decay": 0.0}))
    plain.train_epoch()
    np.testing.assert_array_equal(_flat(plain.averaged_params), _flat(plain.params))
    with pytest.raises(ConfigError, match="ema_decay"):
        Trainer(data, CFG.replace(train={"ema_decay": 1.0}))


def test_nan_in_a_batch_is_skipped_without_corrupting_parameters(data):
    tr = Trainer(data, CFG)
    bad = int(np.flatnonzero(data.train)[0])
    tr.device = tr.device._replace(spikes=tr.device.spikes.at[bad, 3, 2].set(jnp.nan))
    rows = [tr.train_epoch() for _ in range(3)]
    skipped = sum(r["n_skipped_nonfinite"] for r in rows)
    assert 0 < skipped < 30
    assert np.all(np.isfinite(_flat(tr.params)))
    assert math.isfinite(rows[-1]["train_loss"])


def test_persistent_nan_restores_then_raises(data):
    tr = Trainer(data, CFG.replace(train={"nan_patience": 1}))
    tr.device = tr.device._replace(spikes=tr.device.spikes * jnp.nan)
    start = _flat(tr.params)
    with pytest.warns(RuntimeWarning, match="halved the learning rate"):
        with pytest.raises(TrainingDivergedError, match="non-finite losses persisted"):
            for _ in range(10):
                tr.train_epoch()
    np.testing.assert_array_equal(_flat(tr.params), start)
    assert tr.lr == pytest.approx(CFG.train.lr_init / 8)


def test_heldout_spikes_of_eval_trials_cannot_influence_training():
    cfg = CFG.replace(data={"eval_trials": "split=val"})
    ds = _session(heldout=True)
    changed = ds.copy(deep=True)
    changed["spikes"][36:, :, N - 3 :] = np.random.default_rng(5).poisson(4.0, (M - 36, T, 3))
    fits = []
    for d in (ds, changed):
        tr = Trainer(prepare_data([d], cfg.data), cfg)
        tr.train_epoch()
        tr.train_epoch()
        fits.append(_flat(tr.params))
    np.testing.assert_array_equal(fits[0], fits[1])


def test_frozen_readin_keeps_its_initial_weights():
    cfg = CFG.replace(model={"readin_dim": 5}, train={"train_readin": False})
    tr = Trainer(prepare_data([_session()], cfg.data), cfg)
    w0 = np.asarray(tr.params["lfads/readin"]["w"])
    tr.train_epoch()
    np.testing.assert_array_equal(np.asarray(tr.params["lfads/readin"]["w"]), w0)
    assert not np.array_equal(np.asarray(tr.params["lfads/readout"]["w"]), 0)


def test_interrupt_saves_checkpoint_and_resume_continues(data, tmp_path):
    cfg = CFG.replace(train={"max_epochs": 3})

    def interrupt(trainer, row):
        if row["epoch"] == 1:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt, match="resume with --resume"):
        train(data, cfg, tmp_path / "run", progress=False, callback=interrupt)
    assert (tmp_path / "run" / "checkpoint" / "state.npz").exists()
    with pytest.raises(RunDirError, match="already holds a trained run"):
        train(data, cfg, tmp_path / "run", progress=False)
    res = train(data, cfg, tmp_path / "run", resume=True, progress=False)
    assert [r["epoch"] for r in res.history] == [2, 3] and res.stop_reason == "max_epochs"
    lines = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert len(lines) == 4  # header + epochs 1, 2, 3
    straight = train(data, cfg, None, progress=False)
    np.testing.assert_array_equal(_flat(straight.trainer.params), _flat(res.trainer.params))
