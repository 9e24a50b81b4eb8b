"""Synthetic two-photon imaging with known latent dynamics (``nwb-lfads simulate --kind calcium``).

A chaotic RNN (:func:`nwb_lfads.synthetic.run_chaotic_rnn`, 50 units, ``gamma = 1.5``) with a
time constant of :data:`RNN_TAU` (slow enough that its dynamics survive the indicator's
filtering) is integrated in steps of ``frame_period / SUBSTEPS``; every trial of a condition
starts from the condition's ``x0``. Each ROI observes ``tanh(x)`` through a random log-linear
read-out (:func:`nwb_lfads.synthetic.loglinear_readout`, rates in 1-40 Hz) and fires Poisson
spikes in every substep. Between trials the ROIs fire at their mean in-trial rate, so the
recording is one continuous movie.

The indicator: every spike adds ``amplitude`` (per ROI, uniform in :data:`AMPLITUDE_RANGE`)
to a calcium trace that decays exponentially with a per-ROI time constant uniform in
:data:`DECAY_RANGE` seconds. A frame's noise-free dF/F is the mean of the trace over the
frame's substeps; the observed dF/F adds Gaussian noise whose standard deviation is
``noise_scale`` times the ROI's one-spike amplitude (``noise_scale = 1``: noise about the size
of a one-spike transient).

Shape glossary: K trials, F frames of the whole recording, Tf frames per trial, N ROIs.
Trials start half a frame before a frame's timestamp, so a reader binning at the frame period
puts exactly one frame in every bin.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .errors import ConfigError
from .synthetic import (
    BENCHMARK_UNITS,
    _choose,
    chaotic_rnn_weights,
    loglinear_readout,
    run_chaotic_rnn,
)

FRAME_RATE = 30.0  # Hz
SUBSTEPS = 10  # spike/indicator steps per frame
RNN_TAU = 0.1  # s, time constant of the chaotic RNN
TRIAL_LENGTH = 1.5  # s (45 frames at 30 Hz)
N_ROIS = 60
N_CONDITIONS = 40
TRIALS_PER_CONDITION = 8  # 40 x 8 = 320 trials
DECAY_RANGE = (0.4, 1.0)  # s, indicator decay time constants
AMPLITUDE_RANGE = (0.5, 1.5)  # dF/F of one spike's transient
GAP_FRAMES = (3, 18)  # frames between trials (0.1-0.6 s), uniform
FIRST_FRAME = 15  # the first trial starts half a frame before this frame


@dataclasses.dataclass(frozen=True)
class CalciumSession:
    """One simulated imaging session.

    Attributes:
        dff: observed dF/F, float32 [F, N] (noise-free + Gaussian noise), frames at
            ``frame_times``.
        dff_clean: noise-free dF/F, float32 [F, N].
        rates_hz: true firing rates averaged over each frame, float32 [F, N], Hz.
        latents: ``tanh(x)`` of the RNN at each frame's first substep (0 between trials),
            float32 [F, 50].
        frame_rate: Hz; frame ``f`` is at ``f / frame_rate`` seconds (session time).
        start_time: each trial's start, float64 seconds [K]; stop = start + trial_length.
        trial_length: seconds (a whole number of frames).
        condition_id: int64 [K].
        split: ``"train"`` / ``"val"`` per trial, or None.
        amplitude: one-spike transient per ROI, float64 [N] (dF/F).
        decay: indicator decay time constant per ROI, float64 [N], seconds.
        noise_sd: the observation noise's standard deviation per ROI, float64 [N] (dF/F).
        description: what generated the session.
    """

    dff: np.ndarray
    dff_clean: np.ndarray
    rates_hz: np.ndarray
    latents: np.ndarray
    frame_rate: float
    start_time: np.ndarray
    trial_length: float
    condition_id: np.ndarray
    split: np.ndarray | None
    amplitude: np.ndarray
    decay: np.ndarray
    noise_sd: np.ndarray
    description: str

    @property
    def trial_frames(self) -> np.ndarray:
        """Frame index of each trial's frames, int64 [K, Tf]."""
        first = np.round(self.start_time * self.frame_rate + 0.5).astype(np.int64)
        n = int(round(self.trial_length * self.frame_rate))
        return first[:, None] + np.arange(n)[None, :]


def indicator_trace(spikes: np.ndarray, decay_steps: np.ndarray, amplitude: np.ndarray):
    """Calcium trace ``c[t] = exp(-1 / decay_steps) c[t-1] + amplitude * spikes[t]``.

    Args:
        spikes: counts per step, [S, N].
        decay_steps: decay time constant per ROI in steps, [N].
        amplitude: per-ROI jump per spike, [N].

    Returns:
        float64 [S, N], starting from 0.
    """
    from scipy.signal import lfilter

    out = np.empty(spikes.shape, dtype=np.float64)
    for n in range(spikes.shape[1]):
        a = np.exp(-1.0 / decay_steps[n])
        out[:, n] = lfilter([amplitude[n]], [1.0, -a], spikes[:, n].astype(np.float64))
    return out


def generate_calcium_session(
    seed: int = 0,
    n_rois: int = N_ROIS,
    n_conditions: int = N_CONDITIONS,
    trials_per_condition: int = TRIALS_PER_CONDITION,
    trial_length: float = TRIAL_LENGTH,
    frame_rate: float = FRAME_RATE,
    noise_scale: float = 1.0,
    eval_fraction: float = 0.0,
    session_index: int = 0,
) -> CalciumSession:
    """Simulate one imaging session (see the module docstring).

    Args:
        seed: seeds the latent system; ``session_index`` the rest (read-out, spikes, noise).
        n_rois: N. n_conditions, trials_per_condition: K = their product.
        trial_length: seconds, a whole number of frames. frame_rate: Hz.
        noise_scale: noise sd in units of each ROI's one-spike amplitude (>= 0).
        eval_fraction: fraction of trials marked ``"val"`` in ``split``.
    """
    n_frames_trial = int(round(trial_length * frame_rate))
    if n_frames_trial < 2 or abs(n_frames_trial / frame_rate - trial_length) > 1e-9:
        raise ConfigError(
            f"simulate: trial_length={trial_length} s must be a whole number (>= 2) of frames "
            f"at {frame_rate:g} Hz."
        )
    if min(n_rois, n_conditions, trials_per_condition) < 1 or noise_scale < 0:
        raise ConfigError(
            "simulate: n_rois, n_conditions and trials_per_condition must be at least 1 and "
            "noise_scale >= 0."
        )
    dt = 1.0 / (frame_rate * SUBSTEPS)
    n_steps = n_frames_trial * SUBSTEPS
    latent_seq, session_seq = np.random.SeedSequence([seed, 21]).spawn(2)
    lrng = np.random.default_rng(latent_seq)
    weights = chaotic_rnn_weights(lrng, dt=dt, tau=RNN_TAU)
    x0 = lrng.standard_normal((n_conditions, BENCHMARK_UNITS))
    latents = np.tanh(run_chaotic_rnn(weights, x0, n_steps, dt=dt, tau=RNN_TAU))  # [C, S, 50]

    rng = np.random.default_rng([*session_seq.generate_state(2), session_index])
    cond_rates = loglinear_readout(rng, latents, n_rois)  # [C, S, N] Hz
    condition_id = rng.permutation(np.repeat(np.arange(n_conditions), trials_per_condition))
    n_trials = condition_id.size
    gaps = rng.integers(GAP_FRAMES[0], GAP_FRAMES[1] + 1, size=n_trials)
    first_frame = FIRST_FRAME + np.cumsum(gaps) - gaps[0] + n_frames_trial * np.arange(n_trials)
    n_frames = int(first_frame[-1] + n_frames_trial + FIRST_FRAME)

    rates = np.broadcast_to(cond_rates.mean(axis=(0, 1)), (n_frames * SUBSTEPS, n_rois)).copy()
    lat = np.zeros((n_frames, BENCHMARK_UNITS))
    for k, c in enumerate(condition_id):
        s0 = first_frame[k] * SUBSTEPS
        rates[s0 : s0 + n_steps] = cond_rates[c]
        lat[first_frame[k] : first_frame[k] + n_frames_trial] = latents[c, ::SUBSTEPS]
    spikes = rng.poisson(rates * dt)
    amplitude = rng.uniform(*AMPLITUDE_RANGE, n_rois)
    decay = rng.uniform(*DECAY_RANGE, n_rois)
    trace = indicator_trace(spikes, decay / dt, amplitude)
    clean = trace.reshape(n_frames, SUBSTEPS, n_rois).mean(axis=1)
    noise_sd = noise_scale * amplitude
    observed = clean + rng.standard_normal(clean.shape) * noise_sd
    split = None
    if eval_fraction > 0:
        split = np.where(_choose(rng, n_trials, eval_fraction), "val", "train")
    return CalciumSession(
        dff=observed.astype(np.float32),
        dff_clean=clean.astype(np.float32),
        rates_hz=rates.reshape(n_frames, SUBSTEPS, n_rois).mean(axis=1).astype(np.float32),
        latents=lat.astype(np.float32),
        frame_rate=float(frame_rate),
        start_time=(first_frame - 0.5) / frame_rate,
        trial_length=float(trial_length),
        condition_id=condition_id.astype(np.int64),
        split=split,
        amplitude=amplitude,
        decay=decay,
        noise_sd=noise_sd,
        description=(
            f"Synthetic imaging session {session_index} (seed {seed}): chaotic RNN "
            f"(N={BENCHMARK_UNITS}, gamma=1.5, tau={RNN_TAU * 1e3:g} ms), {n_conditions} "
            f"conditions x {trials_per_condition} trials of {trial_length:g} s; {n_rois} ROIs "
            f"through a random log-linear read-out (1-40 Hz), Poisson spikes, indicator decay "
            f"{DECAY_RANGE[0]:g}-{DECAY_RANGE[1]:g} s and one-spike amplitude "
            f"{AMPLITUDE_RANGE[0]:g}-{AMPLITUDE_RANGE[1]:g} dF/F per ROI, dF/F at "
            f"{frame_rate:g} Hz with Gaussian noise of sd {noise_scale:g} x the one-spike "
            f"amplitude."
        ),
    )


__all__ = ["CalciumSession", "generate_calcium_session", "indicator_trace", "FRAME_RATE"]
