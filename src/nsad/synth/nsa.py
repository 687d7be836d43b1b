"""Natural Synthetic Anomalies (Schlüter et al., ECCV 2022, Sec. 3) and its unblended variant.

One example: up to ``n_max`` patches, each cut from the source image, resized, moved and
Poisson-blended into the destination; the first patch is always attempted, each further one on a
fair coin flip. Geometry (:func:`sample_placement`) is drawn apart from applying it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import cv2
import numpy as np

from nsad._checks import check_choice, check_image_pair
from nsad.synth._blend import blend_patch
from nsad.synth._patch import (
    check_image_fits,
    sample_destination_box,
    sample_ellipses_mask,
    sample_patch_size,
    sample_scale,
    sample_source_box,
)
from nsad.synth._types import Box, PatchRecord, Synth
from nsad.synth.labels import LABEL_KINDS, LabelKind, nsa_label
from nsad.synth.objects import object_mask
from nsad.synth.presets import Preset
from nsad.variants import DEFAULT_VARIANT, Variant, check_variant

MIN_BLEND_PIXELS = 50
"""Patches whose blending mask has fewer pixels are skipped, as in the authors' code."""


class PatchPlacementWarning(UserWarning):
    """No placement satisfied the object constraints within the allowed redraws; the patch was skipped."""


@dataclass(frozen=True)
class Placement:
    """Where one patch comes from and goes: source box, destination box and resize factor.

    ``patch_object`` is the source's object mask resized to the destination box, when object masks
    are used (the authors' label region needs it), else None.
    """

    src_box: Box
    dst_box: Box
    scale: float
    patch_object: np.ndarray | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, eq=False)
class PlannedPatch:
    """One patch of an NSA example with everything random already drawn (see :meth:`NSA.plan`).

    Attributes:
        record: where it comes from and goes, its resize factor and ``normal``, ``mixed`` or ``paste``.
        patch: (h, w, C) the source box resized to the destination box ``record.dst_box``.
        mask: (h, w) the authors' uint8 blending mask (:func:`blend_mask`), or the bool patch
            shape when pasting.
        label_region: (h, w) bool, where the patch may be labelled (the authors' variant with
            object masks: source or destination object); None labels the whole box.
    """

    record: PatchRecord
    patch: np.ndarray
    mask: np.ndarray
    label_region: np.ndarray | None = None


def _fraction(mask: np.ndarray | None, box: Box, area: float) -> float:
    return float(np.count_nonzero(mask[box.slices()])) / area


def sample_placement(rng: np.random.Generator, preset: Preset, height: int, width: int,
                     source_object: np.ndarray | None = None, dest_object: np.ndarray | None = None,
                     max_tries: int = 200, variant: Variant = DEFAULT_VARIANT) -> Placement | None:
    """Draw one patch's geometry with NSA's constraints (eqs. 5-12).

    Size by eqs. 5-6; source centre by eq. 7, redrawn until the object covers more than
    ``t_object`` of the ``w x h`` patch (eq. 8); resize factor by eq. 9; destination by eq. 10,
    redrawn until it holds more than ``t_object`` object (eq. 11) and the object parts of patch
    and destination overlap by more than ``t_overlap`` (eq. 12). Without object masks the first
    draws are taken.

    ``variant="authors"`` makes the three departures of the authors' code: the source's object
    fraction is taken over the box clipped at the border, eq. 9 clips the resized sides to half
    the size bounds, and eq. 11 tests the resized source object mask instead of the destination
    (so only eq. 12 depends on where the patch goes).

    Returns:
        The placement, or None if the constraints failed ``max_tries`` times for the source or the
        destination (then a :class:`PatchPlacementWarning` is issued).
    """
    authors = variant == "authors"
    h, w = sample_patch_size(rng, preset, height, width)
    constrained = source_object is not None and dest_object is not None
    for _ in range(max_tries):
        src_box = sample_source_box(rng, preset, h, w, height, width)
        area = src_box.height * src_box.width if authors else h * w
        if not constrained or _fraction(source_object, src_box, area) > preset.t_object:
            break
    else:
        warnings.warn(f"NSA: no source patch held more than t_object={preset.t_object} object after "
                      f"{max_tries} draws; patch skipped", PatchPlacementWarning, stacklevel=3)
        return None
    bounds = half_size_bounds(preset) if authors else None
    scale = sample_scale(rng, preset, src_box.height / height, src_box.width / width, bounds)
    new_h = min(height, max(1, round(scale * src_box.height)))
    new_w = min(width, max(1, round(scale * src_box.width)))
    patch_object = None
    if constrained:
        patch_object = cv2.resize(source_object[src_box.slices()].astype(np.uint8), (new_w, new_h),
                                  interpolation=cv2.INTER_NEAREST).astype(bool)
        patch_object_px = max(1, int(np.count_nonzero(patch_object)))
        if authors and patch_object_px / (new_h * new_w) <= preset.t_object:
            warnings.warn(f"NSA: the resized source patch holds at most t_object={preset.t_object} object; "
                          "patch skipped", PatchPlacementWarning, stacklevel=3)
            return None
    for _ in range(max_tries):
        dst_box = sample_destination_box(rng, new_h, new_w, height, width)
        if not constrained:
            break
        dest_patch = dest_object[dst_box.slices()]
        if ((authors or np.count_nonzero(dest_patch) / (new_h * new_w) > preset.t_object)
                and np.count_nonzero(dest_patch & patch_object) / patch_object_px > preset.t_overlap):
            break
    else:
        warnings.warn(f"NSA: no destination satisfied t_object={preset.t_object} and t_overlap="
                      f"{preset.t_overlap} after {max_tries} draws; patch skipped", PatchPlacementWarning,
                      stacklevel=3)
        return None
    return Placement(src_box, dst_box, scale, patch_object)


def half_size_bounds(preset: Preset) -> tuple[tuple[float, float], tuple[float, float]]:
    """The authors' eq. 9 clip: half the preset's ``h_bounds`` and ``w_bounds`` (their half-width bounds)."""
    (h_min, h_max), (w_min, w_max) = preset.h_bounds, preset.w_bounds
    return (h_min / 2, h_max / 2), (w_min / 2, w_max / 2)


def patch_shape(rng: np.random.Generator, height: int, width: int, ellipses: int) -> np.ndarray:
    """The patch's (height, width) bool shape: a rectangle, or a union of ``ellipses`` random ellipses."""
    return sample_ellipses_mask(rng, height, width, ellipses) if ellipses else np.ones((height, width), bool)


def blend_mask(shape: np.ndarray) -> np.ndarray:
    """The authors' blending mask: the patch shape with its outer 1-pixel border set to zero, as uint8.

    (The authors also restrict it to object pixels of source or destination plus pixels that are
    background in both; that union is every pixel, so the restriction changes nothing.)
    """
    mask = shape.astype(np.uint8)
    mask[[0, -1], :] = 0
    mask[:, [0, -1]] = 0
    return mask


def resized_patch(source: np.ndarray, placement: Placement) -> np.ndarray:
    """Cut the source box and resize it to the destination box (bilinear), keeping dtype and channels."""
    patch = source[placement.src_box.slices()]
    size = (placement.dst_box.width, placement.dst_box.height)
    if size != (patch.shape[1], patch.shape[0]):
        patch = cv2.resize(patch, size, interpolation=cv2.INTER_LINEAR)
    return patch.reshape(size[1], size[0], source.shape[2])


@dataclass(frozen=True)
class NSA:
    """NSA: patches from another normal image, resized, moved and Poisson-blended (Sec. 3).

    Attributes:
        preset: the per-class settings (Table 4); see :mod:`nsad.synth.presets`.
        label: ``binary``, ``continuous`` or ``logistic`` (eqs. 13-14).
        mode: Poisson gradients, ``normal`` or ``mixed``; None takes the preset's.
        ellipses: 0 for rectangular patches, else the number of random ellipses whose union
            shapes the blended region.
        backend: blending backend (see :data:`nsad.synth.BLEND_BACKENDS`); None for the default.
        max_tries: redraws of a centre before a patch is given up (the authors' 200).
        paste: paste the resized patch instead of blending it (the NSA paper's "CutPaste
            (end-to-end)" baseline); its label is then 1 on the pasted pixels.
        variant: ``paper`` (the paper's text) or ``authors`` (the authors' code: the half-size
            resize clip, their object tests and label region; see :mod:`nsad.variants`).
    """

    preset: Preset
    label: LabelKind = "logistic"
    mode: Literal["normal", "mixed"] | None = None
    ellipses: int = 0
    backend: str | None = None
    max_tries: int = 200
    paste: bool = False
    variant: Variant = DEFAULT_VARIANT
    label_kinds: ClassVar[dict[str, str]] = {"binary": "bounded", "logistic": "bounded", "continuous": "continuous"}

    def __post_init__(self) -> None:
        check_choice("label", self.label, LABEL_KINDS)
        check_variant(self.variant)
        if self.mode is not None:
            check_choice("blend mode", self.mode, ("normal", "mixed"))
        if self.ellipses < 0 or self.max_tries < 1:
            raise ValueError(f"ellipses must be >= 0 and max_tries >= 1, got {self.ellipses} and {self.max_tries}")

    @property
    def label_kind(self) -> str:
        """``bounded`` (labels in [0, 1], BCE) or ``continuous`` (8-bit levels, MSE)."""
        return self.label_kinds[self.label]

    def object_masks(self, image: np.ndarray, source: np.ndarray, image_object: np.ndarray | None,
                     source_object: np.ndarray | None) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The object masks of destination and source (eq. 8), computed unless given; None without one."""
        if not self.preset.uses_object_mask:
            return None, None
        b, t = self.preset.background, self.preset.t_brightness
        return (object_mask(image, b, t) if image_object is None else image_object,
                object_mask(source, b, t) if source_object is None else source_object)

    def __call__(self, image: np.ndarray, source: np.ndarray, *, rng: np.random.Generator,
                 image_object: np.ndarray | None = None, source_object: np.ndarray | None = None) -> Synth:
        """Make one synthetic example from destination ``image`` and ``source``: :meth:`plan`, then :meth:`apply`.

        Args:
            image: (H, W, C) uint8/uint16 destination ``x_d``, C in {1, 3}.
            source: (H, W, C) source ``x_s``, same shape and dtype (may be ``image`` itself).
            rng: the example's random generator.
            image_object: optional cached (H, W) bool object mask of ``image`` (eq. 8).
            source_object: optional cached object mask of ``source``.

        Raises:
            ValueError: if the images differ in shape or dtype, or are too small for the preset.
        """
        return self.apply(image, self.plan(image, source, rng=rng, image_object=image_object,
                                           source_object=source_object))

    def plan(self, image: np.ndarray, source: np.ndarray, *, rng: np.random.Generator,
             image_object: np.ndarray | None = None, source_object: np.ndarray | None = None
             ) -> tuple[PlannedPatch, ...]:
        """Draw everything random about one example: placements, shapes, resized source patches, masks.

        The plan depends on ``image`` only through its shape and object mask, never on blended
        pixels, so it can be applied later on another device (:mod:`nsad.synth.device`). The
        generator is used exactly as by :meth:`__call__`.

        Args:
            image: (H, W, C) uint8/uint16 destination ``x_d``, C in {1, 3}; only its shape (and
                object mask, when one is needed and not given) is used.
            source: (H, W, C) source ``x_s``, same shape and dtype.
            rng: the example's random generator.
            image_object: optional cached (H, W) bool object mask of ``image`` (eq. 8).
            source_object: optional cached object mask of ``source``.

        Returns:
            The patches to put in, in order; patches given up (placement failed, or a blending
            mask under ``MIN_BLEND_PIXELS`` pixels) are left out.

        Raises:
            ValueError: if the images differ in shape or dtype, or are too small for the preset.
        """
        check_image_pair(image, source)
        height, width = image.shape[:2]
        check_image_fits(self.preset, height, width)
        dest_object, src_object = self.object_masks(image, source, image_object, source_object)
        mode = "paste" if self.paste else (self.mode or self.preset.mode)
        planned: list[PlannedPatch] = []
        for index in range(self.preset.n_max):
            if index > 0 and rng.integers(2) == 0:
                continue
            placement = sample_placement(rng, self.preset, height, width, src_object, dest_object, self.max_tries,
                                         self.variant)
            if placement is None:
                continue
            patch = resized_patch(source, placement)
            dst = placement.dst_box
            shape = patch_shape(rng, dst.height, dst.width, self.ellipses)
            if self.paste:
                mask = shape
            else:
                mask = blend_mask(shape)
                if np.count_nonzero(mask) < MIN_BLEND_PIXELS:
                    continue
            region = None
            if self.variant == "authors" and placement.patch_object is not None:
                region = placement.patch_object | dest_object[dst.slices()]
            planned.append(PlannedPatch(PatchRecord(placement.src_box, dst, placement.scale, mode), patch, mask,
                                        region))
        return tuple(planned)

    def apply(self, image: np.ndarray, plan: tuple[PlannedPatch, ...]) -> Synth:
        """Put the planned patches into a copy of ``image``, in order, and label the result (deterministic).

        Blended patches go through :func:`~nsad.synth._blend.blend_patch` with the plan's gradients
        and this task's ``backend``; pasted ones replace the pixels of their shape. Labels: eqs.
        13-14 from the change (:func:`~nsad.synth.labels.nsa_label`) inside the patch boxes (the
        authors' variant: inside :func:`label_region`), or 1 on the pasted pixels.

        Args:
            image: (H, W, C) uint8/uint16 destination the plan was drawn for.
            plan: from :meth:`plan`.
        """
        height, width = image.shape[:2]
        result = image.copy()
        pasted = np.zeros((height, width), bool) if self.paste else None
        for planned in plan:
            dst = planned.record.dst_box
            if planned.record.mode == "paste":
                result[dst.slices()][planned.mask] = planned.patch[planned.mask]
                pasted[dst.slices()] |= planned.mask
            else:
                result = blend_patch(result, planned.patch, planned.mask, (dst.x0, dst.y0), planned.record.mode,
                                     self.backend)
        records = tuple(planned.record for planned in plan)
        if self.paste:
            label = pasted.astype(np.float32)
        else:
            region = label_region(plan, (height, width)) if self.variant == "authors" else None
            label = nsa_label(result, image, [r.dst_box for r in records], self.label, self.preset.y0, self.preset.k,
                              region=region)
        return Synth(result, label, records)


def label_region(plan: tuple[PlannedPatch, ...], shape: tuple[int, int]) -> np.ndarray:
    """The authors' label region: each patch's box set to its ``label_region``, later patches overwriting earlier.

    A patch without a ``label_region`` (no object masks) sets its whole box.

    Returns:
        (H, W) bool, True where a pixel may be labelled.
    """
    region = np.zeros(shape, bool)
    for planned in plan:
        dst = planned.record.dst_box
        region[dst.slices()] = True if planned.label_region is None else planned.label_region
    return region
