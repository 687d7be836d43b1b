"""Foreign patch interpolation (FPI, Tan et al. 2020) and Poisson image interpolation (PII, Tan et al. 2021).

Both take a patch from another image at the same location and mix it with the destination by a
factor ``alpha ~ U(0.05, 0.95)``; the label is ``alpha`` on the patch. FPI interpolates the
intensities, PII blends the interpolated patch with Poisson image editing (mixed gradients), as the
NSA paper's "FPI (Poisson)" baseline. Patch sizes, positions and counts follow NSA's sampler
(eqs. 5-8 and its coin flips), without resizing or moving.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from nsad._checks import check_image_pair
from nsad.synth._blend import blend_patch
from nsad.synth._patch import check_image_fits, sample_patch_size, sample_source_box
from nsad.synth._types import Box, PatchRecord, Synth
from nsad.synth.nsa import MIN_BLEND_PIXELS, PatchPlacementWarning, blend_mask, patch_shape
from nsad.synth.objects import object_mask
from nsad.synth.presets import Preset

ALPHA_RANGE = (0.05, 0.95)


def sample_same_location(rng: np.random.Generator, preset: Preset, height: int, width: int,
                         dest_object: np.ndarray | None, max_tries: int = 200) -> Box | None:
    """Draw a patch box by eqs. 5-7, redrawn until more than ``t_object`` of it is object (eq. 8).

    Returns:
        The box, or None (with a :class:`PatchPlacementWarning`) after ``max_tries`` failed draws.
    """
    h, w = sample_patch_size(rng, preset, height, width)
    for _ in range(max_tries):
        box = sample_source_box(rng, preset, h, w, height, width)
        if dest_object is None or np.count_nonzero(dest_object[box.slices()]) / (h * w) > preset.t_object:
            return box
    warnings.warn(f"FPI: no patch held more than t_object={preset.t_object} object after {max_tries} draws; "
                  "patch skipped", PatchPlacementWarning, stacklevel=3)
    return None


def interpolate(image: np.ndarray, source: np.ndarray, alpha: float) -> np.ndarray:
    """``(1 - alpha) image + alpha source``, truncated to the images' integer type."""
    mixed = (1.0 - alpha) * image.astype(np.float32) + alpha * source.astype(np.float32)
    return mixed.astype(image.dtype)


@dataclass(frozen=True)
class FPI:
    """FPI: interpolate a same-location patch of another image; label ``alpha`` on the patch.

    Attributes:
        preset: patch size bounds, object mask and patch count (NSA's Table 4).
        poisson: blend the interpolated patch with mixed-gradient Poisson editing (PII).
        ellipses: 0 for rectangles, else the number of random ellipses shaping the patch.
        backend: blending backend for PII.
        max_tries: redraws of a location before a patch is given up.
    """

    preset: Preset
    poisson: bool = False
    ellipses: int = 0
    backend: str | None = None
    max_tries: int = 200
    label_kind: ClassVar[str] = "bounded"

    def __call__(self, image: np.ndarray, source: np.ndarray, *, rng: np.random.Generator,
                 image_object: np.ndarray | None = None, source_object: np.ndarray | None = None) -> Synth:
        """Make one example from destination ``image`` and ``source`` (same shape and dtype).

        ``source_object`` is accepted for the common task interface and not used.

        Raises:
            ValueError: if the images differ in shape or dtype, or are too small for the preset.
        """
        check_image_pair(image, source)
        height, width = image.shape[:2]
        check_image_fits(self.preset, height, width)
        if self.preset.uses_object_mask and image_object is None:
            image_object = object_mask(image, self.preset.background, self.preset.t_brightness)
        elif not self.preset.uses_object_mask:
            image_object = None
        result = image.copy()
        label = np.zeros((height, width), np.float32)
        records: list[PatchRecord] = []
        for index in range(self.preset.n_max):
            if index > 0 and rng.integers(2) == 0:
                continue
            box = sample_same_location(rng, self.preset, height, width, image_object, self.max_tries)
            if box is None:
                continue
            alpha = float(rng.uniform(*ALPHA_RANGE))
            shape = patch_shape(rng, box.height, box.width, self.ellipses)
            patch = interpolate(result[box.slices()], source[box.slices()], alpha)
            if self.poisson:
                mask = blend_mask(shape)
                if np.count_nonzero(mask) < MIN_BLEND_PIXELS:
                    continue
                result = blend_patch(result, patch, mask, (box.x0, box.y0), "mixed", self.backend)
            else:
                result[box.slices()][shape] = patch[shape]
            label[box.slices()][shape] = np.maximum(label[box.slices()][shape], alpha)
            records.append(PatchRecord(box, box, 1.0, "mixed" if self.poisson else "interpolate", {"alpha": alpha}))
        return Synth(result, label, tuple(records))
