"""Heatmaps, overlays, colour bars, outlines and grids as uint8 RGB images (OpenCV only, no torch).

The one drawing code of ``nsad predict``, ``nsad report`` and ``nsad compare``: every heatmap is
coloured on its run's :class:`~nsad.viz.scale.HeatmapScale`, with predicted regions outlined in
white and ground truth in magenta.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from nsad.viz.scale import HeatmapScale


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


REGION_COLOUR = (255, 255, 255)
"""Outline of predicted regions (the run's region threshold): white."""
TRUTH_COLOUR = (255, 0, 255)
"""Outline of ground-truth defects: magenta, a colour the 'jet' map never takes."""


def line_width(shape: Sequence[int]) -> int:
    """Outline thickness in pixels for an image of ``shape``: 1 px per 250 px of the shorter side, at least 1."""
    return max(1, int(round(min(shape[:2]) / 250)))


def draw_outlines(image: np.ndarray, mask: np.ndarray | None, colour: tuple[int, int, int],
                  thickness: int | None = None) -> np.ndarray:
    """Draw the outer outlines of ``mask``'s connected regions onto a copy of an (H, W, 3) uint8 image.

    The mask is resized to the image with nearest neighbour if needed; an empty or missing mask
    returns the copy unchanged.
    """
    out = image.copy()
    if mask is None or not mask.any():
        return out
    if mask.shape != out.shape[:2]:
        mask = cv2.resize(mask.astype(np.uint8), (out.shape[1], out.shape[0]), interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(out, contours, -1, colour, line_width(out.shape) if thickness is None else thickness)
    return out


def _text(canvas: np.ndarray, text: str, origin: tuple[int, int], scale: float, colour=(0, 0, 0)) -> None:
    cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, max(1, int(round(scale * 2))),
                cv2.LINE_AA)


def _number(value: float) -> str:
    return f"{value:.3g}"


def colour_bar(height: int, scale: HeatmapScale) -> np.ndarray:
    """A vertical (height, W, 3) uint8 colour bar of ``scale``, ``high`` on top and ``low`` at the bottom.

    The region threshold is marked with a black line across the bar and labelled beside it; the
    font, and so the width, grow with the height.
    """
    font = max(0.35, height / 700)
    thickness = max(1, int(round(font * 2)))
    labels = [_number(scale.high), _number(scale.low)]
    if scale.region_threshold is not None:
        labels.append(_number(scale.region_threshold))
    sizes = [cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font, thickness)[0] for text in labels]
    text_w, text_h = max(w for w, _ in sizes), max(h for _, h in sizes)
    bar_px = max(12, height // 20)
    margin = max(6, int(round(font * 14)))
    canvas = np.full((height, 3 * margin + bar_px + text_w, 3), 255, np.uint8)
    top, bottom = margin, height - margin
    levels = np.linspace(1.0, 0.0, bottom - top)[:, None]
    strip = cv2.applyColorMap((np.repeat(levels, bar_px, axis=1) * 255).astype(np.uint8), cv2.COLORMAP_JET)
    canvas[top:bottom, margin:margin + bar_px] = cv2.cvtColor(strip, cv2.COLOR_BGR2RGB)
    text_x = 2 * margin + bar_px
    _text(canvas, labels[0], (text_x, top + text_h), font)
    _text(canvas, labels[1], (text_x, bottom), font)
    if scale.region_threshold is not None:
        y = int(round(bottom - scale.position(scale.region_threshold) * (bottom - top - 1)))
        cv2.line(canvas, (margin - 3, y), (margin + bar_px + 3, y), (0, 0, 0), max(1, int(round(font * 3))))
        label_y = min(bottom - 2 * text_h, max(top + 3 * text_h, y + text_h // 2))  # clear of the end labels
        _text(canvas, labels[2], (text_x, label_y), font)
    return canvas


def heatmap_overlay(image: np.ndarray, anomaly_map: np.ndarray, scale: HeatmapScale,
                    truth: np.ndarray | None = None) -> np.ndarray:
    """The image under its heatmap on the run's ``scale``, at the image's resolution.

    The map is resized to the image; predicted regions are outlined in white and the ground truth
    (``truth``, optional) in magenta.
    The heat covers the image by 25% at ``low`` up to 75% at ``high``, so normal parts stay visible.
    """
    base = to_display(image)
    if anomaly_map.shape != base.shape[:2]:
        anomaly_map = cv2.resize(anomaly_map.astype(np.float32), (base.shape[1], base.shape[0]),
                                 interpolation=cv2.INTER_LINEAR)
    heat = colorize(anomaly_map, scale.low, scale.high).astype(np.float32)
    weight = (0.25 + 0.5 * np.clip((anomaly_map - scale.low) / (scale.high - scale.low), 0, 1))[:, :, None]
    heat = np.round(base * (1 - weight) + heat * weight).astype(np.uint8)
    heat = draw_outlines(heat, scale.regions(anomaly_map), REGION_COLOUR)
    return draw_outlines(heat, truth, TRUTH_COLOUR)


MIN_FIGURE_PX = 96
"""Images shorter than this are enlarged in figures (nearest neighbour, by a whole factor) so the colour bar fits."""


def heatmap_figure(image: np.ndarray, anomaly_map: np.ndarray, scale: HeatmapScale,
                   truth: np.ndarray | None = None) -> np.ndarray:
    """What ``nsad predict`` writes and reports show, side by side at the image's resolution.

    The image (ground truth outlined, if given), the :func:`heatmap_overlay` and the :func:`colour_bar`.
    Images shorter than :data:`MIN_FIGURE_PX` are shown enlarged by the smallest whole factor that reaches it.
    """
    base = to_display(image)
    factor = -(-MIN_FIGURE_PX // base.shape[0])
    if factor > 1:
        base = np.repeat(np.repeat(base, factor, axis=0), factor, axis=1)
        if truth is not None:
            truth = np.repeat(np.repeat(truth, factor, axis=0), factor, axis=1)
    left = draw_outlines(base, truth, TRUTH_COLOUR)
    return np.concatenate([left, heatmap_overlay(base, anomaly_map, scale, truth),
                           colour_bar(base.shape[0], scale)], axis=1)
