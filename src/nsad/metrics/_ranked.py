"""Scores split by class and sorted once; AUROC and F1 read off the two sorted arrays.

Every metric here uses the decision rule "anomalous iff score >= threshold" and visits each
distinct score as a threshold, so nothing is binned. Sorting the normal and the anomalous scores
separately (values only, no argsort of all pixels) is the one O(n log n) step; the rest is
binary search and integer counting, which keeps the results exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nsad.metrics._validate import as_binary, as_scores, check_ndim, check_same_shape


@dataclass(frozen=True)
class Ranked:
    """Scores of one evaluation set split by ground truth and sorted ascending.

    Attributes:
        neg: (n_neg,) scores of the normal samples (label or mask 0), ascending.
        pos: (n_pos,) scores of the anomalous samples, ascending.
        pos_order: (n_pos,) for each entry of ``pos``, its index among the anomalous samples in
            their original (row-major) order; AU-PRO uses it to attach region weights.
    """

    neg: np.ndarray
    pos: np.ndarray
    pos_order: np.ndarray


def rank_scores(scores: np.ndarray, positive: np.ndarray) -> Ranked:
    """Split flat ``scores`` by the bool array ``positive`` and sort each part ascending."""
    neg = scores[~positive]
    neg.sort()
    pos = scores[positive]
    pos_order = np.argsort(pos, kind="stable")
    return Ranked(neg=neg, pos=pos[pos_order], pos_order=pos_order)


def rank_images(scores: object, labels: object) -> Ranked:
    """Check image ``scores`` (N,) and 0/1 ``labels`` (N,) and rank them."""
    scores = as_scores("scores", scores)
    check_ndim("scores", scores, 1, "(N,)")
    positive = as_binary("labels", labels, allow_255=False)
    check_same_shape("scores", scores, "labels", positive)
    return rank_scores(scores, positive)


def check_pixels(anomaly_maps: object, masks: object) -> tuple[np.ndarray, np.ndarray]:
    """Check (N, H, W) finite ``anomaly_maps`` and same-shape 0/1 or 0/255 ``masks``; masks to bool."""
    maps = as_scores("anomaly_maps", anomaly_maps)
    check_ndim("anomaly_maps", maps, 3, "(N, H, W)")
    positive = as_binary("masks", masks, allow_255=True)
    check_same_shape("anomaly_maps", maps, "masks", positive)
    return maps, positive


def auroc(ranked: Ranked) -> float:
    """Exact ROC AUC as the Mann-Whitney statistic; requires both classes to be present.

    AUROC = (#{(p, n): s_p > s_n} + 1/2 #{(p, n): s_p = s_n}) / (n_pos n_neg), which equals the
    trapezoidal area under the ROC curve through every distinct threshold (scikit-learn's
    ``roc_auc_score``). Counts are int64, so the only rounding is the final division.
    """
    neg, pos = ranked.neg, ranked.pos
    below = int(np.searchsorted(neg, pos, side="left").sum(dtype=np.int64))
    below_or_tied = int(np.searchsorted(neg, pos, side="right").sum(dtype=np.int64))
    return (below + below_or_tied) / (2 * neg.size * pos.size)


def f1_max(ranked: Ranked) -> tuple[float, float, float, float]:
    """Best F1 over all thresholds, as (f1, threshold, precision, recall); requires n_pos > 0.

    F1(t) = 2 TP(t) / (TP(t) + FP(t) + n_pos), TP and FP counting scores >= t. Only distinct
    anomalous scores need testing: lowering t past a normal-only score adds false positives and no
    true positive. Among equal maxima the highest threshold wins.
    """
    neg, pos = ranked.neg, ranked.pos
    n_pos = pos.size
    starts = np.flatnonzero(np.concatenate(([True], pos[1:] != pos[:-1])))
    thresholds = pos[starts]
    tp = n_pos - starts
    fp = neg.size - np.searchsorted(neg, thresholds, side="left")
    f1 = 2.0 * tp / (tp + fp + n_pos)
    best = f1.size - 1 - int(np.argmax(f1[::-1]))  # last in ascending order = highest threshold
    return (float(f1[best]), float(thresholds[best]), float(tp[best] / (tp[best] + fp[best])),
            float(tp[best] / n_pos))
