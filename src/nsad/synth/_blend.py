"""Poisson blending (Pérez et al. 2003) behind one function with the semantics of ``cv2.seamlessClone``.

``seamless_clone`` checks its arguments once and hands them to a backend from ``BLEND_BACKENDS``.
Every backend solves the same discrete Poisson problem as OpenCV (see :mod:`nsad.synth._blend_dst`): on the
bounding box of the mask's non-zero pixels, placed with its centre at ``center`` in ``dst``,
source (``normal``) or mixed gradients inside the mask, ``dst`` as boundary condition, values
truncated to the image's integer type.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import cv2
import numpy as np

from nsad._checks import check_choice
from nsad.synth._blend_dst import blend_into, dst_clone, opencv_mask_box

BlendFn = Callable[[np.ndarray, np.ndarray, np.ndarray, tuple[int, int], str], np.ndarray]

_OPENCV_FLAGS = {"normal": cv2.NORMAL_CLONE, "mixed": cv2.MIXED_CLONE}


def _opencv_clone(src: np.ndarray, dst: np.ndarray, mask: np.ndarray, center: tuple[int, int],
                  mode: str) -> np.ndarray:
    """Blend with ``cv2.seamlessClone``; gray images go through as three equal channels."""
    if src.dtype != np.uint8:
        raise ValueError(f"the opencv blending backend needs uint8 images, got {src.dtype}; "
                         "use backend='dst' for 16-bit images")
    channels = src.shape[2]
    if channels == 1:
        src, dst = np.repeat(src, 3, axis=2), np.repeat(dst, 3, axis=2)
    # seamlessClone scales the mask by 1/255 and overwrites it (OpenCV 5.0.0): pass a 0/255 copy.
    out = cv2.seamlessClone(src, dst, (mask != 0).astype(np.uint8) * 255, center, _OPENCV_FLAGS[mode])
    return out[:, :, :1] if channels == 1 else out


def _torch_clone(src: np.ndarray, dst: np.ndarray, mask: np.ndarray, center: tuple[int, int],
                 mode: str) -> np.ndarray:
    """Blend with the batched torch solver, one patch on the CPU (torch is imported on first use)."""
    from nsad.synth._blend_torch import torch_clone

    return torch_clone(src, dst, mask, center, mode)


# "dst": the discrete-sine-transform solver of _blend_dst (uint8 and uint16, within 1 level of
# OpenCV); for the engine's hot path call _blend_dst.blend_into on box-local arrays directly.
BLEND_BACKENDS: dict[str, BlendFn] = {"opencv": _opencv_clone, "dst": dst_clone, "torch": _torch_clone}
DEFAULT_BACKEND = "dst"


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Return the bounding box ``(x, y, width, height)`` of the non-zero pixels of a uint8/bool ``mask``."""
    x, y, width, height = cv2.boundingRect(mask.view(np.uint8) if mask.dtype == np.bool_ else mask)
    return x, y, width, height


def blend_patch(image: np.ndarray, patch: np.ndarray, mask: np.ndarray, top_left: tuple[int, int],
                mode: Literal["normal", "mixed"] = "normal", backend: str | None = None) -> np.ndarray:
    """Poisson-blend a box-sized ``patch`` into ``image`` at ``top_left``: the engine's hot path.

    Same result as ``seamless_clone(patch, image, mask, center, mode, backend)`` with the centre of
    the mask's box at ``top_left`` plus its offset in the patch. The ``dst`` backend writes into
    ``image`` in place and touches only the box; other backends return a new array.

    Args:
        image: (H, W, C) uint8/uint16 destination.
        patch: (h, w, C) source patch, same dtype and channels.
        mask: (h, w) uint8 mask with a zero outer ring (as the NSA authors make it), non-empty.
        top_left: (x, y) of the patch in ``image``.
        mode: ``normal`` or ``mixed`` gradients.
        backend: a name from ``BLEND_BACKENDS``; None picks ``DEFAULT_BACKEND``.

    Returns:
        The blended image: ``image`` itself for ``dst``, else a new array.
    """
    x, y, width, height = mask_box(mask)
    if (backend or DEFAULT_BACKEND) == "dst":
        blend_into(image, patch[y:y + height, x:x + width], mask[y:y + height, x:x + width],
                   (top_left[0] + x, top_left[1] + y), mode)
        return image
    center = (top_left[0] + x + width // 2, top_left[1] + y + height // 2)
    return seamless_clone(patch, image, mask, center, mode, backend)


def seamless_clone(src: np.ndarray, dst: np.ndarray, mask: np.ndarray, center: tuple[int, int],
                   mode: Literal["normal", "mixed"] = "normal", backend: str | None = None) -> np.ndarray:
    """Poisson-blend the masked part of ``src`` into ``dst``, like ``cv2.seamlessClone``.

    The bounding box of ``mask``'s non-zero pixels, taken from ``src``, is placed in ``dst`` with
    its centre at ``center``: its top-left corner goes to ``(cx - w // 2, cy - h // 2)``. Inside
    the mask the result has the gradients of ``src`` (``normal``) or, per channel and direction,
    the larger of the source and destination differences (``mixed``); outside it equals ``dst``.

    Args:
        src: (H, W) or (H, W, C) uint8 (any backend) or uint16 (``dst`` backend), C in {1, 3}.
        dst: (H', W') or (H', W', C), same dtype and channels as ``src``.
        mask: (H, W) or (H, W, 1) array; non-zero marks the pixels to blend.
        center: (x, y) position in ``dst`` of the centre of the mask's bounding box.
        mode: ``normal`` (OpenCV's NORMAL_CLONE) or ``mixed`` (MIXED_CLONE).
        backend: a name from ``BLEND_BACKENDS``; None picks ``DEFAULT_BACKEND``.

    Returns:
        The blended copy of ``dst``, with ``dst``'s shape and dtype.

    Raises:
        ValueError: for an unknown mode or backend, mismatched shapes or dtypes, an empty mask, or a
            placement that does not fit inside ``dst``.
    """
    check_choice("blend mode", mode, _OPENCV_FLAGS)
    backend = check_choice("blending backend", backend or DEFAULT_BACKEND, BLEND_BACKENDS)
    squeeze = dst.ndim == 2
    src3 = src[:, :, None] if src.ndim == 2 else src
    dst3 = dst[:, :, None] if dst.ndim == 2 else dst
    mask2 = mask[:, :, 0] if mask.ndim == 3 else mask
    if src3.dtype != dst3.dtype or src3.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"src and dst must share a uint8 or uint16 dtype, got {src.dtype} and {dst.dtype}")
    if src3.ndim != 3 or src3.shape[2] not in (1, 3) or src3.shape[2] != dst3.shape[2]:
        raise ValueError(f"src {src.shape} and dst {dst.shape} must both have 1 or 3 channels")
    if mask2.shape != src3.shape[:2]:
        raise ValueError(f"mask {mask.shape} must have the size of src {src.shape[:2]}")
    if not mask2.any():
        raise ValueError("mask has no non-zero pixel: nothing to blend")
    x, y, width, height = opencv_mask_box(mask2)
    left, top = int(center[0]) - width // 2, int(center[1]) - height // 2
    if left < 0 or top < 0 or left + width > dst3.shape[1] or top + height > dst3.shape[0]:
        raise ValueError(f"the mask's {width}x{height} box centred at {tuple(center)} does not fit inside "
                         f"dst ({dst3.shape[1]}x{dst3.shape[0]})")
    out = BLEND_BACKENDS[backend](np.ascontiguousarray(src3), np.ascontiguousarray(dst3),
                                  mask2, (int(center[0]), int(center[1])), mode)
    return out[:, :, 0] if squeeze else out
