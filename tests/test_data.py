"""prepare_data / inference_data: stacking, padding, masks, the split, and input errors."""

import numpy as np
import pytest
from helpers import make_session

from nwb_lfads.config import DataConfig
from nwb_lfads.data import inference_data, prepare_data, split_trials
from nwb_lfads.errors import ConfigError, NwbContentError, SelectionError, SessionMismatchError


def session(sid="a", M=40, T=15, N=6, **kw):
    """Poisson counts of rate 1 per bin; trial ids from 100, unit ids from 7, 4 conditions."""
    return make_session(
        sid, M, T, N, rate=1.0, conditions=4, first_trial=100, first_unit=7, align_spacing=1.5, **kw
    )


def test_stacks_sessions_pads_units_and_builds_masks():
    data = prepare_data(
        [session("a", M=40, N=6), session("b", M=20, N=9, seed=1)], DataConfig(valid_fraction=0.25)
    )
    assert data.spikes.shape == (60, 15, 9) and data.spikes.dtype == np.float32
    np.testing.assert_array_equal(data.session, [0] * 40 + [1] * 20)
    np.testing.assert_array_equal(data.unit_mask, [[True] * 6 + [False] * 3, [True] * 9])
    np.testing.assert_array_equal(data.input_mask, data.unit_mask)
    assert np.all(data.spikes[:40, :, 6:] == 0)
    assert not np.any(data.train & data.valid) and np.all(data.train | data.valid)
    assert data.valid[:40].sum() == 10 and data.valid[40:].sum() == 5
    assert [s.session_id for s in data.sessions] == ["a", "b"] and data.sessions[1].n_units == 9
    assert data.sessions[0].trial_ids[0] == 100 and data.sessions[0].unit_ids[0] == 7
    np.testing.assert_allclose(
        data.unit_means[1], data.spikes[40:][data.train[40:]].mean(axis=(0, 1)), rtol=1e-5
    )
    assert np.all(data.unit_means[0, 6:] == 0)


def test_split_is_seeded_and_stratified_by_condition():
    cfg = DataConfig(valid_fraction=0.25, split_seed=3)
    a, b = prepare_data([session()], cfg), prepare_data([session()], cfg)
    np.testing.assert_array_equal(a.valid, b.valid)
    c = prepare_data([session()], DataConfig(valid_fraction=0.25, split_seed=4))
    assert not np.array_equal(a.valid, c.valid)
    conditions = np.arange(40) % 4
    assert set(np.bincount(conditions[a.valid], minlength=4)) <= {
        2,
        3,
    }  # 10 of 40, spread over conditions
    mask = split_trials(5, None, 0.9, np.ones(5, bool), np.random.default_rng(0))
    assert mask.sum() == 4  # at least one trial stays for training


def test_heldout_units_and_eval_trials():
    held = [False, False, False, False, True, True]
    split = np.where(np.arange(40) < 30, "train", "val")
    data = prepare_data(
        [session(heldout=held, split=split)],
        DataConfig(eval_trials="split=val", valid_fraction=0.2),
    )
    np.testing.assert_array_equal(data.input_mask[0], ~np.asarray(held))
    assert data.eval[30:].all() and not data.eval[:30].any()
    assert not data.valid[30:].any()  # eval trials never validate
    assert data.train[30:].all()
    np.testing.assert_array_equal(data.loss_mask[35], [True] * 4 + [False] * 2)
    np.testing.assert_array_equal(data.loss_mask[5], [True] * 6)
    assert data.sessions[0].heldout == tuple(held)
    # the unobserved spikes do not enter unit_means
    ds = session(heldout=held, split=split)
    ds["spikes"][30:, :, 4:] = 1000
    np.testing.assert_array_equal(
        prepare_data([ds], DataConfig(eval_trials="split=val")).unit_means,
        prepare_data(
            [session(heldout=held, split=split)], DataConfig(eval_trials="split=val")
        ).unit_means,
    )


@pytest.mark.parametrize(
    "make, cfg, error, match",
    [
        (lambda: [], DataConfig(), SelectionError, "no sessions"),
        (
            lambda: [session(), session("b", T=16)],
            DataConfig(),
            SessionMismatchError,
            "16 bins per trial",
        ),
        (lambda: [session(), session()], DataConfig(), SessionMismatchError, "duplicate sessions"),
        (lambda: [session(M=0)], DataConfig(), SelectionError, "zero usable trials"),
        (
            lambda: [session().rename({"spikes": "counts"})],
            DataConfig(),
            NwbContentError,
            "no 'spikes'",
        ),
        (
            lambda: [session()],
            DataConfig(heldout_units="nlb_heldout"),
            SelectionError,
            "not a unit coordinate",
        ),
        (
            lambda: [session(heldout=[True] * 6)],
            DataConfig(),
            SelectionError,
            "every unit is held out",
        ),
        (
            lambda: [session(heldout=[False] * 5 + [True])],
            DataConfig(eval_trials="phase=val"),
            SelectionError,
            "not a trial coordinate",
        ),
        (
            lambda: [session()],
            DataConfig(eval_trials="condition_id=1"),
            SelectionError,
            "need held-out units",
        ),
    ],
)
def test_bad_inputs_raise_clear_errors(make, cfg, error, match):
    with pytest.raises(error, match=match):
        prepare_data(make(), cfg)


@pytest.mark.parametrize(
    "fields, match",
    [
        (dict(eval_trials="split"), "COLUMN=VALUE"),
        (dict(eval_trials="=val"), "COLUMN=VALUE"),
        (dict(valid_fraction=1.0), "valid_fraction"),
        (dict(window=(0.5, 0.1)), "START < STOP"),
        (dict(bin_size=0.0), "bin_size"),
    ],
)
def test_bad_data_config_is_refused_before_any_data_is_read(fields, match):
    with pytest.raises(ConfigError, match=match):
        DataConfig(**fields)


def test_negative_counts_are_rejected():
    ds = session()
    ds["spikes"][0, 0, 0] = -1
    with pytest.raises(NwbContentError, match="non-negative"):
        prepare_data([ds], DataConfig())


def test_inference_data_matches_sessions_by_id_and_checks_units():
    train = prepare_data([session("a"), session("b", N=9, seed=1)], DataConfig())
    data, order = inference_data([session("b", M=5, N=9, seed=2)], list(train.sessions), 9)
    assert order == [1] and data.spikes.shape == (5, 15, 9) and np.all(data.session == 1)
    assert data.unit_mask.shape == (2, 9)
    with pytest.raises(SessionMismatchError, match="not one the model was trained on"):
        inference_data([session("c")], list(train.sessions), 9)
    with pytest.raises(SessionMismatchError, match="units"):
        inference_data([session("a", N=5)], list(train.sessions), 9)
