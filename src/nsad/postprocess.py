"""Anomaly maps to image scores and defects, with numpy and SciPy only (no torch).

The one implementation of the post-processing that the torch scorer (:mod:`nsad.pipeline.scoring`)
and the deployment runtime share: the image score rules, Bauer's minimum-area threshold protocol
(Bauer 2022, Sec. 4.2) and defect segmentation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.ndimage

SCORE_RULES = ("mean", "max", "topk", "area", "density")


def parse_score_rule(rule: str) -> tuple[str, float]:
    """Check an image score rule and return its name and parameter.

    ``mean`` (the paper's), ``max``, ``topk:F`` (mean of the top fraction F of pixels), ``area:N``
    (the level at which the map's largest blob shrinks below N pixels: Bauer's decision rule made
    continuous, see :func:`defect_area_scores`) or ``density`` (the model's own image-level score:
    CutPaste's Mahalanobis distance of the whole image's embedding).

    Raises:
        ValueError: for another rule, a fraction outside (0, 1] or an area that is not a whole number >= 1.
    """
    name, _, value = rule.partition(":")
    if name in ("mean", "max", "density") and not value:
        return name, 0.0
    if name == "area":
        if not (value.isascii() and value.isdigit()) or int(value) < 1:
            raise ValueError(f"score rule {rule!r}: area needs a whole number of pixels >= 1, e.g. 'area:64'")
        return name, float(int(value))
    if name == "topk":
        try:
            fraction = float(value)
        except ValueError:
            fraction = float("nan")
        if not 0 < fraction <= 1:
            raise ValueError(f"score rule {rule!r}: topk needs a fraction in (0, 1], e.g. 'topk:0.01'")
        return name, fraction
    raise ValueError(f"unknown score rule {rule!r}; choose 'mean' (the paper's), 'max', 'topk:F' "
                     "(e.g. topk:0.01), 'area:N' (e.g. area:64) or 'density' (CutPaste runs)")


def defect_area_scores(maps: np.ndarray, min_area: int) -> np.ndarray:
    """Bauer's decision rule as a score: the lowest level at which no blob of ``min_area`` pixels remains.

    Bauer (2022, Sec. 4.2) declares an image anomalous when ``{map > t}`` has a connected component
    (8-connected) of at least ``min_area`` pixels. The score of a map is the smallest of its values
    ``s`` such that every component of ``{map > s}`` is smaller than ``min_area``: the image is
    anomalous at threshold ``t`` exactly when ``s > t``, so ranking images by ``s`` gives the ROC
    of Bauer's detector over all thresholds, and the threshold his protocol picks on normal
    validation maps (:func:`calibrate_threshold`) is the largest of their scores.
    ``min_area = 1`` gives the map's maximum.
    """
    return np.array([calibrate_threshold(m, int(min_area)).threshold for m in maps], np.float64)


def image_scores(maps: np.ndarray, rule: str = "mean") -> np.ndarray:
    """Image scores of (N, H, W) maps by ``rule`` (see :func:`parse_score_rule`).

    Raises:
        ValueError: for an unknown rule, or ``density``, which is not computed from maps.
    """
    name, fraction = parse_score_rule(rule)
    if name == "density":
        raise ValueError("score rule 'density' is a model's own image-level score (CutPaste runs), not a "
                         "function of the map; choose mean, max, topk:F or area:N")
    if name == "area":
        return defect_area_scores(maps, int(fraction))
    flat = maps.reshape(len(maps), -1)
    if name == "mean":
        return flat.mean(axis=1, dtype=np.float64)
    if name == "max":
        return flat.max(axis=1).astype(np.float64)
    count = max(1, int(round(fraction * flat.shape[1])))
    return np.partition(flat, flat.shape[1] - count, axis=1)[:, -count:].mean(axis=1, dtype=np.float64)


def check_score_rule(rule: str, image_level: bool, model: str) -> str:
    """Check that ``rule`` can score a model; ``density`` needs the model's own image-level scores.

    Returns:
        ``rule``.

    Raises:
        ValueError: for an unknown rule, or ``density`` for a model without image-level scores.
    """
    if parse_score_rule(rule)[0] == "density" and not image_level:
        raise ValueError(f"score rule 'density' needs a model with image-level scores (CutPaste); this "
                         f"{model!r} run has none: choose mean, max, topk:F or area:N")
    return rule


def final_image_scores(network_maps: np.ndarray, rule: str, model_scores: np.ndarray | None = None) -> np.ndarray:
    """The image scores of a batch by the run's rule: the model's own (``density``) or :func:`image_scores`.

    Args:
        network_maps: (N, h, w) maps on the network's input (the test crop).
        rule: the score rule (see :func:`parse_score_rule`).
        model_scores: (N,) the model's image-level scores, or None.

    Raises:
        ValueError: for an unknown rule, or ``density`` without ``model_scores``.
    """
    if parse_score_rule(rule)[0] == "density":
        if model_scores is None:
            raise ValueError("score rule 'density' needs the model's image-level scores; none were given")
        return np.asarray(model_scores, np.float64)
    return image_scores(network_maps, rule)


def decisions(scores: Sequence[float] | np.ndarray, threshold: float | None) -> list[str]:
    """``anomalous`` where the score is at least ``threshold``, else ``normal``; all ``""`` without a threshold."""
    if threshold is None:
        return ["" for _ in scores]
    return ["anomalous" if float(score) >= threshold else "normal" for score in scores]


def _as_numpy_maps(name: str, maps: Any) -> np.ndarray:
    if hasattr(maps, "detach"):  # a torch tensor, converted without importing torch
        maps = maps.detach().cpu().numpy()
    elif isinstance(maps, Sequence) and not isinstance(maps, str):
        maps = np.stack([np.asarray(m) for m in maps]) if len(maps) else np.empty((0, 0, 0))
    if not isinstance(maps, np.ndarray):
        raise TypeError(
            f"{name} must be a numpy array, a tensor or a list of 2-D maps, got {type(maps).__name__}"
        )
    if maps.ndim == 2:
        maps = maps[None]
    if maps.ndim != 3 or maps.shape[0] == 0 or maps.shape[1] == 0 or maps.shape[2] == 0:
        raise ValueError(f"{name} must have shape (N, H, W) with N, H, W >= 1 (or (H, W)), got {maps.shape}")
    if not np.isfinite(maps).all():
        raise ValueError(f"{name} must be finite")
    return maps


def _structure(connectivity: int) -> np.ndarray:
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity!r}")
    return scipy.ndimage.generate_binary_structure(2, 1 if connectivity == 4 else 2)


def largest_component_area(mask: np.ndarray, connectivity: int = 8) -> int:
    """Return the pixel count of the largest connected component of a 2-D boolean ``mask`` (0 if empty).

    Raises:
        ValueError: if ``mask`` is not 2-D or ``connectivity`` is not 4 or 8.
    """
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
    labels, count = scipy.ndimage.label(mask, structure=_structure(connectivity))
    return 0 if count == 0 else int(np.bincount(labels.ravel())[1:].max())


@dataclass(frozen=True)
class DefectThreshold:
    """Bauer 2022, Sec. 4.2: a defect is ``score > threshold`` in a component of ``min_area`` or more pixels.

    Attributes:
        threshold: anomaly-score threshold (strict: a pixel is anomalous when its score exceeds it).
        min_area: smallest connected component, in pixels, that counts as a defect.
        connectivity: 4 or 8 (pixel neighbourhood of the components).
    """

    threshold: float
    min_area: int
    connectivity: int = 8

    def __post_init__(self) -> None:
        if not math.isfinite(self.threshold):
            raise ValueError(f"threshold must be finite, got {self.threshold!r}")
        if (
            isinstance(self.min_area, bool)
            or not isinstance(self.min_area, (int, np.integer))
            or self.min_area < 1
        ):
            raise ValueError(f"min_area must be a positive int (pixels), got {self.min_area!r}")
        _structure(self.connectivity)
        object.__setattr__(self, "threshold", float(self.threshold))
        object.__setattr__(self, "min_area", int(self.min_area))


def calibrate_threshold(validation_maps: Any, min_area: int, connectivity: int = 8) -> DefectThreshold:
    """Choose the score threshold on normal validation images (Bauer 2022, Sec. 4.2).

    "For each category we first set a threshold for the minimal area of connected components to
    be considered as an anomaly. Then we evaluate our trained model on the validation set
    containing normal images only and set a threshold for the anomaly score such that the area of
    the largest connected component in the computed anomaly heatmaps is slightly below [the]
    defined minimum area."

    ``min_area`` is the user's (the paper sets it per category). The threshold returned is the
    smallest value ``t`` among the validation scores such that every connected component of
    ``{map > t}``, over all validation maps, has fewer than ``min_area`` pixels: the largest
    component is then as large as it can be while staying below ``min_area``, and
    :func:`segment_defects` finds no defect in any validation image. The largest component's area
    never grows with ``t`` (the sets are nested), so a binary search over the sorted distinct
    scores finds ``t`` with about ``log2(#scores)`` labellings.

    Args:
        validation_maps: (N, H, W) or (H, W) anomaly maps of normal images (NumPy, torch or a
            list of 2-D maps of one size), finite.
        min_area: minimum defect area in pixels, >= 1.
        connectivity: 4 or 8.

    Returns:
        The :class:`DefectThreshold` ``(threshold, min_area, connectivity)``.

    Raises:
        TypeError: if ``validation_maps`` is not array-like.
        ValueError: if the maps are empty or not finite, ``min_area < 1``, or ``connectivity`` is not 4 or 8.
    """
    maps = _as_numpy_maps("validation_maps", validation_maps)
    if isinstance(min_area, bool) or not isinstance(min_area, (int, np.integer)) or min_area < 1:
        raise ValueError(f"min_area must be a positive int (pixels), got {min_area!r}")
    _structure(connectivity)
    values = np.unique(maps)

    def small_enough(t: float) -> bool:
        above = maps > t
        return all(largest_component_area(m, connectivity) < min_area for m in above)

    low, high = 0, len(values) - 1  # small_enough(values[-1]) holds: nothing exceeds the maximum
    while low < high:
        mid = (low + high) // 2
        if small_enough(float(values[mid])):
            high = mid
        else:
            low = mid + 1
    return DefectThreshold(threshold=float(values[low]), min_area=int(min_area), connectivity=connectivity)


def segment_defects(anomaly_map: Any, rule: DefectThreshold) -> np.ndarray:
    """Binary defect segmentation: ``map > threshold``, then drop components smaller than ``min_area``.

    An image is declared anomalous when its segmentation is not empty (Bauer 2022, Sec. 4.2-4.3).

    Args:
        anomaly_map: (H, W) or (N, H, W) anomaly maps (NumPy or torch).
        rule: the threshold and minimum area, e.g. from :func:`calibrate_threshold`.

    Returns:
        Boolean array of ``anomaly_map``'s shape.

    Raises:
        TypeError: if ``rule`` is not a :class:`DefectThreshold` or the maps are not array-like.
        ValueError: if the maps are not 2-D or 3-D or not finite.
    """
    if not isinstance(rule, DefectThreshold):
        raise TypeError(f"rule must be a DefectThreshold, got {type(rule).__name__}")
    single = (anomaly_map.ndim if hasattr(anomaly_map, "ndim") else np.ndim(anomaly_map)) == 2
    maps = _as_numpy_maps("anomaly_map", anomaly_map)
    structure = _structure(rule.connectivity)
    out = np.zeros(maps.shape, dtype=bool)
    for index, above in enumerate(maps > rule.threshold):
        labels, count = scipy.ndimage.label(above, structure=structure)
        if count:
            keep = np.bincount(labels.ravel()) >= rule.min_area
            keep[0] = False
            out[index] = keep[labels]
    return out[0] if single else out
