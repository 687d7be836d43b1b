"""Exact ROC AUC of image scores and of pixel scores (MVTec AD's image and pixel AUROC)."""

from __future__ import annotations

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
