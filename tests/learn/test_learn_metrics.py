import numpy as np
import pytest

from vfedsim.learn.metrics import accuracy, balanced_accuracy, confusion_matrix, macro_f1


def test_confusion_matrix():
    m = confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], 3)
    assert m.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]


def test_hand_computed_values():
    y = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    p = np.array([0, 0, 1, 2, 1, 1, 2, 0])
    assert accuracy(y, p) == pytest.approx(5 / 8)
    # recall: class 0 2/4, class 1 2/2, class 2 1/2
    assert balanced_accuracy(y, p, 3) == pytest.approx((0.5 + 1.0 + 0.5) / 3)
    # F1 = 2tp / (support + predicted): class 0 4/7, class 1 4/5, class 2 2/4
    assert macro_f1(y, p, 3) == pytest.approx((4 / 7 + 4 / 5 + 2 / 4) / 3)


def test_absent_classes_are_left_out():
    y = np.array([0, 0, 1, 1])
    p = np.array([0, 0, 1, 0])
    # class 2 occurs nowhere: it does not count
    assert macro_f1(y, p, 3) == pytest.approx((2 * 2 / 5 + 2 * 1 / 3) / 2)
    assert balanced_accuracy(y, p, 3) == pytest.approx((1.0 + 0.5) / 2)
    # a class only predicted counts in F1 (as 0) but not in balanced accuracy
    assert macro_f1([0, 0], [0, 2], 3) == pytest.approx((2 / 3 + 0.0) / 2)
    assert balanced_accuracy([0, 0], [0, 2], 3) == pytest.approx(0.5)


def test_majority_predictor():
    y = np.array([0] * 9 + [1])
    p = np.zeros(10, dtype=int)
    assert accuracy(y, p) == pytest.approx(0.9)
    assert balanced_accuracy(y, p, 2) == pytest.approx(0.5)
    assert macro_f1(y, p, 2) == pytest.approx((18 / 19 + 0) / 2)


def test_shape_mismatch():
    with pytest.raises(ValueError):
        confusion_matrix([0, 1], [0], 2)
