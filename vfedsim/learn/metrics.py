"""Classification metrics over integer labels and regression metrics over real targets (numpy only).

Regression: ``mae`` is the mean absolute error (in the target's unit: seconds for ``ttc``); for trajectories
(n, T, 2) in metres, ``ade`` is the average displacement error, the Euclidean distance between predicted
and true positions averaged over the T horizons and the samples, and ``fde`` the final displacement error,
that distance at the last horizon (Alahi et al., "Social LSTM", CVPR 2016, Sec. 4).

Conventions follow scikit-learn: macro-F1 averages the per-class F1 over the classes that occur in the true
or the predicted labels; balanced accuracy is the mean per-class recall over the classes that occur in the
true labels (Brodersen et al. 2010).
"""
from __future__ import annotations

import numpy as np

__all__ = ["confusion_matrix", "accuracy", "macro_f1", "balanced_accuracy", "mae", "ade", "fde"]


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """``m[i, j]``: how many samples of true class i were predicted as class j (int64, n_classes^2)."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"shapes differ: {y_true.shape} vs {y_pred.shape}")
    return np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float(np.mean(y_true == y_pred)) if y_true.size else float("nan")


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    m = confusion_matrix(y_true, y_pred, n_classes)
    tp = np.diag(m).astype(np.float64)
    support, predicted = m.sum(axis=1), m.sum(axis=0)
    present = (support + predicted) > 0
    if not present.any():
        return float("nan")
    denom = support + predicted           # F1 = 2 tp / (2 tp + fp + fn) = 2 tp / (support + predicted)
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return float(f1[present].mean())


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    m = confusion_matrix(y_true, y_pred, n_classes)
    support = m.sum(axis=1)
    present = support > 0
    if not present.any():
        return float("nan")
    return float((np.diag(m)[present] / support[present]).mean())


def mae(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean absolute error over all values (NaN when empty)."""
    y_true, y_pred = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
    return float(np.abs(y_true - y_pred).mean()) if y_true.size else float("nan")


def _displacements(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    y_true, y_pred = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
    if y_true.shape != y_pred.shape or y_true.ndim != 3 or y_true.shape[-1] != 2:
        raise ValueError(f"trajectories must both be (n, T, 2), got {y_true.shape} and {y_pred.shape}")
    return np.linalg.norm(y_true - y_pred, axis=-1)      # (n, T)


def ade(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Average displacement error [m] over (n, T, 2) trajectories."""
    d = _displacements(y_true, y_pred)
    return float(d.mean()) if d.size else float("nan")


def fde(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Final displacement error [m]: the distance at the last horizon, averaged over samples."""
    d = _displacements(y_true, y_pred)
    return float(d[:, -1].mean()) if d.size else float("nan")
