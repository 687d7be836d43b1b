"""Per-class NSA settings (the paper's Table 4) as data, selectable by name.

The table lives in ``presets.json`` beside this module; :func:`get_preset` reads it into a frozen
:class:`Preset`. ``default`` (objects, no object mask, the bottle's patch bounds, source gradients) and
``texture`` (the paper's texture settings) are the bases of the presets :func:`estimate_preset`
makes from a folder that is not MVTec AD; :func:`resolve_preset` is the one rule every command
uses to pick a preset.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np

from nsad._checks import check_choice, check_range
from nsad.data.io import normal_image_paths, read_image

BlendMode = Literal["normal", "mixed"]


@dataclass(frozen=True)
class Preset:
    """NSA's per-class settings (NSA paper, Appendix A, Table 4).

    Attributes:
        kind: ``object``, ``texture`` or ``xray``; decides the paper's training transforms.
        n_max: largest number of patches per example (one always, then ``n_max - 1`` coin flips).
        h_bounds: (h_min, h_max), patch height as a fraction of the image height (eq. 6).
        w_bounds: (w_min, w_max), patch width as a fraction of the image width (eq. 5).
        size_offset: the constant added to the Gamma draw in eqs. 5-6 (0.06 in the paper).
        size_gamma_scale: scale of the Gamma(2, scale) draw in eqs. 5-6 (0.1 in the paper).
        background: background brightness ``b`` in 8-bit levels (eq. 8), or None for no object mask.
        t_brightness: a pixel is object when its channel-mean differs from ``b`` by more than this.
        t_object: least object fraction of the source and destination patch (eqs. 8 and 11).
        t_overlap: least overlap of the object parts of patch and destination (eq. 12).
        scale_bounds: (s_min, s_max) clipping eq. 9's resize factor.
        y0: logistic label midpoint in 8-bit levels (eq. 14).
        k: logistic label slope per 8-bit level (eq. 14).
        mode: Poisson blending gradients: ``normal`` (source) or ``mixed``.
        epochs: the paper's number of training epochs.
        rotation_deg: random rotation range of the paper's training transform.
        channels: input channels the model sees (3, or 1 for chest X-ray).
        normalization: ``imagenet`` (mean/std of ImageNet) or ``unit`` (intensities in [0, 1]).
        intensity_jitter: ``j`` of the random gain ``U(1 - j, 1 + j)`` and shift ``U(-j, j) / 2`` of
            the full range applied to every synthetic training example (not its label), so that
            parts photographed brighter or darker than the training images are normal; 0 (the
            paper's, every preset's by default) for none. See :func:`~nsad.data.transforms.jitter_intensity`.
        standardize_input: the encoder-decoder standardises each input by its own mean and
            standard deviation (:attr:`nsad.models.NetConfig.standardize_input`); False for the paper's.
        name: the name the preset was selected by.
    """

    kind: Literal["object", "texture", "xray"] = "object"
    n_max: int = 3
    h_bounds: tuple[float, float] = (0.06, 0.8)
    w_bounds: tuple[float, float] = (0.06, 0.8)
    size_offset: float = 0.06
    size_gamma_scale: float = 0.1
    background: float | None = None
    t_brightness: float | None = None
    t_object: float | None = None
    t_overlap: float | None = None
    scale_bounds: tuple[float, float] = (0.7, 1.3)
    y0: float = 15.0
    k: float = 1 / 6
    mode: BlendMode = "normal"
    epochs: int = 320
    rotation_deg: float = 0.0
    channels: int = 3
    normalization: Literal["imagenet", "unit"] = "imagenet"
    intensity_jitter: float = 0.0
    standardize_input: bool = False
    name: str = "custom"

    def __post_init__(self) -> None:
        for field in ("h_bounds", "w_bounds", "scale_bounds"):
            low, high = (float(v) for v in getattr(self, field))
            if not 0 < low <= high:
                raise ValueError(f"preset {self.name!r}: {field} must satisfy 0 < low <= high, got {(low, high)}")
            object.__setattr__(self, field, (low, high))
        for field in ("h_bounds", "w_bounds"):
            check_range(f"preset {self.name!r}: {field}[1]", getattr(self, field)[1], 0.0, 1.0)
        if self.n_max < 1:
            raise ValueError(f"preset {self.name!r}: n_max must be at least 1, got {self.n_max}")
        check_choice("blend mode", self.mode, ("normal", "mixed"))
        check_range(f"preset {self.name!r}: intensity_jitter", self.intensity_jitter, 0.0, 0.5)
        if (self.background is None) != (self.t_brightness is None):
            raise ValueError(f"preset {self.name!r}: give both background and t_brightness, or neither")
        if self.uses_object_mask:
            check_range(f"preset {self.name!r}: t_object", self.t_object if self.t_object is not None else -1, 0, 1)
            check_range(f"preset {self.name!r}: t_overlap", self.t_overlap if self.t_overlap is not None else -1, 0, 1)

    @property
    def uses_object_mask(self) -> bool:
        """Whether patches are constrained to the object (eqs. 8, 11, 12)."""
        return self.background is not None

    def replace(self, **changes: object) -> Preset:
        """Return a copy with ``changes`` applied (validated like a new preset)."""
        return dataclasses.replace(self, **changes)


@functools.cache
def _table() -> dict[str, dict]:
    text = resources.files("nsad.synth").joinpath("presets.json").read_text()
    return json.loads(text)["presets"]


PRESET_NAMES: tuple[str, ...] = tuple(_table())


def get_preset(name: str) -> Preset:
    """Return the preset registered as ``name`` (e.g. ``mvtec/bottle``, ``cxr``, ``default``).

    A bare MVTec AD class name (``bottle``) is accepted too.

    Raises:
        ValueError: if no preset has that name; the message lists them.
    """
    table = _table()
    if name not in table and f"mvtec/{name}" in table:
        name = f"mvtec/{name}"
    check_choice("preset", name, table)
    return Preset(**table[name], name=name)


def estimate_background(images: Sequence[np.ndarray], border_px: int = 4) -> tuple[float, float]:
    """Estimate the background brightness ``b`` of eq. 8 and its spread from the image borders.

    For objects on a plain background the outer ``border_px`` pixels are background. The result is
    the median channel-mean intensity of those pixels over all images (in 8-bit levels) and the
    90th percentile of their distance to it, so that ``t_brightness`` well above the spread (the
    paper uses 20-60 levels) separates object from background. A large spread means the border is
    not plain and the data is better served without an object mask.

    Args:
        images: (H, W, C) uint8 or uint16 images.
        border_px: width of the border band taken as background.

    Returns:
        (background, spread), both in 8-bit levels.

    Raises:
        ValueError: if ``images`` is empty or an image is smaller than twice the border.
    """
    if len(images) == 0:
        raise ValueError("estimate_background needs at least one image, got none")
    samples = []
    for image in images:
        height, width = image.shape[:2]
        if min(height, width) <= 2 * border_px:
            raise ValueError(f"image of size {width}x{height} is too small for a {border_px}-pixel border")
        levels = image.astype(np.float32).mean(axis=2) / (1.0 if image.dtype == np.uint8 else 257.0)
        band = np.ones((height, width), bool)
        band[border_px:-border_px, border_px:-border_px] = False
        samples.append(levels[band])
    values = np.concatenate(samples)
    background = float(np.median(values))
    spread = float(np.percentile(np.abs(values - background), 90))
    return background, spread


def preset_from_folder(folder: str | Path, base: str = "default", border_px: int = 4) -> Preset:
    """Build a preset for the images of ``folder``: ``base`` with ``background`` estimated from them.

    ``t_brightness`` is set to three times the border spread, at least 20 levels (the paper's
    smallest value), ``t_object`` and ``t_overlap`` to the bottle's 0.7 and 0.25.

    Raises:
        FileNotFoundError, ValueError: if the folder holds no readable images.
    """
    images = [read_image(path) for path in normal_image_paths(folder)[:32]]
    background, spread = estimate_background(images, border_px)
    return get_preset(base).replace(background=round(background, 1), t_brightness=round(max(20.0, 3 * spread), 1),
                                    t_object=0.7, t_overlap=0.25, name=f"{base}+background({Path(folder).name})")


ESTIMATE_SAMPLE = 32
"""Training images an estimate looks at, spread evenly over the sorted folder."""
PLAIN_BORDER_LEVELS = 10.0
"""A border is plain (a background) when 90% of its pixels lie within this many 8-bit levels of
its median: half the paper's smallest object threshold ``t_brightness`` (20 levels)."""
ESTIMATE_BORDER_PX = 4
"""Width of the image border an estimate takes as the background."""
MIN_OBJECT_FRACTION = 0.05
"""Least fraction of the image centre that must differ from a plain border for it to hold an object."""


@dataclass(frozen=True)
class PresetChoice:
    """The preset a command uses, how it was chosen and, when estimated, the values and why.

    Attributes:
        preset: the preset.
        source: ``given`` (``--preset``), ``category`` (an MVTec AD class name) or ``estimated``.
        notes: one line per estimated value with the reason (empty unless estimated).
    """

    preset: Preset
    source: str
    notes: tuple[str, ...] = ()

    def lines(self, command: str) -> list[str]:
        """What ``command`` prints: the preset and how it was chosen, then one line per estimated value."""
        why = {"given": "given with --preset", "category": "the MVTec AD class of the data",
               "estimated": "estimated from the training images"}[self.source]
        return [f"nsad {command}: preset {self.preset.name} ({why})",
                *(f"nsad {command}:   {note}" for note in self.notes)]


def sample_evenly(paths: Sequence[Path], count: int = ESTIMATE_SAMPLE) -> list[Path]:
    """At most ``count`` of ``paths``, spread evenly from the first to the last."""
    if len(paths) <= count:
        return list(paths)
    return [paths[int(i)] for i in np.linspace(0, len(paths) - 1, count).round().astype(int)]


def is_grayscale(image: np.ndarray) -> bool:
    """Whether an (H, W, C) image has one channel or three equal ones."""
    return image.shape[2] == 1 or bool((image[:, :, :1] == image).all())


def estimate_preset(images: Sequence[np.ndarray], name: str = "estimated",
                    border_px: int = ESTIMATE_BORDER_PX) -> PresetChoice:
    """A preset for training images that are not MVTec AD, from their borders and channels.

    - **object or texture**: with the background brightness ``b`` and its spread over the outer
      ``border_px`` pixels (:func:`estimate_background`), the images show an object on a plain
      background when the border is plain (spread at most :data:`PLAIN_BORDER_LEVELS`) and at
      least :data:`MIN_OBJECT_FRACTION` of the centre half differs from ``b`` by more than the
      object threshold. Objects get the ``default`` preset with object masks (eq. 8: ``b``,
      ``t_brightness`` = three times the spread, at least 20 levels; ``t_object`` 0.7 and
      ``t_overlap`` 0.25 as for bottle); anything else (textures, parts filling the field of view)
      the ``texture`` preset (no object mask, mixed gradients, the paper's texture settings).
    - **channels**: one when every image is grayscale (one channel or three equal ones), with
      intensities in [0, 1] (``unit``: ImageNet's statistics are for colour); else three.
    - **patch bounds**: the paper's 6-80% of each side, relative to the training window.
    - **standardised input** (:attr:`Preset.standardize_input`): each input minus its own mean, over
      its own standard deviation, so the maps do not follow a part's overall brightness.

    Raises:
        ValueError: if ``images`` is empty or too small for the border.
    """
    background, spread = estimate_background(images, border_px)
    threshold = round(max(20.0, 3 * spread), 1)
    fractions = []
    for image in images:
        height, width = image.shape[:2]
        levels = image.astype(np.float32).mean(axis=2) / (1.0 if image.dtype == np.uint8 else 257.0)
        centre = levels[height // 4:height - height // 4, width // 4:width - width // 4]
        fractions.append(float((np.abs(centre - background) > threshold).mean()))
    object_fraction = float(np.median(fractions))
    plain = spread <= PLAIN_BORDER_LEVELS
    gray = all(is_grayscale(image) for image in images)
    notes = []
    if plain and object_fraction >= MIN_OBJECT_FRACTION:
        preset = get_preset("default").replace(background=round(background, 1), t_brightness=threshold,
                                               t_object=0.7, t_overlap=0.25)
        notes.append(f"kind object with object masks: the {border_px}-px border is plain (90% within "
                     f"{spread:.1f} levels of b={background:.1f}) and {object_fraction:.0%} of the image centre "
                     f"differs from it by more than t_brightness={threshold}")
    else:
        preset = get_preset("texture")
        reason = (f"the {border_px}-px border is not plain (90% within {spread:.1f} levels of its median "
                  f"{background:.1f}, more than {PLAIN_BORDER_LEVELS:g})" if not plain else
                  f"the border is plain but only {object_fraction:.0%} of the centre differs from it")
        notes.append(f"kind texture (whole-field, no object mask, mixed gradients): {reason}")
    if gray:
        preset = preset.replace(channels=1, normalization="unit")
        notes.append("channels 1, intensities in [0, 1]: every sampled image is grayscale")
    else:
        notes.append("channels 3, ImageNet normalisation: the images are in colour")
    preset = preset.replace(standardize_input=True)
    notes.append("inputs standardised by their own mean and standard deviation: a user's parts vary in brightness "
                 "and contrast (on KolektorSDD all three metrics rose with it; see the README)")
    notes.append(f"patch bounds {preset.h_bounds[0]:.0%}-{preset.h_bounds[1]:.0%} of each side of the training "
                 f"window; {preset.n_max} patches at most; labels y0={preset.y0:g}, k={preset.k:.3g}")
    return PresetChoice(preset.replace(name=name), "estimated", tuple(notes))


def resolve_preset(name: str | None, category: str | None, train_paths: Sequence[Path]) -> PresetChoice:
    """The one rule by which ``nsad synth``, ``train`` and ``predict`` choose a preset.

    ``name`` when given; else ``mvtec/<category>`` when the data's category is an MVTec AD class;
    else :func:`estimate_preset` on up to :data:`ESTIMATE_SAMPLE` training images.

    Raises:
        ValueError: for an unknown ``name``, or no training images to estimate from, or one too small.
    """
    if name is not None:
        return PresetChoice(get_preset(name), "given")
    if category is not None and f"mvtec/{category}" in PRESET_NAMES:
        return PresetChoice(get_preset(f"mvtec/{category}"), "category")
    if not train_paths:
        raise ValueError("no training images to estimate a preset from; give --preset")
    sample = sample_evenly(sorted(train_paths))
    images = [read_image(path) for path in sample]
    for path, image in zip(sample, images, strict=True):
        if min(image.shape[:2]) <= 2 * ESTIMATE_BORDER_PX:
            raise ValueError(f"{path} is {image.shape[1]}x{image.shape[0]} px, too small to estimate a preset "
                             f"from (its {ESTIMATE_BORDER_PX}-px border is the background sample): remove it or "
                             "give --preset")
    return estimate_preset(images, name=f"estimated/{category}" if category else "estimated")
