"""Classification metrics over integer labels (numpy only).

Conventions follow scikit-learn: macro-F1 averages the per-class F1 over the classes that occur in the true
or the predicted labels; balanced accuracy is the mean per-class recall over the classes that occur in the
true labels (Brodersen et al. 2010).
"""
from __future__ import annotations

import numpy as np

__all__ = ["confusion_matrix", "accuracy", "macro_f1", "balanced_accuracy"]


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
