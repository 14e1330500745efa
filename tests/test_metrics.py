"""Tests for nn.metrics against small hand-computed cases."""

import json

import numpy as np
import pytest

from nn.core.metrics import accuracy, classification_report, confusion_matrix, top_confusions

Y_TRUE = [0, 0, 1, 1, 1, 2]
Y_PRED = [0, 1, 1, 1, 0, 2]


def test_accuracy():
    assert accuracy(Y_TRUE, Y_PRED) == pytest.approx(4 / 6)
    assert accuracy(np.array([3, 3]), np.array([3, 3])) == 1.0
    with pytest.raises(ValueError):
        accuracy([], [])
    with pytest.raises(ValueError):
        accuracy([0, 1], [0])


def test_confusion_matrix_hand_computed():
    cm = confusion_matrix(Y_TRUE, Y_PRED)
    expected = np.array([[1, 1, 0], [1, 2, 0], [0, 0, 1]])
    assert cm.dtype == np.int64 and cm.shape == (3, 3)
    np.testing.assert_array_equal(cm, expected)
    assert cm.sum() == len(Y_TRUE)


def test_confusion_matrix_n_classes_and_errors():
    cm = confusion_matrix([1], [2], n_classes=5)
    assert cm.shape == (5, 5) and cm[1, 2] == 1 and cm.sum() == 1
    assert confusion_matrix([], [], n_classes=3).tolist() == [[0] * 3] * 3
    with pytest.raises(ValueError):
        confusion_matrix([0, 4], [0, 1], n_classes=3)
    with pytest.raises(ValueError):
        confusion_matrix([0, -1], [0, 1])
    with pytest.raises(ValueError):
        confusion_matrix([0, 1], [0, 1, 1])
    with pytest.raises(ValueError):
        confusion_matrix([0.5, 1], [0, 1])


def test_classification_report_hand_computed():
    r = classification_report(Y_TRUE, Y_PRED)
    # class 0: tp 1, predicted 2, support 2; class 1: tp 2, predicted 3, support 3; class 2: 1/1/1
    assert r["precision"] == pytest.approx([1 / 2, 2 / 3, 1.0])
    assert r["recall"] == pytest.approx([1 / 2, 2 / 3, 1.0])
    assert r["f1"] == pytest.approx([1 / 2, 2 / 3, 1.0])
    assert r["support"] == [2, 3, 1]
    assert r["classes"] == [0, 1, 2]
    assert r["accuracy"] == pytest.approx(4 / 6)
    assert r["n"] == 6
    assert r["macro"]["precision"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    assert r["weighted"]["recall"] == pytest.approx((2 * 1 / 2 + 3 * 2 / 3 + 1) / 6)
    json.dumps(r)  # plain Python types only


def test_classification_report_precision_differs_from_recall():
    r = classification_report([0, 0, 0, 1], [0, 1, 1, 1])
    assert r["precision"] == pytest.approx([1.0, 1 / 3])
    assert r["recall"] == pytest.approx([1 / 3, 1.0])
    assert r["f1"] == pytest.approx([0.5, 0.5])


def test_zero_division_gives_zero_not_nan():
    # class 2 never occurs and is never predicted; class 1 is never predicted.
    r = classification_report([0, 1], [0, 0], n_classes=3)
    for key in ("precision", "recall", "f1"):
        assert not np.isnan(r[key]).any()
    assert r["precision"] == pytest.approx([0.5, 0.0, 0.0])
    assert r["recall"] == pytest.approx([1.0, 0.0, 0.0])
    assert r["support"] == [1, 1, 0]
    empty = classification_report([], [], n_classes=2)
    assert empty["accuracy"] == 0.0 and empty["macro"]["f1"] == 0.0


def test_top_confusions():
    cm = np.array([[5, 2, 0], [7, 9, 2], [0, 1, 4]])
    assert top_confusions(cm) == [(1, 0, 7), (0, 1, 2), (1, 2, 2), (2, 1, 1)]
    assert top_confusions(cm, k=2) == [(1, 0, 7), (0, 1, 2)]
    assert top_confusions(np.eye(3, dtype=np.uint64)) == []
    assert top_confusions(cm.astype(np.uint32), k=1) == [(1, 0, 7)]
    with pytest.raises(ValueError):
        top_confusions(np.zeros((2, 3)))
