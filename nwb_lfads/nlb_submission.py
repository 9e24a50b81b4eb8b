"""Neural Latents Benchmark submission files: write them from LFADS rates, score them locally.

The layout nlb_tools' ``evaluate`` (and the NLB leaderboard on EvalAI) reads: one HDF5 group per
dataset, named ``<dataset>`` at 5 ms bins and ``<dataset>_20`` at 20 ms
(:func:`nwb_lfads.nlb_targets.nlb_group_name`), holding float32 expected spike counts per bin
(not Hz), trials in the split's trials-table order:

- ``train_rates_heldin`` [B_tr, T, N_in], ``train_rates_heldout`` [B_tr, T, N_out] (NLB
  ``split == 'train'`` trials);
- ``eval_rates_heldin`` [B_ev, T, N_in], ``eval_rates_heldout`` [B_ev, T, N_out] (the
  evaluation trials, ``split == 'val'`` in NLB's validation phase);
- ``eval_rates_heldin_forward`` [B_ev, T_f, N_in], ``eval_rates_heldout_forward``
  [B_ev, T_f, N_out]: the bins after each window (runs fitted with ``data.forward``).

Units keep the units table's order within held-in and within held-out. A file may hold several
datasets: writing one replaces that group and keeps the others (the file is rewritten through a
temporary file and a rename).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import EvaluationError, InputFileError, TargetsError
from .nlb_targets import _open_h5, _target_group, nlb_group_name, score_group

SUBMISSION_KEYS = (
    "train_rates_heldin",
    "train_rates_heldout",
    "eval_rates_heldin",
    "eval_rates_heldout",
)
FORWARD_KEYS = ("eval_rates_heldin_forward", "eval_rates_heldout_forward")


def submission_arrays(
    rates_hz, bin_size: float, heldout, eval_trials, train_trials, forward_hz=None
) -> dict[str, np.ndarray]:
    """The submission arrays of one dataset.

    Args:
        rates_hz: float Hz [B, T, N]; bin_size: s; heldout: bool [N];
        eval_trials, train_trials: bool [B]; forward_hz: float Hz [B, T_f, N] or None.
    Returns:
        {key: float32 counts per bin}: ``SUBMISSION_KEYS`` (and ``FORWARD_KEYS`` with
        ``forward_hz``), shapes as in the module docstring.
    """
    ho = np.asarray(heldout, bool)
    ev, tr = np.asarray(eval_trials, bool), np.asarray(train_trials, bool)
    per_bin = np.asarray(rates_hz, dtype=np.float64) * bin_size
    out = {}
    for split, sel in (("train", tr), ("eval", ev)):
        out[f"{split}_rates_heldin"] = per_bin[sel][..., ~ho]
        out[f"{split}_rates_heldout"] = per_bin[sel][..., ho]
    if forward_hz is not None:
        fwd = np.asarray(forward_hz, dtype=np.float64)[ev] * bin_size
        out[FORWARD_KEYS[0]], out[FORWARD_KEYS[1]] = fwd[..., ~ho], fwd[..., ho]
    return {k: v.astype(np.float32) for k, v in out.items()}


def write_submission(path, group: str, arrays: dict[str, np.ndarray]) -> Path:
    """Write (or replace) ``group`` of the submission file ``path``; other groups are kept.

    Args:
        path: the .h5 file (created, or rewritten through a temporary file and a rename).
        group: e.g. ``mc_maze_small``; arrays: from :func:`submission_arrays`.
    Returns:
        the path written.
    Raises:
        InputFileError: ``path`` exists but is not HDF5, or is a folder.
    """
    import h5py

    path = Path(path).expanduser()
    if path.is_dir() or (path.exists() and not h5py.is_hdf5(path)):
        raise InputFileError(
            f"{path}: exists and is not an HDF5 submission file. Pass a new .h5 path "
            f"(or an earlier submission file to add the dataset to)."
        )
    if not path.parent.is_dir():
        raise InputFileError(f"{path}: folder {path.parent} does not exist. Create it first.")
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with h5py.File(tmp, "w") as out:
            if path.exists():
                with h5py.File(path, "r") as old:
                    for name in old:
                        if name != group:
                            old.copy(old[name], out, name=name)
            g = out.create_group(group)
            for key, value in arrays.items():
                g.create_dataset(key, data=value, dtype="float32", compression="gzip")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def is_submission(path) -> bool:
    """True for an HDF5 file (not NWB) whose groups hold ``eval_rates_heldout``."""
    import h5py

    path = Path(path)
    if not path.is_file() or not h5py.is_hdf5(path):
        return False
    with h5py.File(path, "r") as f:
        if "nwb_version" in f.attrs:
            return False
        return any(hasattr(f[k], "keys") and "eval_rates_heldout" in f[k] for k in f)


def score_submission(path, targets, dataset: str | None = None) -> list[dict]:
    """Score a submission file against nlb_tools targets, one dict per dataset in both.

    Args:
        path: a submission .h5 (:func:`write_submission`'s layout); targets: nlb_tools'
            ``make_eval_target_tensors`` .h5; dataset: score only this group (default: every
            group of the submission that the targets hold).
    Returns:
        [{``session``: group, ``file``, ``n_trials``, ``n_units``, ``n_heldout``,
        ``n_eval_trials``, ``eval_trials``, ``targets_dataset``, ``metrics``, ``skipped``}].
    Raises:
        EvaluationError: no targets; TargetsError: no group in common, or shapes that differ.
    """
    if targets is None:
        raise EvaluationError(
            f"{path}: a submission file is scored against NLB targets; pass --targets FILE "
            f"(nlb_tools' make_eval_target_tensors output)."
        )
    sessions = []
    with _open_h5(path, "submission") as sub, _open_h5(targets, "targets") as tgt:
        names = [k for k in sub if hasattr(sub[k], "keys") and "eval_rates_heldout" in sub[k]]
        if dataset is not None:
            want = [n for n in names if n == dataset or n.rsplit("_", 1)[0] == dataset]
            names = want or names
        for name in names:
            if name not in tgt:
                continue
            g = sub[name]
            missing = [k for k in SUBMISSION_KEYS if k not in g]
            if missing:
                raise InputFileError(
                    f"{path}: group {name!r} lacks {missing}. Write it again with "
                    f"'nwb-lfads evaluate RUN_DIR --nlb-submission'."
                )
            ev_in, ev_out = g["eval_rates_heldin"][()], g["eval_rates_heldout"][()]
            tr = np.concatenate([g["train_rates_heldin"][()], g["train_rates_heldout"][()]], -1)
            fwd = (
                np.concatenate([g[k][()] for k in FORWARD_KEYS], axis=-1)
                if all(k in g for k in FORWARD_KEYS)
                else None
            )
            group, tname = _target_group(tgt, Path(targets), name, 0.005)
            metrics, skipped = score_group(
                group,
                Path(targets),
                np.concatenate([ev_in, ev_out], axis=-1),
                tr,
                ev_in.shape[-1],
                fwd,
            )
            sessions.append(
                {
                    "session": name,
                    "file": str(path),
                    "n_trials": int(len(tr) + len(ev_in)),
                    "n_units": int(ev_in.shape[-1] + ev_out.shape[-1]),
                    "n_heldout": int(ev_out.shape[-1]),
                    "n_eval_trials": int(len(ev_in)),
                    "eval_trials": "eval",
                    "targets_dataset": tname,
                    "metrics": metrics,
                    "skipped": skipped,
                }
            )
    if not sessions:
        raise TargetsError(
            f"{targets}: holds none of the submission's datasets ({', '.join(names)}). Pass the "
            f"targets made for those datasets."
        )
    return sessions


__all__ = [
    "FORWARD_KEYS",
    "SUBMISSION_KEYS",
    "is_submission",
    "nlb_group_name",
    "score_submission",
    "submission_arrays",
    "write_submission",
]
