"""Operating points: the F1-maximising threshold, and a threshold set from normal scores only.

Everywhere in ``nsad.metrics`` a sample is flagged anomalous iff ``score >= threshold``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from nsad.metrics._ranked import Ranked, check_pixels, f1_max, rank_images, rank_scores
from nsad.metrics._validate import as_scores, check_fraction, warn_undefined


@dataclass(frozen=True)
class F1Max:
    """The best F1 score over all thresholds and where it is attained.

    Attributes:
        f1: ``max_t 2 TP / (2 TP + FP + FN)``, NaN if undefined (no anomalous sample).
        threshold: the threshold attaining it (flag ``score >= threshold``); the highest one if
            several thresholds tie. NaN if undefined.
        precision: ``TP / (TP + FP)`` at that threshold.
        recall: ``TP / (TP + FN)`` at that threshold.
    """

    f1: float
    threshold: float
    precision: float
    recall: float


def f1_max_from_ranked(ranked: Ranked, what: str) -> F1Max:
    """:class:`F1Max` of ``ranked``; NaN fields with a warning if there is no anomalous sample."""
    if ranked.pos.size == 0:
        nan = warn_undefined(f"{what} F1 is undefined without anomalous {what}s (recall is 0/0); "
                             f"returning NaN")
        return F1Max(nan, nan, nan, nan)
    return F1Max(*f1_max(ranked))


def image_f1_max(scores: object, labels: object) -> F1Max:
    """The best image-level F1 over every distinct threshold, and the threshold attaining it.

    ``F1(t) = 2 TP(t) / (TP(t) + FP(t) + P)`` with ``P`` the number of anomalous images and TP, FP
    counting images with ``score >= t``. Every distinct score is tried (no grid).

    Args:
        scores: (N,) finite image anomaly scores.
        labels: (N,) 0 (normal) or 1 (anomalous), or bool.

    Returns:
        An :class:`F1Max`; all NaN with an :class:`UndefinedMetricWarning` if no label is 1. With
        no normal image the best F1 is 1 at the lowest score.

    Raises:
        TypeError: if an input is not numeric.
        ValueError: if ``scores`` is empty, not 1-D or not finite, or ``labels`` has another
            shape or values other than 0 and 1.

    Example:
        >>> image_f1_max([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
        F1Max(f1=0.8, threshold=0.35, precision=0.6666666666666666, recall=1.0)
    """
    return f1_max_from_ranked(rank_images(scores, labels), "image")


def pixel_f1_max(anomaly_maps: object, masks: object) -> F1Max:
    """The best pixel-level F1 over every distinct threshold, pooling all pixels of all images.

    Args:
        anomaly_maps: (N, H, W) finite pixel scores.
        masks: (N, H, W) ground truth: bool, 0/1 or 0/255 (non-zero is anomalous).

    Returns:
        An :class:`F1Max`; all NaN with an :class:`UndefinedMetricWarning` if no pixel is
        anomalous.

    Raises:
        TypeError: if an input is not numeric.
        ValueError: for empty, non-finite or mis-shaped maps, or masks with values other than 0/1
            or 0/255 (the values found are listed).
    """
    maps, positive = check_pixels(anomaly_maps, masks)
    return f1_max_from_ranked(rank_scores(maps, positive), "pixel")


def threshold_at_fpr(normal_scores: object, fpr: float = 0.01) -> float:
    """The lowest threshold that flags at most a fraction ``fpr`` of the given normal scores.

    No anomalous example is needed: pass the scores of held-out normal images (image level) or
    their anomaly maps (pixel level; any shape, all values pooled). With ``n`` scores the number
    of false positives allowed is ``k = floor(fpr * n)`` (``fpr * n`` rounded to 9 decimals first,
    so that 0.29 * 100 allows 29). Let ``v`` be the (k+1)-th largest score. The threshold is the
    smallest number of the scores' float type above ``v`` (``np.nextafter(v, inf)``): every score
    ``<= v`` is then below it and every score ``> v`` is at or above it, in float32 and float64
    comparisons alike. So exactly the ``#{s > v} <= k`` scores above ``v`` are flagged (fewer
    than ``k`` when ``v`` is tied), and no lower threshold keeps the count within ``k``. If
    ``k >= n`` (``fpr = 1``) the smallest score is returned, which flags all of them.

    Args:
        normal_scores: finite scores of normal samples, any shape, at least one value.
        fpr: target false-positive rate in [0, 1].

    Returns:
        The threshold as a Python float (exactly representable in the scores' float type:
        float32 for float16/float32 scores, float64 otherwise).

    Raises:
        TypeError: if ``normal_scores`` is not numeric.
        ValueError: if ``normal_scores`` is empty or not finite, or ``fpr`` is outside [0, 1].

    Example:
        One false positive allowed among four, so only the 4.0 may be flagged:

        >>> threshold = threshold_at_fpr([1.0, 2.0, 3.0, 4.0], fpr=0.25)
        >>> threshold == float(np.nextafter(3.0, np.inf)), 3.0 < threshold < 4.0
        (True, True)
    """
    rate = check_fraction("fpr", fpr, include_zero=True)
    scores = as_scores("normal_scores", normal_scores).ravel()
    n = scores.size
    allowed = math.floor(round(rate * n, 9))
    if allowed >= n:
        return float(scores.min())
    kth = n - 1 - allowed  # ascending index of the (allowed + 1)-th largest score
    value = np.partition(scores, kth)[kth]
    return float(np.nextafter(value, np.array(np.inf, dtype=value.dtype)))
