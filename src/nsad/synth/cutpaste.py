"""CutPaste and CutPaste-Scar (Li et al., CVPR 2021, Sec. 2.1-2.2): cut a patch, paste it elsewhere.

CutPaste cuts a rectangle from a normal image, optionally colour-jitters it and pastes it back at
another random location of the *same* image; CutPaste-Scar does the same with a long thin
rectangle rotated by up to 45 degrees. The label is 1 on the pasted pixels (the "binary" label of
the NSA paper's end-to-end baseline; CutPaste itself trains a classifier on whole images).

The paper's text gives the method; the sampling ranges are those of the authors' reference
implementations: area ratio ``U(0.02, 0.15)``, aspect ratio (width over
height) ``U(0.3, 1)`` or ``U(1, 3.3)`` with equal probability, scars 2-16 px wide and 10-25 px long
on 256-px images, angles ``U(-45, 45)`` degrees, and torchvision's ``ColorJitter(0.1, 0.1, 0.1, 0.1)``.

Sampling (:func:`sample_cutpaste`, :func:`sample_scar`, :func:`sample_jitter`) is apart from
applying (:func:`paste_patch`, :func:`paste_scar`, :func:`jitter_patch`), which is deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import cv2
import numpy as np

from nsad._checks import check_image_pair, check_range
from nsad.synth._types import Box, PatchRecord, Synth

REFERENCE_SIDE_PX = 256
"""Image side at which pixel sizes (scar sizes, elastic sigma/alpha) are given: MVTec AD's 256 px."""

MIN_IMAGE_SIDE_PX = 32
"""Shorter image side below which CutPaste, CutPaste-Scar and the elastic patches refuse an image:
there the smallest CutPaste patch would be under 2 px and a scar under 1 px wide."""

AREA_RANGE = (0.02, 0.15)
ASPECT_RANGES = ((0.3, 1.0), (1.0, 3.3))
SCAR_WIDTH_PX = (2, 16)
SCAR_LENGTH_PX = (10, 25)
ANGLE_RANGE_DEG = (-45.0, 45.0)
JITTER = 0.1
"""The reference implementations' ``ColorJitter(brightness=0.1, contrast=0.1, saturation=0.1, hue=0.1)``."""

# ITU-R 601 luma weights, as torchvision's rgb_to_grayscale (images are in RGB order, as read).
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def check_image_side(method: str, height: int, width: int, min_side: int = MIN_IMAGE_SIDE_PX) -> None:
    """Reject an image whose shorter side is under ``min_side`` pixels.

    Raises:
        ValueError: naming the method, the image size and the smallest side accepted.
    """
    if min(height, width) < min_side:
        raise ValueError(f"a {width}x{height} image is too small for {method}: its patches scale with "
                         f"the image and would be under 1-2 px; use images with both sides at least "
                         f"{min_side} px")


def side_scale(height: int, width: int) -> float:
    """Factor from sizes given at the 256-px reference to this image: ``min(height, width) / 256``.

    The shorter side is used so that a patch that fits a 256 x 256 image fits this one too.
    """
    return min(height, width) / REFERENCE_SIDE_PX


def _range(name: str, value: Sequence[float], low: float, high: float) -> tuple[float, float]:
    """``value`` as a ``(lo, hi)`` tuple with ``low <= lo <= hi <= high``."""
    if isinstance(value, str) or not isinstance(value, Sequence) or len(value) != 2:
        raise ValueError(f"{name} must be a (low, high) pair, got {value!r}")
    lo, hi = (check_range(name, float(v), low, high) for v in value)
    if lo > hi:
        raise ValueError(f"{name} must be a (low, high) pair with low <= high, got {value!r}")
    return lo, hi


# ----------------------------------------------------------------------------------------------
# Colour jitter


@dataclass(frozen=True)
class Jitter:
    """Colour-jitter factors: multiply brightness, scale contrast and saturation, rotate hue.

    Attributes:
        brightness: factor ``b``: ``x' = b x``.
        contrast: factor ``c``: ``x' = c x + (1 - c) mean(gray(x))`` (mean over the patch).
        saturation: factor ``s``: ``x' = s x + (1 - s) gray(x)`` (per pixel; 1 for grayscale).
        hue: shift ``h`` as a fraction of the hue circle, in [-0.5, 0.5] (0 for grayscale).
    """

    brightness: float = 1.0
    contrast: float = 1.0
    saturation: float = 1.0
    hue: float = 0.0

    @property
    def is_identity(self) -> bool:
        """True when every factor is neutral."""
        return self.brightness == 1.0 and self.contrast == 1.0 and self.saturation == 1.0 and self.hue == 0.0

    def as_params(self) -> dict[str, float]:
        """The factors by name, for :attr:`~nsad.synth._types.PatchRecord.params`."""
        return {"brightness": self.brightness, "contrast": self.contrast, "saturation": self.saturation,
                "hue": self.hue}


def sample_jitter(rng: np.random.Generator, channels: int, brightness: float = JITTER,
                  contrast: float = JITTER, saturation: float = JITTER, hue: float = JITTER) -> Jitter:
    """Draw colour-jitter factors as torchvision's ``ColorJitter`` does.

    ``b, c, s ~ U(max(0, 1 - r), 1 + r)`` for their ranges ``r`` and ``h ~ U(-hue, hue)``. A range of 0
    draws nothing and gives the neutral value; grayscale patches (``channels == 1``) have no
    saturation or hue, so those are not drawn.
    """
    def factor(spread: float) -> float:
        return float(rng.uniform(max(0.0, 1.0 - spread), 1.0 + spread)) if spread > 0 else 1.0

    b, c = factor(brightness), factor(contrast)
    if channels == 1:
        return Jitter(b, c)
    s = factor(saturation)
    h = float(rng.uniform(-hue, hue)) if hue > 0 else 0.0
    return Jitter(b, c, s, h)


def _gray(x: np.ndarray) -> np.ndarray:
    return x[..., 0] if x.shape[2] == 1 else x @ _LUMA


def jitter_patch(patch: np.ndarray, jitter: Jitter) -> np.ndarray:
    """Apply ``jitter`` to an (h, w, C) uint8/uint16 patch: brightness, contrast, saturation, hue, in order.

    Works in float32 on intensities scaled to [0, 1] by the dtype's maximum, clips after each step
    as torchvision does, and rounds back to the patch's dtype. (torchvision applies the four steps
    in a random order; a fixed order keeps the record simple and changes little at these small
    ranges.) The identity jitter returns an unchanged copy.
    """
    if jitter.is_identity:
        return patch.copy()
    top = float(np.iinfo(patch.dtype).max)
    x = patch.astype(np.float32) / top
    if jitter.brightness != 1.0:
        x = np.clip(x * jitter.brightness, 0.0, 1.0)
    if jitter.contrast != 1.0:
        mean = float(_gray(x).mean())
        x = np.clip(jitter.contrast * x + (1.0 - jitter.contrast) * mean, 0.0, 1.0)
    if x.shape[2] == 3 and jitter.saturation != 1.0:
        x = np.clip(jitter.saturation * x + (1.0 - jitter.saturation) * _gray(x)[..., None], 0.0, 1.0)
    if x.shape[2] == 3 and jitter.hue != 0.0:
        hsv = cv2.cvtColor(np.ascontiguousarray(x), cv2.COLOR_RGB2HSV)  # float32: H in [0, 360)
        hsv[..., 0] = np.mod(hsv[..., 0] + 360.0 * jitter.hue, 360.0)
        x = np.clip(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB), 0.0, 1.0)
    return np.rint(x * top).astype(patch.dtype).reshape(patch.shape)


# ----------------------------------------------------------------------------------------------
# CutPaste (large rectangle)


def sample_area_aspect(rng: np.random.Generator, area: Sequence[float] = AREA_RANGE,
                       aspect: Sequence[Sequence[float]] = ASPECT_RANGES) -> tuple[float, float]:
    """Draw the patch's area fraction ``a ~ U(area)`` and aspect ratio (width / height).

    The aspect ratio is uniform on one of the ``aspect`` ranges, each picked with equal
    probability, as the authors' implementations pick ``U(0.3, 1)`` or ``U(1, 3.3)``.
    """
    area_frac = float(rng.uniform(area[0], area[1]))
    low, high = aspect[int(rng.integers(len(aspect)))]
    return area_frac, float(rng.uniform(low, high))


def cutpaste_size(area_frac: float, aspect: float, height: int, width: int) -> tuple[int, int]:
    """Patch ``(h, w)`` in pixels: ``w = floor(sqrt(a H W r))``, ``h = floor(sqrt(a H W / r))``.

    Flooring is the authors' ``int()``; each side is then clipped to ``[1, image side]``, which only
    binds on images much wider than tall (or the reverse) or for non-default ranges.
    """
    patch_area = area_frac * height * width
    w = min(width, max(1, int(math.sqrt(patch_area * aspect))))
    h = min(height, max(1, int(math.sqrt(patch_area / aspect))))
    return h, w


def _box_at(rng: np.random.Generator, h: int, w: int, height: int, width: int) -> Box:
    """A uniformly placed ``h x w`` box inside a ``height x width`` image."""
    x0 = int(rng.integers(0, width - w + 1))
    y0 = int(rng.integers(0, height - h + 1))
    return Box(x0, y0, x0 + w, y0 + h)


@dataclass(frozen=True)
class CutPasteDraw:
    """One CutPaste patch: where it is cut and pasted, the drawn area fraction and aspect, the jitter."""

    src_box: Box
    dst_box: Box
    area_frac: float
    aspect: float
    jitter: Jitter


def sample_cutpaste(rng: np.random.Generator, height: int, width: int, channels: int,
                    area: Sequence[float] = AREA_RANGE, aspect: Sequence[Sequence[float]] = ASPECT_RANGES,
                    jitter: Sequence[float] = (JITTER, JITTER, JITTER, JITTER)) -> CutPasteDraw:
    """Draw one CutPaste patch: size (:func:`sample_area_aspect`), cut and paste boxes, jitter.

    Both boxes are uniform over the positions where the patch fits, drawn independently (they may
    overlap). ``jitter`` holds the brightness, contrast, saturation and hue ranges.
    """
    area_frac, ratio = sample_area_aspect(rng, area, aspect)
    h, w = cutpaste_size(area_frac, ratio, height, width)
    src_box = _box_at(rng, h, w, height, width)
    dst_box = _box_at(rng, h, w, height, width)
    return CutPasteDraw(src_box, dst_box, area_frac, ratio, sample_jitter(rng, channels, *jitter))


def paste_patch(image: np.ndarray, draw: CutPasteDraw) -> Synth:
    """Cut ``draw.src_box`` from ``image``, jitter it and paste it over ``draw.dst_box``.

    The patch is cut from the unmodified image, so overlapping boxes are handled as a copy. The
    label is 1 on the destination box, 0 elsewhere.

    Raises:
        ValueError: if the boxes differ in size or do not lie inside the image.
    """
    height, width = image.shape[:2]
    src, dst = draw.src_box, draw.dst_box
    for name, box in (("src_box", src), ("dst_box", dst)):
        if not (0 <= box.x0 < box.x1 <= width and 0 <= box.y0 < box.y1 <= height):
            raise ValueError(f"{name} {box} must be a non-empty box inside the {width}x{height} image")
    if (src.width, src.height) != (dst.width, dst.height):
        raise ValueError(f"src_box {src} and dst_box {dst} must have the same size")
    patch = jitter_patch(image[src.slices()], draw.jitter)
    out = image.copy()
    out[dst.slices()] = patch
    label = np.zeros((height, width), np.float32)
    label[dst.slices()] = 1.0
    params = {"area_frac": draw.area_frac, "aspect": draw.aspect, **draw.jitter.as_params()}
    return Synth(out, label, (PatchRecord(src, dst, 1.0, "paste", params),))


def _check_jitter(brightness: float, contrast: float, saturation: float, hue: float) -> None:
    check_range("brightness", brightness, 0.0, 1.0)
    check_range("contrast", contrast, 0.0, 1.0)
    check_range("saturation", saturation, 0.0, 1.0)
    check_range("hue", hue, 0.0, 0.5)


@dataclass(frozen=True)
class CutPaste:
    """CutPaste (Li et al. 2021, Sec. 2.1): paste a jittered rectangle of the image elsewhere in it.

    The patch covers ``a ~ U(area)`` of the image with aspect ratio (width / height) from one of
    ``aspect``'s ranges, is cut and pasted at independent uniform positions of the same image and
    labelled 1 where pasted. As the authors built it, patch and destination are the *same* image:
    the ``source`` image and the object masks of the task interface are accepted and not used.

    Attributes:
        area: (low, high) patch area as a fraction of the image area, in (0, 1].
        aspect: ranges of width / height, one picked with equal probability.
        brightness: jitter range ``r`` of the brightness factor ``U(1 - r, 1 + r)``; 0 switches it off.
        contrast: jitter range of the contrast factor; 0 switches it off.
        saturation: jitter range of the saturation factor (RGB only); 0 switches it off.
        hue: jitter range of the hue shift ``U(-hue, hue)`` (RGB only), at most 0.5; 0 switches it off.

    Example:
        >>> image = np.zeros((64, 64, 3), np.uint8); image[:, 32:] = 200
        >>> out = CutPaste()(image, image, rng=np.random.default_rng(0))
        >>> out.patches[0].dst_box, float(out.label.sum())
        (Box(x0=0, y0=8, x1=21, y1=27), 399.0)
    """

    area: Sequence[float] = AREA_RANGE
    aspect: Sequence[Sequence[float]] = ASPECT_RANGES
    brightness: float = JITTER
    contrast: float = JITTER
    saturation: float = JITTER
    hue: float = JITTER
    label_kind: ClassVar[str] = "bounded"

    def __post_init__(self) -> None:
        object.__setattr__(self, "area", _range("area", self.area, 1e-6, 1.0))
        if isinstance(self.aspect, str) or not isinstance(self.aspect, Sequence) or len(self.aspect) == 0:
            raise ValueError(f"aspect must be a non-empty list of (low, high) ranges, got {self.aspect!r}")
        object.__setattr__(self, "aspect", tuple(_range("aspect", r, 1e-3, 1e3) for r in self.aspect))
        _check_jitter(self.brightness, self.contrast, self.saturation, self.hue)

    def __call__(self, image: np.ndarray, source: np.ndarray, *, rng: np.random.Generator,
                 image_object: np.ndarray | None = None, source_object: np.ndarray | None = None) -> Synth:
        """Make one example from ``image``; ``source`` and the object masks are not used (see above).

        Raises:
            TypeError: if an image is not a uint8/uint16 array.
            ValueError: if the images' shapes or dtypes differ, or a side is under 32 px.
        """
        check_image_pair(image, source)
        height, width, channels = image.shape
        check_image_side("CutPaste", height, width)
        draw = sample_cutpaste(rng, height, width, channels, self.area, self.aspect,
                               (self.brightness, self.contrast, self.saturation, self.hue))
        return paste_patch(image, draw)


# ----------------------------------------------------------------------------------------------
# CutPaste-Scar (thin rotated rectangle)


def rotated_size(h: int, w: int, angle_deg: float) -> tuple[int, int]:
    """Height and width of the smallest pixel canvas holding an ``h x w`` patch rotated by ``angle_deg``."""
    theta = math.radians(angle_deg)
    cos, sin = abs(math.cos(theta)), abs(math.sin(theta))
    # the tolerance keeps exact sizes (0 or 90 degrees) from rounding up by float error
    return math.ceil(h * cos + w * sin - 1e-6), math.ceil(h * sin + w * cos - 1e-6)


@dataclass(frozen=True)
class ScarDraw:
    """One scar: the cut box (unrotated), the destination canvas, the angle and the jitter.

    ``dst_box`` is the canvas of the rotated patch (:func:`rotated_size`); only the rotated
    rectangle's pixels inside it are pasted.
    """

    src_box: Box
    dst_box: Box
    angle_deg: float
    jitter: Jitter


def sample_scar_size(rng: np.random.Generator, height: int, width: int,
                     width_px: Sequence[int] = SCAR_WIDTH_PX,
                     length_px: Sequence[int] = SCAR_LENGTH_PX) -> tuple[int, int]:
    """Draw the scar's unrotated ``(h, w)``: integers ``U{width_px}``, ``U{length_px}`` at 256 px, scaled.

    As the authors' ``randint`` the reference sizes are uniform integers with both ends included;
    they are multiplied by :func:`side_scale` and rounded (at least 1 px). ``w`` runs along x,
    ``h`` (the length) along y, so an unrotated scar stands upright as in the reference code.
    """
    scale = side_scale(height, width)
    w_ref = int(rng.integers(width_px[0], width_px[1] + 1))
    h_ref = int(rng.integers(length_px[0], length_px[1] + 1))
    return max(1, round(h_ref * scale)), max(1, round(w_ref * scale))


def sample_scar(rng: np.random.Generator, height: int, width: int, channels: int,
                width_px: Sequence[int] = SCAR_WIDTH_PX, length_px: Sequence[int] = SCAR_LENGTH_PX,
                angle_deg: Sequence[float] = ANGLE_RANGE_DEG,
                jitter: Sequence[float] = (JITTER, JITTER, JITTER, JITTER)) -> ScarDraw:
    """Draw one scar: size (:func:`sample_scar_size`), cut box, jitter, angle ``U(angle_deg)``, destination.

    The cut box is uniform where the unrotated scar fits, the destination canvas uniform where
    the rotated one fits.

    Raises:
        ValueError: if the rotated scar does not fit the image (only for non-default sizes).
    """
    h, w = sample_scar_size(rng, height, width, width_px, length_px)
    if h > height or w > width:
        raise ValueError(f"a {w}x{h} px scar does not fit the {width}x{height} image; "
                         "lower width_px/length_px")
    src_box = _box_at(rng, h, w, height, width)
    jit = sample_jitter(rng, channels, *jitter)
    angle = float(rng.uniform(angle_deg[0], angle_deg[1]))
    canvas_h, canvas_w = rotated_size(h, w, angle)
    if canvas_h > height or canvas_w > width:
        raise ValueError(f"a {w}x{h} px scar rotated by {angle:.1f} degrees needs {canvas_w}x{canvas_h} px "
                         f"and does not fit the {width}x{height} image; lower width_px/length_px")
    return ScarDraw(src_box, _box_at(rng, canvas_h, canvas_w, height, width), angle, jit)


def rotate_patch(patch: np.ndarray, angle_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Rotate an (h, w, C) patch by ``angle_deg`` (counter-clockwise as displayed) about its centre.

    The result fills the canvas of :func:`rotated_size`. The patch is resampled bilinearly with
    replicated borders (so edge pixels keep their colour instead of fading into black), the mask
    by warping a full mask the same way and keeping pixels at least half covered. Both use
    ``cv2.warpAffine``; at 0 degrees the patch comes back unchanged with a full mask.

    Returns:
        The rotated (H', W', C) patch in the input's dtype and its (H', W') bool mask.
    """
    h, w, channels = patch.shape
    canvas_h, canvas_w = rotated_size(h, w, angle_deg)
    matrix = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), angle_deg, 1.0)
    matrix[0, 2] += (canvas_w - w) / 2.0
    matrix[1, 2] += (canvas_h - h) / 2.0
    rotated = cv2.warpAffine(patch, matrix, (canvas_w, canvas_h), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE).reshape(canvas_h, canvas_w, channels)
    full = np.full((h, w), 255, np.uint8)
    mask = cv2.warpAffine(full, matrix, (canvas_w, canvas_h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0) >= 128
    return rotated, mask


def paste_scar(image: np.ndarray, draw: ScarDraw) -> Synth:
    """Cut ``draw.src_box``, jitter and rotate it, paste the rotated rectangle's pixels in ``draw.dst_box``.

    The label is 1 on the pasted pixels, 0 elsewhere.

    Raises:
        ValueError: if a box lies outside the image or the canvas does not match the rotated size.
    """
    height, width = image.shape[:2]
    src, dst = draw.src_box, draw.dst_box
    for name, box in (("src_box", src), ("dst_box", dst)):
        if not (0 <= box.x0 < box.x1 <= width and 0 <= box.y0 < box.y1 <= height):
            raise ValueError(f"{name} {box} must be a non-empty box inside the {width}x{height} image")
    patch, mask = rotate_patch(jitter_patch(image[src.slices()], draw.jitter), draw.angle_deg)
    if mask.shape != (dst.height, dst.width):
        raise ValueError(f"dst_box {dst} must be the {mask.shape[1]}x{mask.shape[0]} canvas of the "
                         "rotated scar")
    out = image.copy()
    out[dst.slices()][mask] = patch[mask]
    label = np.zeros((height, width), np.float32)
    label[dst.slices()][mask] = 1.0
    params = {"angle_deg": draw.angle_deg, **draw.jitter.as_params()}
    return Synth(out, label, (PatchRecord(src, dst, 1.0, "paste", params),))


@dataclass(frozen=True)
class CutPasteScar:
    """CutPaste-Scar (Li et al. 2021, Sec. 2.2): a thin jittered strip of the image, rotated and pasted.

    Sizes follow the authors' implementations at 256 px: ``w ~ U{2..16}``, ``h ~ U{10..25}`` px,
    scaled by ``min(H, W) / 256`` (so a 512-px image gets 4-32 x 20-50 px scars). The strip is
    colour-jittered, rotated by ``U(-45, 45)`` degrees and its rotated pixels pasted at a uniform
    position of the same image; the label is 1 on them. ``source`` and the object masks are
    accepted for the task interface and not used.

    Attributes:
        width_px: (low, high) integer scar width at 256 px, both included.
        length_px: (low, high) integer scar length at 256 px, both included.
        angle_deg: (low, high) rotation angle in degrees.
        brightness, contrast, saturation, hue: jitter ranges as in :class:`CutPaste`.
    """

    width_px: Sequence[int] = SCAR_WIDTH_PX
    length_px: Sequence[int] = SCAR_LENGTH_PX
    angle_deg: Sequence[float] = ANGLE_RANGE_DEG
    brightness: float = JITTER
    contrast: float = JITTER
    saturation: float = JITTER
    hue: float = JITTER
    label_kind: ClassVar[str] = "bounded"

    def __post_init__(self) -> None:
        for name in ("width_px", "length_px"):
            low, high = _range(name, getattr(self, name), 1, REFERENCE_SIDE_PX)
            if low != int(low) or high != int(high):
                raise ValueError(f"{name} must be whole pixels, got {getattr(self, name)!r}")
            object.__setattr__(self, name, (int(low), int(high)))
        object.__setattr__(self, "angle_deg", _range("angle_deg", self.angle_deg, -180.0, 180.0))
        _check_jitter(self.brightness, self.contrast, self.saturation, self.hue)

    def __call__(self, image: np.ndarray, source: np.ndarray, *, rng: np.random.Generator,
                 image_object: np.ndarray | None = None, source_object: np.ndarray | None = None) -> Synth:
        """Make one example from ``image``; ``source`` and the object masks are not used.

        Raises:
            TypeError: if an image is not a uint8/uint16 array.
            ValueError: if the images' shapes or dtypes differ, or a side is under 32 px.
        """
        check_image_pair(image, source)
        height, width, channels = image.shape
        check_image_side("CutPaste-Scar", height, width)
        draw = sample_scar(rng, height, width, channels, self.width_px, self.length_px, self.angle_deg,
                           (self.brightness, self.contrast, self.saturation, self.hue))
        return paste_scar(image, draw)
