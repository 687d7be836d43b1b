"""Object masks from the background brightness (NSA paper, eq. 8)."""

from __future__ import annotations

import cv2
import numpy as np

from nsad._checks import check_image, levels_per_8bit

OBJECT_MEDIAN_PX = 7
"""Side of the median filter that removes grain from object masks (the authors' 7 x 7)."""


def object_mask(image: np.ndarray, background: float, t_brightness: float) -> np.ndarray:
    """Mark the pixels whose brightness is far from the background (eq. 8, with the text's ``>``).

    ``m_i = |mean_c x_i - b| > t_brightness`` in 8-bit levels (16-bit images are divided by 257),
    then a 7 x 7 median filter (OpenCV's, replicated border) removes isolated pixels.

    Args:
        image: (H, W, C) uint8 or uint16 image.
        background: ``b`` in 8-bit levels.
        t_brightness: threshold in 8-bit levels.

    Returns:
        (H, W) bool mask, True on the object.
    """
    check_image("image", image)
    levels = image.mean(axis=2, dtype=np.float32) if image.shape[2] > 1 else image[:, :, 0].astype(np.float32)
    scale = levels_per_8bit(image.dtype)
    far = (np.abs(levels - np.float32(background * scale)) > t_brightness * scale).astype(np.uint8)
    return cv2.medianBlur(far, OBJECT_MEDIAN_PX).astype(bool)
