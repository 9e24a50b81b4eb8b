"""The memory estimate printed with the plan, and training with the data streamed from the host."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import make_session

from nwb_lfads.config import RunConfig
from nwb_lfads.data import prepare_data
from nwb_lfads.train import memory
from nwb_lfads.train.loop import plan
from nwb_lfads.train.trainer import Trainer, device_data

TINY = [
    "model.gen_dim=8",
    "model.ic_enc_dim=4",
    "model.ci_enc_dim=4",
    "model.con_dim=4",
    "model.fac_dim=3",
    "model.ic_dim=4",
    "model.co_dim=1",
    "train.batch_size=8",
    "train.devices=1",
    "train.seed=3",
]


@pytest.fixture(scope="module")
def data():
    ds = make_session("s", n_trials=40, n_bins=12, n_units=6, seed=1)
    return prepare_data([ds], RunConfig().with_overrides(TINY).data)


def trainer(data, *sets):
    return Trainer(data, RunConfig().with_overrides(TINY + list(sets)))


@pytest.fixture(scope="module")
def full(data):
    """A trainer with the data set on the device (the machine has room for it)."""
    return trainer(data)


def test_the_estimate_counts_the_data_the_state_and_the_compiled_step(data, full):
    m = full.memory
    assert not full.streaming and not m.streamed and m.step_source == "XLA"
    spikes = data.spikes.size * 4  # float32 on the device
    assert spikes <= m.data <= 3 * spikes  # plus the per-trial masks
    assert m.state == memory.STATE_COPIES * memory.tree_bytes(full.state)
    assert m.step > 0 and m.device == m.data + m.state + m.step
    assert m.host >= m.host_now + m.device and m.free > 0
    text = plan(full)
    assert text.count("\n") == 1 and "memory: data" in text and "(XLA)" in text
    assert f"{int(data.train.sum())} training" in text


def test_a_data_set_that_does_not_fit_is_streamed_and_learns_alike(data, full, monkeypatch):
    need = full.memory.data + full.memory.state + full.memory.step
    # free memory for the state, the step and two batches of trials, not the whole set
    row = memory.tree_bytes(memory.take(device_data(data, full.cfg, None), np.zeros(1, np.int64)))
    free = (full.memory.state + full.memory.step + 2.5 * 8 * row) / memory.FIT_FRACTION
    assert free < need / memory.FIT_FRACTION
    monkeypatch.setattr(memory, "host_available", lambda: int(free))
    monkeypatch.setattr(memory, "device_free", lambda device: None)
    tr = trainer(data)
    assert tr.streaming and tr.memory.streamed and "host, streamed" in tr.memory.line()
    assert tr.steps_per_call == 2 and tr.calls_per_epoch == -(-tr.steps_per_epoch // 2)
    assert tr.memory.data < full.memory.data
    a = [full.train_epoch() for _ in range(3)]
    b = [tr.train_epoch() for _ in range(3)]
    assert b[-1]["step"] == a[-1]["step"] == 3 * tr.steps_per_epoch
    assert all(np.isfinite(r["train_loss"]) and np.isfinite(r["valid_loss"]) for r in b)
    first, last = b[0]["valid_recon"], b[-1]["valid_recon"]  # other draws, the same course
    assert last < first and abs(last - a[-1]["valid_recon"]) < 0.1 * abs(a[-1]["valid_recon"])
    assert np.isfinite(tr.gradient()[0]["loss"])
