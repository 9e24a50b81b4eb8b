"""Neural Latents Benchmark metrics on binned arrays: Poisson NLL, bits per spike, R^2.

Glossary: B trials, T bins, N units, D behaviour channels, C conditions, F condition fields.
"Per bin" means an expected spike count in one bin (Hz * bin_size); the likelihood metrics take
rates per bin, as the NLB evaluation does. All functions are pure numpy and return floats.

Conventions (taken from nlb_tools/evaluation.py and make_tensors.py, Pei et al. 2021):

- Poisson NLL includes the log(k!) term: sum of ``r - k log r + log k!``. It cancels in bits
  per spike. A rate of exactly 0 is replaced by ``RATE_FLOOR`` = 1e-9 (NLB's floor); negative
  or non-finite rates on evaluated entries are errors.
- Spikes equal to NaN are missing (NLB pads with NaN) and are skipped, like entries where
  ``mask`` is False.
- Bits per spike: ``(NLL(null) - NLL(rates)) / (total spikes * ln 2)``; the null model predicts
  for each unit its mean count per bin over the evaluated entries (all trials and bins).
- R^2 is ``1 - SSE/SST`` per column around the target's column mean. PSTH and decoding R^2
  average it uniformly over columns like sklearn's ``r2_score``, where a constant target
  column scores 1 if predicted exactly and 0 otherwise; :func:`r2_per_neuron` returns NaN for
  such a unit instead.
- Decoding lag: behaviour at bin t is decoded from rates at bin ``t - lag_bins`` (NLB extracts
  behaviour in a window shifted by +lag, e.g. 100 ms for MC_Maze). Ridge objective is
  ``|y - Xw - b|^2 + alpha |w|^2`` with an unpenalised intercept (sklearn ``Ridge``); without a
  fixed alpha, alpha is picked from ``NLB_RIDGE_ALPHAS`` by K-fold cross-validation on training
  trials (NLB: ``GridSearchCV``, 5 folds over samples; here folds are blocks of whole trials).
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from nwb_lfads.errors import MetricInputError

# spikes per bin: a predicted rate of exactly 0 becomes this before its log in a Poisson
# likelihood or bits/spike (NLB's floor); the floor of every predicted rate that is scored
RATE_FLOOR = 1e-9
NLB_RIDGE_ALPHAS = np.logspace(-4, 0, 9)
NLB_VELOCITY_LAG_S = {
    "mc_maze": 0.100,
    "mc_maze_large": 0.120,
    "mc_maze_medium": 0.120,
    "mc_maze_small": 0.120,
    "mc_rtt": 0.140,
    "area2_bump": -0.020,
}
NLB_PSTH_SIGMA_S = {
    "mc_maze": 0.070,
    "mc_maze_large": 0.050,
    "mc_maze_medium": 0.050,
    "mc_maze_small": 0.050,
    "area2_bump": 0.040,
    "dmfc_rsg": 0.070,
}
NLB_FORWARD_S = 0.200


# ----------------------------------------------------------------------------- validation
def _as_float(fn: str, name: str, x, min_ndim: int = 1) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim < min_ndim:
        raise MetricInputError(
            f"{fn}: {name} has shape {arr.shape} but needs at least "
            f"{min_ndim} dimensions (..., units); pass a [trials, time, units] "
            "or [samples, units] array"
        )
    return arr


def _same_shape(fn: str, a_name: str, a: np.ndarray, b_name: str, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise MetricInputError(
            f"{fn}: {a_name} has shape {a.shape} but {b_name} has shape "
            f"{b.shape}; pass arrays of the same shape (same trials, bins, "
            "units in the same order)"
        )


def _keep_mask(fn: str, mask, target: np.ndarray) -> np.ndarray:
    """True where an entry is evaluated: ``mask`` (broadcast) and the target is not NaN."""
    keep = ~np.isnan(target)
    if mask is not None:
        m = np.asarray(mask)
        if m.dtype != bool:
            raise MetricInputError(
                f"{fn}: mask has dtype {m.dtype}; pass a boolean array, "
                "True where an entry is evaluated"
            )
        try:
            keep = keep & np.broadcast_to(m, target.shape)
        except ValueError:
            raise MetricInputError(
                f"{fn}: mask of shape {m.shape} does not broadcast to the "
                f"data shape {target.shape}; pass a mask of that shape "
                "or one that broadcasts (e.g. [trials, 1, 1])"
            ) from None
    if not keep.any():
        raise MetricInputError(
            f"{fn}: no entry is evaluated (mask all False or targets all "
            "NaN); select at least one observed bin"
        )
    return keep


def _check_counts(fn: str, name: str, k: np.ndarray) -> None:
    if not np.all(np.isfinite(k)) or np.any(k < 0) or np.any(k != np.round(k)):
        raise MetricInputError(
            f"{fn}: {name} must hold non-negative integer spike counts (NaN "
            "only for missing entries); found negative, fractional or "
            "infinite values. Pass binned counts, not smoothed rates"
        )


def _check_finite(fn: str, name: str, r: np.ndarray) -> None:
    if not np.all(np.isfinite(r)):
        raise MetricInputError(
            f"{fn}: {name} has NaN or infinite values on evaluated entries; "
            "predict a finite rate for every evaluated bin or mask it out"
        )


def _check_rates(fn: str, name: str, r: np.ndarray) -> None:
    _check_finite(fn, name, r)
    if np.any(r < 0):
        raise MetricInputError(
            f"{fn}: {name} has negative values (min {r.min():.3g}); rates "
            "are expected spike counts per bin and must be >= 0"
        )


def _prepare(fn: str, rates, spikes, mask, min_ndim: int = 1):
    r = _as_float(fn, "rates_per_bin", rates, min_ndim)
    k = _as_float(fn, "spikes", spikes, min_ndim)
    _same_shape(fn, "rates_per_bin", r, "spikes", k)
    keep = _keep_mask(fn, mask, k)
    _check_counts(fn, "spikes", k[keep])
    _check_rates(fn, "rates_per_bin", r[keep])
    return r, k, keep


# ----------------------------------------------------------------------------- likelihood
def _log_factorial(k: np.ndarray) -> np.ndarray:
    """log(k!) of integer-valued counts, by table lookup (no scipy)."""
    kmax = int(k.max()) if k.size else 0
    table = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, kmax + 1, dtype=np.float64)))])
    return table[k.astype(np.int64)]


def _nll(r: np.ndarray, k: np.ndarray) -> float:
    r = np.where(r == 0.0, RATE_FLOOR, r)
    return float(np.sum(r - k * np.log(r) + _log_factorial(k)))


def poisson_nll(rates_per_bin, spikes, mask=None) -> float:
    """Poisson negative log-likelihood, summed over evaluated entries, in nats.

    ``sum(r - k log r + log k!)``; exact zeros in ``r`` become ``RATE_FLOOR`` (NLB).

    Args:
        rates_per_bin: float, expected counts per bin, any shape, e.g. [B, T, N].
        spikes: int (or float with NaN for missing) counts, same shape.
        mask: optional bool, broadcastable to the shape; True = evaluated.
    Returns:
        float: total NLL (nats), not normalised by the number of entries.
    """
    r, k, keep = _prepare("poisson_nll", rates_per_bin, spikes, mask)
    return _nll(r[keep], k[keep])


def _bps(fn: str, rates, spikes, mask) -> float:
    r, k, keep = _prepare(fn, rates, spikes, mask, min_ndim=2)
    n_spikes = float(k[keep].sum())
    if n_spikes == 0:
        raise MetricInputError(
            f"{fn}: the evaluated spikes hold no spike at all, so bits per "
            "spike is undefined; evaluate on units and trials that fire"
        )
    sample_axes = tuple(range(k.ndim - 1))
    counts = np.where(keep, k, 0.0).sum(axis=sample_axes)
    n_bins = keep.sum(axis=sample_axes)
    null = np.divide(counts, n_bins, out=np.zeros_like(counts), where=n_bins > 0)
    null_full = np.broadcast_to(null, k.shape)
    return (_nll(null_full[keep], k[keep]) - _nll(r[keep], k[keep])) / (n_spikes * math.log(2))


def bits_per_spike(rates_per_bin, spikes, mask=None) -> float:
    """Bits per spike of predicted rates against each unit's mean rate (NLB's null model).

    ``(NLL(null) - NLL(rates)) / (n_spikes * ln 2)`` where the null rate of unit n is the mean
    of its evaluated counts over all trials and bins. 0 for the null model itself, positive
    when the rates explain more than a constant rate per unit.

    Args:
        rates_per_bin: float, expected counts per bin, [B, T, N] or [samples, N].
        spikes: counts, same shape; NaN = missing.
        mask: optional bool, broadcastable; True = evaluated.
    Returns:
        float: bits per spike.
    """
    return _bps("bits_per_spike", rates_per_bin, spikes, mask)


def co_bps(pred_heldout_rates, heldout_spikes, mask=None) -> float:
    """Co-smoothing bits per spike: held-out units' predicted rates on evaluation trials.

    Args:
        pred_heldout_rates: float, counts per bin, [B_eval, T, N_heldout].
        heldout_spikes: their observed counts, same shape (NaN = missing).
        mask: optional bool, broadcastable; True = evaluated.
    Returns:
        float: bits per spike (NLB ``co-bps``).
    """
    return _bps("co_bps", pred_heldout_rates, heldout_spikes, mask)


def fp_bps(pred_forward_rates, forward_spikes, mask=None) -> float:
    """Forward-prediction bits per spike over the bins after the observed window.

    Held-in and held-out units are scored together (NLB concatenates them along units).

    Args:
        pred_forward_rates: float, counts per bin, [B_eval, T_forward, N_heldin + N_heldout]
            (NLB: T_forward covers 200 ms after the window's end).
        forward_spikes: observed counts in those bins, same shape (NaN = missing).
        mask: optional bool, broadcastable; True = evaluated.
    Returns:
        float: bits per spike (NLB ``fp-bps``).
    """
    return _bps("fp_bps", pred_forward_rates, forward_spikes, mask)


# ----------------------------------------------------------------------------- R^2
def _r2_columns(pred: np.ndarray, true: np.ndarray):
    """Per-column R^2 of 2-D [samples, columns] arrays; NaN where the target is constant."""
    sse = np.sum((true - pred) ** 2, axis=0)
    sst = np.sum((true - true.mean(axis=0)) ** 2, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(sst > 0, 1.0 - sse / np.where(sst > 0, sst, 1.0), np.nan)
    return r2, sse, sst


def _r2_uniform(pred: np.ndarray, true: np.ndarray) -> float:
    """sklearn ``r2_score`` (uniform average): constant target column -> 1 if exact, else 0."""
    r2, sse, _ = _r2_columns(pred, true)
    r2 = np.where(np.isnan(r2), np.where(sse == 0, 1.0, 0.0), r2)
    return float(r2.mean())


def r2_per_neuron(pred, true, mask=None) -> tuple[np.ndarray, float]:
    """R^2 of predicted against true rates per unit, over all trials and bins.

    Used for recovery of ground-truth rates: ``1 - SSE/SST`` per unit, SST around the unit's
    mean true rate. Units are the last axis; pred and true in the same unit (Hz or per bin).

    Args:
        pred: float, [B, T, N] or [samples, N].
        true: float, same shape; NaN = missing.
        mask: optional bool, broadcastable; True = included.
    Returns:
        (per_unit [N] float64, NaN for a unit whose true rate is constant; mean over the
        finite values, NaN if none).
    """
    fn = "r2_per_neuron"
    p = _as_float(fn, "pred", pred, 2)
    t = _as_float(fn, "true", true, 2)
    _same_shape(fn, "pred", p, "true", t)
    keep = _keep_mask(fn, mask, t)
    _check_finite(fn, "pred", p[keep])
    n = t.shape[-1]
    p2, t2, k2 = p.reshape(-1, n), t.reshape(-1, n), keep.reshape(-1, n)
    per = np.full(n, np.nan)
    for j in range(n):
        if k2[:, j].sum() > 0:
            per[j] = _r2_columns(p2[k2[:, j], j : j + 1], t2[k2[:, j], j : j + 1])[0][0]
    finite = per[np.isfinite(per)]
    return per, float(finite.mean()) if finite.size else float("nan")


def _condition_labels(fn: str, conditions, n_trials: int) -> np.ndarray:
    c = np.asarray(conditions)
    if c.ndim not in (1, 2) or c.shape[0] != n_trials:
        raise MetricInputError(
            f"{fn}: conditions has shape {c.shape} but the data has "
            f"{n_trials} trials; pass one label per trial, shape [{n_trials}] "
            f"(or [{n_trials}, fields] for several condition columns)"
        )
    return c


def _rows_equal(c: np.ndarray, label) -> np.ndarray:
    return c == label if c.ndim == 1 else np.all(c == label, axis=1)


def condition_average(x, conditions) -> tuple[np.ndarray, np.ndarray]:
    """Average trials of each condition (a PSTH), ignoring NaN bins.

    Args:
        x: float, [B, T, N] (rates, smoothed spikes, in any unit).
        conditions: [B] labels, or [B, F] for several condition fields.
    Returns:
        (labels: [C] or [C, F], the sorted unique conditions; psth: float64 [C, T, N]).
    """
    fn = "condition_average"
    arr = _as_float(fn, "x", x, 3)
    c = _condition_labels(fn, conditions, arr.shape[0])
    labels = np.unique(c, axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        psth = np.stack([np.nanmean(arr[_rows_equal(c, lab)], axis=0) for lab in labels])
    return labels, psth


def psth_r2(rates, target, conditions, target_conditions=None) -> float:
    """NLB's PSTH R^2: condition-averaged predicted rates against a true PSTH.

    For every condition of the target, the predicted PSTH is the mean of ``rates`` over the
    trials of that condition; conditions without trials in ``rates`` are skipped, and bins
    where the target is NaN are ignored. R^2 is computed per unit over the stacked
    (condition, bin) rows and averaged uniformly over units (sklearn ``r2_score``).

    Args:
        rates: float, predicted rates per bin (or Hz), [B, T, N].
        target: either a per-trial array [B, T, N] of the same trials (smoothed spikes or
            ground-truth rates, same unit as ``rates``), averaged here with ``conditions``;
            or, when ``target_conditions`` is given, a PSTH [C, T, N] (NLB builds it from
            spikes of all trials smoothed with ``NLB_PSTH_SIGMA_S``; see
            :func:`condition_average`).
        conditions: [B] (or [B, F]) condition label of each trial of ``rates``.
        target_conditions: [C] (or [C, F]) labels of the PSTH rows, or None.
    Returns:
        float: mean R^2 over units.
    """
    fn = "psth_r2"
    r = _as_float(fn, "rates", rates, 3)
    c = _condition_labels(fn, conditions, r.shape[0])
    if target_conditions is None:
        t = _as_float(fn, "target", target, 3)
        _same_shape(fn, "rates", r, "target", t)
        labels, psth = condition_average(t, c)
    else:
        psth = _as_float(fn, "target", target, 3)
        labels = np.asarray(target_conditions)
        if labels.shape[0] != psth.shape[0] or psth.shape[1:] != r.shape[1:]:
            raise MetricInputError(
                f"{fn}: target PSTH has shape {psth.shape} with "
                f"{labels.shape[0]} condition labels, rates have shape "
                f"{r.shape}; pass a [conditions, time, units] PSTH with one "
                "label per row and the rates' bins and units"
            )
    preds, trues = [], []
    for lab, true_c in zip(labels, psth):
        sel = _rows_equal(c, lab)
        if not sel.any():
            continue
        valid = ~np.isnan(true_c[:, 0])
        pred_c = r[sel].mean(axis=0)[valid]
        _check_finite(fn, "rates", pred_c)
        preds.append(pred_c)
        trues.append(true_c[valid])
    if not preds:
        raise MetricInputError(
            f"{fn}: no condition of the target has a trial in rates; check "
            "that conditions and target_conditions use the same labels"
        )
    return _r2_uniform(np.concatenate(preds), np.concatenate(trues))


# ----------------------------------------------------------------------------- decoding
def lag_align(rates, behavior, lag_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Pair behaviour at bin t with rates at bin ``t - lag_bins`` within each trial.

    Positive lag (neural activity leads, NLB MC_Maze: 100 ms) drops the first ``lag_bins``
    behaviour bins and the last rate bins; negative lag does the opposite.

    Args:
        rates: float, [B, T, N]. behavior: float, [B, T, D] or [B, T].
        lag_bins: int, |lag_bins| < T.
    Returns:
        (rates [B, T - |lag|, N], behavior [B, T - |lag|, D]).
    """
    fn = "lag_align"
    r = _as_float(fn, "rates", rates, 3)
    b = _as_float(fn, "behavior", behavior, 2)
    b = b[..., None] if b.ndim == 2 else b
    if b.shape[:2] != r.shape[:2]:
        raise MetricInputError(
            f"{fn}: rates have shape {r.shape} but behavior has shape "
            f"{b.shape}; both need the same [trials, time] leading axes"
        )
    lag, n_t = int(lag_bins), r.shape[1]
    if abs(lag) >= n_t:
        raise MetricInputError(
            f"{fn}: lag_bins={lag} leaves no bin of the {n_t}-bin trials; "
            "use a lag shorter than the window"
        )
    if lag >= 0:
        return r[:, : n_t - lag], b[:, lag:]
    return r[:, -lag:], b[:, : n_t + lag]


def fit_ridge(x, y, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Ridge regression with an unpenalised intercept (sklearn ``Ridge`` objective).

    Minimises ``sum |y - x w - b|^2 + alpha |w|^2``.

    Args:
        x: float [S, P]. y: float [S, D]. alpha: >= 0.
    Returns:
        (w [P, D], b [D]).
    """
    if alpha < 0:
        raise MetricInputError(f"fit_ridge: alpha={alpha} is negative; use alpha >= 0")
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    xm, ym = x.mean(axis=0), y.mean(axis=0)
    xc, yc = x - xm, y - ym
    gram = xc.T @ xc + alpha * np.eye(x.shape[1])
    try:
        w = np.linalg.solve(gram, xc.T @ yc)
    except np.linalg.LinAlgError:
        w = np.linalg.lstsq(gram, xc.T @ yc, rcond=None)[0]
    return w, ym - xm @ w


def _trial_indices(fn: str, sel, n_trials: int, name: str) -> np.ndarray:
    s = np.asarray(sel)
    if s.dtype == bool:
        if s.shape != (n_trials,):
            raise MetricInputError(
                f"{fn}: {name} is a boolean mask of shape {s.shape}; "
                f"expected shape ({n_trials},), one entry per trial"
            )
        s = np.flatnonzero(s)
    s = s.astype(np.int64).ravel()
    if s.size == 0:
        raise MetricInputError(f"{fn}: {name} selects no trial; select at least one")
    if s.min() < 0 or s.max() >= n_trials:
        raise MetricInputError(f"{fn}: {name} has indices outside 0..{n_trials - 1}")
    return s


def _flat_rows(fn: str, r: np.ndarray, b: np.ndarray):
    x, y = r.reshape(-1, r.shape[-1]), b.reshape(-1, b.shape[-1])
    ok = ~np.any(np.isnan(y), axis=1)
    x, y = x[ok], y[ok]
    if not np.all(np.isfinite(x)):
        raise MetricInputError(
            f"{fn}: rates are NaN or infinite on bins where behaviour is "
            "defined; predict finite rates for every decoded bin"
        )
    return x, y


def ridge_decoding_r2(
    rates,
    behavior,
    train_trials,
    eval_trials=None,
    *,
    lag_bins: int = 0,
    alpha: float | None = None,
    alphas=NLB_RIDGE_ALPHAS,
    n_folds: int = 5,
) -> float:
    """Decode a behaviour variable from rates by ridge regression; R^2 on evaluation trials.

    Behaviour at bin t is decoded from rates at bin ``t - lag_bins`` (:func:`lag_align`); bins
    where behaviour is NaN are dropped. With ``alpha=None`` alpha is chosen from ``alphas`` by
    the mean R^2 over ``n_folds`` blocks of training trials, then refit on all of them.

    Args:
        rates: float, [B, T, N] (per bin or Hz; R^2 does not depend on the scale).
        behavior: float, [B, T, D] or [B, T], e.g. hand velocity.
        train_trials, eval_trials: bool [B] masks or int indices; eval defaults to the rest.
        lag_bins: int. alpha: fixed ridge penalty, or None for the grid search.
    Returns:
        float: R^2 on eval trials, averaged uniformly over behaviour channels.
    """
    fn = "ridge_decoding_r2"
    r, b = lag_align(rates, behavior, lag_bins)
    train = _trial_indices(fn, train_trials, r.shape[0], "train_trials")
    if eval_trials is None:
        eval_idx = np.setdiff1d(np.arange(r.shape[0]), train)
    else:
        eval_idx = _trial_indices(fn, eval_trials, r.shape[0], "eval_trials")
    if eval_idx.size == 0:
        raise MetricInputError(
            f"{fn}: no evaluation trial is left; pass eval_trials or leave "
            "some trials out of train_trials"
        )
    if alpha is None:
        folds = [f for f in np.array_split(train, min(n_folds, train.size)) if f.size]
        if len(folds) < 2:
            raise MetricInputError(
                f"{fn}: choosing alpha by cross-validation needs at least 2 "
                "training trials; add trials or pass a fixed alpha"
            )
        scores = []
        for a in alphas:
            fold_r2 = []
            for i, held in enumerate(folds):
                fit_idx = np.concatenate([f for j, f in enumerate(folds) if j != i])
                w, c = fit_ridge(*_flat_rows(fn, r[fit_idx], b[fit_idx]), float(a))
                xv, yv = _flat_rows(fn, r[held], b[held])
                fold_r2.append(_r2_uniform(xv @ w + c, yv))
            scores.append(np.mean(fold_r2))
        alpha = float(np.asarray(alphas)[int(np.argmax(scores))])
    w, c = fit_ridge(*_flat_rows(fn, r[train], b[train]), float(alpha))
    xe, ye = _flat_rows(fn, r[eval_idx], b[eval_idx])
    if ye.shape[0] == 0:
        raise MetricInputError(f"{fn}: behaviour is NaN on every evaluation bin")
    return _r2_uniform(xe @ w + c, ye)


def velocity_r2(
    rates,
    velocity,
    train_trials,
    eval_trials=None,
    *,
    bin_size: float,
    lag_s: float = NLB_VELOCITY_LAG_S["mc_maze"],
    alpha: float | None = None,
) -> float:
    """NLB's velocity decoding R^2: :func:`ridge_decoding_r2` with the lag given in seconds.

    Args:
        rates: float, [B, T, N]. velocity: float, [B, T, D] (e.g. hand_vel x, y).
        train_trials, eval_trials: bool masks or indices (see :func:`ridge_decoding_r2`).
        bin_size: s. lag_s: s, velocity at t decoded from rates at t - lag_s
            (``NLB_VELOCITY_LAG_S``: 0.1 for MC_Maze, 0.12 for the scaling sets).
    Returns:
        float: R^2 over eval trials, averaged over velocity channels.
    """
    if not bin_size > 0:
        raise MetricInputError(
            f"velocity_r2: bin_size={bin_size} must be a positive number of seconds"
        )
    return ridge_decoding_r2(
        rates,
        velocity,
        train_trials,
        eval_trials,
        lag_bins=int(round(lag_s / bin_size)),
        alpha=alpha,
    )
