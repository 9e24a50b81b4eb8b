"""Slow quality check: LFADS recovers the true rates of a small chaotic-RNN data set
(the benchmark's generator at a smaller scale) far better than smoothing single trials."""

import numpy as np
import pytest
from helpers import make_session

from nwb_lfads.config import RunConfig
from nwb_lfads.data import prepare_data
from nwb_lfads.infer import posterior_means
from nwb_lfads.synthetic import generate_sessions
from nwb_lfads.train.trainer import Trainer

pytestmark = pytest.mark.slow


def r2(pred, true):
    pred, true = pred.reshape(-1, pred.shape[-1]), true.reshape(-1, true.shape[-1])
    sse = np.sum((pred - true) ** 2, axis=0)
    sst = np.sum((true - true.mean(axis=0)) ** 2, axis=0)
    return float(np.mean(1 - sse / sst))


def smoothed(spikes, bin_size, sigma_bins=3.0):
    """Gaussian-smoothed single-trial spikes in Hz [K, T, N] (the baseline LFADS must beat)."""
    k = np.arange(-4 * int(sigma_bins), 4 * int(sigma_bins) + 1)
    kernel = np.exp(-0.5 * (k / sigma_bins) ** 2)
    kernel /= kernel.sum()
    out = np.apply_along_axis(
        lambda x: np.convolve(x, kernel, mode="same"), 1, spikes.astype(float)
    )
    return out / bin_size


def test_chaotic_rnn_rates_are_recovered():
    (s,) = generate_sessions(
        "chaotic", sessions=1, seed=1, n_conditions=40, trials_per_condition=10
    )
    ds = make_session("chaotic", spikes=s.spikes, conditions=s.condition_id, bin_size=s.bin_size)
    cfg = RunConfig()
    data = prepare_data([ds], cfg.data)
    trainer = Trainer(data, cfg)
    while trainer.elapsed < 150 and trainer.stop_reason is None:
        trainer.train_epoch()
    rates = posterior_means(trainer.best_params, cfg, data, n_samples=20)[0]["rates"] / s.bin_size
    baseline = r2(smoothed(s.spikes, s.bin_size), s.rates_hz)
    fitted = r2(rates, s.rates_hz)
    assert fitted > 0.6 and fitted > baseline + 0.3, (fitted, baseline)
