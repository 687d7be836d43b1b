"""Anomaly maps to image scores, decisions and defects, with numpy and OpenCV only (no torch, no SciPy).

The one implementation of the post-processing that the torch scorer (:mod:`nsad.pipeline.scoring`)
and the deployment runtime (:mod:`nsad.deploy`) share: CutPaste's patch maps and Mahalanobis
distances (Li et al. 2021, Sec. 2.3-2.4), the image score rules, Bauer's minimum-area threshold
protocol (Bauer 2022, Sec. 4.2), defect segmentation and defect regions, and the assembly of a
batch's network outputs into per-image predictions at the images' original resolution
(:func:`predictions_from_network`).

Connected components are OpenCV's (``cv2.connectedComponentsWithStats``), the same components
as ``scipy.ndimage.label`` with the matching structuring element.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from nsad.data.transforms import TransformConfig, frame_map, resize_map

SCORE_RULES = ("mean", "max", "topk", "toppx", "smoothmax", "area", "density")


def parse_score_rule(rule: str) -> tuple[str, float]:
    """Check an image score rule and return its name and parameter.

    ``mean`` (the paper's), ``max``, ``topk:F`` (mean of the top fraction F of pixels), ``toppx:N``
    (mean of the N highest pixels: a fixed defect size, whatever the image's), ``smoothmax:S`` (the
    maximum after a Gaussian blur of S pixels: a small defect's peak, less one pixel's noise),
    ``area:N`` (the level at which the map's largest blob shrinks below N pixels: Bauer's decision
    rule made continuous, see :func:`defect_area_scores`) or ``density`` (the model's own
    image-level score: CutPaste's Mahalanobis distance of the whole image's embedding).

    Raises:
        ValueError: for another rule, a fraction outside (0, 1], a pixel count or area that is not a
            whole number >= 1, or a blur that is not a positive number.
    """
    name, _, value = rule.partition(":")
    if name in ("mean", "max", "density") and not value:
        return name, 0.0
    if name in ("area", "toppx"):
        if not (value.isascii() and value.isdigit()) or int(value) < 1:
            raise ValueError(f"score rule {rule!r}: {name} needs a whole number of pixels >= 1, e.g. '{name}:64'")
        return name, float(int(value))
    ranges = {"smoothmax": (1000.0, "a blur in pixels in (0, 1000]", "smoothmax:4"),
              "topk": (1.0, "a fraction in (0, 1]", "topk:0.01")}
    if name in ranges:
        high, what, example = ranges[name]
        try:
            number = float(value)
        except ValueError:
            number = float("nan")
        if not 0 < number <= high:
            raise ValueError(f"score rule {rule!r}: {name} needs {what}, e.g. '{example}'")
        return name, number
    raise ValueError(f"unknown score rule {rule!r}; choose 'mean' (the paper's), 'max', 'topk:F' "
                     "(e.g. topk:0.01), 'toppx:N' (e.g. toppx:100), 'smoothmax:S' (e.g. smoothmax:4), "
                     "'area:N' (e.g. area:64) or 'density' (CutPaste runs)")


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
    if name == "smoothmax":  # reflected at the border, so an edge defect is not dimmed by zeros outside
        return np.array([cv2.GaussianBlur(m.astype(np.float64), (0, 0), fraction, borderType=cv2.BORDER_REFLECT).max()
                         for m in maps])
    flat = maps.reshape(len(maps), -1)
    if name == "mean":
        return flat.mean(axis=1, dtype=np.float64)
    if name == "max":
        return flat.max(axis=1).astype(np.float64)
    count = min(flat.shape[1], int(fraction)) if name == "toppx" else max(1, int(round(fraction * flat.shape[1])))
    return np.partition(flat, flat.shape[1] - count, axis=1)[:, -count:].mean(axis=1, dtype=np.float64)


def patch_positions(size: int, patch_size: int, stride: int) -> np.ndarray:
    """Return the start offsets of patches along one image side.

    Offsets ``0, stride, 2 stride, ...`` up to ``size - patch_size``; when ``size - patch_size`` is
    not a multiple of ``stride`` a last patch flush with the border is added, so every pixel is
    covered (256 px, 64 px patches, stride 4: 49 offsets ``0, 4, ..., 192``).

    Args:
        size: image side in pixels.
        patch_size: patch side, ``1 <= patch_size <= size``.
        stride: step between patches, >= 1.

    Returns:
        (n,) int64 offsets, increasing.

    Raises:
        ValueError: if a value is not a positive int or ``patch_size > size``.

    Example:
        >>> patch_positions(10, 4, 4)  # 0, 4 and the last patch flush with the border
        array([0, 4, 6])
        >>> len(patch_positions(256, 64, 4))
        49
    """
    size, patch_size, stride = (
        _positive_int(n, v) for n, v in (("size", size), ("patch_size", patch_size), ("stride", stride))
    )
    if patch_size > size:
        raise ValueError(f"patch_size must not exceed the image side {size}, got {patch_size}")
    offsets = np.arange(0, size - patch_size + 1, stride, dtype=np.int64)
    if offsets[-1] != size - patch_size:
        offsets = np.append(offsets, size - patch_size)
    return offsets


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def gaussian_smooth(maps: np.ndarray, sigma_px: float) -> np.ndarray:
    """Smooth (..., H, W) maps with a Gaussian as ``scipy.ndimage.gaussian_filter(mode="nearest")`` does.

    SciPy's kernel (radius ``int(4 sigma + 0.5)``, ``exp(-x² / 2σ²)`` normalised), applied
    separably by ``cv2.sepFilter2D`` with replicated borders, in the maps' float dtype.
    ``sigma_px = 0`` returns the maps unchanged.

    Raises:
        ValueError: if ``sigma_px`` is negative or not finite.
    """
    if not (np.isfinite(sigma_px) and sigma_px >= 0):
        raise ValueError(f"sigma_px must be a finite number >= 0, got {sigma_px!r}")
    if sigma_px == 0:
        return maps
    radius = int(4.0 * sigma_px + 0.5)
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 / (sigma_px * sigma_px) * offsets * offsets)
    kernel /= kernel.sum()
    flat = maps.reshape(-1, *maps.shape[-2:])
    out = np.stack([cv2.sepFilter2D(m, -1, kernel, kernel, borderType=cv2.BORDER_REPLICATE) for m in flat])
    return out.reshape(maps.shape)


def patch_anomaly_map(
    patch_scores: Any,
    image_size: tuple[int, int],
    patch_size: int,
    stride: int,
    sigma_px: float = 4.0,
) -> np.ndarray:
    """Spread patch scores over the pixels they cover, then smooth (CutPaste, Sec. 2.4).

    Receptive-field upsampling: the score of pixel ``(y, x)`` is the mean score of all patches
    whose window contains it, ``A(y, x) = Σ_ij s_ij R_i(y) C_j(x) / (Σ_i R_i(y) Σ_j C_j(x))`` with
    ``R_i``, ``C_j`` the indicator functions of the patch rows and columns (:func:`patch_positions`).
    The map is then smoothed with a Gaussian of standard deviation ``sigma_px`` (the paper's
    "Gaussian smoothing to propagate the score to every pixel"; it gives no width, we default to
    the paper's stride, 4 px), as ``scipy.ndimage.gaussian_filter`` with ``mode="nearest"``
    (:func:`gaussian_smooth`).

    Args:
        patch_scores: (B, nh, nw) or (nh, nw) scores (NumPy or torch), e.g. the Mahalanobis
            distances of the patch embeddings.
        image_size: (H, W) of the images the patches came from.
        patch_size: patch side in pixels.
        stride: grid step in pixels.
        sigma_px: Gaussian standard deviation in pixels, >= 0 (0: no smoothing).

    Returns:
        (B, H, W) or (H, W) float32 anomaly maps (same leading shape as ``patch_scores``).

    Raises:
        ValueError: if the grid of ``patch_scores`` does not match ``image_size``, ``patch_size`` and
            ``stride``, the scores are not finite, or ``sigma_px`` is negative.

    Example:
        Two 4-px patches with stride 2 on a 4 x 6 image; columns 2-3 lie in both:

        >>> import numpy as np
        >>> patch_anomaly_map(np.array([[1.0, 3.0]]), (4, 6), patch_size=4, stride=2, sigma_px=0)[0]
        array([1., 1., 2., 2., 3., 3.], dtype=float32)
    """
    scores = patch_scores.detach().cpu().numpy() if hasattr(patch_scores, "detach") else np.asarray(patch_scores)
    if not (isinstance(image_size, Sequence) and len(image_size) == 2):
        raise ValueError(f"image_size must be (height, width), got {image_size!r}")
    height, width = (_positive_int("image_size", v) for v in image_size)
    rows, cols = patch_positions(height, patch_size, stride), patch_positions(width, patch_size, stride)
    single = scores.ndim == 2
    if single:
        scores = scores[None]
    if scores.ndim != 3 or scores.shape[1:] != (len(rows), len(cols)):
        raise ValueError(
            f"patch_scores must have shape (B, {len(rows)}, {len(cols)}) or ({len(rows)}, {len(cols)}) "
            f"for image_size {(height, width)}, patch_size {patch_size}, stride {stride}; "
            f"got {scores.shape if not single else scores.shape[1:]}"
        )
    if not np.isfinite(scores).all():
        raise ValueError("patch_scores must be finite")
    if not (np.isfinite(sigma_px) and sigma_px >= 0):
        raise ValueError(f"sigma_px must be a finite number >= 0, got {sigma_px!r}")
    row_cover = (np.arange(height)[None, :] >= rows[:, None]) & (
        np.arange(height)[None, :] < rows[:, None] + patch_size
    )
    col_cover = (np.arange(width)[None, :] >= cols[:, None]) & (
        np.arange(width)[None, :] < cols[:, None] + patch_size
    )
    row_cover, col_cover = row_cover.astype(np.float64), col_cover.astype(np.float64)
    summed = np.einsum("iy,bij,jx->byx", row_cover, scores.astype(np.float64), col_cover, optimize=True)
    counts = np.outer(row_cover.sum(axis=0), col_cover.sum(axis=0))
    maps = gaussian_smooth(summed / counts, float(sigma_px)).astype(np.float32)
    return maps[0] if single else maps


def mahalanobis(embeddings: np.ndarray, mean: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """Mahalanobis distances ``sqrt((f - µ)ᵀ Σ⁻¹ (f - µ))`` of (..., D) embeddings, in float64 (CutPaste, eq. 2).

    Raises:
        ValueError: if the shapes do not fit or the embeddings are not finite.
    """
    data = np.asarray(embeddings, np.float64)
    mean, precision = np.asarray(mean, np.float64), np.asarray(precision, np.float64)
    if mean.ndim != 1 or precision.shape != (mean.size, mean.size) or data.shape[-1:] != mean.shape:
        raise ValueError(f"embeddings must be (..., D) for a (D,) mean and (D, D) precision; got "
                         f"{data.shape}, {mean.shape} and {precision.shape}")
    if not np.isfinite(data).all():
        raise ValueError("embeddings must be finite; they hold NaN or infinite values")
    centred = data - mean
    return np.sqrt(np.clip(((centred @ precision) * centred).sum(axis=-1), 0.0, None))


def cutpaste_maps_and_scores(image_embeddings: np.ndarray, patch_embeddings: np.ndarray,
                             densities: Mapping[str, tuple[np.ndarray, np.ndarray]], input_hw: tuple[int, int],
                             patch_px: int, stride_px: int, sigma_px: float) -> tuple[np.ndarray, np.ndarray]:
    """CutPaste's maps and image scores from its embeddings (Li et al. 2021, Sec. 2.3-2.4).

    Args:
        image_embeddings: (B, D) embeddings of the whole network inputs.
        patch_embeddings: (B, nh, nw, D) embeddings of the patch grid (:func:`patch_positions`).
        densities: ``{"image": (mean, precision), "patch": (mean, precision)}`` of the fitted Gaussians.
        input_hw: (H, W) of the network input.
        patch_px: patch side in pixels.
        stride_px: patch grid step in pixels.
        sigma_px: the map's Gaussian smoothing in pixels.

    Returns:
        (B, H, W) float32 maps and (B,) float64 image scores (the image density's distances).
    """
    maps = patch_anomaly_map(mahalanobis(patch_embeddings, *densities["patch"]), input_hw, patch_px, stride_px,
                             sigma_px)
    return maps, mahalanobis(image_embeddings, *densities["image"])


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


def _check_connectivity(connectivity: int) -> int:
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity!r}")
    return int(connectivity)


def label_components(mask: np.ndarray, connectivity: int = 8) -> tuple[int, np.ndarray, np.ndarray]:
    """Connected components of a 2-D boolean mask: ``(count, labels, stats)``.

    ``labels`` is (H, W) int32 with 0 for the background and 1..count for the components;
    ``stats`` is (count + 1, 5) ``[left, top, width, height, area]`` per label (OpenCV's
    ``CC_STAT_*``), row 0 the background.

    Raises:
        ValueError: if ``mask`` is not 2-D or ``connectivity`` is not 4 or 8.
    """
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        np.ascontiguousarray(mask, dtype=np.uint8), connectivity=_check_connectivity(connectivity), ltype=cv2.CV_32S)
    return count - 1, labels, stats


def largest_component_area(mask: np.ndarray, connectivity: int = 8) -> int:
    """Return the pixel count of the largest connected component of a 2-D boolean ``mask`` (0 if empty).

    Raises:
        ValueError: if ``mask`` is not 2-D or ``connectivity`` is not 4 or 8.
    """
    count, _, stats = label_components(mask, connectivity)
    return 0 if count == 0 else int(stats[1:, cv2.CC_STAT_AREA].max())


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
        _check_connectivity(self.connectivity)
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
    _check_connectivity(connectivity)
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
    out = np.zeros(maps.shape, dtype=bool)
    for index, above in enumerate(maps > rule.threshold):
        count, labels, stats = label_components(above, rule.connectivity)
        if count:
            keep = stats[:, cv2.CC_STAT_AREA] >= rule.min_area
            keep[0] = False
            out[index] = keep[labels]
    return out[0] if single else out


@dataclass(frozen=True)
class Region:
    """A defect region: a connected region of the map at or above the threshold, at the image's resolution.

    Attributes:
        bbox: ``(x0, y0, x1, y1)`` in pixels, ``x1`` and ``y1`` exclusive.
        area: pixels in the region.
        peak: largest map value in it.
        mean: mean map value in it.
    """

    bbox: tuple[int, int, int, int]
    area: int
    peak: float
    mean: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"bbox": [x0, y0, x1, y1], "area", "peak", "mean"}``."""
        return {"bbox": list(self.bbox), "area": self.area, "peak": self.peak, "mean": self.mean}


def defect_regions(anomaly_map: np.ndarray, threshold: float, min_area: int = 1,
                   connectivity: int = 8) -> list[Region]:
    """The connected regions of ``anomaly_map >= threshold`` with at least ``min_area`` pixels, largest first.

    Args:
        anomaly_map: (H, W) map, usually at the image's original resolution.
        threshold: the level (the run's decision threshold for map-based score rules).
        min_area: smallest region kept, in pixels of ``anomaly_map``.
        connectivity: 4 or 8.

    Raises:
        ValueError: for a map that is not 2-D and finite, a non-finite threshold or ``min_area < 1``.
    """
    anomaly_map = _as_numpy_maps("anomaly_map", anomaly_map)
    if anomaly_map.shape[0] != 1:
        raise ValueError(f"anomaly_map must be one (H, W) map, got shape {anomaly_map.shape}")
    anomaly_map = anomaly_map[0]
    if not math.isfinite(threshold):
        raise ValueError(f"threshold must be finite, got {threshold!r}")
    min_area = _positive_int("min_area", min_area)
    count, labels, stats = label_components(anomaly_map >= threshold, connectivity)
    if count == 0:
        return []
    flat_labels, values = labels.ravel(), anomaly_map.ravel().astype(np.float64)
    sums = np.bincount(flat_labels, weights=values, minlength=count + 1)
    peaks = np.full(count + 1, -np.inf)
    np.maximum.at(peaks, flat_labels, values)
    regions = []
    for label in range(1, count + 1):
        left, top, width, height, area = (int(v) for v in stats[label])
        if area >= min_area:
            regions.append(Region((left, top, left + width, top + height), area, float(peaks[label]),
                                  float(sums[label] / area)))
    return sorted(regions, key=lambda r: (-r.area, r.bbox[1], r.bbox[0]))


def region_threshold_for(score_rule: str, threshold: float | None) -> float | None:
    """The map level regions are cut at: the decision threshold when the image score is a function of the map.

    ``density`` scores (CutPaste's image embedding) are on another scale than the patch map, so
    there is no such level (None) unless one is given.
    """
    return None if threshold is None or parse_score_rule(score_rule)[0] == "density" else float(threshold)


@dataclass
class Prediction:
    """One image's result: its map at the original resolution, score, decision and defect regions.

    Attributes:
        anomaly_map: (H, W) float32 map at the image's resolution.
        score: the image score by the run's rule.
        threshold: the decision threshold, or None.
        decision: ``anomalous``, ``normal`` or ``""`` (no threshold).
        regions: the defect regions of an anomalous image (empty otherwise).
    """

    anomaly_map: np.ndarray
    score: float
    threshold: float | None
    decision: str
    regions: list[Region]


def predictions_from_network(network_maps: np.ndarray, model_scores: np.ndarray | None, transform: TransformConfig,
                             score_rule: str, threshold: float | None, shapes: Sequence[Sequence[int]],
                             region_threshold: float | None = None, min_area: int = 1) -> list[Prediction]:
    """A batch's network outputs as predictions: the one assembly of ``nsad predict --run`` and ``--model``.

    Scores by the rule on the network maps (:func:`final_image_scores`), decisions
    (:func:`decisions`), maps in the evaluation frame (:func:`~nsad.data.transforms.frame_map`) and
    at each image's original ``(H, W)`` (:func:`~nsad.data.transforms.resize_map`, bilinear), then
    the defect regions of the anomalous images at ``region_threshold`` (default
    :func:`region_threshold_for`).

    Args:
        network_maps: (N, h, w) maps on the network's input.
        model_scores: (N,) the model's own image scores (CutPaste), or None.
        transform: the run's test transform.
        score_rule: the image score rule.
        threshold: the decision threshold, or None.
        shapes: each image's original shape (its first two values are H, W).
        region_threshold: map level of the regions; None for :func:`region_threshold_for`'s.
        min_area: smallest region, in pixels of the original image.
    """
    scores = final_image_scores(network_maps, score_rule, model_scores)
    labels = decisions(scores, threshold)
    framed = frame_map(network_maps, transform)
    level = region_threshold_for(score_rule, threshold) if region_threshold is None else float(region_threshold)
    predictions = []
    for framed_map, score, decision, shape in zip(framed, scores, labels, shapes, strict=True):
        anomaly_map = resize_map(framed_map, tuple(shape[:2])).astype(np.float32)
        regions = defect_regions(anomaly_map, level, min_area) if decision == "anomalous" and level is not None else []
        predictions.append(Prediction(anomaly_map, float(score), threshold, decision, regions))
    return predictions
