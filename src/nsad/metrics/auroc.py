"""Exact ROC AUC of image scores and of pixel scores (MVTec AD's image and pixel AUROC)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nsad.metrics._ranked import Ranked, auroc, check_pixels, rank_images, rank_scores
from nsad.metrics._validate import warn_undefined


def auroc_from_ranked(ranked: Ranked, what: str) -> float:
    """AUROC of ``ranked``, or NaN with an :class:`UndefinedMetricWarning` if a class is missing."""
    n_neg, n_pos = ranked.neg.size, ranked.pos.size
    if n_neg == 0 or n_pos == 0:
        return warn_undefined(f"{what} AUROC is undefined with {n_pos} anomalous and {n_neg} normal "
                              f"{what}s: both classes are needed; returning NaN")
    return auroc(ranked)


def image_auroc(scores: object, labels: object) -> float:
    """Area under the ROC curve of image scores, exact (no threshold grid).

    Computed as the Mann-Whitney statistic
    ``AUROC = (#{s_a > s_n} + 1/2 #{s_a = s_n}) / (n_a n_n)`` over all pairs of an anomalous
    score ``s_a`` and a normal score ``s_n``; this is the trapezoidal area under the ROC curve
    through every distinct threshold, with ties handled as scikit-learn's ``roc_auc_score`` does.

    Args:
        scores: (N,) finite image anomaly scores, higher meaning more anomalous; NumPy array,
            torch tensor or list.
        labels: (N,) ground truth, 0 (or False) for normal, 1 (or True) for anomalous.

    Returns:
        The AUROC in [0, 1], or NaN with an :class:`UndefinedMetricWarning` when ``labels`` hold
        only one class.

    Raises:
        TypeError: if an input is not numeric.
        ValueError: if ``scores`` is empty, not 1-D or not finite, if ``labels`` has another
            shape or holds values other than 0 and 1.

    Example:
        >>> image_auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
        0.75
    """
    return auroc_from_ranked(rank_images(scores, labels), "image")


def pixel_auroc(anomaly_maps: object, masks: object) -> float:
    """Area under the ROC curve over every pixel of every image, normal images included.

    The same exact Mann-Whitney statistic as :func:`image_auroc`, with each pixel one sample:
    normal pixels are those with mask 0, in anomalous and normal images alike.

    Args:
        anomaly_maps: (N, H, W) finite pixel scores; float32 maps are sorted as float32.
        masks: (N, H, W) ground truth: bool, 0/1 or 0/255 (non-zero is anomalous).

    Returns:
        The AUROC in [0, 1], or NaN with an :class:`UndefinedMetricWarning` when the masks hold
        no anomalous or no normal pixel.

    Raises:
        TypeError: if an input is not numeric.
        ValueError: if ``anomaly_maps`` is empty, not (N, H, W) or not finite, if ``masks`` has
            another shape, or if ``masks`` mixes values other than 0/1 or 0/255 (the values found
            are listed).
    """
    maps, positive = check_pixels(anomaly_maps, masks)
    return auroc_from_ranked(rank_scores(maps, positive), "pixel")


@dataclass(frozen=True)
class RocCurve:
    """The image ROC curve through every distinct threshold, FPR increasing.

    Attributes:
        fpr: (K + 1,) false-positive rate, ``fpr[0] == 0`` and ``fpr[-1] == 1``.
        tpr: (K + 1,) true-positive rate, from 0 to 1.
        thresholds: (K + 1,) decreasing; ``thresholds[0]`` is ``+inf`` (nothing flagged), then the
            distinct scores (flag ``score >= threshold``).
    """

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray

    def area(self) -> float:
        """Trapezoidal area under the curve; equals :func:`image_auroc` (ties count 1/2)."""
        return float(np.sum(np.diff(self.fpr) * (self.tpr[1:] + self.tpr[:-1]) / 2))


def roc_curve(scores: object, labels: object) -> RocCurve:
    """The ROC curve of image ``scores`` against 0/1 ``labels``, one point per distinct score.

    Raises:
        ValueError: as :func:`image_auroc`, and when a class is missing (the curve is undefined).

    Example:
        >>> curve = roc_curve([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
        >>> curve.fpr.tolist(), curve.tpr.tolist(), curve.area()
        ([0.0, 0.0, 0.5, 0.5, 1.0], [0.0, 0.5, 0.5, 1.0, 1.0], 0.75)
    """
    ranked = rank_images(scores, labels)
    if ranked.neg.size == 0 or ranked.pos.size == 0:
        raise ValueError(f"the ROC curve needs normal and anomalous images, got {ranked.neg.size} normal "
                         f"and {ranked.pos.size} anomalous")
    thresholds = np.unique(np.concatenate([ranked.neg, ranked.pos]))[::-1]
    fp = ranked.neg.size - np.searchsorted(ranked.neg, thresholds, side="left")
    tp = ranked.pos.size - np.searchsorted(ranked.pos, thresholds, side="left")
    return RocCurve(fpr=np.concatenate([[0.0], fp / ranked.neg.size]),
                    tpr=np.concatenate([[0.0], tp / ranked.pos.size]),
                    thresholds=np.concatenate([[np.inf], thresholds.astype(np.float64)]))
