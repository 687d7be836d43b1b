"""One colour scale per run: a map value means the same colour in every call, report and comparison.

``nsad train`` fixes the scale from the maps of the held-out normal images (never the test set) and
records it in ``run.json`` (``heatmap_scale``):

- ``region_threshold``: the pixel level above which a connected region of at least
  ``region_min_area`` pixels (counted in the ``frame_side`` frame) is outlined as a predicted
  defect. For the ``max`` and ``area:N`` score rules the image decision is exactly "such a region
  exists" (min area 1 and N), so the image threshold is used as it is; for the other rules
  (``mean``, ``topk``, ``density``) it is Bauer's protocol (Bauer 2022, Sec. 4.2) on the held-out
  maps: the lowest level at which none of them has a region of :data:`REGION_AREA_FRACTION` of the
  frame.
- ``low``: the median of the held-out normal pixels (drawn dark blue), and ``high`` such that the
  region threshold sits at :data:`THRESHOLD_POSITION` of the bar (yellow-orange with 'jet'): red
  is "clearly above the level normal parts reach", blue "what a normal part looks like".

Runs recorded before the scale existed get :func:`fallback_scale`: bounded maps (sigmoid outputs)
are drawn from 0 to 1 with regions above 0.5; unbounded maps from 0 to the largest value of the
maps being drawn, without regions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from nsad.postprocess import DefectThreshold, calibrate_threshold, parse_score_rule, segment_defects

THRESHOLD_POSITION = 2 / 3
"""Where the region threshold sits on the colour bar, as a fraction from ``low`` to ``high``."""
REGION_AREA_FRACTION = 2.5e-4
"""Smallest predicted region for the ``mean``/``topk``/``density`` rules: 16 pixels of a 256 frame."""
FALLBACK_BASIS = "fallback"


@dataclass(frozen=True)
class HeatmapScale:
    """How a run's maps are coloured and where its predicted regions are outlined.

    Attributes:
        low: value drawn at the bottom of the colour map (dark blue).
        high: value drawn at the top (dark red); larger values are clipped to it.
        region_threshold: a pixel belongs to a predicted region when its value exceeds this;
            None for no regions.
        region_min_area: smallest region in pixels of the ``frame_side`` frame (scaled by area
            at other resolutions).
        frame_side: side of the evaluation frame ``region_min_area`` is counted in.
        basis: how the scale was fixed, in words (shown in reports).
    """

    low: float
    high: float
    region_threshold: float | None
    region_min_area: int
    frame_side: int
    basis: str

    def __post_init__(self) -> None:
        for name in ("low", "high"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"heatmap scale {name} must be a finite number, got {value!r}")
        if not self.high > self.low:
            raise ValueError(f"heatmap scale needs high > low, got low {self.low!r}, high {self.high!r}")
        if self.region_threshold is not None and not math.isfinite(self.region_threshold):
            raise ValueError(f"heatmap scale region_threshold must be finite or None, got {self.region_threshold!r}")
        if int(self.region_min_area) < 1 or int(self.frame_side) < 1:
            raise ValueError(f"heatmap scale needs region_min_area and frame_side >= 1, got "
                             f"{self.region_min_area!r} and {self.frame_side!r}")

    @property
    def is_fallback(self) -> bool:
        """Whether the scale was not recorded by the run (see :func:`fallback_scale`)."""
        return self.basis.startswith(FALLBACK_BASIS)

    def position(self, value: float) -> float:
        """Where ``value`` lies on the colour bar, 0 (``low``) to 1 (``high``), clipped."""
        return float(np.clip((value - self.low) / (self.high - self.low), 0.0, 1.0))

    def to_dict(self) -> dict[str, Any]:
        """The JSON object ``run.json`` records."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HeatmapScale:
        """Read :meth:`to_dict`'s output.

        Raises:
            ValueError: for missing or unknown keys or invalid values.
        """
        names = set(cls.__dataclass_fields__)
        if not isinstance(data, Mapping) or set(data) != names:
            got = sorted(data) if isinstance(data, Mapping) else type(data).__name__
            raise ValueError(f"heatmap_scale must be an object with keys {sorted(names)}, got {got}")
        threshold = data["region_threshold"]
        return cls(low=float(data["low"]), high=float(data["high"]),
                   region_threshold=None if threshold is None else float(threshold),
                   region_min_area=int(data["region_min_area"]), frame_side=int(data["frame_side"]),
                   basis=str(data["basis"]))

    def region_rule(self, shape: tuple[int, ...]) -> DefectThreshold | None:
        """The region rule for a map of the whole frame at ``shape`` (H, W): the minimum area scaled by area."""
        if self.region_threshold is None:
            return None
        scale = shape[0] * shape[1] / float(self.frame_side * self.frame_side)
        return DefectThreshold(self.region_threshold, max(1, int(round(self.region_min_area * scale))))

    def regions(self, anomaly_map: np.ndarray) -> np.ndarray:
        """Boolean (H, W) predicted regions of a map of the whole frame at any resolution.

        All False without a region threshold.
        """
        rule = self.region_rule(anomaly_map.shape)
        if rule is None:
            return np.zeros(anomaly_map.shape, bool)
        return segment_defects(anomaly_map.astype(np.float32), rule)


def fit_scale(normal_maps: np.ndarray, score_rule: str, image_threshold: float | None,
              frame_side: int) -> HeatmapScale:
    """The run's scale from the maps of held-out normal images (see the module docstring).

    Args:
        normal_maps: (N, h, w) maps of held-out normal images, the part of the frame the network saw
            (its pixels are the frame's).
        score_rule: the run's image score rule.
        image_threshold: the run's calibrated image threshold, or None.
        frame_side: side of the evaluation frame (the resize side).

    Raises:
        ValueError: for empty or non-finite maps.
    """
    maps = np.asarray(normal_maps, dtype=np.float32)
    if maps.ndim != 3 or maps.size == 0 or not np.isfinite(maps).all():
        raise ValueError(f"normal_maps must be finite (N, H, W) maps, got shape {maps.shape}")
    rule, parameter = parse_score_rule(score_rule)
    if rule in ("max", "area") and image_threshold is not None:
        min_area = 1 if rule == "max" else int(parameter)
        threshold = float(image_threshold)
        how = f"regions: the image threshold of the {score_rule} rule"
    else:
        min_area = max(1, int(round(REGION_AREA_FRACTION * frame_side * frame_side)))
        threshold = calibrate_threshold(maps, min_area).threshold
        how = (f"regions: the lowest level at which no held-out normal map has a region of {min_area} px "
               f"(of a {frame_side}-px frame)")
    low = float(np.median(maps))
    high = low + (threshold - low) / THRESHOLD_POSITION
    if not high > low:  # a threshold at or below the median: fall back to the maps' range
        high = max(float(maps.max()), low + 1e-6)
    return HeatmapScale(low=low, high=float(high), region_threshold=threshold, region_min_area=min_area,
                        frame_side=int(frame_side),
                        basis=f"fixed at training from {len(maps)} held-out normal images: blue is their median "
                              f"pixel, the threshold sits at {THRESHOLD_POSITION:.0%} of the bar; {how}")


def fallback_scale(label_kind: str, maps: np.ndarray, frame_side: int) -> HeatmapScale:
    """The documented scale of runs without a recorded one (trained before it existed, or without holdout).

    Bounded maps (``label_kind == 'bounded'``, sigmoid outputs in (0, 1)) are drawn from 0 to 1 with
    regions where the network says "more anomalous than not" (> 0.5); unbounded maps from 0 to the
    largest value of ``maps`` (the maps being drawn), without regions.
    """
    if label_kind == "bounded":
        return HeatmapScale(0.0, 1.0, 0.5, 1, int(frame_side),
                            f"{FALLBACK_BASIS}: the run records no scale; maps drawn from 0 to 1, regions above 0.5")
    top = max(float(np.max(maps)), 1e-6)
    return HeatmapScale(0.0, top, None, 1, int(frame_side),
                        f"{FALLBACK_BASIS}: the run records no scale; maps drawn from 0 to the largest value "
                        "shown here, no regions")


def run_scale(recorded: Mapping[str, Any] | None, label_kind: str, maps: np.ndarray, frame_side: int) -> HeatmapScale:
    """The scale ``run.json`` records (``recorded``), or :func:`fallback_scale` for ``maps`` when it has none."""
    if recorded is not None:
        return HeatmapScale.from_dict(recorded)
    return fallback_scale(label_kind, maps, frame_side)
