"""Heatmaps, overlays and grids as uint8 RGB images."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np


def to_display(image: np.ndarray) -> np.ndarray:
    """Any (H, W[, C]) uint8/uint16 image as (H, W, 3) uint8 RGB for display."""
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ValueError(f"to_display needs a uint8 or uint16 image, got {image.dtype}")
    if image.ndim == 2:
        image = image[:, :, None]
    return np.repeat(image, 3, axis=2) if image.shape[2] == 1 else np.ascontiguousarray(image)


def colorize(anomaly_map: np.ndarray, vmin: float = 0.0, vmax: float | None = None) -> np.ndarray:
    """Map an (H, W) float array to (H, W, 3) uint8 RGB with the 'jet' colour map (blue low, red high).

    Values are scaled linearly from ``[vmin, vmax]`` (``vmax`` defaults to the map's maximum, at
    least ``vmin + 1e-6``) and clipped.
    """
    vmax = float(max(anomaly_map.max(), vmin + 1e-6)) if vmax is None else float(vmax)
    scaled = np.clip((anomaly_map.astype(np.float32) - vmin) / max(vmax - vmin, 1e-12), 0.0, 1.0)
    bgr = cv2.applyColorMap((scaled * 255).astype(np.uint8), cv2.COLORMAP_JET)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def overlay(image: np.ndarray, anomaly_map: np.ndarray, vmin: float = 0.0, vmax: float | None = None,
            opacity: float = 0.5) -> np.ndarray:
    """Blend the colourised ``anomaly_map`` over ``image``; the map is resized to the image if needed."""
    base = to_display(image)
    if anomaly_map.shape != base.shape[:2]:
        anomaly_map = cv2.resize(anomaly_map.astype(np.float32), (base.shape[1], base.shape[0]),
                                 interpolation=cv2.INTER_LINEAR)
    heat = colorize(anomaly_map, vmin, vmax)
    return cv2.addWeighted(base, 1.0 - opacity, heat, opacity, 0.0)


def grid(rows: Sequence[Sequence[np.ndarray]], titles: Sequence[str] = (), pad_px: int = 4,
         title_px: int = 18) -> np.ndarray:
    """Tile (H, W, 3) uint8 images into a grid with optional column titles; tiles are resized to the first."""
    height, width = rows[0][0].shape[:2]
    n_cols = max(len(row) for row in rows)
    top = title_px if titles else 0
    canvas = np.full((top + len(rows) * (height + pad_px) + pad_px, n_cols * (width + pad_px) + pad_px, 3),
                     255, np.uint8)
    for col, title in enumerate(titles):
        cv2.putText(canvas, title, (pad_px + col * (width + pad_px), title_px - 5), cv2.FONT_HERSHEY_SIMPLEX,
                    0.45, (0, 0, 0), 1, cv2.LINE_AA)
    for r, row in enumerate(rows):
        for c, tile in enumerate(row):
            if tile.shape[:2] != (height, width):
                tile = cv2.resize(tile, (width, height), interpolation=cv2.INTER_AREA)
            y, x = top + pad_px + r * (height + pad_px), pad_px + c * (width + pad_px)
            canvas[y:y + height, x:x + width] = tile
    return canvas
