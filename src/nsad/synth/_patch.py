"""NSA's patch geometry (NSA paper, Sec. 3, eqs. 5-12): sizes, centres, resize factors, shapes.

Every function draws from an explicit ``rng`` and returns plain values; applying them to images is
done elsewhere. Sizes are in pixels, bounds in fractions of the image side, ``w`` along x (columns)
and ``h`` along y (rows).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from nsad.synth._types import Box
from nsad.synth.presets import Preset

MIN_PATCH_PX = 4
"""The smallest patch side a preset may ask for on an image; smaller images are rejected."""


def check_image_fits(preset: Preset, height: int, width: int) -> None:
    """Reject an image on which the preset's smallest patch would be under ``MIN_PATCH_PX`` pixels.

    Raises:
        ValueError: naming the image size, the preset and the smallest size it accepts.
    """
    h_min, w_min = preset.h_bounds[0], preset.w_bounds[0]
    if h_min * height < MIN_PATCH_PX or w_min * width < MIN_PATCH_PX:
        need_h, need_w = math.ceil(MIN_PATCH_PX / h_min), math.ceil(MIN_PATCH_PX / w_min)
        raise ValueError(f"a {width}x{height} image is too small for preset {preset.name!r}: its smallest patch "
                         f"({w_min:g} x {h_min:g} of the image) would be under {MIN_PATCH_PX} px; use images of at "
                         f"least {need_w}x{need_h} px or a preset with larger h_bounds/w_bounds")


def sample_patch_fraction(rng: np.random.Generator, bounds: tuple[float, float], offset: float = 0.06,
                          gamma_scale: float = 0.1) -> float:
    """Draw a patch side as a fraction of the image side (eqs. 5-6).

    ``f = min(max(f_min, offset + r), f_max)`` with ``r ~ Gamma(shape=2, scale=gamma_scale)``.
    """
    return float(min(max(bounds[0], offset + rng.gamma(2.0, gamma_scale)), bounds[1]))


def sample_patch_size(rng: np.random.Generator, preset: Preset, height: int, width: int) -> tuple[int, int]:
    """Draw the source patch size ``(h, w)`` in pixels (eqs. 5-6): ``w`` first, then ``h``."""
    w_frac = sample_patch_fraction(rng, preset.w_bounds, preset.size_offset, preset.size_gamma_scale)
    h_frac = sample_patch_fraction(rng, preset.h_bounds, preset.size_offset, preset.size_gamma_scale)
    return max(1, round(h_frac * height)), max(1, round(w_frac * width))


def box_around(center_x: float, center_y: float, h: int, w: int, height: int, width: int) -> Box:
    """The ``h x w`` box centred at ``(center_x, center_y)``, clipped at the image border."""
    x0, y0 = round(center_x - w / 2), round(center_y - h / 2)
    return Box(max(0, x0), max(0, y0), min(width, x0 + w), min(height, y0 + h))


def sample_source_box(rng: np.random.Generator, preset: Preset, h: int, w: int, height: int, width: int) -> Box:
    """Draw the source centre uniformly as in eq. 7 and return the box, clipped at the border.

    ``c_x ~ U(W w_min / 2, W - W w_min / 2)`` and likewise ``c_y`` with ``h_min``.
    """
    margin_x, margin_y = width * preset.w_bounds[0] / 2, height * preset.h_bounds[0] / 2
    center_x = rng.uniform(margin_x, width - margin_x)
    center_y = rng.uniform(margin_y, height - margin_y)
    return box_around(center_x, center_y, h, w, height, width)


def sample_scale(rng: np.random.Generator, preset: Preset, h_frac: float, w_frac: float,
                 bounds: tuple[tuple[float, float], tuple[float, float]] | None = None) -> float:
    """Draw the resize factor ``s`` of eq. 9 for a patch of ``h_frac x w_frac`` of the image.

    ``r_s ~ N(1, sd=0.5)`` clipped to ``[s_min, s_max]`` (the authors' ``resize_bounds``), then
    ``s = max(w_min / w, h_min / h, min(r_s, w_max / w, h_max / h))``, so that the resized patch
    stays within the size bounds, which take precedence. ``bounds`` replaces the preset's
    ``(h_bounds, w_bounds)`` in that clip (the authors' code clips to half of them).
    """
    r_s = float(np.clip(rng.normal(1.0, 0.5), *preset.scale_bounds))
    (h_min, h_max), (w_min, w_max) = bounds or (preset.h_bounds, preset.w_bounds)
    return float(max(w_min / w_frac, h_min / h_frac, min(r_s, w_max / w_frac, h_max / h_frac)))


def sample_destination_box(rng: np.random.Generator, h: int, w: int, height: int, width: int) -> Box:
    """Draw the destination box of an ``h x w`` patch uniformly inside the image (eq. 10)."""
    x0 = int(rng.integers(0, width - w + 1))
    y0 = int(rng.integers(0, height - h + 1))
    return Box(x0, y0, x0 + w, y0 + h)


def sample_ellipses_mask(rng: np.random.Generator, h: int, w: int, count: int) -> np.ndarray:
    """Draw a union of ``count`` random ellipses inside an ``h x w`` box, as a (h, w) bool mask.

    Each ellipse has its centre uniform in the box, semi-axes uniform in [0.15, 0.5] of the box
    side and a uniform angle; the authors' optional patch shape.
    """
    mask = np.zeros((h, w), np.uint8)
    for _ in range(count):
        center = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        axes = (max(1, round(rng.uniform(0.15, 0.5) * w)), max(1, round(rng.uniform(0.15, 0.5) * h)))
        cv2.ellipse(mask, center, axes, float(rng.uniform(0.0, 180.0)), 0.0, 360.0, 1, thickness=-1)
    return mask.astype(bool)
