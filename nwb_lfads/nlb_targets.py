"""nlb_tools evaluation targets: score rates like the Neural Latents Benchmark's ``evaluate``.

``make_eval_target_tensors`` (nlb_tools/make_tensors.py) writes an HDF5 file with one group per
dataset, named ``<dataset>`` at 5 ms bins and ``<dataset>_<ms>`` otherwise (``mc_maze_small``,
``mc_maze_small_20``), holding (B_ev eval trials = NLB ``split == 'val'``, B_tr = ``'train'``,
both in trials-table order; T bins; N_out held-out units; D behaviour channels):

- ``eval_spikes_heldout``: counts [B_ev, T, N_out] -> ``targets_co_bps``;
- ``train_behavior`` [B_tr, T, D], ``eval_behavior`` [B_ev, T, D] (already shifted by NLB's lag)
  -> ``targets_vel_r2``: ridge from rates of all units, alpha by cross-validation on train trials;
- ``psth``: [B_ev * T, N] (each eval trial's condition PSTH, units held-in then held-out)
  -> ``targets_psth_r2``;
- ``eval_spikes_heldin_forward`` / ``..._heldout_forward``: forward prediction, not scored
  (LFADS rates stop at the window's end).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from . import metrics as M
from .errors import InputFileError, TargetsError


def _target_group(f, path, dataset: str | None, bin_size: float):
    groups = [key for key in f if hasattr(f[key], "keys")]
    if dataset is not None:
        if dataset not in f:
            raise TargetsError(
                f"{path}: no dataset {dataset!r} in the targets (datasets: {groups}). "
                f"Pass one of those names."
            )
        return f[dataset], dataset
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
            f"{path}: targets '{key}' have shape {arr.shape} but the session gives "
            f"{tuple(expected)} ({what}). Make the targets from the same file, trials, window "
            f"and bin size as the fit."
        )


def score_targets(
    path, rates_hz, bin_size: float, heldout, eval_trials, train_trials, dataset: str | None = None
) -> tuple[dict, dict]:
    """Score rates against nlb_tools evaluation targets (``make_eval_target_tensors`` HDF5).

    Args:
        path: the targets file. rates_hz: float Hz [B, T, N] of the session.
        heldout: bool [N]; eval_trials, train_trials: bool [B] (NLB's 'val' and 'train' trials,
            in trials-table order, which is NLB's order).
        dataset: the group to use (e.g. ``mc_maze_small``); default: the only one, or the one
            whose suffix matches the bin size (none at 5 ms, ``_20`` at 20 ms).
    Returns:
        (metrics ``targets_co_bps``, ``targets_vel_r2``, ``targets_psth_r2`` where the targets hold
        them, plus ``targets_dataset``; skipped: {key: reason}).
    """
    import h5py

    path = Path(path).expanduser()
    if not path.is_file() or not h5py.is_hdf5(path):
        raise InputFileError(
            f"{path}: targets file not found or not HDF5. Pass the .h5 file that nlb_tools' "
            f"make_eval_target_tensors wrote."
        )
    ho, ev, tr = (
        np.asarray(heldout, bool),
        np.asarray(eval_trials, bool),
        np.asarray(train_trials, bool),
    )
    r = np.asarray(rates_hz, dtype=np.float64) * bin_size
    r_nlb = np.concatenate([r[..., ~ho], r[..., ho]], axis=-1)  # NLB: held-in then held-out units
    out, skipped = {}, {}
    with h5py.File(path, "r") as f:
        group, name = _target_group(f, path, dataset, bin_size)
        out["targets_dataset"] = name
        n_t = r.shape[1]
        if "eval_spikes_heldout" in group:
            spikes = group["eval_spikes_heldout"][()].astype(np.float64)
            _check_shape(
                path,
                "eval_spikes_heldout",
                spikes,
                (int(ev.sum()), n_t, int(ho.sum())),
                "evaluation trials, bins, held-out units",
            )
            out["targets_co_bps"] = float(M.co_bps(r[ev][..., ho], spikes))
        b_tr, b_ev = (
            group[k][()].astype(np.float64) if k in group else None
            for k in ("train_behavior", "eval_behavior")
        )
        if b_tr is not None and b_ev is not None and (b_tr.ndim != 3 or b_ev.ndim != 3):
            skipped["targets_vel_r2"] = (
                f"behaviour targets of shape {b_tr.shape} are per trial, not per bin "
                "(dmfc_rsg); only time-resolved behaviour is decoded"
            )
        elif b_tr is not None and b_ev is not None:
            _check_shape(path, "train_behavior", b_tr, (int(tr.sum()), n_t), "'train' trials, bins")
            _check_shape(
                path, "eval_behavior", b_ev, (int(ev.sum()), n_t), "evaluation trials, bins"
            )
            both = np.concatenate([r_nlb[tr], r_nlb[ev]])
            idx = np.arange(both.shape[0])
            out["targets_vel_r2"] = float(
                M.ridge_decoding_r2(
                    both, np.concatenate([b_tr, b_ev]), idx[: tr.sum()], idx[tr.sum() :]
                )
            )
        if "psth" in group:
            psth = group["psth"][()].astype(np.float64)
            psth = (
                psth.reshape(int(ev.sum()), n_t, -1)
                if psth.ndim == 2 and len(psth) == ev.sum() * n_t
                else psth
            )
            _check_shape(
                path,
                "psth",
                psth,
                (int(ev.sum()), n_t, r.shape[2]),
                "evaluation trials, bins, units",
            )
            rows = np.arange(psth.shape[0])
            out["targets_psth_r2"] = float(M.psth_r2(r_nlb[ev], psth, rows, rows))
        if "eval_spikes_heldin_forward" in group:
            skipped["targets_fp_bps"] = (
                "forward prediction needs rates past the fitted window, which "
                "processing/lfads does not hold"
            )
    return out, skipped
