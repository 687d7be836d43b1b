"""Every rejection of bad input, with its message, through the public functions."""

from __future__ import annotations

import numpy as np
import pytest

from nsad.metrics import aupro, evaluate, image_auroc, image_f1_max, pixel_auroc, pixel_f1_max, pro_curve

PIXEL_METRICS = [pixel_auroc, aupro, pixel_f1_max, pro_curve]
IMAGE_METRICS = [image_auroc, image_f1_max]


def ids(functions):
    return [function.__name__ for function in functions]


@pytest.mark.parametrize("metric", PIXEL_METRICS, ids=ids(PIXEL_METRICS))
def test_pixel_shape_mismatch(metric):
    with pytest.raises(ValueError, match=r"anomaly_maps and masks must have the same shape, "
                                         r"got \(2, 4, 4\) and \(2, 4, 5\)"):
        metric(np.zeros((2, 4, 4)), np.zeros((2, 4, 5)))


@pytest.mark.parametrize("metric", IMAGE_METRICS, ids=ids(IMAGE_METRICS))
def test_image_shape_mismatch_and_wrong_ndim(metric):
    with pytest.raises(ValueError, match=r"scores and labels must have the same shape, "
                                         r"got \(3,\) and \(2,\)"):
        metric([0.1, 0.2, 0.3], [0, 1])
    with pytest.raises(ValueError, match=r"scores must have shape \(N,\), got \(2, 2\)"):
        metric(np.zeros((2, 2)), np.zeros((2, 2)))


@pytest.mark.parametrize("metric", PIXEL_METRICS, ids=ids(PIXEL_METRICS))
@pytest.mark.parametrize("bad, found", [(np.nan, "2 NaN and 0 infinite"), (np.inf, "0 NaN and 2 infinite")],
                         ids=["nan", "inf"])
def test_pixel_non_finite_scores(metric, bad, found):
    maps = np.zeros((2, 3, 3), np.float32)
    maps[1, 0, 2] = maps[1, 2, 2] = bad
    masks = np.eye(3, dtype=np.uint8)[None].repeat(2, axis=0)
    with pytest.raises(ValueError, match=rf"anomaly_maps must be finite; found {found} values "
                                         r"\(first at index \(1, 0, 2\)\)"):
        metric(maps, masks)


@pytest.mark.parametrize("metric", IMAGE_METRICS, ids=ids(IMAGE_METRICS))
def test_image_non_finite_scores(metric):
    with pytest.raises(ValueError, match=r"scores must be finite; found 0 NaN and 1 infinite values "
                                         r"\(first at index \(1,\)\)"):
        metric([0.1, -np.inf, 0.3], [0, 1, 1])


def test_huge_finite_float64_scores_are_accepted():
    # Their float64 sum overflows, which must not be mistaken for a non-finite score.
    assert image_auroc([1e308, 1.5e308, -1e308], [0, 1, 0]) == 1.0


@pytest.mark.parametrize("metric", PIXEL_METRICS, ids=ids(PIXEL_METRICS))
@pytest.mark.parametrize(
    "values, message",
    [([0, 1, 255], r"found 3 distinct values: \[0, 1, 255\]"),
     ([0, 128], r"found 2 distinct values: \[0, 128\]"),
     ([0, -1], r"found 2 distinct values: \[-1, 0\]"),
     ([0.0, 0.5], r"found 2 distinct values: \[0.0, 0.5\]"),
     ([0.0, np.nan], r"found 2 distinct values: \[0.0, nan\]")],
    ids=["0-1-255", "0-128", "negative", "soft", "nan"])
def test_masks_with_other_values(metric, values, message):
    masks = np.zeros((1, 3, 3), np.float64 if isinstance(values[1], float) else np.int16)
    masks.flat[: len(values)] = values
    with pytest.raises(ValueError, match=r"masks must hold only 0/1 or only 0/255; " + message):
        metric(np.zeros((1, 3, 3)), masks)


def test_masks_list_many_values_briefly():
    masks = np.arange(16, dtype=np.uint8).reshape(1, 4, 4)
    with pytest.raises(ValueError,
                       match=r"found 16 distinct values: \[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, \.\.\.\]"):
        pixel_auroc(np.zeros((1, 4, 4)), masks)


@pytest.mark.parametrize("metric", IMAGE_METRICS, ids=ids(IMAGE_METRICS))
def test_labels_other_than_zero_one(metric):
    with pytest.raises(ValueError, match=r"labels must hold only 0 and 1 \(or bool\); "
                                         r"found 2 distinct values: \[0, 255\]"):
        metric([0.1, 0.2], [0, 255])


@pytest.mark.parametrize("metric", IMAGE_METRICS + PIXEL_METRICS, ids=ids(IMAGE_METRICS + PIXEL_METRICS))
def test_empty_sets(metric):
    if metric in IMAGE_METRICS:
        with pytest.raises(ValueError, match=r"scores is empty \(shape \(0,\)\); need at least one score"):
            metric([], [])
    else:
        with pytest.raises(ValueError, match=r"anomaly_maps is empty \(shape \(0, 4, 4\)\)"):
            metric(np.zeros((0, 4, 4)), np.zeros((0, 4, 4)))


def test_empty_labels_with_scores():
    with pytest.raises(ValueError, match=r"labels is empty \(shape \(0,\)\)"):
        image_auroc([0.5], [])


@pytest.mark.parametrize("value, message", [(["a", "b"], "scores must hold real numbers .* got dtype <U1"),
                                            (np.array([1 + 2j, 3j]),
                                             "scores must hold real numbers .* got dtype complex128"),
                                            ([[1.0], [2.0, 3.0]], "scores must be array-like")],
                         ids=["strings", "complex", "ragged"])
def test_non_numeric_scores(value, message):
    with pytest.raises(TypeError, match=message):
        image_auroc(value, [0, 1])


def test_evaluate_reports_the_first_bad_input():
    with pytest.raises(ValueError, match="labels must hold only 0 and 1"):
        evaluate([0.1, 0.2], [0, 2])
