"""Principal-component-regression initialisation of multi-session read-ins and read-outs.

Pandarinath et al. (2018) stitch sessions recorded with different neurons into one LFADS
model: every session s gets its own linear read-in (its N_s units -> D shared inputs) and
read-out (shared factors -> its N_s units), and the read-ins start where the sessions
already agree. This module computes that start, in pure numpy. It is the start of every
stitched Poisson fit (``model.readin_init = "auto"``, the default, or ``"pcr"``): on the
stitching benchmark it beat random read-ins, whose joint fits could diverge
(docs/DESIGN.md, "Stitching").

1. **Samples.** Each session's spikes are Gaussian-smoothed (:func:`nwb_lfads.baselines.
   smooth_spikes`, sd ``sigma_s``, edges renormalised) into rates in *spikes per bin* (the unit
   of the counts the model's read-in receives) and reduced to samples that correspond across
   sessions. The rule, first match wins:

   - ``"conditions"``: condition ids are given for every session and some ids occur in every
     session -> the condition-averaged rates of those shared conditions (sorted ids), C x T
     samples. Conditions present in only some sessions are ignored.
   - ``"trials"``: a single session whose averages would give fewer than
     ``MIN_SAMPLES_PER_COMPONENT * D`` samples -> its smoothed single trials themselves, K x T
     samples (at most ``MAX_TRIAL_SAMPLES``: evenly spaced trials beyond that). Several sessions
     never use single trials: their trials do not correspond to each other.
   - ``"trial_mean"``: otherwise the time-resolved mean over all trials, T samples (a warning
     when that is fewer than ``MIN_SAMPLES_PER_COMPONENT * D``; missing components are padded).

   Smoothing is linear and the same for every trial, so averages are taken on the counts first
   and smoothed afterwards: the result equals averaging smoothed trials, at a fraction of the cost.
2. **Normalisation.** Every unit is centred on its mean over the samples and divided by
   ``sd + SOFT_NORM_HZ * bin_size`` (soft z-scoring: units with modulation well above 1 Hz
   weigh about equally, nearly silent units weigh little, silent units are exactly zero, never
   NaN).
3. **Shared components.** The normalised units of all sessions are concatenated along the unit
   axis over the common samples and reduced to D principal components (the SVD, computed
   through the eigendecomposition of the smaller Gram matrix). Their scores, scaled to unit
   variance over the samples, are the targets Z [samples, D]. Components that do not exist
   (fewer than D total units or samples, or squared singular values below ``RANK_RTOL`` times
   the largest) are zero columns, with a :class:`StitchingWarning`. Signs are fixed so that
   each component's largest loading is positive.
4. **Read-in.** Per session, ridge regression of Z on the session's own *centred* rates
   (spikes per bin, not normalised): ``W_s = argmin |Xc_s W - Z|^2 + lam |W|^2`` with
   ``lam = ridge * mean_n |Xc_s[:, n]|^2``, and ``b_s = -mean_s @ W_s``, so that
   ``rates_s @ W_s + b_s ~= Z``. The ridge keeps this well-posed with fewer units than
   components, collinear or silent units (silent units get zero rows); the default ``ridge=0.1``
   shrinks only directions of below-average variance, which trades a little in-sample fit for
   less noise when the read-in meets single-trial counts. **Scaling**, in two steps. (a) Each
   column of ``W_s`` is divided by the sd of its output over the samples, so the read-in outputs
   of every session have unit variance per component on the smoothed, averaged samples (like the
   targets; padded components stay zero). (b) The model's read-in does not meet those samples
   but raw single-trial counts per bin, where Poisson noise dominates: after (a) the weak
   components' weights are large and the outputs on single trials have an sd of 5 to 60 (a
   chaotic-RNN benchmark with 20-30 units per session), which swamps the encoder and made a
   stitched fit far worse than a fit alone. So with ``trial_sd`` (default 1) column d
   of every session is multiplied by one common factor ``c_d = trial_sd / rms_s(sd_sd)``, where
   ``sd_sd`` is the sd of session s's output on its single-trial counts (all bins of at most
   ``MAX_SCALE_TRIALS`` evenly spaced trials): the outputs on single trials then have an RMS sd of
   ``trial_sd`` over sessions, and because the factor is the same for every session, the
   sessions stay aligned (equal variance per component on the samples, ``c_d^2``).
   ``trial_sd=None`` skips (b).
5. **Read-out.** ``readout_w = pinv(W_s)`` [D, N_s] (singular values below ``PINV_RTOL`` times
   the largest are dropped), so that ``Z @ readout_w ~= centred rates`` in spikes per bin;
   ``readout_w_log = readout_w / max(mean_rate, MEAN_COUNT_FLOOR)`` is its first-order
   translation to log-rates (``log r ~= log m + (r - m) / m``).
   ``readout_b = log(max(mean_rate, MEAN_COUNT_FLOOR))``
   with ``mean_rate`` each unit's mean count per bin over all trials and bins: the bias of a
   read-out that produces log expected counts per bin, as the LFADS Poisson read-out does.
   LFADS factors are not the read-in outputs in general, so the read-out weights are a sensible
   start only when ``fac_dim == readin_dim``; the bias is useful always.

Shape glossary: S sessions, K_s trials of session s, T bins, N_s units of session s, D
``readin_dim``, Nmax the padded unit count. Rates are spikes per bin unless named ``_hz``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from .baselines import smooth_spikes
from .errors import (
    ConfigError,
    SelectionError,
    SessionMismatchError,
    StitchingInputError,
    StitchingWarning,
)

MIN_SAMPLES_PER_COMPONENT = 2  # fewer averaged samples than this times D is "too few"
MAX_TRIAL_SAMPLES = 50_000  # cap of trial x time samples in the "trials" rule
SOFT_NORM_HZ = 1.0  # added to each unit's sd (in Hz, times bin_size) before dividing
# spikes per bin: floor of a unit's *observed* mean count before the read-out initialisation
# takes its log (bias) or divides by it (log-rate weights); not ``metrics.RATE_FLOOR``, which
# floors predicted rates
MEAN_COUNT_FLOOR = 1e-3
PINV_RTOL = 1e-6  # relative cut-off of singular values in pinv(W_s)
RANK_RTOL = 1e-10  # components with s^2 below this times the largest s^2 do not exist
MAX_SCALE_TRIALS = 500  # trials per session (evenly spaced) that set the single-trial scale
SAMPLE_RULES = ("conditions", "trials", "trial_mean")


class ReadinInit(NamedTuple):
    """Per-session initial read-in/read-out values (float64 numpy, lists of length S).

    Attributes:
        readin_w: [N_s, D] per session; ``rates_s @ W_s + b_s`` ~ shared scores (unit variance),
            rates in spikes per bin.
        readin_b: [D] per session.
        readout_w: [D, N_s] per session, ``pinv(readin_w)``: scores -> centred spikes per bin.
        readout_b: [N_s] per session, log of the unit's mean count per bin (floored at
            MEAN_COUNT_FLOOR).
        explained_variance_ratio: [D], variance fraction of each shared component over the
            normalised, concatenated samples; sorted descending, zero for padded components.
        readout_w_log: [D, N_s] per session, ``readout_w / mean rate``: scores -> log-rate change.
        samples: which sample rule was used (one of ``SAMPLE_RULES``).
    """

    readin_w: list
    readin_b: list
    readout_w: list
    readout_b: list
    explained_variance_ratio: np.ndarray
    readout_w_log: list
    samples: str


# ---------------------------------------------------------------- validation


def _check_inputs(spikes_list, readin_dim, bin_size, sigma_s, ridge, conditions_list):
    fn = "pcr_readin"
    if (
        isinstance(readin_dim, bool)
        or not isinstance(readin_dim, (int, np.integer))
        or readin_dim < 1
    ):
        raise ConfigError(
            f"{fn}: readin_dim={readin_dim!r} must be an integer >= 1 (the width of "
            "the shared read-in, e.g. the model's readin_dim)."
        )
    for name, value, lo in (
        ("bin_size", bin_size, "> 0"),
        ("sigma_s", sigma_s, ">= 0"),
        ("ridge", ridge, "> 0"),
    ):
        ok = isinstance(value, (int, float, np.floating, np.integer)) and math.isfinite(value)
        if not ok or (value < 0 if lo == ">= 0" else value <= 0):
            raise ConfigError(
                f"{fn}: {name}={value!r} must be a finite number {lo} "
                "(bin_size and sigma_s in seconds)."
            )
    if (
        isinstance(spikes_list, np.ndarray)
        or not isinstance(spikes_list, Sequence)
        or not spikes_list
    ):
        raise StitchingInputError(
            f"{fn}: spikes_list must be a non-empty list with one [trials, "
            "time, units] count array per session."
        )
    arrays = []
    for s, sp in enumerate(spikes_list):
        a = np.asarray(sp)
        if a.ndim != 3 or not (
            np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)
        ):
            raise StitchingInputError(
                f"{fn}: session {s} spikes have shape {a.shape} and dtype "
                f"{a.dtype}; expected numeric counts [trials, time, units]."
            )
        if a.shape[0] == 0 or a.shape[2] == 0 or a.shape[1] == 0:
            raise SelectionError(
                f"{fn}: session {s} is empty (spikes shape {a.shape}: trials, "
                "time, units); drop it or select trials and units that exist."
            )
        if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
            raise StitchingInputError(
                f"{fn}: session {s} spikes hold NaN or infinite values; pass binned counts."
            )
        if a.min() < 0:
            raise StitchingInputError(
                f"{fn}: session {s} spikes hold negative values; pass binned counts (>= 0)."
            )
        arrays.append(a)
    n_bins = [a.shape[1] for a in arrays]
    if len(set(n_bins)) > 1:
        raise SessionMismatchError(
            f"{fn}: sessions have different numbers of time bins {n_bins}; "
            "bin every session with the same window and bin size."
        )
    conds = None
    if conditions_list is not None:
        if isinstance(conditions_list, np.ndarray) or len(conditions_list) != len(arrays):
            raise StitchingInputError(
                f"{fn}: conditions_list must be a list with one entry per "
                f"session ({len(arrays)}), each [trials] ids or None."
            )
        conds = []
        for s, (c, a) in enumerate(zip(conditions_list, arrays)):
            if c is None:
                conds.append(None)
                continue
            c = np.asarray(c)
            if c.shape != (a.shape[0],):
                raise StitchingInputError(
                    f"{fn}: session {s} condition ids have shape {c.shape} "
                    f"but its spikes have {a.shape[0]} trials; pass one id "
                    "per trial."
                )
            conds.append(c)
    return arrays, conds


# ---------------------------------------------------------------- samples


def _shared_conditions(conds) -> list | None:
    """Sorted ids present in every session, or None (with a warning when ids were given)."""
    if conds is None:
        return None
    if any(c is None for c in conds):
        warnings.warn(
            "pcr_readin: condition ids are missing for some sessions; averaging over "
            "trials instead.",
            StitchingWarning,
            stacklevel=4,
        )
        return None
    try:  # Python equality: 1 == 1.0 match, 1 and "1" do not, NaN matches nothing
        shared = set(np.unique(conds[0]).tolist())
        for c in conds[1:]:
            shared &= set(np.unique(c).tolist())
        shared = sorted(shared)
    except TypeError:  # ids of mixed, unorderable types within a session
        shared = []
    if not shared:
        warnings.warn(
            "pcr_readin: no condition id occurs in every session; averaging over trials instead.",
            StitchingWarning,
            stacklevel=4,
        )
        return None
    return shared


def _samples(arrays, conds, readin_dim, bin_size, sigma_s) -> tuple[list[np.ndarray], str]:
    """Per session smoothed rates over common samples: float64 [n, N_s], spikes per bin."""
    shared = _shared_conditions(conds)
    if shared is not None:
        groups = [
            np.stack([a[c == k].mean(axis=0, dtype=np.float64) for k in shared])
            for a, c in zip(arrays, conds)
        ]
        rule = "conditions"
    else:
        groups = [a.mean(axis=0, dtype=np.float64, keepdims=True) for a in arrays]
        rule = "trial_mean"
    n_bins = arrays[0].shape[1]
    too_few = groups[0].shape[0] * n_bins < MIN_SAMPLES_PER_COMPONENT * readin_dim
    if too_few and len(arrays) == 1:
        a = arrays[0]
        keep = max(1, MAX_TRIAL_SAMPLES // n_bins)
        if a.shape[0] > keep:
            a = a[np.linspace(0, a.shape[0] - 1, keep).round().astype(int)]
        groups, rule = [a.astype(np.float64)], "trials"
    elif too_few:
        warnings.warn(
            f"pcr_readin: the {rule} rule gives {groups[0].shape[0] * n_bins} samples for "
            f"readin_dim={readin_dim}; components beyond the data's rank are padded with "
            "zeros (give shared condition ids to get more samples).",
            StitchingWarning,
            stacklevel=3,
        )
    out = [smooth_spikes(g, bin_size, sigma_s).reshape(-1, g.shape[2]) for g in groups]
    return out, rule


# ---------------------------------------------------------------- PCA and regression


def _principal_axes(y: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-k left/right singular vectors and all squared singular values of y [n, m].

    Eigendecomposition of the smaller Gram matrix (y^T y or y y^T): one matrix product and a
    min(n, m)-square ``eigh``, much cheaper than an SVD of a tall matrix. Returns u [n, k],
    v [m, k] and s2 [min(n, m)] (descending); columns with s2 ~ 0 are returned as zeros.
    """
    n, m = y.shape
    s2, vec = np.linalg.eigh(y.T @ y if n >= m else y @ y.T)
    s2, vec = np.maximum(s2[::-1], 0.0), vec[:, ::-1]
    k = min(k, s2.size)
    s = np.sqrt(s2[:k])
    inv = np.divide(1.0, s, out=np.zeros_like(s), where=s > 0)
    if n >= m:
        v, u = vec[:, :k], (y @ vec[:, :k]) * inv
    else:
        u, v = vec[:, :k], (y.T @ vec[:, :k]) * inv
    return u, v, s2


def _shared_scores(centred, bin_size, readin_dim) -> tuple[np.ndarray, np.ndarray]:
    """Unit-variance principal-component scores Z [n, D] and explained variance ratios [D]."""
    soft = SOFT_NORM_HZ * bin_size
    y = np.concatenate([x / (x.std(axis=0) + soft) for x in centred], axis=1)
    n = y.shape[0]
    u, v, s2 = _principal_axes(y, readin_dim)
    total = float(np.sum(s2))
    n_valid = int(np.sum(s2[:readin_dim] > RANK_RTOL * s2[0])) if total > 0 else 0
    z = np.zeros((n, readin_dim))
    evr = np.zeros(readin_dim)
    if n_valid:
        sign = np.sign(v[np.abs(v[:, :n_valid]).argmax(axis=0), np.arange(n_valid)])
        z[:, :n_valid] = u[:, :n_valid] * sign * math.sqrt(n)
        evr[:n_valid] = s2[:n_valid] / total
    if n_valid < readin_dim:
        warnings.warn(
            f"pcr_readin: only {n_valid} of readin_dim={readin_dim} shared components "
            f"exist ({y.shape[1]} units in all sessions, {n} samples); the other "
            f"{readin_dim - n_valid} read-in columns start at zero.",
            StitchingWarning,
            stacklevel=3,
        )
    return z, evr


def _ridge(xc: np.ndarray, z: np.ndarray, ridge: float) -> np.ndarray:
    """argmin_W |xc W - z|^2 + lam |W|^2, lam = ridge * mean column sum of squares. [N, D]."""
    gram = xc.T @ xc
    lam = ridge * float(np.trace(gram)) / xc.shape[1]
    if lam == 0.0:  # every unit silent over the samples
        return np.zeros((xc.shape[1], z.shape[1]))
    return np.linalg.solve(gram + lam * np.eye(xc.shape[1]), xc.T @ z)


def _single_trial_sd(a: np.ndarray, w: np.ndarray) -> np.ndarray:
    """sd [D] of ``a @ w`` over all trials and bins of at most MAX_SCALE_TRIALS evenly spaced
    trials of the counts ``a`` [K, T, N] (w [N, D]); chunked, never the full product at once."""
    if a.shape[0] > MAX_SCALE_TRIALS:
        a = a[np.linspace(0, a.shape[0] - 1, MAX_SCALE_TRIALS).round().astype(int)]
    n, total, total_sq = 0, np.zeros(w.shape[1]), np.zeros(w.shape[1])
    for start in range(0, a.shape[0], 64):
        out = a[start : start + 64].reshape(-1, a.shape[2]).astype(np.float64) @ w
        n += out.shape[0]
        total += out.sum(axis=0)
        total_sq += (out**2).sum(axis=0)
    mean = total / n
    return np.sqrt(np.maximum(total_sq / n - mean**2, 0.0))


def _scale_to_single_trials(arrays, weights, trial_sd: float) -> list:
    """Scaling step (b): one factor per component for all sessions, so the read-in outputs on
    single-trial counts have an RMS sd (over sessions) of ``trial_sd``. weights: [N_s, D] each."""
    sd = np.stack([_single_trial_sd(a, w) for a, w in zip(arrays, weights)])  # [S, D]
    rms = np.sqrt(np.mean(sd**2, axis=0))
    factor = np.divide(trial_sd, rms, out=np.ones_like(rms), where=rms > 0)
    return [w * factor for w in weights]


def pcr_readin(
    spikes_list,
    readin_dim: int,
    bin_size: float,
    *,
    conditions_list=None,
    sigma_s: float = 0.05,
    ridge: float = 0.1,
    trial_sd: float | None = 1.0,
) -> ReadinInit:
    """Initial read-ins and read-outs of several sessions by principal-component regression.

    See the module docstring for the rule, the normalisation and the scaling.

    Args:
        spikes_list: one count array per session, int or float (finite, >= 0), [K_s, T, N_s];
            T must be the same in every session.
        readin_dim: D >= 1, width of the shared read-in.
        bin_size: s, width of a bin (sets the smoothing kernel and the soft normalisation).
        conditions_list: optional, one entry per session: condition ids [K_s] (ints or strings)
            or None. Only ids present in every session are used.
        sigma_s: s, sd of the Gaussian smoothing kernel (0: no smoothing).
        ridge: > 0, ridge penalty relative to the mean per-unit sum of squares.
        trial_sd: > 0, RMS over sessions of each read-in output's sd on single-trial counts
            (scaling step (b)); None keeps unit variance on the averaged samples.
    Returns:
        :class:`ReadinInit` (float64 arrays).
    Raises:
        ConfigError: bad ``readin_dim``, ``bin_size``, ``sigma_s``, ``ridge`` or ``trial_sd``.
        SelectionError: a session without trials, bins or units.
        SessionMismatchError: sessions with different numbers of bins.
        StitchingInputError: malformed spikes or condition ids.
    Warns:
        StitchingWarning: no shared conditions (fallback to trial means) or padded components.
    """
    arrays, conds = _check_inputs(
        spikes_list, readin_dim, bin_size, sigma_s, ridge, conditions_list
    )
    if trial_sd is not None and not (
        isinstance(trial_sd, (int, float, np.floating, np.integer))
        and math.isfinite(trial_sd)
        and trial_sd > 0
    ):
        raise ConfigError(
            f"pcr_readin: trial_sd={trial_sd!r} must be a finite number > 0 (the sd of "
            "each read-in output on single-trial counts) or None (no such scaling)."
        )
    readin_dim = int(readin_dim)
    rates, rule = _samples(arrays, conds, readin_dim, bin_size, sigma_s)
    means = [r.mean(axis=0) for r in rates]
    centred = [r - m for r, m in zip(rates, means)]
    z, evr = _shared_scores(centred, bin_size, readin_dim)
    weights = []
    for xc in centred:
        w = _ridge(xc, z, ridge)
        sd = (xc @ w).std(axis=0)
        weights.append(w / np.where(sd > 0, sd, 1.0))
    if trial_sd is not None:
        weights = _scale_to_single_trials(arrays, weights, float(trial_sd))
    readin_w, readin_b, readout_w, readout_b, readout_w_log = [], [], [], [], []
    for a, w, m in zip(arrays, weights, means):
        w_out = np.linalg.pinv(w, rtol=PINV_RTOL) if np.any(w) else np.zeros(w.T.shape)
        mean_rate = np.maximum(a.mean(axis=(0, 1), dtype=np.float64), MEAN_COUNT_FLOOR)
        readin_w.append(w)
        readin_b.append(-m @ w)
        readout_w.append(w_out)
        readout_b.append(np.log(mean_rate))
        readout_w_log.append(w_out / mean_rate)
    return ReadinInit(readin_w, readin_b, readout_w, readout_b, evr, readout_w_log, rule)


def stack_padded(
    init: ReadinInit, n_max: int | None = None, *, readout_space: str = "rate", columns=None
) -> dict[str, np.ndarray]:
    """Stack per-session values into the model's padded arrays (float32, zeros elsewhere).

    Args:
        init: from :func:`pcr_readin`.
        n_max: padded unit count Nmax (default: the largest N_s, or the largest column + 1);
            must hold every session's units.
        readout_space: ``"rate"`` puts ``init.readout_w`` (scores -> centred spikes per bin) in
            ``readout_w``; ``"log"`` puts ``init.readout_w_log`` (scores -> log-rate change),
            which matches a read-out producing log-rates.
        columns: per session, the padded column of each of its N_s units (int [N_s]; default
            ``0 .. N_s - 1``), e.g. the encoder-input units among all of a session's units.
    Returns:
        ``{"readin_w": [S, Nmax, D], "readin_b": [S, D], "readout_w": [S, D, Nmax],
        "readout_b": [S, Nmax]}``, the field names of the model's ``ReadInit``:
        ``ReadInit(**stack_padded(init, n_max, readout_space="log"))`` when ``fac_dim == D``;
        otherwise take only ``readin_w``, ``readin_b`` and ``readout_b``.
    Raises:
        ConfigError: ``n_max`` below the largest session, or an unknown ``readout_space``.
    """
    if readout_space not in ("rate", "log"):
        raise ConfigError(
            f"stack_padded: readout_space={readout_space!r}; expected 'rate' or 'log'."
        )
    if columns is None:
        columns = [np.arange(w.shape[0]) for w in init.readin_w]
    columns = [np.asarray(c, dtype=int) for c in columns]
    needed = max((int(c.max()) + 1 if c.size else 0) for c in columns)
    n_max = needed if n_max is None else n_max
    if isinstance(n_max, bool) or not isinstance(n_max, (int, np.integer)) or n_max < needed:
        units = [w.shape[0] for w in init.readin_w]
        raise ConfigError(
            f"stack_padded: n_max={n_max!r} is smaller than the largest session "
            f"({needed} units; unit counts {units}); pass n_max >= {needed}."
        )
    n_s, d = len(columns), init.readin_w[0].shape[1]
    shapes = {
        "readin_w": (n_s, n_max, d),
        "readin_b": (n_s, d),
        "readout_w": (n_s, d, n_max),
        "readout_b": (n_s, n_max),
    }
    out = {k: np.zeros(shape, np.float32) for k, shape in shapes.items()}
    w_out = init.readout_w_log if readout_space == "log" else init.readout_w
    for s, cols in enumerate(columns):
        out["readin_w"][s, cols] = init.readin_w[s]
        out["readin_b"][s] = init.readin_b[s]
        out["readout_w"][s][:, cols] = w_out[s]
        out["readout_b"][s, cols] = init.readout_b[s]
    return out


def readin_init_from_data(
    data,
    readin_dim: int,
    *,
    fac_dim: int | None = None,
    sigma_s: float = 0.05,
    conditions=None,
    readout_space: str = "log",
) -> dict:
    """PCR initial read-in/read-out for a model over ``data`` (a ``nwb_lfads.data.TrainingData``).

    Uses each session's *training* trials and only its encoder-input units (held-out units get
    zero read-in rows; their read-out columns start at zero with the log-mean-rate bias). With
    condition ids (``conditions``, or a ``condition`` array of ``data`` if it has one) the
    samples are condition averages; without, time-resolved trial means (or single trials for
    one session), see :func:`pcr_readin`. Read-in outputs on single-trial counts have an RMS sd
    of 1 per component (scaling step (b)).

    Args:
        data: training arrays (``spikes`` [M, T, N], ``session`` [M], ``train`` [M],
            ``input_mask``/``unit_mask`` [S, N], ``bin_size`` s).
        readin_dim: R, the model's read-in width.
        fac_dim: F; the PCR read-out (log space) is returned only when F == R.
        conditions: optional condition id per trial of ``data``, [M].
        readout_space: ``"log"`` (Poisson read-out of log-rates) or ``"rate"`` (Gaussian read-out
            of the values themselves), see :func:`stack_padded`.

    Returns:
        dict with ``readin_w`` [S, N, R], ``readin_b`` [S, R] (float32) and, when F == R,
        ``readout_w`` [S, R, N]: keyword arguments of the model's ``ReadInit``.
    """
    n_sessions, n_max = data.unit_mask.shape
    if conditions is None:
        conditions = getattr(data, "condition", None)
    spikes_list, columns, conds = [], [], []
    for s in range(n_sessions):
        cols = np.flatnonzero(data.input_mask[s])
        rows = (data.session == s) & data.train
        if not rows.any():
            rows = data.session == s
        t_obs = data.spikes.shape[1] - int(getattr(data, "n_forward", 0))  # not forward bins
        spikes_list.append(data.spikes[rows][:, :t_obs, cols])
        columns.append(cols)
        if conditions is not None:
            conds.append(np.asarray(conditions)[rows])
    init = pcr_readin(
        spikes_list,
        readin_dim,
        float(data.bin_size),
        sigma_s=sigma_s,
        conditions_list=conds or None,
    )
    out = stack_padded(init, int(n_max), readout_space=readout_space, columns=columns)
    del out["readout_b"]  # the trainer's log-mean-rate bias covers held-out units too
    if not (fac_dim is None or fac_dim == readin_dim):
        del out["readout_w"]
    return out


def initial_readin(data, model_cfg):
    """The model's starting read-in/read-out for ``data`` (a ``nwb_lfads.data.TrainingData``).

    The read-out bias starts at each unit's mean count per bin (its log, floored at
    ``MEAN_COUNT_FLOOR`` spikes per bin, for the Poisson likelihood), float32 [S, N], 0 for
    padding.
    With ``model_cfg.readin_init`` ``random`` the read-in and read-out weights keep the model's
    random initialisation; with ``pcr`` (and ``auto`` for several Poisson sessions) the read-in
    starts from principal-component regression (:func:`readin_init_from_data`) and the read-out
    weights stay random: the PCR read-out maps unit-variance read-in outputs to log-rates, but
    the untrained model's factors are not those outputs, and with 50 factors it started the
    ``make demo`` fit at log-rates in the tens (loss 1e24, diverged; docs/DESIGN.md,
    "Stitching").
    Returns a :class:`nwb_lfads.model.readin.ReadInit`.
    """
    from .config import Likelihood, ReadinMethod, RunConfig, resolve_for_data
    from .model.lfads import readin_size
    from .model.readin import ReadInit

    means = data.unit_means.astype(np.float32)
    poisson = model_cfg.likelihood == Likelihood.POISSON
    bias = np.log(np.maximum(means, MEAN_COUNT_FLOOR)) if poisson else means
    readout_b = np.where(data.unit_mask, bias, 0.0).astype(np.float32)
    method = model_cfg.readin_init
    if method == ReadinMethod.AUTO:
        method = resolve_for_data(RunConfig(model=model_cfg), data.n_sessions).model.readin_init
    if method == ReadinMethod.RANDOM:
        return ReadInit(readout_b=readout_b)
    width = readin_size(model_cfg, data.n_sessions)
    fitted = readin_init_from_data(data, width)
    fitted.pop("readout_w", None)  # the read-in only: see the docstring
    return ReadInit(**fitted, readout_b=readout_b)
