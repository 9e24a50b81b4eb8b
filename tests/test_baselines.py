"""Smoothing and the NLB smoothing + Poisson GLM baseline, against direct computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nwb_lfads.baselines import (
    fit_poisson_glm,
    gaussian_kernel,
    predict_poisson_glm,
    smooth_spikes,
    smoothing_baseline,
    smoothing_rates,
    to_hz,
)
from nwb_lfads.errors import MetricInputError
from nwb_lfads.metrics import co_bps


def test_gaussian_kernel_is_normalised_symmetric_and_truncated_at_3_sd():
    k = gaussian_kernel(0.01, 0.05)  # sd = 5 bins -> 15 bins each side
    assert len(k) == 31 and k.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(k, k[::-1])
    assert k[16] / k[15] == pytest.approx(math.exp(-0.5 / 25))
    assert gaussian_kernel(0.01, 0.0).tolist() == [1.0]
    assert len(gaussian_kernel(0.005, 0.012)) == 2 * math.ceil(3 * 2.4) + 1
    assert len(gaussian_kernel(0.01, 0.05, truncate=2.0)) == 21
    whole = gaussian_kernel(0.01, 0.05, truncate=None, n_bins=40)  # spans a 40-bin trial
    assert len(whole) == 79 and whole.sum() == pytest.approx(1.0)


def loop_smooth(spikes, k, edge, leave_bin_out=False):
    """Scalar loops: renormalize divides by the output bin's in-trial kernel mass, conserve
    spreads each input bin by its own in-trial kernel mass."""
    n_b, n_t, n_n = spikes.shape
    h = len(k) // 2
    k = np.array(k, dtype=float)
    if leave_bin_out:
        k[h] = 0.0

    def in_trial_mass(t):
        return sum(k[j] for j in range(len(k)) if 0 <= t + j - h < n_t)

    out = np.zeros((n_b, n_t, n_n))
    for b in range(n_b):
        for n in range(n_n):
            for t in range(n_t):
                acc = 0.0
                for j in range(len(k)):
                    s = t + j - h
                    if 0 <= s < n_t:
                        w = k[j] / in_trial_mass(s) if edge == "conserve" else k[j]
                        acc += w * spikes[b, s, n]
                out[b, t, n] = acc / in_trial_mass(t) if edge == "renormalize" else acc
    return out


@pytest.mark.parametrize("leave_bin_out", [False, True])
@pytest.mark.parametrize("edge", ["zero", "renormalize", "conserve"])
def test_smooth_spikes_matches_loop(edge, leave_bin_out):
    spikes = np.random.default_rng(0).poisson(1.0, size=(2, 9, 3))
    k = gaussian_kernel(0.01, 0.02)
    np.testing.assert_allclose(
        smooth_spikes(spikes, 0.01, 0.02, edge=edge, leave_bin_out=leave_bin_out),
        loop_smooth(spikes, k, edge, leave_bin_out),
        rtol=1e-12,
    )


def test_conserve_keeps_each_trial_total_and_leave_bin_out_ignores_the_bin():
    counts = np.random.default_rng(4).poisson(0.3, size=(5, 70, 4))
    for truncate in (3.0, None):
        smooth = smooth_spikes(counts, 0.01, 0.05, "conserve", truncate=truncate)
        assert smooth.shape == counts.shape
        np.testing.assert_allclose(smooth.sum(axis=1), counts.sum(axis=1), rtol=1e-12)
    spike = np.zeros((1, 50, 1))
    spike[0, 0, 0] = 1.0  # a spike at the edge keeps its whole mass
    one = smooth_spikes(spike, 0.01, 0.03, "conserve", truncate=None)[0, :, 0]
    assert one.sum() == pytest.approx(1.0) and one[0] < 1.0 and one[5] > 0
    np.testing.assert_array_equal(smooth_spikes(counts, 0.01, 0.0, "conserve"), counts)
    lone = smooth_spikes(spike, 0.01, 0.03, leave_bin_out=True)[0, :, 0]
    assert lone[0] == 0.0 and lone[1] > 0  # the spike is not its own bin's estimate
    other_bins = smooth_spikes(spike, 0.01, 0.0, leave_bin_out=True)[0, :, 0]  # no kernel
    np.testing.assert_allclose(other_bins, np.r_[0.0, np.full(49, 1 / 49)])


def test_smoothing_preserves_mass_away_from_edges_and_constants_with_renormalisation():
    spikes = np.zeros((1, 40, 1))
    spikes[0, 20, 0] = 3
    assert smooth_spikes(spikes, 0.01, 0.03, edge="zero").sum() == pytest.approx(3.0)
    assert smooth_spikes(spikes, 0.01, 0.03).sum() == pytest.approx(3.0)
    const = np.full((1, 12, 2), 2.0)
    np.testing.assert_allclose(smooth_spikes(const, 0.01, 0.05), 2.0)  # kernel wider than trial
    zero_pad = smooth_spikes(np.full((1, 13, 2), 2.0), 0.01, 0.02, edge="zero")  # h = 6 bins
    assert zero_pad[0, 0, 0] < 1.5 and zero_pad[0, 6, 0] == pytest.approx(2.0)
    np.testing.assert_array_equal(smooth_spikes(spikes, 0.01, 0.0), spikes)


def test_smoothing_rates_are_smoothed_counts_in_hz():
    spikes = np.random.default_rng(1).poisson(0.5, size=(3, 10, 2))
    np.testing.assert_allclose(
        smoothing_rates(spikes, 0.005, 0.02), smooth_spikes(spikes, 0.005, 0.02) / 0.005
    )
    np.testing.assert_allclose(to_hz(np.array([0.1, 0.2]), 0.01), [10.0, 20.0])


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda s: smooth_spikes(s, 0.0, 0.05), "bin_size=0.0 must be a positive"),
        (lambda s: smooth_spikes(s, 0.01, -1.0), "sigma_s=-1.0 must be"),
        (lambda s: smooth_spikes(s, 0.01, 0.05, edge="reflect"), "edge='reflect' is not one of"),
        (lambda s: smooth_spikes(s[0], 0.01, 0.05), "expected \\[trials, time, units\\]"),
        (lambda s: smooth_spikes(-s, 0.01, 0.05), "negative, NaN or infinite"),
        (lambda s: to_hz(s, -0.01), "bin_size=-0.01"),
    ],
)
def test_smoothing_rejects_bad_input(call, match):
    with pytest.raises(MetricInputError, match=match):
        call(np.ones((2, 5, 3)))


def simulate_glm(seed=2, n_s=4000):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_s, 3))
    w_true, b_true = np.array([0.6, -0.4, 0.25]), -0.3
    y = rng.poisson(np.exp(x @ w_true + b_true))
    return x, y, w_true, b_true


def test_poisson_glm_recovers_known_weights():
    x, y, w_true, b_true = simulate_glm()
    w, b = fit_poisson_glm(x, y)
    np.testing.assert_allclose(w, w_true, atol=0.06)
    assert b == pytest.approx(b_true, abs=0.06)


def test_poisson_glm_solution_is_stationary_for_the_penalised_objective():
    x, y, _, _ = simulate_glm(seed=3, n_s=500)
    l2 = 0.05
    w, b = fit_poisson_glm(x, y, l2)
    mu = np.exp(x @ w + b)
    np.testing.assert_allclose(x.T @ (mu - y) / len(y) + l2 * w, 0.0, atol=1e-6)
    assert np.mean(mu - y) == pytest.approx(0.0, abs=1e-6)  # intercept is unpenalised


def test_poisson_glm_strong_penalty_leaves_the_mean_rate_and_fits_outputs_separately():
    x, y, _, _ = simulate_glm(seed=4, n_s=500)
    w, b = fit_poisson_glm(x, y, l2=1e6)
    np.testing.assert_allclose(w, 0.0, atol=1e-4)
    assert math.exp(b) == pytest.approx(y.mean(), rel=1e-3)
    y2 = np.stack([y, np.zeros_like(y)], axis=1)  # a silent output goes to a tiny rate
    w2, b2 = fit_poisson_glm(x, y2, l2=0.1)
    w1, b1 = fit_poisson_glm(x, y, l2=0.1)
    np.testing.assert_allclose(w2[:, 0], w1, rtol=1e-8)
    assert b2[0] == pytest.approx(b1) and math.exp(b2[1]) < 1e-3
    np.testing.assert_allclose(predict_poisson_glm(x, w2, b2)[:, 0], np.exp(x @ w1 + b1))


@pytest.mark.parametrize(
    "x, y, l2, match",
    [
        (np.ones((5, 2)), np.ones(4), 0.0, "expected x \\[samples, predictors\\]"),
        (np.ones((5, 2)), -np.ones(5), 0.0, "finite counts >= 0"),
        (np.ones((5, 2)), np.ones(5), -1.0, "l2=-1.0 must be >= 0"),
    ],
)
def test_poisson_glm_rejects_bad_input(x, y, l2, match):
    with pytest.raises(MetricInputError, match=match):
        fit_poisson_glm(x, y, l2)


def shared_latent_session(seed=5, n_trials=40, n_t=50, n_in=12, n_out=4):
    """Poisson spikes driven by 2 smooth latents with a random phase per trial."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_t) * 0.01
    phase = rng.uniform(0, 2 * np.pi, size=(n_trials, 1))
    lat = np.stack([np.sin(2 * np.pi * 2 * t + phase), np.cos(2 * np.pi * 1.3 * t + phase)], -1)
    loading = rng.normal(0, 0.8, size=(2, n_in + n_out))
    rates = np.exp(-1.0 + lat @ loading)  # counts per 10 ms bin
    spikes = rng.poisson(rates)
    return spikes[..., :n_in], spikes[..., n_in:], rates[..., n_in:]


def test_smoothing_baseline_predicts_heldout_units_with_positive_co_bps():
    heldin, heldout, true_out = shared_latent_session()
    pred = smoothing_baseline(
        heldin[:30], heldout[:30], heldin[30:], bin_size=0.01, sigma_s=0.03, l2=0.01
    )
    assert pred.shape == (10, 50, 4) and pred.min() >= 1e-9
    score = co_bps(pred, heldout[30:])
    assert 0.05 < score < co_bps(true_out[30:], heldout[30:]) + 0.05
    np.testing.assert_allclose(pred.mean(), heldout[30:].mean(), rtol=0.25)


def test_smoothing_baseline_rejects_mismatched_arrays():
    heldin, heldout, _ = shared_latent_session(n_trials=6, n_t=10)
    with pytest.raises(MetricInputError, match="has 11 units but 12 were expected"):
        smoothing_baseline(heldin[:4], heldout[:4], heldin[4:, :, :11], bin_size=0.01)
    with pytest.raises(MetricInputError, match="must cover the same trials and bins"):
        smoothing_baseline(heldin[:4], heldout[:3], heldin[4:], bin_size=0.01)
    with pytest.raises(MetricInputError, match="sigma_s=-0.1"):
        smoothing_baseline(heldin[:4], heldout[:4], heldin[4:], bin_size=0.01, sigma_s=-0.1)
