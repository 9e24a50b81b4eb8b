"""Synthetic spiking data with known latent dynamics: the standard LFADS benchmarks.

Three systems, all pure numpy and seeded through ``np.random.default_rng``:

- **chaotic RNN** (the TF LFADS ``synth_data`` benchmark; Sussillo et al. 2016): a 50-unit
  continuous-time network ``tau dx/dt = -x + W tanh(x)`` with ``W ~ N(0, gamma^2 / N)``,
  ``gamma = 1.5``, ``tau = 25 ms``, Euler steps of ``dt = 10 ms`` for ``T = 1 s``; every condition
  starts from its own ``x0 ~ N(0, 1)`` and every trial of a condition from the same ``x0``.
  Benchmark rates are ``tanh(x)`` min-max normalised to ``[0, 1]`` per condition and unit, times
  30 Hz, so at most 0.3 expected spikes per 10 ms bin.
- **multi-session chaotic RNN** (Pandarinath et al. 2018, stitching): one latent network, each
  session observing ``tanh(x)`` through its own log-linear read-out with its own units.
- **chaotic RNN with inputs** (TF LFADS's "chaotic RNN with inputs"): the same network, and
  in every trial one input pulse, a fixed random vector ``b ~ N(0, 1)`` times
  ``PULSE_MAGNITUDE``, added to ``W tanh(x)`` during one bin drawn uniformly from the middle
  half of the trial; the trials of a condition share ``x0`` but not the pulse time, so their
  rates differ after it. The pulse time is known (``pulse_time``), an external input.
- **Lorenz attractor** (the other standard LFADS system): a 3-D Lorenz state
  (``sigma = 10, rho = 28, beta = 8/3``), z-scored, observed through a log-linear read-out.

Shape glossary: C conditions, K trials (``K = C * repeats``), T bins, N units, D latent
dimensions. Rates are in Hz, constant within a bin of ``bin_size`` seconds; spike counts are
``Poisson(rate * bin_size)``. :func:`simulate` turns these arrays into NWB files
(:mod:`nwb_lfads.io.simulated`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .config import SimulationKind, choices
from .errors import ConfigError, OutputDirError

KINDS = tuple(choices(SimulationKind))
SPIKING_KINDS = tuple(k for k in KINDS if k != SimulationKind.CALCIUM)
BENCHMARK_UNITS = 50  # the TF benchmark observes all 50 RNN units directly
MULTI_SESSION_UNITS = (40, 55, 70)  # default unit counts of sessions 0, 1, 2 (cycled)
MULTI_SESSION_REPEATS = (10, 8, 12)  # default trials per condition of sessions 0, 1, 2 (cycled)
LORENZ_UNITS = 30  # unit count of a single Lorenz session (as in the LFADS paper)
PULSE_MAGNITUDE = 5.0  # chaotic-inputs: drive of the pulse bin, times the input vector b


@dataclasses.dataclass(frozen=True)
class SyntheticSession:
    """One simulated session, all arrays in trial order.

    Attributes:
        rates_hz: true firing rates, float64 Hz, shape [K, T, N].
        latents: the latent state that drives the rates, float64, shape [K, T, D]
            (``tanh(x)`` of the chaotic RNN, D = 50; the z-scored Lorenz state, D = 3).
        spikes: spike counts, int64, shape [K, T, N].
        condition_id: condition of each trial, int64, shape [K].
        start_time: session time of each trial's first bin edge, float64 seconds, shape [K].
        heldout: whether a unit is held out (NLB style), bool, shape [N].
        split: ``"train"`` or ``"val"`` per trial, str, shape [K]; None without an eval split.
        bin_size: bin width in seconds.
        description: what generated the session (goes into the NWB file).
        pulse_bin: chaotic-inputs: the bin of each trial's input pulse, int64 [K]; else None.
    """

    rates_hz: np.ndarray
    latents: np.ndarray
    spikes: np.ndarray
    condition_id: np.ndarray
    start_time: np.ndarray
    heldout: np.ndarray
    split: np.ndarray | None
    bin_size: float
    description: str
    pulse_bin: np.ndarray | None = None


# ---------------------------------------------------------------- chaotic RNN


def chaotic_rnn_weights(
    rng: np.random.Generator,
    n: int = BENCHMARK_UNITS,
    gamma: float = 1.5,
    sustained: bool = True,
    dt: float = 0.01,
    tau: float = 0.025,
    max_draws: int = 100,
) -> np.ndarray:
    """Recurrent weights ``W ~ N(0, gamma^2 / n)``, float64, shape [n, n].

    A finite network with ``gamma = 1.5`` and Euler steps of ``dt / tau = 0.4`` settles into a
    fixed point for roughly 4 in 10 draws of W. With ``sustained`` (the default) W is redrawn
    until 8 probe runs of 4 s from ``x0 ~ N(0, 1)`` all keep a temporal standard deviation of
    ``tanh(x)`` above 0.1 over 0.5-1 s and over their last second, so conditions show rich dynamics.

    Raises:
        ConfigError: no such W within ``max_draws`` draws (``gamma`` too small for chaos).
    """
    for _ in range(max_draws):
        weights = rng.standard_normal((n, n)) * (gamma / np.sqrt(n))
        if not sustained:
            return weights
        probe = run_chaotic_rnn(weights, rng.standard_normal((8, n)), int(round(4.0 / dt)), dt, tau)
        half, tail = int(round(0.5 / dt)), int(round(1.0 / dt))
        windows = (
            probe[:, half : 2 * half],
            probe[:, -tail:],
        )  # second half of a trial, last second
        if min(np.tanh(w).std(axis=1).mean(axis=-1).min() for w in windows) > 0.1:
            return weights
    raise ConfigError(
        f"chaotic_rnn_weights: no draw of W (n={n}, gamma={gamma}) kept its activity "
        f"in {max_draws} tries; use gamma > 1 (the benchmark uses 1.5)."
    )


def run_chaotic_rnn(
    weights: np.ndarray,
    x0: np.ndarray,
    n_bins: int = 100,
    dt: float = 0.01,
    tau: float = 0.025,
    drive: np.ndarray | None = None,
) -> np.ndarray:
    """Euler-integrate ``tau dx/dt = -x + W tanh(x) (+ drive)`` from ``x0``.

    Args:
        weights: W, shape [D, D].
        x0: initial states, shape [C, D].
        n_bins: number of time steps T (one per bin).
        dt, tau: step and time constant in seconds.
        drive: input added in each step, shape [C, T, D] (``drive[:, t]`` moves ``x`` from
            bin t to bin t + 1); None = none.

    Returns:
        states x, float64, shape [C, T, D]; ``x[:, 0] = x0``.
    """
    x = np.array(x0, dtype=np.float64)
    out = np.empty((x.shape[0], n_bins, x.shape[1]))
    for t in range(n_bins):
        out[:, t] = x
        if drive is None:
            x = x + (dt / tau) * (-x + np.tanh(x) @ weights.T)
        else:
            x = x + (dt / tau) * (-x + np.tanh(x) @ weights.T + drive[:, t])
    return out


def pulse_bins(rng: np.random.Generator, n_trials: int, n_bins: int) -> np.ndarray:
    """One pulse bin per trial, uniform over the middle half of the trial, int64 [K]."""
    return rng.integers(n_bins // 4, max(n_bins // 4 + 1, 3 * n_bins // 4), size=n_trials)


def pulse_drive(b: np.ndarray, bins: np.ndarray, n_bins: int) -> np.ndarray:
    """``PULSE_MAGNITUDE * b`` in each trial's pulse bin, 0 elsewhere; float64 [K, T, D]."""
    drive = np.zeros((bins.size, n_bins, b.size))
    drive[np.arange(bins.size), bins] = PULSE_MAGNITUDE * b
    return drive


def benchmark_rates(states: np.ndarray, max_rate_hz: float = 30.0) -> np.ndarray:
    """TF-benchmark rates: ``tanh(x)`` min-max normalised over time per trial and unit, times ``max_rate_hz``.

    Args:
        states: RNN states x, shape [C, T, D].

    Returns:
        rates in Hz, float64, shape [C, T, D], each trace spanning exactly [0, max_rate_hz].
    """
    r = np.tanh(states)
    lo = r.min(axis=1, keepdims=True)
    span = np.maximum(r.max(axis=1, keepdims=True) - lo, 1e-12)
    return (r - lo) / span * max_rate_hz


# ---------------------------------------------------------------- Lorenz attractor


def _lorenz_derivative(s: np.ndarray, sigma: float, rho: float, beta: float) -> np.ndarray:
    x, y, z = s[..., 0], s[..., 1], s[..., 2]
    return np.stack([sigma * (y - x), x * (rho - z) - y, x * y - beta * z], axis=-1)


def integrate_lorenz(
    states: np.ndarray,
    h: float,
    n_steps: int,
    params: tuple[float, float, float] = (10.0, 28.0, 8.0 / 3.0),
) -> np.ndarray:
    """Advance Lorenz states by ``n_steps`` RK4 steps of ``h`` model time units.

    Args:
        states: (x, y, z), float64, shape [..., 3].
        params: (sigma, rho, beta).

    Returns:
        the states after ``n_steps * h`` time units, same shape.
    """
    s = states
    for _ in range(n_steps):
        k1 = _lorenz_derivative(s, *params)
        k2 = _lorenz_derivative(s + 0.5 * h * k1, *params)
        k3 = _lorenz_derivative(s + 0.5 * h * k2, *params)
        k4 = _lorenz_derivative(s + h * k3, *params)
        s = s + (h / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4)
    return s


def lorenz_latents(
    rng: np.random.Generator,
    n_conditions: int,
    n_bins: int = 100,
    time_per_bin: float = 0.015,
    substeps: int = 10,
    burn_in: float = 20.0,
    spread: float = 50.0,
    sigma: float = 10.0,
    rho: float = 28.0,
    beta: float = 8.0 / 3.0,
) -> np.ndarray:
    """Lorenz trajectories from random initial states on the attractor, one per condition, z-scored.

    A reference trajectory from a random start is run for ``burn_in`` model time units (so it
    lies on the attractor), then for ``spread`` more; each condition starts from its state at a
    random time of that stretch (never near an unstable fixed point, where a trajectory would
    linger). Conditions are sampled once per bin (``time_per_bin`` model time units per bin, RK4
    with ``substeps`` steps per bin); the z-scoring uses the mean and standard deviation over all
    conditions and bins.

    Returns:
        latents, float64, shape [C, T, 3].
    """
    params = (sigma, rho, beta)
    h_ref = 0.01
    s = integrate_lorenz(
        rng.normal([0.0, 0.0, 25.0], 10.0, size=3), h_ref, int(round(burn_in / h_ref)), params
    )
    reference = np.empty((int(round(spread / h_ref)), 3))
    for i in range(len(reference)):
        reference[i] = s = integrate_lorenz(s, h_ref, 1, params)
    s = reference[
        rng.choice(len(reference), size=n_conditions, replace=n_conditions > len(reference))
    ]
    h = time_per_bin / substeps
    out = np.empty((n_conditions, n_bins, 3))
    for t in range(n_bins):
        out[:, t] = s
        s = integrate_lorenz(s, h, substeps, params)
    return (out - out.mean(axis=(0, 1))) / out.std(axis=(0, 1))


# ---------------------------------------------------------------- observations


def loglinear_readout(
    rng: np.random.Generator,
    latents: np.ndarray,
    n_units: int,
    rate_range_hz: tuple[float, float] = (1.0, 40.0),
) -> np.ndarray:
    """Rates ``exp(C @ z + b)`` of ``n_units`` units observing ``latents`` z through a random read-out.

    Each unit gets a random direction C_n ~ N(0, 1) in latent space; its projection is z-scored
    over all conditions and bins and scaled so the unit's log-rate has a standard deviation of
    0.6 to 1.0 (strong, realistic modulation: about a factor 2 to 3 per sd) around a mean
    log-rate between log 4 and log 12 Hz; rates are then clipped to ``rate_range_hz``. (A
    min-max scaling would let the rare extremes set the range and leave most bins barely
    modulated.)

    Args:
        latents: z, shape [C, T, D].

    Returns:
        rates in Hz, float64, shape [C, T, n_units].
    """
    proj = latents @ rng.standard_normal((latents.shape[-1], n_units))  # [C, T, N]
    sd = proj.std(axis=(0, 1))
    z = (proj - proj.mean(axis=(0, 1))) / np.where(sd > 0, sd, 1.0)
    gain = rng.uniform(0.6, 1.0, n_units)
    mean_log = rng.uniform(np.log(4.0), np.log(12.0), n_units)
    return np.clip(np.exp(mean_log + gain * z), *rate_range_hz)


def poisson_counts(rng: np.random.Generator, rates_hz: np.ndarray, bin_size: float) -> np.ndarray:
    """Spike counts ~ Poisson(rates_hz * bin_size), int64, same shape as ``rates_hz``."""
    return rng.poisson(rates_hz * bin_size).astype(np.int64)


def trial_start_times(
    rng: np.random.Generator,
    n_trials: int,
    trial_length: float,
    gap_range: tuple[float, float] = (0.1, 0.6),
    first: float = 0.5,
) -> np.ndarray:
    """Trial start times (s), float64, shape [K]: trials of ``trial_length`` separated by random gaps.

    Times are rounded to 1 ms so that trial edges are exact decimal numbers.
    """
    gaps = rng.uniform(*gap_range, size=n_trials)
    gaps[0] = first
    starts = np.cumsum(gaps) + trial_length * np.arange(n_trials)
    return np.round(starts, 3)


# ---------------------------------------------------------------- sessions


def _per_session(value, n_sessions: int, default: Sequence[int], name: str) -> list[int]:
    if value is None:
        values = [default[i % len(default)] for i in range(n_sessions)]
    elif np.isscalar(value):
        values = [int(value)] * n_sessions
    else:
        values = [int(v) for v in value]
        if len(values) != n_sessions:
            raise ConfigError(
                f"simulate: {name} has {len(values)} values for {n_sessions} sessions; "
                f"give one value, or one per session."
            )
    if min(values) < 1:
        raise ConfigError(f"simulate: {name} must be at least 1 (got {values}).")
    return values


def _choose(rng: np.random.Generator, n: int, fraction: float) -> np.ndarray:
    """Boolean mask [n] with round(fraction * n) randomly chosen True entries."""
    mask = np.zeros(n, dtype=bool)
    mask[rng.choice(n, size=int(round(fraction * n)), replace=False)] = True
    return mask


def generate_sessions(
    kind: str = "chaotic",
    sessions: int = 1,
    seed: int = 0,
    n_conditions: int = 100,
    trials_per_condition=None,
    n_units=None,
    heldout_fraction: float = 0.0,
    eval_fraction: float = 0.0,
    n_bins: int = 100,
    bin_size: float = 0.01,
    condition_seed: int | None = None,
) -> list[SyntheticSession]:
    """Simulate ``sessions`` sessions that share one latent system and its conditions.

    With ``kind="chaotic"``, ``sessions=1`` and ``n_units`` None (or 50) this is the TF LFADS
    benchmark: the 50 RNN units are observed directly with :func:`benchmark_rates`. Otherwise
    every session observes the shared latent through its own :func:`loglinear_readout`.

    Args:
        kind: ``"chaotic"`` or ``"lorenz"``.
        sessions: number of sessions S.
        seed: seed of everything (latent system, read-outs, spikes, trial order and times).
        n_conditions: C, the number of distinct initial states, shared by all sessions.
        trials_per_condition: int, or one int per session (default 10; several sessions
            cycle through 10, 8, 12).
        n_units: int, or one int per session (default 50 for the benchmark, 30 for a single
            Lorenz session, else cycling through 40, 55, 70).
        heldout_fraction: fraction of each session's units marked held out.
        eval_fraction: fraction of each session's trials marked ``"val"`` (the rest ``"train"``).
        n_bins, bin_size: T bins of ``bin_size`` seconds per trial.
        condition_seed: None, or new conditions of the same system: the latent system (the
            chaotic RNN's weights) and each session's read-out directions and gains stay those
            of ``seed`` (z-scorings, of the log-linear read-out and of the Lorenz latents, are
            computed on the new conditions; the benchmark's identity read-out is exact); the
            initial states, trial order, splits, held-out units, spikes and trial times are drawn
            from ``(seed, condition_seed)``. Scoring a model on such sessions tells dynamics it
            learned from trajectories it memorised (``bench/chaotic_rnn.py``).

    Returns:
        one :class:`SyntheticSession` per session; trials of all conditions in random order.
    """
    if kind not in SPIKING_KINDS:
        raise ConfigError(
            f"simulate: unknown kind {kind!r}; expected one of {', '.join(SPIKING_KINDS)} "
            f"(calcium: nwb_lfads.synthetic_calcium.generate_calcium_session)."
        )
    if sessions < 1 or n_conditions < 1 or n_bins < 2:
        raise ConfigError(
            f"simulate: sessions ({sessions}) and conditions ({n_conditions}) must be "
            f"at least 1 and n_bins ({n_bins}) at least 2."
        )
    for name, frac in (("heldout_fraction", heldout_fraction), ("eval_fraction", eval_fraction)):
        if not 0.0 <= frac < 1.0:
            raise ConfigError(f"simulate: {name} must be in [0, 1) (got {frac}).")
    chaotic = kind in ("chaotic", "chaotic-inputs")
    benchmark = (
        chaotic
        and sessions == 1
        and (n_units is None or np.atleast_1d(n_units).tolist() == [BENCHMARK_UNITS])
    )
    if benchmark:
        default_units: Sequence[int] = (BENCHMARK_UNITS,)
    elif kind == "lorenz" and sessions == 1:
        default_units = (LORENZ_UNITS,)
    else:
        default_units = MULTI_SESSION_UNITS
    units = _per_session(n_units, sessions, default_units, "n_units")
    repeats = _per_session(
        trials_per_condition,
        sessions,
        (10,) if sessions == 1 else MULTI_SESSION_REPEATS,
        "trials_per_condition",
    )

    latent_seq, *session_seqs = np.random.SeedSequence(seed).spawn(sessions + 1)
    lrng = np.random.default_rng(latent_seq)
    crng = lrng if condition_seed is None else np.random.default_rng([seed, condition_seed])
    if chaotic:
        weights = chaotic_rnn_weights(lrng)
        x0 = crng.standard_normal((n_conditions, BENCHMARK_UNITS))
        states = run_chaotic_rnn(weights, x0, n_bins, dt=bin_size)
        latents = np.tanh(states)
        system = (
            f"chaotic RNN (N={BENCHMARK_UNITS}, gamma=1.5, tau=25 ms, dt={bin_size * 1e3:g} ms), "
            f"{n_conditions} conditions"
        )
        if kind == "chaotic-inputs":
            b_in = lrng.standard_normal(BENCHMARK_UNITS)
            system += (
                f", one input pulse per trial (magnitude {PULSE_MAGNITUDE:g} times a random "
                f"vector, one bin at a random time in the middle half of the trial)"
            )
    else:
        latents = lorenz_latents(crng, n_conditions, n_bins)
        system = f"Lorenz attractor (sigma=10, rho=28, beta=8/3), {n_conditions} conditions"

    out = []
    for s, seq in enumerate(session_seqs):
        rng = np.random.default_rng(seq)
        if benchmark:
            cond_rates = benchmark_rates(states)
            readout = "the 50 RNN units observed directly, rates = 30 Hz * minmax(tanh(x)) (TF LFADS benchmark)"
        elif kind == "chaotic-inputs":  # the read-out is drawn on the trials' own latents below
            cond_rates = None
            readout = f"{units[s]} units through a random log-linear read-out, rates in 1-40 Hz"
        else:
            cond_rates = loglinear_readout(rng, latents, units[s])
            readout = f"{units[s]} units through a random log-linear read-out, rates in 1-40 Hz"
        if condition_seed is not None:
            rng = np.random.default_rng([seed, condition_seed, s + 1])
        condition_id = rng.permutation(np.repeat(np.arange(n_conditions), repeats[s]))
        n_trials = len(condition_id)
        pulses = None
        if kind == "chaotic-inputs":  # every trial its own trajectory: its pulse time
            pulses = pulse_bins(rng, n_trials, n_bins)
            trial_states = run_chaotic_rnn(
                weights,
                x0[condition_id],
                n_bins,
                dt=bin_size,
                drive=pulse_drive(b_in, pulses, n_bins),
            )
            trial_latents = np.tanh(trial_states)
            rates = (
                benchmark_rates(trial_states)
                if benchmark
                else loglinear_readout(rng, trial_latents, units[s])
            )
        else:
            trial_latents = latents[condition_id]
            rates = cond_rates[condition_id]
        split = None
        if eval_fraction > 0:
            split = np.where(_choose(rng, n_trials, eval_fraction), "val", "train")
        out.append(
            SyntheticSession(
                rates_hz=rates,
                latents=trial_latents,
                spikes=poisson_counts(rng, rates, bin_size),
                condition_id=condition_id.astype(np.int64),
                start_time=trial_start_times(rng, n_trials, n_bins * bin_size),
                heldout=_choose(rng, units[s], heldout_fraction),
                split=split,
                bin_size=bin_size,
                description=(
                    f"Synthetic session {s} of {sessions} (seed {seed}): {system}, "
                    f"{repeats[s]} trials per condition; {readout}; Poisson spikes."
                ),
                pulse_bin=pulses,
            )
        )
    return out


def simulate(
    out_dir,
    sessions: int = 1,
    seed: int = 0,
    kind: str = "chaotic",
    n_conditions: int | None = None,
    trials_per_condition=None,
    n_units=None,
    heldout_fraction: float = 0.0,
    eval_fraction: float = 0.0,
    overwrite: bool = False,
    noise_scale: float = 1.0,
) -> list[Path]:
    """Write ``sessions`` synthetic NWB files ``sim_session-<i>.nwb`` into ``out_dir``.

    See :func:`generate_sessions` for the arguments; the files hold subject and session metadata,
    a trials table (``start_time``, ``stop_time``, ``move_onset_time`` = start + 0.25 s,
    ``condition_id``, and ``split`` with ``eval_fraction``), a Units table (with ``heldout`` with
    ``heldout_fraction``) and the true rates and latents in ``processing/ground_truth``.
    ``n_conditions`` None: 100 (calcium: 40).

    ``kind="calcium"`` writes imaging sessions instead (:mod:`nwb_lfads.synthetic_calcium`,
    :mod:`nwb_lfads.io.simulated_ophys`): ``n_units`` ROIs (default 60), ``n_conditions``
    (default 40) x ``trials_per_condition`` (default 8) trials of 1.5 s at 30 Hz, dF/F noise of
    sd ``noise_scale`` one-spike transients; sessions share the latent system, each has its own
    ROIs. ``heldout_fraction`` does not apply.

    Raises:
        OutputDirError: ``out_dir`` is a file, or a non-empty folder and ``overwrite`` is False.
            With ``overwrite`` files of the same name are replaced, other files left alone.

    Returns:
        the paths written, in session order.
    """
    from .io.simulated import session_to_nwbfile, write_nwbfile

    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise OutputDirError(
            f"{out}: exists and is not a folder. Choose a folder for the simulated sessions."
        )
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise OutputDirError(
            f"{out}: folder is not empty. Choose an empty or new folder, or pass "
            f"--overwrite (overwrite=True) to replace files of the same name."
        )
    if kind == SimulationKind.CALCIUM:
        return _simulate_calcium(
            out,
            sessions,
            seed,
            n_conditions,
            trials_per_condition,
            n_units,
            eval_fraction,
            noise_scale,
        )
    if n_conditions is None:
        n_conditions = 100
    simulated = generate_sessions(
        kind,
        sessions,
        seed,
        n_conditions,
        trials_per_condition,
        n_units,
        heldout_fraction,
        eval_fraction,
    )
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, session in enumerate(simulated):
        path = out / f"sim_session-{i}.nwb"
        nwbfile = session_to_nwbfile(
            session,
            np.random.default_rng([seed, i, 7]),
            session_index=i,
            identifier=f"nwb-lfads-sim-{kind}-seed{seed}-session{i}-of-{sessions}",
        )
        write_nwbfile(nwbfile, path)
        paths.append(path)
    return paths


def _simulate_calcium(
    out: Path, sessions, seed, n_conditions, trials_per_condition, n_units, eval_fraction, noise
) -> list[Path]:
    from . import synthetic_calcium as sc
    from .io.simulated import write_nwbfile
    from .io.simulated_ophys import calcium_to_nwbfile

    rois = _per_session(n_units, sessions, (sc.N_ROIS,), "n_units")
    repeats = _per_session(
        trials_per_condition, sessions, (sc.TRIALS_PER_CONDITION,), "trials_per_condition"
    )
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(sessions):
        session = sc.generate_calcium_session(
            seed=seed,
            n_rois=rois[i],
            n_conditions=sc.N_CONDITIONS if n_conditions is None else n_conditions,
            trials_per_condition=repeats[i],
            noise_scale=noise,
            eval_fraction=eval_fraction,
            session_index=i,
        )
        nwbfile = calcium_to_nwbfile(
            session,
            session_index=i,
            identifier=f"nwb-lfads-sim-calcium-seed{seed}-session{i}-of-{sessions}",
        )
        paths.append(write_nwbfile(nwbfile, out / f"sim_session-{i}.nwb"))
    return paths


__all__ = [
    "SyntheticSession",
    "OutputDirError",
    "chaotic_rnn_weights",
    "run_chaotic_rnn",
    "benchmark_rates",
    "lorenz_latents",
    "integrate_lorenz",
    "loglinear_readout",
    "poisson_counts",
    "trial_start_times",
    "generate_sessions",
    "simulate",
]
