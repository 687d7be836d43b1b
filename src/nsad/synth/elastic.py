"""Bauer's elastic-deformation patches (Bauer 2022, Sec. 3.2 and Fig. 5).

A. Bauer, *Self-Supervised Training with Autoencoders for Visual Anomaly Detection*.

The distorted input ``X̂`` is the normal image ``X`` with a randomly shaped region ``M`` replaced by
an elastically deformed copy of itself, optionally brighter or darker. Following Sec. 3.2 step by
step:

1. "randomly sample size and location of a patch": a box whose height and width are ``U(size_frac)``
   of the image's height and width, placed uniformly inside the image;
2. "a corresponding patch is extracted and passed through an elastic deformation": Simard et al.'s
   elastic distortion (ICDAR 2003), the displacement field ``alpha * (G_sigma * U(-1, 1))`` for x
   and y, applied with ``cv2.remap`` (bilinear, reflected border: the patch is deformed alone);
3. "we randomly define a shape mask": a union of random ellipses inside the box;
4. "the shape mask is embedded in a two-dimensional zero-array to define a global mask ``M``" and
   ``X``'s content under ``M`` is replaced by the deformed patch. Sec. 3.2 also finds it "can be
   useful (depending on the data) to vary the brightness of modified patches": an optional factor.

The label is the real-valued change mask of objective (3), ``|X̂ - X|``, as the channel mean scaled
to [0, 1] by the dtype's maximum. Objective (1) needs ``M`` itself, which differs from
``|X̂ - X| > 0`` wherever the deformation moved pixels of a flat area: the result is an
:class:`ElasticSynth`, a :class:`Synth` that also carries ``region`` (``M``), and
:func:`modified_region` gives ``M`` for any task's result. As the paper guarantees
``||X̂ - X||_1 > 0``, an example that changed no pixel is redrawn (a few times).

The paper gives no numbers for any of these steps; the defaults are ours: boxes of 0.1-0.4 of the
image side (about the sides of CutPaste's patches), 3 ellipses, no brightness change, and Simard's
``sigma = 4`` px, ``alpha = 34`` (chosen for 28-px digits; at 256 px they displace pixels by about
1.4 px RMS, which visibly ripples edges of MVTec AD's bottle: raise ``alpha_px`` for stronger
distortions).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import cv2
import numpy as np

from nsad._checks import check_image_pair, check_range
from nsad.synth._patch import sample_ellipses_mask
from nsad.synth._types import Box, PatchRecord, Synth
from nsad.synth.cutpaste import check_image_side, side_scale
from nsad.synth.nsa import PatchPlacementWarning

SIZE_FRAC = (0.1, 0.4)
SIGMA_PX = 4.0
ALPHA_PX = 34.0
ELLIPSES = 3


@dataclass(frozen=True)
class ElasticSynth(Synth):
    """A :class:`Synth` with Bauer's region mask ``M``.

    Attributes:
        region: (H, W) bool, True on the replaced region ``M`` (objective (1)'s mask); ``label``
            holds ``|X̂ - X|`` (objective (3)'s weights) and is 0 outside ``region``.
    """

    region: np.ndarray


def modified_region(synth: Synth) -> np.ndarray:
    """The (H, W) bool region ``M`` a synthetic example modified, for Bauer's objective (1).

    An :class:`ElasticSynth` knows it exactly; for other tasks' results it is ``label > 0``.
    """
    if isinstance(synth, ElasticSynth):
        return synth.region
    return synth.label > 0


def scaled_deformation(height: int, width: int, sigma_px: float = SIGMA_PX,
                       alpha_px: float = ALPHA_PX) -> tuple[float, float]:
    """``sigma`` and ``alpha`` for this image from their values at 256 px.

    ``sigma`` is a length and scales with :func:`side_scale` ``s``; the smoothed field's amplitude
    falls as ``1 / sigma``, so ``alpha`` scales with ``s**2`` to keep the displacement (in pixels)
    proportional to the image: the deformation looks the same at every resolution.
    """
    scale = side_scale(height, width)
    return sigma_px * scale, alpha_px * scale * scale


def sample_displacement(rng: np.random.Generator, h: int, w: int, sigma: float,
                        alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Draw Simard's elastic displacement field for an ``h x w`` patch.

    ``dx = alpha * (G_sigma * U(-1, 1))`` and likewise ``dy``, with ``G_sigma`` a normalised
    Gaussian (``cv2.GaussianBlur``, reflected border), in pixels.

    Returns:
        ``(dx, dy)``, two (h, w) float32 arrays.
    """
    fields = rng.uniform(-1.0, 1.0, (2, h, w)).astype(np.float32)
    dx, dy = (alpha * cv2.GaussianBlur(f, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT)
              for f in fields)
    return dx, dy


def deform_patch(patch: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Resample an (h, w, C) patch at ``(x + dx, y + dy)``: bilinear, reflected at the patch border.

    Returns:
        The deformed patch, same shape and dtype. Zero displacement returns the patch unchanged.
    """
    h, w, channels = patch.shape
    grid_y, grid_x = np.mgrid[0:h, 0:w].astype(np.float32)
    deformed = cv2.remap(patch, grid_x + dx, grid_y + dy, interpolation=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REFLECT)
    return deformed.reshape(h, w, channels)


@dataclass(frozen=True, eq=False)
class ElasticDraw:
    """One elastic patch: its box, shape mask, displacement field and brightness factor.

    Attributes:
        box: the patch box in the image.
        shape: (h, w) bool, the region ``M`` inside the box.
        dx, dy: (h, w) float32 displacements in pixels.
        brightness: factor on the deformed intensities (1 for none).
        sigma, alpha: the field's parameters in pixels of this image (for the record).
    """

    box: Box
    shape: np.ndarray
    dx: np.ndarray
    dy: np.ndarray
    brightness: float = 1.0
    sigma: float = 0.0
    alpha: float = 0.0


def sample_elastic_box(rng: np.random.Generator, height: int, width: int,
                       size_frac: Sequence[float] = SIZE_FRAC) -> Box:
    """Draw the patch box (step 1 of Sec. 3.2): height ``round(U(size_frac) * H)``, width likewise.

    Each side is at least 2 px and at most the image side; the position is uniform.
    """
    h = min(height, max(2, round(rng.uniform(size_frac[0], size_frac[1]) * height)))
    w = min(width, max(2, round(rng.uniform(size_frac[0], size_frac[1]) * width)))
    x0, y0 = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
    return Box(x0, y0, x0 + w, y0 + h)


def sample_elastic(rng: np.random.Generator, height: int, width: int, size_frac: Sequence[float] = SIZE_FRAC,
                   sigma_px: float = SIGMA_PX, alpha_px: float = ALPHA_PX, ellipses: int = ELLIPSES,
                   brightness: Sequence[float] | None = None) -> ElasticDraw:
    """Draw one elastic patch (steps 1-3 of Sec. 3.2 and the brightness option).

    The box is :func:`sample_elastic_box`; the shape a union of ``ellipses`` random ellipses in
    the box; the field :func:`sample_displacement` with :func:`scaled_deformation`; the
    brightness factor ``U(brightness)`` when a range is given.
    """
    box = sample_elastic_box(rng, height, width, size_frac)
    h, w = box.height, box.width
    shape = sample_ellipses_mask(rng, h, w, ellipses)
    sigma, alpha = scaled_deformation(height, width, sigma_px, alpha_px)
    dx, dy = sample_displacement(rng, h, w, sigma, alpha)
    factor = 1.0 if brightness is None else float(rng.uniform(brightness[0], brightness[1]))
    return ElasticDraw(box, shape, dx, dy, factor, sigma, alpha)


def apply_elastic(image: np.ndarray, draw: ElasticDraw) -> ElasticSynth:
    """Replace ``image`` under the region by its deformed, brightness-scaled copy (step 4 of Sec. 3.2).

    Only the box is worked on. ``X̂ = X`` outside ``M``; inside,
    ``X̂ = clip(round(brightness * deform(X)))``. The label is
    ``mean_c |X̂ - X| / max_level`` (``max_level`` 255 or 65535), in [0, 1] and 0 outside ``M``.

    Raises:
        ValueError: if the box is not inside the image or the arrays do not match its size.
    """
    height, width, _ = image.shape
    box = draw.box
    if not (0 <= box.x0 < box.x1 <= width and 0 <= box.y0 < box.y1 <= height):
        raise ValueError(f"box {box} must be a non-empty box inside the {width}x{height} image")
    for name in ("shape", "dx", "dy"):
        if getattr(draw, name).shape != (box.height, box.width):
            raise ValueError(f"{name} must have the box's shape {(box.height, box.width)}, "
                             f"got {getattr(draw, name).shape}")
    patch = image[box.slices()]
    top = float(np.iinfo(image.dtype).max)
    deformed = deform_patch(patch, draw.dx, draw.dy)
    if draw.brightness != 1.0:
        scaled = np.rint(deformed.astype(np.float32) * draw.brightness)
        deformed = np.clip(scaled, 0.0, top).astype(image.dtype)
    new = np.where(draw.shape[..., None], deformed, patch)
    out = image.copy()
    out[box.slices()] = new
    label = np.zeros((height, width), np.float32)
    label[box.slices()] = np.abs(new.astype(np.float32) - patch.astype(np.float32)).mean(axis=2) / top
    region = np.zeros((height, width), bool)
    region[box.slices()] = draw.shape
    params = {"sigma_px": draw.sigma, "alpha_px": draw.alpha, "brightness": draw.brightness}
    return ElasticSynth(out, label, (PatchRecord(box, box, 1.0, "elastic", params),), region)


@dataclass(frozen=True)
class ElasticPatch:
    """Bauer's distorted input: a random region replaced by an elastically deformed copy (Sec. 3.2).

    See the module docstring for the construction. The label is ``|X̂ - X|`` (channel mean, in
    [0, 1]); the result's ``region`` is ``M``. ``source`` and the object masks of the task
    interface are accepted and not used: the patch is deformed in place.

    Attributes:
        size_frac: (low, high) box height and width as fractions of the image's, in (0, 1].
        sigma_px: smoothing of the displacement field, in pixels at 256 px (scaled with the image).
        alpha_px: amplitude of the displacement field at 256 px (scaled with the image squared,
            see :func:`scaled_deformation`).
        ellipses: number of random ellipses whose union is the region, at least 1.
        brightness: (low, high) range of a brightness factor on the deformed patch, or None.
        max_tries: draws before an example that changed no pixel is returned with a warning.

    Example:
        >>> image = np.tile(np.arange(64, dtype=np.uint8)[None, :, None] * 4, (64, 1, 3))
        >>> out = ElasticPatch()(image, image, rng=np.random.default_rng(0))
        >>> out.patches[0].dst_box, int(out.region.sum()), bool((out.label > 0).sum() <= out.region.sum())
        (Box(x0=16, y0=1, x1=28, y1=20), 132, True)
    """

    size_frac: Sequence[float] = SIZE_FRAC
    sigma_px: float = SIGMA_PX
    alpha_px: float = ALPHA_PX
    ellipses: int = ELLIPSES
    brightness: Sequence[float] | None = None
    max_tries: int = 10
    label_kind: ClassVar[str] = "bounded"

    def __post_init__(self) -> None:
        frac = self.size_frac
        if isinstance(frac, str) or not isinstance(frac, Sequence) or len(frac) != 2:
            raise ValueError(f"size_frac must be a (low, high) pair, got {frac!r}")
        low, high = (check_range("size_frac", float(v), 1e-6, 1.0) for v in frac)
        if low > high:
            raise ValueError(f"size_frac must be a (low, high) pair with low <= high, got {frac!r}")
        object.__setattr__(self, "size_frac", (low, high))
        check_range("sigma_px", self.sigma_px, 1e-3, 1e3)
        check_range("alpha_px", self.alpha_px, 0.0, 1e4)
        if isinstance(self.ellipses, bool) or not isinstance(self.ellipses, int) or self.ellipses < 1:
            raise ValueError(f"ellipses must be a whole number >= 1, got {self.ellipses!r}")
        if isinstance(self.max_tries, bool) or not isinstance(self.max_tries, int) or self.max_tries < 1:
            raise ValueError(f"max_tries must be a whole number >= 1, got {self.max_tries!r}")
        if self.brightness is not None:
            bright = self.brightness
            if isinstance(bright, str) or not isinstance(bright, Sequence) or len(bright) != 2:
                raise ValueError(f"brightness must be a (low, high) pair or None, got {bright!r}")
            low, high = (check_range("brightness", float(v), 0.0, 10.0) for v in bright)
            if low > high:
                raise ValueError(f"brightness must be a (low, high) pair with low <= high, got {bright!r}")
            object.__setattr__(self, "brightness", (low, high))

    def __call__(self, image: np.ndarray, source: np.ndarray, *, rng: np.random.Generator,
                 image_object: np.ndarray | None = None,
                 source_object: np.ndarray | None = None) -> ElasticSynth:
        """Make one example from ``image``; ``source`` and the object masks are not used.

        Raises:
            TypeError: if an image is not a uint8/uint16 array.
            ValueError: if the images' shapes or dtypes differ, or a side is under 32 px.
        """
        check_image_pair(image, source)
        height, width = image.shape[:2]
        check_image_side("ElasticPatch", height, width)
        for _ in range(self.max_tries):
            draw = sample_elastic(rng, height, width, self.size_frac, self.sigma_px, self.alpha_px,
                                  self.ellipses, self.brightness)
            synth = apply_elastic(image, draw)
            if synth.label[draw.box.slices()].any():
                return synth
        warnings.warn(f"ElasticPatch: the deformation changed no pixel in {self.max_tries} draws (is the "
                      "image flat?); returning an unchanged image with an empty label",
                      PatchPlacementWarning, stacklevel=2)
        return synth
