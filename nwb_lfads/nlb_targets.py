"""nlb_tools evaluation targets: score rates like the Neural Latents Benchmark's ``evaluate``.

``make_eval_target_tensors`` (nlb_tools/make_tensors.py) writes an HDF5 file with one group per
dataset, named ``<dataset>`` at 5 ms bins and ``<dataset>_<ms>`` otherwise (``mc_maze_small``,
``mc_maze_small_20``), holding (B_ev eval trials = NLB ``split == 'val'``, B_tr = ``'train'``,
both in trials-table order; T bins; T_f forward bins; N_in held-in and N_out held-out units; D
behaviour channels; C conditions):

- ``eval_spikes_heldout``: counts [B_ev, T, N_out] -> ``targets_co_bps``;
- ``train_behavior`` [B_tr, T, D], ``eval_behavior`` [B_ev, T, D] (already shifted by NLB's lag)
  -> ``targets_vel_r2``: ridge from rates of all units, alpha by cross-validation on train trials
  (one decoder per column of ``train_decode_mask`` / ``eval_decode_mask`` where present, the
  R^2 averaged, as for area2_bump);
- ``psth`` [C, T, N] with ``eval_cond_idx`` (per condition, the indices of its eval trials;
  NLB's layout), or a per-eval-trial PSTH [B_ev, T, N] / [B_ev * T, N]; units held-in then
  held-out -> ``targets_psth_r2``;
- ``eval_spikes_heldin_forward`` [B_ev, T_f, N_in] and ``eval_spikes_heldout_forward``
  [B_ev, T_f, N_out] -> ``targets_fp_bps`` (rates of the forward bins: runs fitted with
  ``data.forward``).

All rates here are expected counts per bin in NLB's unit order (held-in, then held-out).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from . import metrics as M
from .errors import InputFileError, TargetsError

# the datasets of NLB'21 (nlb_tools ``evaluate``); a group is ``<name>`` at 5 ms, ``<name>_20``
# at 20 ms (``<name>_<ms>`` for other bin sizes, which NLB does not score)
NLB_DATASETS = (
    "mc_maze",
    "mc_rtt",
    "area2_bump",
    "dmfc_rsg",
    "mc_maze_large",
    "mc_maze_medium",
    "mc_maze_small",
)


def nlb_group_name(dataset: str, bin_size: float) -> str:
    """The HDF5 group nlb_tools uses for ``dataset`` at ``bin_size`` s: ``mc_maze_small`` at
    5 ms, ``mc_maze_small_20`` at 20 ms (a name already carrying a suffix is returned as is).

    Raises:
        TargetsError: ``dataset`` is not one of ``NLB_DATASETS`` (with or without a suffix).
    """
    base = re.sub(r"_\d+$", "", dataset)
    if base not in NLB_DATASETS:
        raise TargetsError(
            f"--dataset {dataset!r} is not a Neural Latents Benchmark dataset; pass one of "
            f"{', '.join(NLB_DATASETS)}."
        )
    if base != dataset:
        return dataset
    ms = round(bin_size * 1000)
    return base if ms == 5 else f"{base}_{ms}"


def _open_h5(path, what: str):
    import h5py

    path = Path(path).expanduser()
    if not path.is_file() or not h5py.is_hdf5(path):
        raise InputFileError(f"{path}: {what} file not found or not HDF5. {_FIX[what]}")
    return h5py.File(path, "r")


_FIX = {
    "targets": "Pass the .h5 file that nlb_tools' make_eval_target_tensors wrote.",
    "submission": "Pass the .h5 file that 'nwb-lfads evaluate --nlb-submission' wrote.",
}


def _target_group(f, path, dataset: str | None, bin_size: float):
    groups = [key for key in f if hasattr(f[key], "keys")]
    if dataset is not None:
        for name in (dataset, f"{dataset}_{round(bin_size * 1000)}"):
            if name in f:
                return f[name], name
        raise TargetsError(
            f"{path}: no dataset {dataset!r} in the targets (datasets: {groups}). "
            f"Pass one of those names."
        )
    if "eval_spikes_heldout" in f:
        return f, "/"
    suffix = (
        "" if abs(bin_size - 0.005) < 1e-9 else f"_{round(bin_size * 1000)}"
    )  # nlb_tools' naming
    matching = [g for g in groups if (g.endswith(suffix) if suffix else not re.search(r"_\d+$", g))]
    choice = groups if len(groups) == 1 else matching
    if len(choice) != 1:
        raise TargetsError(
            f"{path}: cannot tell which targets dataset to use (datasets: {groups}; bins of "
            f"{bin_size * 1000:g} ms). Pass --dataset NAME."
        )
    return f[choice[0]], choice[0]


def _check_shape(path, key, arr, expected, what: str):
    if arr.shape[: len(expected)] != tuple(expected):
        raise TargetsError(
            f"{path}: targets '{key}' have shape {arr.shape} but the rates give "
            f"{tuple(expected)} ({what}). Make the targets from the same file, trials, window "
            f"and bin size as the fit."
        )


def _psth_target(group, path, n_eval: int, n_t: int, n_units: int):
    """(psth [C, T, N], condition label per eval trial [B_ev] (-1: none), labels [C])."""
    psth = group["psth"][()].astype(np.float64)
    if "eval_cond_idx" in group:  # NLB: psth [C, T, N], per condition its eval trials' indices
        idx = [np.asarray(i, dtype=np.int64).ravel() for i in group["eval_cond_idx"][()]]
        _check_shape(path, "psth", psth, (len(idx), n_t, n_units), "conditions, bins, units")
        cond = np.full(n_eval, -1)
        for c, rows in enumerate(idx):
            if rows.size and (rows.min() < 0 or rows.max() >= n_eval):
                raise TargetsError(
                    f"{path}: targets 'eval_cond_idx' name trial {int(rows.max())} but there are "
                    f"{n_eval} evaluation trials. Make the targets from the same trials as the fit."
                )
            cond[rows] = c
        return psth, cond, np.arange(len(idx))
    if psth.ndim == 2 and len(psth) == n_eval * n_t:
        psth = psth.reshape(n_eval, n_t, -1)
    _check_shape(path, "psth", psth, (n_eval, n_t, n_units), "evaluation trials, bins, units")
    rows = np.arange(n_eval)
    return psth, rows, rows


def _decode_masks(group, path, n_train: int, n_eval: int) -> list[tuple]:
    """[(train bool [B_tr], eval bool [B_ev])]: nlb_tools' ``train_decode_mask`` /
    ``eval_decode_mask`` columns (one decoder each), or one pair of all trials."""
    if "train_decode_mask" not in group or "eval_decode_mask" not in group:
        return [(np.ones(n_train, bool), np.ones(n_eval, bool))]
    m_tr = np.asarray(group["train_decode_mask"][()], bool).reshape(n_train, -1)
    m_ev = np.asarray(group["eval_decode_mask"][()], bool).reshape(n_eval, -1)
    if m_tr.shape[1] != m_ev.shape[1]:
        raise TargetsError(
            f"{path}: targets 'train_decode_mask' has {m_tr.shape[1]} masks and "
            f"'eval_decode_mask' {m_ev.shape[1]}. Make the targets with nlb_tools again."
        )
    return [(m_tr[:, i], m_ev[:, i]) for i in range(m_tr.shape[1])]


def score_group(group, path, eval_rates, train_rates, n_heldin: int, forward=None):
    """Score rates against one targets group, as nlb_tools' ``evaluate`` does.

    Args:
        group: an h5py group of ``make_eval_target_tensors``; path: its file (for messages).
        eval_rates: float, counts per bin [B_ev, T, N_in + N_out] (held-in units first).
        train_rates: the same for the 'train' trials [B_tr, T, N], or None (no decoding).
        n_heldin: N_in.
        forward: counts per bin [B_ev, T_f, N_in + N_out] of the forward bins, or None.
    Returns:
        (metrics ``targets_co_bps``, ``targets_vel_r2``, ``targets_psth_r2``,
        ``targets_fp_bps`` where the targets and rates support them; skipped: {key: reason}).
    """
    r_ev = np.asarray(eval_rates, dtype=np.float64)
    n_ev, n_t, n_units = r_ev.shape
    out, skipped = {}, {}
    if "eval_spikes_heldout" in group:
        spikes = group["eval_spikes_heldout"][()].astype(np.float64)
        _check_shape(
            path,
            "eval_spikes_heldout",
            spikes,
            (n_ev, n_t, n_units - n_heldin),
            "evaluation trials, bins, held-out units",
        )
        out["targets_co_bps"] = float(M.co_bps(r_ev[..., n_heldin:], spikes))
    b_tr, b_ev = (
        group[k][()].astype(np.float64) if k in group else None
        for k in ("train_behavior", "eval_behavior")
    )
    if b_tr is not None and b_ev is not None and (b_tr.ndim != 3 or b_ev.ndim != 3):
        skipped["targets_vel_r2"] = (
            f"behaviour targets of shape {b_tr.shape} are per trial, not per bin "
            "(dmfc_rsg); only time-resolved behaviour is decoded"
        )
    elif b_tr is not None and b_ev is not None and train_rates is None:
        skipped["targets_vel_r2"] = "no rates of 'train' trials to fit the decoder on"
    elif b_tr is not None and b_ev is not None:
        r_tr = np.asarray(train_rates, dtype=np.float64)
        _check_shape(path, "train_behavior", b_tr, (len(r_tr), n_t), "'train' trials, bins")
        _check_shape(path, "eval_behavior", b_ev, (n_ev, n_t), "evaluation trials, bins")
        both = np.concatenate([r_tr, r_ev])
        behavior = np.concatenate([b_tr, b_ev])
        masks = _decode_masks(group, path, len(r_tr), n_ev)
        scores = []
        for m_tr, m_ev in masks:  # NLB: one decoder per mask (area2_bump), R^2 averaged
            idx = np.concatenate([np.flatnonzero(m_tr), len(r_tr) + np.flatnonzero(m_ev)])
            n_fit = int(m_tr.sum())
            scores.append(
                M.ridge_decoding_r2(
                    both[idx], behavior[idx], np.arange(n_fit), np.arange(n_fit, len(idx))
                )
            )
        out["targets_vel_r2"] = float(np.mean(scores))
    if "psth" in group:
        jitter = group["eval_jitter"][()] if "eval_jitter" in group else None
        if jitter is not None and np.any(jitter):
            skipped["targets_psth_r2"] = "jittered evaluation trials (eval_jitter) are not scored"
        else:
            psth, cond, labels = _psth_target(group, path, n_ev, n_t, n_units)
            out["targets_psth_r2"] = float(M.psth_r2(r_ev, psth, cond, labels))
    fwd_keys = ("eval_spikes_heldin_forward", "eval_spikes_heldout_forward")
    if all(k in group for k in fwd_keys):
        if forward is None:
            skipped["targets_fp_bps"] = (
                "no rates of the forward bins: fit with --forward SECONDS (data.forward)"
            )
        else:
            f_in, f_out = (group[k][()].astype(np.float64) for k in fwd_keys)
            fwd = np.asarray(forward, dtype=np.float64)
            n_f = f_in.shape[1] if f_in.ndim == 3 else -1
            if fwd.shape[1] < n_f:
                skipped["targets_fp_bps"] = (
                    f"the rates cover {fwd.shape[1]} forward bins, the targets {n_f}: fit with a "
                    f"longer --forward"
                )
            else:
                _check_shape(
                    path, fwd_keys[0], f_in, (n_ev, n_f, n_heldin), "eval trials, bins, held-in"
                )
                _check_shape(
                    path,
                    fwd_keys[1],
                    f_out,
                    (n_ev, n_f, n_units - n_heldin),
                    "eval trials, bins, held-out",
                )
                out["targets_fp_bps"] = float(
                    M.fp_bps(fwd[:, :n_f], np.concatenate([f_in, f_out], axis=-1))
                )
    return out, skipped


def score_targets(
    path,
    rates_hz,
    bin_size: float,
    heldout,
    eval_trials,
    train_trials,
    dataset: str | None = None,
    forward_hz=None,
) -> tuple[dict, dict]:
    """Score rates against nlb_tools evaluation targets (``make_eval_target_tensors`` HDF5).

    Args:
        path: the targets file. rates_hz: float Hz [B, T, N] of the session.
        heldout: bool [N]; eval_trials, train_trials: bool [B] (NLB's 'val' and 'train' trials,
            in trials-table order, which is NLB's order).
        dataset: the group to use (e.g. ``mc_maze_small``); default: the only one, or the one
            whose suffix matches the bin size (none at 5 ms, ``_20`` at 20 ms).
        forward_hz: float Hz [B, T_f, N] of the forward bins, or None.
    Returns:
        (metrics ``targets_co_bps``, ``targets_vel_r2``, ``targets_psth_r2``, ``targets_fp_bps``
        where the targets hold them, plus ``targets_dataset``; skipped: {key: reason}).
    """
    ho, ev, tr = (
        np.asarray(heldout, bool),
        np.asarray(eval_trials, bool),
        np.asarray(train_trials, bool),
    )

    def nlb(x):  # Hz -> per bin, held-in then held-out units
        x = np.asarray(x, dtype=np.float64) * bin_size
        return np.concatenate([x[..., ~ho], x[..., ho]], axis=-1)

    r_nlb = nlb(rates_hz)
    fwd = None if forward_hz is None else nlb(forward_hz)[ev]
    with _open_h5(path, "targets") as f:
        group, name = _target_group(f, Path(path).expanduser(), dataset, bin_size)
        out, skipped = score_group(
            group, Path(path).expanduser(), r_nlb[ev], r_nlb[tr], int((~ho).sum()), fwd
        )
    return {"targets_dataset": name, **out}, skipped
