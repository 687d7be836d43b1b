"""AU-PRO: normalised area under the per-region-overlap curve, as MVTec AD's evaluation defines it.

Definition (Bergmann et al., "The MVTec Anomaly Detection Dataset", IJCV 2021, Sec. 4.2, and the
evaluation code published with the data set):

- ground-truth regions are the 8-connected components of each image's mask;
- at a threshold ``t`` (pixel anomalous iff score >= t),
  ``FPR(t) = #{normal pixels of all images with s >= t} / #{normal pixels}`` and
  ``PRO(t) = 1/R * sum_r #{p in region r: s_p >= t} / |r|`` over all ``R`` regions;
- the curve has one point per distinct score, in decreasing order, and starts at (0, 0);
- ``AU-PRO = 1/L * integral_0^L PRO dFPR`` by the trapezoid rule, with PRO interpolated
  linearly at exactly ``FPR = L`` (the ``fpr_limit``, 0.3 by default).

Implementation: each anomalous pixel carries the weight ``1 / (R |r|)`` of its region, so
``PRO(t)`` is the sum of the weights of anomalous pixels with ``s >= t``. Normal and anomalous
scores are sorted once each; FPR and PRO at every distinct threshold then come from binary
searches into those sorted arrays (integer counts for FPR, suffix sums of weights for PRO).
:func:`aupro` only builds the part of the curve up to the limit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from nsad.metrics._ranked import Ranked, check_pixels, rank_scores
from nsad.metrics._validate import check_fraction, warn_undefined

_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)
_BLOCK = 1 << 18  # curve points per block in aupro: bounds its working memory to a few MB


@dataclass(frozen=True)
class ProCurve:
    """The per-region-overlap curve, one point per distinct threshold, FPR increasing.

    Attributes:
        fpr: (K + 1,) float64 false-positive rate over all normal pixels, non-decreasing,
            ``fpr[0] == 0``.
        pro: (K + 1,) float64 mean per-region overlap, non-decreasing, ``pro[0] == 0``.
        thresholds: (K + 1,) decreasing; ``thresholds[0]`` is ``+inf`` (nothing flagged, the
            curve's start (0, 0)) and ``thresholds[k]`` is the k-th largest distinct score, in the
            maps' dtype (float32 or float64).
        n_regions: number of 8-connected ground-truth regions over all images.
    """

    fpr: np.ndarray
    pro: np.ndarray
    thresholds: np.ndarray
    n_regions: int

    def area(self, fpr_limit: float = 0.3) -> float:
        """Normalised area ``1/L * integral_0^L PRO dFPR`` (trapezoid rule, PRO interpolated at L).

        Raises:
            ValueError: if ``fpr_limit`` is not in (0, 1] or lies beyond the last point of a curve
                cut short with ``max_fpr``.
        """
        limit = check_fraction("fpr_limit", fpr_limit, include_zero=False)
        if self.fpr[-1] < limit:
            raise ValueError(f"fpr_limit {limit} lies beyond this curve, which ends at FPR "
                             f"{self.fpr[-1]:.6g}; build it with pro_curve(..., max_fpr >= {limit})")
        return _area_upto(self.fpr, self.pro, limit) / limit


def pro_curve(anomaly_maps: object, masks: object, max_fpr: float = 1.0) -> ProCurve:
    """The per-region-overlap curve of MVTec AD's AU-PRO, for plotting or for other limits.

    Args:
        anomaly_maps: (N, H, W) finite pixel scores, higher meaning more anomalous.
        masks: (N, H, W) ground truth: bool, 0/1 or 0/255 (non-zero is anomalous).
        max_fpr: in (0, 1]; the curve stops at the first point whose FPR reaches it (the
            default 1 gives the whole curve; with all scores distinct it has one point per pixel).

    Returns:
        A :class:`ProCurve`; ``curve.area(0.3)`` equals ``aupro(anomaly_maps, masks)`` up to rounding.

    Raises:
        TypeError: if an input is not numeric.
        ValueError: for empty, non-finite or mis-shaped maps, masks with values other than 0/1
            or 0/255, ``max_fpr`` outside (0, 1], or masks without any anomalous or any normal
            pixel (the curve is undefined then).
    """
    limit = check_fraction("max_fpr", max_fpr, include_zero=False)
    maps, positive = check_pixels(anomaly_maps, masks)
    ranked = rank_scores(maps, positive)
    weights, n_regions = _region_weights(positive)
    if n_regions == 0 or ranked.neg.size == 0:
        raise ValueError(f"the PRO curve needs anomalous and normal pixels; got {n_regions} regions and "
                         f"{ranked.neg.size} normal pixels")
    fprs, pros, thresholds_parts = [np.zeros(1)], [np.zeros(1)], [np.array([np.inf], dtype=ranked.neg.dtype)]
    for fpr_block, pro_block, threshold_block in _curve_blocks(ranked, weights, limit):
        fprs.append(fpr_block)
        pros.append(pro_block)
        thresholds_parts.append(threshold_block)
    del ranked, weights
    fpr = np.concatenate(fprs)  # one output at a time, freeing its blocks, to keep the peak low
    del fprs
    pro = np.concatenate(pros)
    del pros
    thresholds = np.concatenate(thresholds_parts)
    del thresholds_parts
    for array in (fpr, pro, thresholds):
        array.flags.writeable = False
    return ProCurve(fpr=fpr, pro=pro, thresholds=thresholds, n_regions=n_regions)


def aupro(anomaly_maps: object, masks: object, fpr_limit: float = 0.3) -> float:
    """Normalised area under the per-region-overlap curve up to ``fpr_limit`` (MVTec AD's AU-PRO).

    ``AU-PRO = 1/L * integral_0^L PRO(FPR) dFPR`` with ``L = fpr_limit``: see the module docstring
    for FPR, PRO and the curve; regions are 8-connected, the curve starts at (0, 0), and PRO is
    interpolated linearly at exactly ``FPR = L``.

    Args:
        anomaly_maps: (N, H, W) finite pixel scores, higher meaning more anomalous; normal images
            (all-zero masks) take part through their normal pixels.
        masks: (N, H, W) ground truth: bool, 0/1 or 0/255 (non-zero is anomalous).
        fpr_limit: upper integration limit ``L`` in (0, 1].

    Returns:
        AU-PRO in [0, 1], or NaN with an :class:`UndefinedMetricWarning` when the masks hold no
        anomalous region or no normal pixel.

    Raises:
        TypeError: if an input is not numeric.
        ValueError: for empty, non-finite or mis-shaped maps, masks with values other than 0/1
            or 0/255 (the values found are listed), or ``fpr_limit`` outside (0, 1].

    Example:
        One 10-pixel region (row 0) and 10 normal pixels (row 1) with the same scores 0..9: every
        threshold flags one pixel of each, so PRO = FPR and AU-PRO = (0.3^2 / 2) / 0.3 = 0.15.

        >>> maps = np.tile(np.arange(10.0), (1, 2, 1))
        >>> masks = np.array([[[1] * 10, [0] * 10]])
        >>> round(aupro(maps, masks), 12)
        0.15
    """
    limit = check_fraction("fpr_limit", fpr_limit, include_zero=False)
    maps, positive = check_pixels(anomaly_maps, masks)
    return aupro_from_ranked(rank_scores(maps, positive), positive, limit)


def aupro_from_ranked(ranked: Ranked, positive: np.ndarray, fpr_limit: float) -> float:
    """AU-PRO from already ranked pixels and the bool masks (N, H, W); NaN if undefined."""
    weights, n_regions = _region_weights(positive)
    if n_regions == 0 or ranked.neg.size == 0:
        return warn_undefined(f"AU-PRO is undefined with {n_regions} anomalous regions and "
                              f"{ranked.neg.size} normal pixels: both are needed; returning NaN")
    return _streamed_area(_curve_blocks(ranked, weights, fpr_limit), fpr_limit)


def _region_weights(positive: np.ndarray) -> tuple[np.ndarray, int]:
    """Weight ``1 / (R |r|)`` of every anomalous pixel, in row-major order, and the region count R."""
    sizes_per_pixel = []
    n_regions = 0
    has_anomaly = positive.reshape(positive.shape[0], -1).any(axis=1)
    for index in np.flatnonzero(has_anomaly):
        mask = positive[index]
        labels, count = ndimage.label(mask, structure=_EIGHT_CONNECTED)
        sizes = np.bincount(labels.ravel())
        sizes_per_pixel.append(sizes[labels[mask]])
        n_regions += count
    if n_regions == 0:
        return np.empty(0), 0
    return 1.0 / (n_regions * np.concatenate(sizes_per_pixel).astype(np.float64)), n_regions


def _curve_blocks(ranked: Ranked, weights: np.ndarray, max_fpr: float
                  ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yield ``(fpr, pro, thresholds)`` blocks of curve points, thresholds decreasing, (0, 0) excluded.

    With ``max_fpr < 1`` the last block ends at the first point whose FPR reaches ``max_fpr``;
    with ``max_fpr == 1`` every point comes, including those after FPR first reaches 1. Blocks
    hold at most ``_BLOCK`` points, so the memory used beyond the sorted scores and the distinct
    thresholds does not grow with the curve.
    """
    neg, pos = ranked.neg, ranked.pos
    n_neg = neg.size
    # suffix[i] = sum of the weights of pos[i:] = PRO at any threshold in (pos[i-1], pos[i]];
    # summed from the highest score down, the order of the reference cumulative sum.
    suffix = np.zeros(pos.size + 1)
    suffix[:-1] = np.cumsum(weights[ranked.pos_order][::-1])[::-1]
    # Lowest threshold needed: the normal score at descending rank ceil(L n) + 1 has FPR >= L
    # whatever the float rounding of L n, so every point up to the limit lies at or above it.
    rank = min(n_neg, math.ceil(max_fpr * n_neg) + 1)
    lowest = neg[n_neg - rank] if max_fpr < 1.0 else -np.inf
    candidates = np.concatenate((neg[np.searchsorted(neg, lowest, side="left"):],
                                 pos[np.searchsorted(pos, lowest, side="left"):]))
    candidates.sort(kind="stable")  # two sorted runs: timsort merges them in linear time
    distinct = np.empty(candidates.size, dtype=bool)
    distinct[-1] = True
    np.not_equal(candidates[1:], candidates[:-1], out=distinct[:-1])
    thresholds = candidates[distinct]  # ascending
    del candidates, distinct
    stop = thresholds.size
    while stop > 0:
        start = max(0, stop - _BLOCK)
        block = thresholds[start:stop]  # ascending here, reversed on output
        fpr = (n_neg - np.searchsorted(neg, block, side="left"))[::-1] / n_neg
        pro = np.clip(suffix[np.searchsorted(pos, block, side="left")][::-1], 0.0, 1.0)
        if max_fpr < 1.0 and fpr[-1] >= max_fpr:
            end = int(np.searchsorted(fpr, max_fpr, side="left")) + 1
            yield fpr[:end], pro[:end], block[::-1][:end]
            return
        yield fpr, pro, block[::-1]
        stop = start


def _streamed_area(blocks: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]], limit: float) -> float:
    """Normalised area of a curve given as blocks (see :func:`_curve_blocks`), from (0, 0) to ``limit``."""
    x_last = y_last = 0.0
    area = 0.0
    for fpr, pro, _ in blocks:
        x = np.concatenate(([x_last], fpr))
        y = np.concatenate(([y_last], pro))
        if x[-1] >= limit:
            return (area + _area_upto(x, y, limit)) / limit
        area += _trapezoid(x, y)
        x_last, y_last = float(x[-1]), float(y[-1])
    raise RuntimeError(f"the PRO curve ended at FPR {x_last} below the limit {limit}")  # unreachable


def _trapezoid(x: np.ndarray, y: np.ndarray) -> float:
    """Trapezoidal area under the polyline through (x, y)."""
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1])) / 2.0)


def _area_upto(x: np.ndarray, y: np.ndarray, limit: float) -> float:
    """Area under the polyline (x, y) from ``x[0] < limit`` to ``limit <= x[-1]``, y linear at ``limit``."""
    first = int(np.searchsorted(x, limit, side="left"))  # first point with x >= limit
    if x[first] == limit:  # later points at the same x add no area
        return _trapezoid(x[: first + 1], y[: first + 1])
    x0, x1, y0, y1 = x[first - 1], x[first], y[first - 1], y[first]
    y_limit = y0 + (y1 - y0) * (limit - x0) / (x1 - x0)
    return _trapezoid(x[:first], y[:first]) + float((limit - x0) * (y0 + y_limit) / 2.0)
