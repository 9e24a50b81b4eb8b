"""Baselines LFADS is compared with: Gaussian-smoothed spikes and NLB's smoothing + GLM.

Glossary: B trials, T bins, N units (N_in held-in, N_out held-out), S samples (B * T), P
predictors. Counts and rates are "per bin" (expected spikes in one bin) unless named ``_hz``.

NLB's co-smoothing baseline (nlb_tools examples/baselines/smoothing, Pei et al. 2021):
held-in spikes are smoothed with a normalised Gaussian (zero padding at the trial edges),
``log(smoothed + 1e-4)`` is the input of a Poisson GLM (log link, intercept, L2 penalty
``alpha``, sklearn ``PoissonRegressor``) fitted per held-out unit on training trials; its
predictions on evaluation trials, clipped to [1e-9, 1e20], are the held-out rates. NLB's
per-dataset (kernel sd, alpha) are in ``NLB_SMOOTHING_DEFAULTS``. Our kernel is truncated at
``ceil(3 sd)`` bins on each side and has odd length (NLB's ``int(6 sd)`` taps may be even,
which shifts it by half a bin); the GLM is fitted here by damped Newton (IRLS) in numpy.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from nwb_lfads.errors import MetricInputError
from nwb_lfads.metrics import RATE_FLOOR

NLB_SMOOTHING_DEFAULTS = {  # dataset: (kernel sd in s, GLM alpha), at 5 ms bins
    "mc_maze": (0.050, 0.01),
    "mc_rtt": (0.030, 0.1),
    "area2_bump": (0.030, 0.01),
    "dmfc_rsg": (0.060, 0.001),
    "mc_maze_large": (0.040, 0.1),
    "mc_maze_medium": (0.060, 0.1),
    "mc_maze_small": (0.060, 0.1),
}
GLM_LOG_OFFSET = 1e-4
GLM_RATE_CLIP = (RATE_FLOOR, 1e20)  # spikes per bin, NLB clip of the GLM predictions
EDGES = ("renormalize", "zero", "conserve")


def _check_bin_sigma(fn: str, bin_size: float, sigma_s: float) -> None:
    if not (np.isfinite(bin_size) and bin_size > 0):
        raise MetricInputError(
            f"{fn}: bin_size={bin_size} must be a positive number of seconds (e.g. 0.005)"
        )
    if not (np.isfinite(sigma_s) and sigma_s >= 0):
        raise MetricInputError(
            f"{fn}: sigma_s={sigma_s} must be a standard deviation in "
            "seconds >= 0 (0 means no smoothing)"
        )


def _check_spikes(fn: str, name: str, spikes, n_units: int | None = None) -> np.ndarray:
    x = np.asarray(spikes, dtype=np.float64)
    if x.ndim != 3:
        raise MetricInputError(
            f"{fn}: {name} has shape {x.shape}; expected [trials, time, units] counts"
        )
    if not np.all(np.isfinite(x)) or np.any(x < 0):
        raise MetricInputError(
            f"{fn}: {name} holds negative, NaN or infinite values; pass "
            "binned spike counts (mask missing bins before smoothing)"
        )
    if n_units is not None and x.shape[2] != n_units:
        raise MetricInputError(
            f"{fn}: {name} has {x.shape[2]} units but {n_units} were "
            "expected; pass the same held-in units in the same order"
        )
    return x


def gaussian_kernel(
    bin_size: float, sigma_s: float, truncate: float | None = 3.0, n_bins: int | None = None
) -> np.ndarray:
    """Normalised, symmetric Gaussian kernel sampled at bin centres.

    Args:
        bin_size: s. sigma_s: s, standard deviation (0 gives the identity kernel [1.0]).
        truncate: half-width in standard deviations, ``h = ceil(truncate * sigma_s / bin_size)``
            bins; None: ``h = n_bins - 1``, every bin of a trial of ``n_bins`` bins.
        n_bins: bins in a trial (only with ``truncate=None``).
    Returns:
        float64 [2h + 1] summing to 1.
    """
    _check_bin_sigma("gaussian_kernel", bin_size, sigma_s)
    sd = sigma_s / bin_size
    if sd == 0:
        return np.ones(1)
    h = int(math.ceil(truncate * sd)) if truncate is not None else max(int(n_bins) - 1, 0)
    k = np.exp(-0.5 * (np.arange(-h, h + 1) / sd) ** 2)
    return k / k.sum()


def smooth_spikes(
    spikes,
    bin_size: float,
    sigma_s: float,
    edge: str = "renormalize",
    *,
    leave_bin_out: bool = False,
    truncate: float | None = 3.0,
) -> np.ndarray:
    """Gaussian smoothing of each trial along time (non-causal, centred kernel).

    The one smoothing of the package (baselines, stitching, summaries, figures).
    ``out[b, t, n] = sum_j k[j] * spikes[b, t + j - h, n]``, bins outside the trial are zero.
    Away from the edges (h bins) the total count is preserved. At the edges:
    ``edge="renormalize"`` divides each output bin by the kernel mass inside the trial, so a
    constant rate is estimated without bias (the total count is then not exactly preserved);
    ``edge="zero"`` keeps the zero padding (NLB's ``np.convolve(..., "same")``), which lowers
    the estimate near the edges; ``edge="conserve"`` renormalises each *input* bin's kernel to
    the trial instead, so each trial's total count is preserved exactly (nothing leaks out).
    ``leave_bin_out`` zeroes the kernel's centre tap, so a bin's rate comes from its neighbours
    only (with ``sigma_s`` under half a bin: the mean of the trial's other bins).

    Args:
        spikes: counts, [B, T, N] (int or float, finite, >= 0).
        bin_size: s. sigma_s: s (0 returns the counts unchanged, as float64).
        edge: "renormalize", "zero" or "conserve".
        leave_bin_out: exclude each bin's own count from its estimate.
        truncate: kernel half-width in standard deviations (None: the whole trial).
    Returns:
        float64 [B, T, N], spikes per bin.
    """
    fn = "smooth_spikes"
    x = _check_spikes(fn, "spikes", spikes)
    if edge not in EDGES:
        raise MetricInputError(f"{fn}: edge={edge!r} is not one of {EDGES}")
    n_t = x.shape[1]
    k = gaussian_kernel(bin_size, sigma_s, truncate, n_t).copy()
    h = len(k) // 2
    if leave_bin_out:
        if h == 0:  # kernel narrower than a bin: the trial mean of the other bins
            return (x.sum(axis=1, keepdims=True) - x) / max(n_t - 1, 1)
        k[h] = 0.0
    if edge != "zero":  # kernel mass inside the trial around each bin ([T]; k is symmetric)
        inside = np.zeros(n_t + 2 * h)
        inside[h : h + n_t] = 1.0
        mass = np.zeros(n_t)
        for j, kj in enumerate(k):
            mass += kj * inside[j : j + n_t]
    if edge == "conserve":
        x = x / mass[None, :, None]
    padded = np.zeros((x.shape[0], n_t + 2 * h, x.shape[2]))
    padded[:, h : h + n_t] = x
    out = np.zeros_like(x)
    for j, kj in enumerate(k):
        out += kj * padded[:, j : j + n_t]
    if edge == "renormalize":
        out /= mass[None, :, None]
    return out


def to_hz(rates_per_bin, bin_size: float) -> np.ndarray:
    """Convert rates per bin (float, any shape) to Hz: divide by ``bin_size`` (s)."""
    if not (np.isfinite(bin_size) and bin_size > 0):
        raise MetricInputError(f"to_hz: bin_size={bin_size} must be a positive number of seconds")
    return np.asarray(rates_per_bin, dtype=np.float64) / bin_size


def smoothing_rates(spikes, bin_size: float, sigma_s: float = 0.05) -> np.ndarray:
    """Per-unit smoothed-spikes estimate of firing rates, in Hz.

    Args:
        spikes: counts, [B, T, N]. bin_size: s. sigma_s: s, Gaussian sd.
    Returns:
        float64 [B, T, N], Hz (edges renormalised, see :func:`smooth_spikes`).
    """
    return to_hz(smooth_spikes(spikes, bin_size, sigma_s, edge="renormalize"), bin_size)


def _glm_objective(xa: np.ndarray, y: np.ndarray, theta: np.ndarray, l2: float) -> float:
    eta = xa @ theta
    with np.errstate(over="ignore"):
        return float(np.mean(np.exp(eta) - y * eta) + 0.5 * l2 * theta[:-1] @ theta[:-1])


def _fit_one(xa: np.ndarray, y: np.ndarray, l2: float, max_iter: int, tol: float):
    n_s, n_p = xa.shape
    theta = np.zeros(n_p)
    theta[-1] = math.log(max(float(y.mean()), GLM_RATE_CLIP[0]))
    penalty = np.full(n_p, l2)
    penalty[-1] = 0.0
    obj = _glm_objective(xa, y, theta, l2)
    for _ in range(max_iter):
        mu = np.exp(xa @ theta)
        grad = xa.T @ (mu - y) / n_s + penalty * theta
        hess = (xa * mu[:, None]).T @ xa / n_s + np.diag(penalty)
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(hess, grad, rcond=None)[0]
        decrement = float(grad @ step)
        if decrement / 2 <= tol:
            return theta, True
        t = 1.0
        while t > 1e-10:
            new = theta - t * step
            new_obj = _glm_objective(xa, y, new, l2)
            if new_obj <= obj - 1e-4 * t * decrement:
                break
            t /= 2
        else:
            return theta, True  # no descent possible in floating point: at the optimum
        theta, obj = new, new_obj
    return theta, False


def fit_poisson_glm(
    x, y, l2: float = 0.0, *, max_iter: int = 100, tol: float = 1e-10
) -> tuple[np.ndarray, np.ndarray]:
    """Poisson GLM with log link and intercept, fitted per output by damped Newton (IRLS).

    Minimises ``mean_s(exp(eta) - y * eta) + l2 / 2 * |w|^2``, ``eta = x @ w + b``, the
    intercept unpenalised (sklearn ``PoissonRegressor(alpha=l2)``'s objective).

    Args:
        x: float [S, P] predictors. y: counts [S] or [S, U] (>= 0).
        l2: ridge penalty >= 0. max_iter, tol: Newton iterations and stopping threshold on
            half the squared Newton decrement.
    Returns:
        (w [P, U] float64, b [U] float64); for 1-D ``y``, w is [P] and b a 0-d array.
    """
    fn = "fit_poisson_glm"
    xs = np.asarray(x, dtype=np.float64)
    ys = np.asarray(y, dtype=np.float64)
    if xs.ndim != 2 or ys.ndim not in (1, 2) or ys.shape[0] != xs.shape[0]:
        raise MetricInputError(
            f"{fn}: x has shape {xs.shape} and y {ys.shape}; expected x "
            "[samples, predictors] and y [samples] or [samples, outputs]"
        )
    if not (np.all(np.isfinite(xs)) and np.all(np.isfinite(ys)) and np.all(ys >= 0)):
        raise MetricInputError(f"{fn}: x must be finite and y finite counts >= 0")
    if not (np.isfinite(l2) and l2 >= 0):
        raise MetricInputError(f"{fn}: l2={l2} must be >= 0")
    y2 = ys[:, None] if ys.ndim == 1 else ys
    xa = np.hstack([xs, np.ones((xs.shape[0], 1))])
    thetas = []
    for u in range(y2.shape[1]):
        theta, converged = _fit_one(xa, y2[:, u], float(l2), max_iter, tol)
        if not converged:
            warnings.warn(
                f"{fn}: output {u} did not converge in {max_iter} Newton steps",
                RuntimeWarning,
                stacklevel=2,
            )
        thetas.append(theta)
    th = np.stack(thetas, axis=1)
    w, b = th[:-1], th[-1]
    return (w[:, 0], b[0]) if ys.ndim == 1 else (w, b)


def predict_poisson_glm(x, w, b) -> np.ndarray:
    """Expected counts ``exp(x @ w + b)`` of a fitted GLM: x [S, P], w [P, U], b [U] -> [S, U]."""
    with np.errstate(over="ignore"):
        return np.exp(np.asarray(x, dtype=np.float64) @ w + b)


def smoothing_baseline(
    train_spikes_heldin,
    train_spikes_heldout,
    eval_spikes_heldin,
    bin_size: float,
    sigma_s: float = 0.05,
    l2: float = 0.1,
    *,
    edge: str = "zero",
) -> np.ndarray:
    """NLB's co-smoothing baseline: smoothed held-in spikes -> Poisson GLM per held-out unit.

    Args:
        train_spikes_heldin: counts [B, T, N_in]; train_spikes_heldout: counts [B, T, N_out]
            (the training trials, where held-out units are observed).
        eval_spikes_heldin: counts [E, T_e, N_in] of the evaluation trials.
        bin_size: s. sigma_s: s, kernel sd (NLB: 0.05 MC_Maze, 0.06 MC_Maze_Small).
        l2: GLM penalty (NLB alpha: 0.01 MC_Maze, 0.1 MC_Maze_Small and the other scaling
            sets). The default 0.1 suits sessions of ~100 trials; 0.01 overfits them (on 75
            MC_Maze_Small trials, 27 pseudo-held-out units: co-bps -0.05 vs 0.10 with 0.1).
        edge: smoothing edge handling (see :func:`smooth_spikes`; NLB's is "zero").
    Returns:
        float64 [E, T_e, N_out]: predicted held-out counts per bin on evaluation trials,
        clipped to [1e-9, 1e20].
    """
    fn = "smoothing_baseline"
    _check_bin_sigma(fn, bin_size, sigma_s)
    tr_in = _check_spikes(fn, "train_spikes_heldin", train_spikes_heldin)
    tr_out = _check_spikes(fn, "train_spikes_heldout", train_spikes_heldout)
    ev_in = _check_spikes(fn, "eval_spikes_heldin", eval_spikes_heldin, tr_in.shape[2])
    if tr_out.shape[:2] != tr_in.shape[:2]:
        raise MetricInputError(
            f"{fn}: train_spikes_heldout has shape {tr_out.shape} but "
            f"train_spikes_heldin has {tr_in.shape}; they must cover the "
            "same trials and bins"
        )

    def log_smoothed(x: np.ndarray) -> np.ndarray:
        s = smooth_spikes(x, bin_size, sigma_s, edge=edge)
        return np.log(s + GLM_LOG_OFFSET).reshape(-1, x.shape[2])

    w, b = fit_poisson_glm(log_smoothed(tr_in), tr_out.reshape(-1, tr_out.shape[2]), l2)
    rates = np.clip(predict_poisson_glm(log_smoothed(ev_in), w, b), *GLM_RATE_CLIP)
    return rates.reshape(ev_in.shape[0], ev_in.shape[1], tr_out.shape[2])
