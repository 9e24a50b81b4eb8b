"""Each metric against an independent scalar computation (loops, math) and known cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nwb_lfads.errors import MetricInputError, NwbLfadsError
from nwb_lfads.metrics import (
    bits_per_spike,
    co_bps,
    condition_average,
    fit_ridge,
    fp_bps,
    lag_align,
    poisson_nll,
    psth_r2,
    r2_per_neuron,
    ridge_decoding_r2,
    velocity_r2,
)


@pytest.fixture
def small():
    rng = np.random.default_rng(0)
    true = rng.uniform(0.05, 1.5, size=(5, 7, 4))
    spikes = rng.poisson(true)
    return true, spikes


def loop_nll(rates, spikes, keep=None):
    total = 0.0
    for idx in np.ndindex(spikes.shape):
        if keep is not None and not keep[idx]:
            continue
        r, k = float(rates[idx]), float(spikes[idx])
        if math.isnan(k):
            continue
        r = 1e-9 if r == 0 else r
        total += r - k * math.log(r) + math.lgamma(k + 1)
    return total


def loop_bps(rates, spikes, keep):
    n_units = spikes.shape[-1]
    means = []
    for n in range(n_units):
        s, c = 0.0, 0
        for idx in np.ndindex(spikes.shape[:-1]):
            if keep[idx + (n,)]:
                s += spikes[idx + (n,)]
                c += 1
        means.append(s / c)
    null = np.empty(spikes.shape)
    for idx in np.ndindex(spikes.shape):
        null[idx] = means[idx[-1]]
    total = sum(float(spikes[i]) for i in np.ndindex(spikes.shape) if keep[i])
    return (loop_nll(null, spikes, keep) - loop_nll(rates, spikes, keep)) / total / math.log(2)


# ----------------------------------------------------------------------------- NLL, bps
def test_poisson_nll_matches_scalar_loop(small):
    true, spikes = small
    assert poisson_nll(true, spikes) == pytest.approx(loop_nll(true, spikes), rel=1e-12)


def test_poisson_nll_mask_equals_nan_spikes(small):
    true, spikes = small
    keep = np.random.default_rng(1).random(spikes.shape) > 0.3
    with_nan = np.where(keep, spikes, np.nan)
    expected = loop_nll(true, spikes, keep)
    assert poisson_nll(true, spikes, mask=keep) == pytest.approx(expected, rel=1e-12)
    assert poisson_nll(true, with_nan) == pytest.approx(expected, rel=1e-12)


def test_poisson_nll_floors_zero_rates_at_nlb_value():
    rates, spikes = np.array([[0.0, 0.5]]), np.array([[2, 1]])
    expected = (1e-9 - 2 * math.log(1e-9) + math.log(2)) + (0.5 - math.log(0.5))
    assert poisson_nll(rates, spikes) == pytest.approx(expected, rel=1e-12)


def test_bits_per_spike_matches_scalar_loop(small):
    true, spikes = small
    keep = np.ones(spikes.shape, bool)
    assert bits_per_spike(true, spikes) == pytest.approx(loop_bps(true, spikes, keep), rel=1e-10)
    keep[:2] = False  # evaluate the last three trials only: the null mean uses them only
    got = bits_per_spike(true, spikes, mask=np.arange(5)[:, None, None] >= 2)
    assert got == pytest.approx(loop_bps(true, spikes, keep), rel=1e-10)


def test_bits_per_spike_is_the_nll_difference_so_log_factorial_cancels(small):
    true, spikes = small
    null = np.broadcast_to(spikes.mean(axis=(0, 1)), spikes.shape)
    expected = (poisson_nll(null, spikes) - poisson_nll(true, spikes)) / spikes.sum() / math.log(2)
    assert bits_per_spike(true, spikes) == pytest.approx(expected, rel=1e-12)


def test_null_model_scores_zero_and_true_rates_score_positive():
    rng = np.random.default_rng(2)
    true = np.exp(rng.normal(-1, 1, size=(20, 30, 6)))
    spikes = rng.poisson(true)
    null = np.broadcast_to(spikes.mean(axis=(0, 1)), spikes.shape)
    assert bits_per_spike(null, spikes) == pytest.approx(0.0, abs=1e-12)
    assert bits_per_spike(true, spikes) > 0.2


def test_observed_counts_as_rates_give_the_maximum_bits_per_spike(small):
    _, spikes = small
    best = bits_per_spike(spikes.astype(float), spikes)
    rng = np.random.default_rng(3)
    for scale in (0.05, 0.3, 1.0):
        other = np.abs(spikes + rng.normal(0, scale, spikes.shape))
        assert bits_per_spike(other, spikes) < best


def test_unit_without_spikes_uses_floored_null_rate():
    spikes = np.array([[[1, 0], [3, 0]], [[0, 0], [2, 0]]])
    rates = np.full(spikes.shape, 1.5)
    keep = np.ones(spikes.shape, bool)
    assert bits_per_spike(rates, spikes) == pytest.approx(loop_bps(rates, spikes, keep), rel=1e-9)


def test_co_bps_and_fp_bps_are_bits_per_spike_on_their_arrays(small):
    true, spikes = small
    assert co_bps(true[..., 2:], spikes[..., 2:]) == bits_per_spike(true[..., 2:], spikes[..., 2:])
    fwd_rates = np.concatenate([true[..., :2], true[..., 2:]], axis=-1)
    fwd_spikes = np.concatenate([spikes[..., :2], spikes[..., 2:]], axis=-1)
    assert fp_bps(fwd_rates, fwd_spikes) == pytest.approx(
        loop_bps(true, spikes, np.ones(spikes.shape, bool)), rel=1e-10
    )


@pytest.mark.parametrize(
    "rates, spikes, mask, match",
    [
        (np.ones((2, 3, 4)), np.ones((2, 3, 5)), None, r"rates_per_bin has shape \(2, 3, 4\) but"),
        (-np.ones((2, 3, 4)), np.ones((2, 3, 4)), None, "negative values"),
        (np.full((2, 3, 4), np.nan), np.ones((2, 3, 4)), None, "NaN or infinite"),
        (np.ones((2, 3, 4)), np.full((2, 3, 4), 0.5), None, "non-negative integer spike counts"),
        (np.ones((2, 3, 4)), -np.ones((2, 3, 4)), None, "non-negative integer spike counts"),
        (np.ones((2, 3, 4)), np.zeros((2, 3, 4)), None, "no spike at all"),
        (np.ones((2, 3, 4)), np.ones((2, 3, 4)), np.ones((3, 1, 1), bool), "does not broadcast"),
        (
            np.ones((2, 3, 4)),
            np.ones((2, 3, 4)),
            np.zeros((2, 3, 4), bool),
            "no entry is evaluated",
        ),
        (np.ones((2, 3, 4)), np.ones((2, 3, 4)), np.ones((2, 3, 4)), "boolean array"),
        (np.ones(4), np.ones(4), None, "at least 2 dimensions"),
    ],
)
def test_bits_per_spike_rejects_bad_input(rates, spikes, mask, match):
    with pytest.raises(MetricInputError, match=match):
        bits_per_spike(rates, spikes, mask=mask)


def test_metric_errors_are_user_errors():
    assert issubclass(MetricInputError, NwbLfadsError)


def test_nan_rates_outside_the_mask_are_ignored(small):
    true, spikes = small
    rates = true.copy()
    rates[0] = np.nan
    keep = np.arange(5)[:, None, None] > 0
    assert bits_per_spike(rates, spikes, mask=keep) == pytest.approx(
        bits_per_spike(true[1:], spikes[1:]), rel=1e-12
    )


# ----------------------------------------------------------------------------- R^2
def loop_r2(pred, true):
    n = true.shape[-1]
    p, t = pred.reshape(-1, n), true.reshape(-1, n)
    out = []
    for j in range(n):
        mean = sum(t[:, j]) / len(t)
        sse = sum((t[i, j] - p[i, j]) ** 2 for i in range(len(t)))
        sst = sum((t[i, j] - mean) ** 2 for i in range(len(t)))
        out.append(1 - sse / sst)
    return np.array(out)


def test_r2_per_neuron_matches_loop_and_known_cases(small):
    true, _ = small
    pred = true + np.random.default_rng(4).normal(0, 0.3, true.shape)
    per, mean = r2_per_neuron(pred, true)
    np.testing.assert_allclose(per, loop_r2(pred, true), rtol=1e-12)
    assert mean == pytest.approx(per.mean())
    assert r2_per_neuron(true, true)[1] == 1.0
    mean_pred = np.broadcast_to(true.mean(axis=(0, 1)), true.shape)
    np.testing.assert_allclose(r2_per_neuron(mean_pred, true)[0], 0.0, atol=1e-12)
    shift = np.array([0.1, 0.2, 0.3, 0.4])
    var = true.reshape(-1, 4).var(axis=0)
    np.testing.assert_allclose(r2_per_neuron(true + shift, true)[0], 1 - shift**2 / var, rtol=1e-12)


def test_r2_per_neuron_constant_unit_is_nan_and_left_out_of_mean(small):
    true, _ = small
    true = true.copy()
    true[..., 0] = 2.0
    per, mean = r2_per_neuron(true * 1.1, true)
    assert np.isnan(per[0]) and np.all(np.isfinite(per[1:]))
    assert mean == pytest.approx(per[1:].mean())


def test_r2_per_neuron_mask_selects_bins(small):
    true, _ = small
    pred = true * 0.9
    per, _ = r2_per_neuron(pred, true, mask=np.arange(7)[None, :, None] < 4)
    np.testing.assert_allclose(per, loop_r2(pred[:, :4], true[:, :4]), rtol=1e-12)
    with pytest.raises(MetricInputError, match=r"pred has shape \(5, 7, 3\) but true"):
        r2_per_neuron(pred[..., :3], true)


def test_condition_average_matches_loop():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(6, 3, 2))
    conds = np.array([2, 1, 2, 1, 1, 2])
    labels, psth = condition_average(x, conds)
    np.testing.assert_array_equal(labels, [1, 2])
    np.testing.assert_allclose(psth[0], (x[1] + x[3] + x[4]) / 3)
    np.testing.assert_allclose(psth[1], (x[0] + x[2] + x[5]) / 3)
    two = np.stack([conds, np.array([0, 0, 1, 0, 0, 1])], axis=1)
    labels2, psth2 = condition_average(x, two)
    assert labels2.tolist() == [[1, 0], [2, 0], [2, 1]]
    np.testing.assert_allclose(psth2[2], (x[2] + x[5]) / 2)
    with pytest.raises(MetricInputError, match="one label per trial"):
        condition_average(x, conds[:4])


def loop_psth_r2(rates, conds, psth, labels):
    preds, trues = [], []
    for c, lab in enumerate(labels):
        trials = [i for i in range(len(conds)) if conds[i] == lab]
        if not trials:
            continue
        for t in range(psth.shape[1]):
            if math.isnan(psth[c, t, 0]):
                continue
            preds.append(
                [sum(rates[i, t, n] for i in trials) / len(trials) for n in range(rates.shape[2])]
            )
            trues.append(list(psth[c, t]))
    return float(np.mean(loop_r2(np.array(preds), np.array(trues))))


def test_psth_r2_matches_loop_with_nan_bins_and_missing_conditions():
    rng = np.random.default_rng(6)
    rates = rng.uniform(0, 2, size=(8, 5, 3))
    conds = np.array([0, 1, 0, 1, 2, 2, 0, 1])
    psth = rng.uniform(0, 2, size=(4, 5, 3))
    psth[1, 3:] = np.nan  # condition 1 shorter
    labels = np.array([0, 1, 2, 3])  # condition 3 has no evaluation trial: skipped
    got = psth_r2(rates, psth, conds, target_conditions=labels)
    assert got == pytest.approx(loop_psth_r2(rates, conds, psth, labels), rel=1e-12)


def test_psth_r2_per_trial_target_and_known_cases():
    rng = np.random.default_rng(7)
    conds = np.repeat([0, 1, 2], 4)
    base = rng.uniform(0.5, 2, size=(3, 6, 4))
    true = base[conds] + rng.normal(0, 0.1, size=(12, 6, 4))
    labels, psth = condition_average(true, conds)
    assert psth_r2(true, true, conds) == pytest.approx(1.0)
    assert psth_r2(true * 1.2, true, conds) == pytest.approx(
        psth_r2(true * 1.2, psth, conds, target_conditions=labels)
    )
    shift = 0.2
    expected = np.mean(1 - 18 * shift**2 / ((psth - psth.mean(axis=(0, 1))) ** 2).sum(axis=(0, 1)))
    assert psth_r2(true + shift, true, conds) == pytest.approx(expected, rel=1e-10)


def test_psth_r2_constant_target_unit_follows_sklearn_convention():
    conds = np.array([0, 1])
    true = np.ones((2, 3, 2))
    true[1, :, 1] = 3.0
    pred = true.copy()
    assert psth_r2(pred, true, conds) == 1.0  # unit 0 constant but exact: counts as 1
    pred[..., 0] += 0.5
    assert psth_r2(pred, true, conds) == 0.5  # constant and missed: counts as 0


def test_psth_r2_rejects_bad_input():
    rates = np.ones((4, 5, 3))
    with pytest.raises(MetricInputError, match="one label per row"):
        psth_r2(rates, np.ones((2, 5, 3)), np.zeros(4), target_conditions=[0, 1, 2])
    with pytest.raises(MetricInputError, match="no condition of the target"):
        psth_r2(rates, np.ones((2, 5, 3)), np.zeros(4), target_conditions=[7, 8])
    bad = rates.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(MetricInputError, match="NaN or infinite"):
        psth_r2(bad, np.ones((1, 5, 3)), np.zeros(4), target_conditions=[0])


# ----------------------------------------------------------------------------- decoding
def test_lag_align_pairs_behaviour_at_t_with_rates_at_t_minus_lag():
    rates = np.arange(5.0)[None, :, None]  # rate value = bin index
    beh = np.arange(5.0)[None, :, None] + 100  # behaviour value = 100 + bin index
    r, b = lag_align(rates, beh, 2)
    assert r[0, :, 0].tolist() == [0, 1, 2] and b[0, :, 0].tolist() == [102, 103, 104]
    r, b = lag_align(rates, beh[..., 0], -1)
    assert r[0, :, 0].tolist() == [1, 2, 3, 4] and b[0, :, 0].tolist() == [100, 101, 102, 103]
    with pytest.raises(MetricInputError, match="leaves no bin"):
        lag_align(rates, beh, 5)
    with pytest.raises(MetricInputError, match="same \\[trials, time\\] leading axes"):
        lag_align(rates, beh[:, :4], 0)


def test_fit_ridge_matches_normal_equations():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(40, 3))
    y = x @ rng.normal(size=(3, 2)) + 1.5 + rng.normal(0, 0.1, (40, 2))
    w, b = fit_ridge(x, y, 0.0)
    xa = np.hstack([x, np.ones((40, 1))])
    sol = np.linalg.lstsq(xa, y, rcond=None)[0]
    np.testing.assert_allclose(w, sol[:3], rtol=1e-10)
    np.testing.assert_allclose(b, sol[3], rtol=1e-10)
    alpha = 7.0  # penalised weights, free intercept: closed form on centred data
    xc, yc = x - x.mean(0), y - y.mean(0)
    w2, b2 = fit_ridge(x, y, alpha)
    np.testing.assert_allclose(w2, np.linalg.inv(xc.T @ xc + alpha * np.eye(3)) @ xc.T @ yc)
    np.testing.assert_allclose(b2, y.mean(0) - x.mean(0) @ w2)
    with pytest.raises(MetricInputError, match="negative"):
        fit_ridge(x, y, -1.0)


def make_decoding_data(lag, seed=9):
    rng = np.random.default_rng(seed)
    rates = rng.uniform(0, 1, size=(12, 20, 5))
    w = rng.normal(size=(5, 2))
    beh = np.full((12, 20, 2), np.nan)
    beh[:, lag:] = rates[:, : 20 - lag] @ w + 0.3  # behaviour at t from rates at t - lag
    return rates, beh, w


def test_ridge_decoding_r2_with_fixed_alpha_matches_direct_computation():
    rates, beh, _ = make_decoding_data(lag=3)
    beh = beh + np.random.default_rng(10).normal(0, 0.2, beh.shape)
    train = np.arange(12) < 8
    got = ridge_decoding_r2(rates, beh, train, lag_bins=3, alpha=0.5)
    x_tr, y_tr = rates[:8, :17].reshape(-1, 5), beh[:8, 3:].reshape(-1, 2)
    x_ev, y_ev = rates[8:, :17].reshape(-1, 5), beh[8:, 3:].reshape(-1, 2)
    w, b = fit_ridge(x_tr, y_tr, 0.5)
    assert got == pytest.approx(float(np.mean(loop_r2(x_ev @ w + b, y_ev))), rel=1e-12)


def test_ridge_decoding_r2_needs_the_right_lag_and_drops_nan_behaviour():
    rates, beh, _ = make_decoding_data(lag=4)
    train = np.arange(8)
    assert ridge_decoding_r2(rates, beh, train, lag_bins=4) == pytest.approx(1.0, abs=1e-3)
    assert ridge_decoding_r2(rates, beh, train, lag_bins=0) < 0.5
    assert velocity_r2(rates, beh, train, bin_size=0.01, lag_s=0.04) == pytest.approx(
        ridge_decoding_r2(rates, beh, train, lag_bins=4)
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(train_trials=np.zeros(12, bool)), "selects no trial"),
        (dict(train_trials=np.ones(12, bool)), "no evaluation trial"),
        (dict(train_trials=np.ones(5, bool)), "expected shape \\(12,\\)"),
        (dict(train_trials=[0, 40]), "outside 0..11"),
        (dict(train_trials=[0], eval_trials=[3]), "at least 2 training trials"),
    ],
)
def test_ridge_decoding_r2_rejects_bad_selections(kwargs, match):
    rates, beh, _ = make_decoding_data(lag=0)
    with pytest.raises(MetricInputError, match=match):
        ridge_decoding_r2(rates, beh, **kwargs)


def test_ridge_decoding_r2_rejects_nan_rates_where_behaviour_exists():
    rates, beh, _ = make_decoding_data(lag=0)
    rates[9, 5, 0] = np.nan
    with pytest.raises(MetricInputError, match="rates are NaN or infinite"):
        ridge_decoding_r2(rates, beh, np.arange(8), alpha=1.0)
    with pytest.raises(MetricInputError, match="bin_size=0"):
        velocity_r2(rates, beh, np.arange(8), bin_size=0)
