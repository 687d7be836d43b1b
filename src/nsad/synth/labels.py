"""NSA's pixel labels (NSA paper, eqs. 13-14), computed on the changed region only.

Before filtering, with ``d_i = (1/C) sum_c |x~_i,c - x_d,i,c|`` in 8-bit levels and ``P`` the union
of the patch boxes (the authors only label inside them):

- binary (eq. 13): ``b_i = [d_i > tol and i in P]``, then a 5 x 5 median filter;
- continuous (eq. 13): ``c_i = d_i b_i``, then a median filter over a disk of radius 5;
- logistic (eq. 14): ``b / (1 + exp(-k (c - y0)))`` from the filtered ``b`` and ``c`` (as the authors'
  code computes it).

Labels are zero outside the boxes grown by the filter radius, so everything is computed on that
crop (grown once more so that the crop's own border cannot reach inside); a ``reflect`` border
(SciPy's, ``dcba|abcd``) then gives the same values as filtering the whole image. The filters are
exact but fast: the binary median is a 5 x 5 box count (at least 13 of 25 set), and for 8-bit
images the disk median runs on the integer channel sums (a monotone rescaling of ``d``) with a
compiled sliding-histogram median, only where the label can be non-zero (:mod:`nsad.synth._median`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Literal

import cv2
import numpy as np

from nsad._checks import check_choice, levels_per_8bit
from nsad.synth._median import median_disk as median_disk_exact
from nsad.synth._types import Box

LabelKind = Literal["binary", "continuous", "logistic"]
LABEL_KINDS = ("binary", "continuous", "logistic")
BINARY_MEDIAN_PX = 5
CONTINUOUS_MEDIAN_RADIUS = 5


@functools.cache
def disk(radius: int) -> np.ndarray:
    """A (2r+1, 2r+1) bool disk footprint: pixels within Euclidean distance ``radius`` of the centre."""
    offsets = np.arange(-radius, radius + 1)
    return offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius**2


def mean_abs_difference(image: np.ndarray, original: np.ndarray) -> np.ndarray:
    """Channel-mean absolute difference in 8-bit levels, float32 (H, W) (eq. 13's continuous term)."""
    diff = np.abs(image.astype(np.float32) - original.astype(np.float32)).mean(axis=2)
    return diff / np.float32(levels_per_8bit(image.dtype))


def _changed_sum(image: np.ndarray, original: np.ndarray) -> np.ndarray:
    """Sum over channels of ``|image - original|`` for uint8 images, as uint16 (at most 765)."""
    diff = cv2.absdiff(image, original).reshape(image.shape)
    if diff.shape[2] == 1:
        return diff[:, :, 0].astype(np.uint16)
    total = np.add(diff[:, :, 0], diff[:, :, 1], dtype=np.uint16)  # 3x faster than sum(axis=2)
    total += diff[:, :, 2]
    return total


def median_binary(changed: np.ndarray) -> np.ndarray:
    """5 x 5 median of a 0/1 uint8 array with a reflect border: 1 where at least 13 of 25 are set."""
    count = cv2.boxFilter(changed, -1, (BINARY_MEDIAN_PX, BINARY_MEDIAN_PX), normalize=False,
                          borderType=cv2.BORDER_REFLECT)
    return (count > BINARY_MEDIAN_PX**2 // 2).astype(np.uint8)


def median_disk(values: np.ndarray) -> np.ndarray:
    """Median over a disk of radius 5 with a reflect border, exactly SciPy's ``median_filter``.

    Only pixels where more than 40 of the 81 disk values may be non-zero (a 9 x 9 box count bounds
    it) are filtered, with a sliding histogram compiled by numba (:func:`nsad.synth._median.median_disk`).
    """
    return median_disk_exact(values, CONTINUOUS_MEDIAN_RADIUS)


def nsa_label(image: np.ndarray, original: np.ndarray, boxes: Sequence[Box], kind: LabelKind,
              y0: float = 15.0, k: float = 1 / 6, tol: float = 1.0, region: np.ndarray | None = None) -> np.ndarray:
    """Label of the synthetic example ``image`` made from ``original`` (eqs. 13-14, median filtered).

    Args:
        image: (H, W, C) the synthetic example ``x~``.
        original: (H, W, C) the destination image ``x_d`` it was made from, same dtype.
        boxes: the destination boxes of the patches; pixels outside them are never labelled.
        kind: ``binary``, ``continuous`` (8-bit levels, unbounded) or ``logistic`` (in [0, 1]).
        y0: logistic midpoint in 8-bit levels.
        k: logistic slope per 8-bit level.
        tol: a pixel changed when its channel-mean difference exceeds ``tol`` 8-bit levels.
        region: optional (H, W) bool, inside the boxes, that replaces their union as the region
            where pixels may be labelled (the authors' object-restricted region).

    Returns:
        (H, W) float32 label.

    Raises:
        ValueError: for an unknown ``kind``.
    """
    check_choice("label kind", kind, LABEL_KINDS)
    height, width = image.shape[:2]
    label = np.zeros((height, width), np.float32)
    if not boxes:
        return label
    grow = 2 * CONTINUOUS_MEDIAN_RADIUS
    x0 = max(0, min(b.x0 for b in boxes) - grow)
    y0_px = max(0, min(b.y0 for b in boxes) - grow)
    x1 = min(width, max(b.x1 for b in boxes) + grow)
    y1 = min(height, max(b.y1 for b in boxes) + grow)
    crop = (slice(y0_px, y1), slice(x0, x1))
    if region is not None:
        inside = region[crop]
    else:
        inside = np.zeros((y1 - y0_px, x1 - x0), bool)
        for b in boxes:
            inside[b.y0 - y0_px:b.y1 - y0_px, b.x0 - x0:b.x1 - x0] = True
    if image.dtype == np.uint8:
        channels = image.shape[2]
        sums = _changed_sum(image[crop], original[crop])
        changed = (sums > tol * channels) & inside
    else:
        diff = mean_abs_difference(image[crop], original[crop])
        changed = (diff > tol) & inside
    binary = median_binary(changed.astype(np.uint8))
    if kind == "binary":
        label[crop] = binary
        return label
    if image.dtype == np.uint8:
        continuous = median_disk(np.where(changed, sums, np.uint16(0))).astype(np.float32) / np.float32(channels)
    else:
        continuous = median_disk(np.where(changed, diff, np.float32(0)))
    if kind == "continuous":
        label[crop] = continuous
    else:
        label[crop] = binary / (1.0 + np.exp(-np.float32(k) * (continuous - np.float32(y0))))
    return label
