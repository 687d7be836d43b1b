"""F1max (image and pixel) and the threshold set from normal scores at a target FPR."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nsad.metrics import F1Max, UndefinedMetricWarning, image_f1_max, pixel_f1_max, threshold_at_fpr


def brute_force_f1(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Best F1 and the highest threshold attaining it, trying every distinct score."""
    best, best_t = -1.0, None
    for t in np.unique(scores)[::-1]:
        flagged = scores >= t
        tp = np.sum(flagged & (labels == 1))
        f1 = 2 * tp / (flagged.sum() + labels.sum())
        if f1 > best:
            best, best_t = f1, t
    return best, best_t


@pytest.mark.parametrize("seed", range(5))
def test_image_f1_max_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 80)
    labels[0] = 1
    scores = rng.integers(0, 15, 80) + 3 * labels * rng.random(80)
    result = image_f1_max(scores, labels)
    f1, threshold = brute_force_f1(scores, labels)
    assert result.f1 == pytest.approx(f1, abs=1e-12)
    assert result.threshold == threshold
    flagged = scores >= threshold
    assert result.precision == pytest.approx(np.mean(labels[flagged]), abs=1e-12)
    assert result.recall == pytest.approx(flagged[labels == 1].mean(), abs=1e-12)


def test_pixel_f1_max_matches_sklearn_precision_recall_curve():
    from sklearn.metrics import precision_recall_curve

    rng = np.random.default_rng(9)
    masks = rng.random((4, 16, 16)) < 0.1
    maps = (rng.random(masks.shape) + 0.5 * masks * rng.random(masks.shape)).astype(np.float32)
    precision, recall, thresholds = precision_recall_curve(masks.ravel(), maps.ravel())
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-300)
    best = int(np.argmax(f1[:-1]))
    result = pixel_f1_max(maps, masks)
    assert result.f1 == pytest.approx(f1[best], abs=1e-12)
    assert result.threshold == pytest.approx(thresholds[best], abs=0)


def test_f1_max_hand_value_and_tie_break():
    # Anomalous [5, 2], normal [4, 3]: t=5 gives TP 1 FP 0, F1 = 2/3; t=2 gives TP 2 FP 2,
    # F1 = 4/6 = 2/3 as well. The highest threshold of equal maxima wins.
    expected = F1Max(f1=2 / 3, threshold=5.0, precision=1.0, recall=0.5)
    assert image_f1_max([5, 4, 3, 2], [1, 0, 0, 1]) == expected
    assert image_f1_max([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]).f1 == pytest.approx(0.8)


def test_f1_max_without_normal_samples_is_one():
    assert image_f1_max([0.3, 0.1], [1, 1]) == F1Max(f1=1.0, threshold=0.1, precision=1.0, recall=1.0)


def test_f1_max_without_anomalous_samples_is_nan_with_warning():
    with pytest.warns(UndefinedMetricWarning, match="image F1 is undefined without anomalous images"):
        assert np.isnan(image_f1_max([0.3, 0.1], [0, 0]).f1)
    with pytest.warns(UndefinedMetricWarning, match="pixel F1 is undefined without anomalous pixels"):
        result = pixel_f1_max(np.zeros((1, 2, 2)), np.zeros((1, 2, 2)))
    assert np.isnan(result.threshold) and np.isnan(result.precision) and np.isnan(result.recall)


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 60), levels=st.sampled_from([2, 5, 10**6]),
       fpr=st.sampled_from([0.0, 0.01, 0.1, 0.25, 0.5, 0.99]),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_threshold_at_fpr_is_the_lowest_threshold_within_budget(seed, n, levels, fpr, dtype):
    rng = np.random.default_rng(seed)
    scores = (rng.integers(0, levels, n) / levels).astype(dtype)
    threshold = threshold_at_fpr(scores, fpr=fpr)
    allowed = int(np.floor(round(fpr * n, 9)))
    assert np.count_nonzero(scores >= threshold) <= allowed
    # Comparing in the scores' own dtype gives the same count (the threshold is representable).
    assert np.count_nonzero(scores >= dtype(threshold)) == np.count_nonzero(scores >= threshold)
    lower = np.nextafter(dtype(threshold), dtype(-np.inf))  # the next lower threshold flags too many
    assert np.count_nonzero(scores >= lower) > allowed


@pytest.mark.parametrize(
    "scores, fpr, expected",
    [([1.0, 2.0, 3.0, 4.0], 0.25, np.nextafter(3.0, np.inf)),  # 1 false positive allowed: only 4.0
     ([1.0, 2.0, 3.0, 4.0], 0.0, np.nextafter(4.0, np.inf)),  # none allowed: above the maximum
     ([1.0, 2.0, 3.0, 4.0], 1.0, 1.0),  # all allowed: the minimum flags all
     ([1.0, 3.0, 3.0, 4.0], 0.5, np.nextafter(3.0, np.inf)),  # tie at the cut: flags 1 < 2 allowed
     (np.arange(100.0), 0.29, np.nextafter(70.0, np.inf))],  # 0.29 * 100 allows 29, not 28
    ids=["quarter", "zero", "one", "tie", "rounding"])
def test_threshold_at_fpr_hand_values(scores, fpr, expected):
    assert threshold_at_fpr(np.array(scores), fpr=fpr) == expected


def test_threshold_at_fpr_float32_threshold_is_the_next_float32():
    scores = np.array([0.1, 0.2, 0.3], np.float32)
    assert threshold_at_fpr(scores, fpr=0.0) == float(np.nextafter(np.float32(0.3), np.float32(1)))


def test_threshold_at_fpr_pools_pixel_maps():
    maps = np.arange(200.0).reshape(2, 10, 10)
    assert threshold_at_fpr(maps, fpr=0.01) == np.nextafter(197.0, np.inf)  # 2 of 200 above


@pytest.mark.parametrize("fpr", [-0.1, 1.5, float("nan")], ids=["neg", "1.5", "nan"])
def test_threshold_at_fpr_rejects_fpr_outside_unit_interval(fpr):
    with pytest.raises(ValueError, match=r"fpr must be in \[0, 1\], got"):
        threshold_at_fpr([1.0, 2.0], fpr=fpr)


def test_threshold_at_fpr_rejects_empty_and_non_finite_scores():
    with pytest.raises(ValueError, match=r"normal_scores is empty \(shape \(0,\)\)"):
        threshold_at_fpr([], fpr=0.1)
    with pytest.raises(ValueError, match="normal_scores must be finite; found 1 NaN and 0 infinite"):
        threshold_at_fpr([1.0, float("nan")], fpr=0.1)
