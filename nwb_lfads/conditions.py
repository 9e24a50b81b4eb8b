"""How well per-trial vectors (e.g. LFADS initial conditions) tell the trials' conditions apart.

A nearest-centroid classifier, cross-validated over stratified folds, in numpy: each test
trial gets the condition whose training-fold centroid is nearest (Euclidean, after z-scoring
every feature with the training fold's mean and standard deviation). Used on the
``ic_mean`` column of ``processing/lfads/initial_conditions`` (``bench/initial_conditions.py``).
"""

from __future__ import annotations

import numpy as np

from .errors import MetricInputError


def stratified_folds(conditions, n_folds: int, seed: int = 0) -> np.ndarray:
    """Fold index of each trial: per condition, trials shuffled and dealt round-robin.

    Args:
        conditions: condition label per trial, shape [M] (any hashable dtype).
        n_folds: number of folds K.
        seed: seeds the shuffle.

    Returns:
        int fold index in ``0..K-1`` per trial, shape [M].
    """
    conditions = np.asarray(conditions)
    rng = np.random.default_rng(seed)
    folds = np.empty(len(conditions), dtype=np.int64)
    offset = 0
    for label in np.unique(conditions):
        rows = rng.permutation(np.flatnonzero(conditions == label))
        folds[rows] = (offset + np.arange(len(rows))) % n_folds
        offset += len(rows)  # so small conditions do not all start in fold 0
    return folds


def nearest_centroid_accuracy(
    x, conditions, n_folds: int = 5, seed: int = 0
) -> tuple[float, float]:
    """Cross-validated accuracy of a nearest-centroid classifier of ``conditions`` from ``x``.

    Args:
        x: float features per trial, shape [M, D] (e.g. ``ic_mean``).
        conditions: condition label per trial, shape [M].
        n_folds: K stratified folds (:func:`stratified_folds`); every trial is tested once.
        seed: seeds the folds.

    Returns:
        ``(accuracy, chance)``: the fraction of trials classified correctly, and the fraction
        a constant guess of the most frequent condition gets.

    Raises:
        MetricInputError: ``x`` is not 2-D and finite with one row per label, fewer than two
            conditions, or ``n_folds`` outside ``2..M``.
    """
    x = np.asarray(x, dtype=np.float64)
    conditions = np.asarray(conditions)
    if x.ndim != 2 or conditions.shape != (x.shape[0],) or not np.all(np.isfinite(x)):
        raise MetricInputError(
            f"nearest_centroid_accuracy: x must be finite [M, D] with one condition per row; "
            f"got x {x.shape}, conditions {conditions.shape}."
        )
    labels, counts = np.unique(conditions, return_counts=True)
    if len(labels) < 2 or not 2 <= n_folds <= len(conditions):
        raise MetricInputError(
            f"nearest_centroid_accuracy: need at least 2 conditions (got {len(labels)}) and "
            f"2 <= n_folds <= {len(conditions)} trials (got {n_folds})."
        )
    folds = stratified_folds(conditions, n_folds, seed)
    correct = 0
    for k in range(n_folds):
        train, test = folds != k, folds == k
        mean, sd = x[train].mean(axis=0), x[train].std(axis=0) + 1e-12
        z_train, z_test = (x[train] - mean) / sd, (x[test] - mean) / sd
        present = [c for c in labels if np.any(conditions[train] == c)]
        centroids = np.stack([z_train[conditions[train] == c].mean(axis=0) for c in present])
        dist = ((z_test[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
        predicted = np.asarray(present)[np.argmin(dist, axis=1)]
        correct += int(np.sum(predicted == conditions[test]))
    return correct / len(conditions), float(counts.max() / counts.sum())
