"""The NSA paper's image transforms, as pure functions on (H, W, C) uint8/uint16 NumPy images.

NSA paper (Schlüter et al., ECCV 2022), Sec. 4.1, and the authors' code:

- **objects** (MVTec AD object classes): resize to 256, rotate by a random angle in
  ``[-rotation_deg, rotation_deg]`` (5° for bottle, hazelnut, metal_nut and screw, else none),
  centre-crop 230, then crop a random 224 window; the synthetic anomaly is made afterwards.
  Test: the centre 224 crop of the 256 image.
- **textures**: resize to 264 and crop a random 256 window. Test: the 256 image.
- **chest X-ray**: as objects with a 3° rotation, and grayscale.

All sizes are fields of :class:`TransformConfig`; :meth:`TransformConfig.for_size` scales them
from one ``image_size`` with the paper's proportions (``image_size=128`` gives 128 / 115 / 112 and
a 132 texture resize). Randomness is drawn once into a :class:`Geometry` by
:func:`sample_train_geometry`; :func:`apply_geometry` is deterministic, so the same geometry can be
applied to an image (bilinear) and to its mask or label (nearest neighbour).

Choices the paper leaves open, made here:

- Images are resized to a *square* ``resize x resize`` whatever their aspect ratio (MVTec AD
  images are square); :func:`restore_map` stretches the anomaly map back to the original shape.
- Shrinking uses ``cv2.INTER_AREA`` (pixel-area averaging, free of aliasing), enlarging
  ``cv2.INTER_LINEAR`` (bilinear). Masks, labels and object masks (``interpolation="nearest"``)
  are resized with ``cv2.INTER_NEAREST_EXACT`` and rotated with ``cv2.INTER_NEAREST``
  (``cv2.warpAffine`` has no exact variant).
- Rotation is about the centre of the resized image, bilinear, with ``cv2.BORDER_REFLECT_101``
  (mirrored pixels, not black corners, where the rotated image does not cover the window), and
  rotation, centre crop and random crop are one ``cv2.warpAffine``: a single interpolation.

``TransformConfig(variant="authors")`` follows the authors' code instead (see :mod:`nsad.variants`):
nearest-neighbour rotation with black corners, and a random vertical flip of texture crops.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import cv2
import numpy as np

from nsad._checks import check_choice, check_image, check_range
from nsad.variants import DEFAULT_VARIANT, Variant, check_variant

Kind = Literal["object", "texture", "xray"]
KINDS: tuple[str, ...] = ("object", "texture", "xray")
Interpolation = Literal["linear", "nearest"]
INTERPOLATIONS: tuple[str, ...] = ("linear", "nearest")
Normalization = Literal["imagenet", "unit"]
NORMALIZATIONS: tuple[str, ...] = ("imagenet", "unit")

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
"""ImageNet channel means, RGB order, for intensities in [0, 1]."""
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
"""ImageNet channel standard deviations, RGB order, for intensities in [0, 1]."""

PAPER_RESIZE, PAPER_CROP, PAPER_PRE_CROP, PAPER_TEXTURE_RESIZE = 256, 224, 230, 264
SIDE_MULTIPLE = 32
"""ResNet-18's total stride: whole-frame sides are multiples of it."""
ENLARGED_WARNING = 2.0
"""Images enlarged more than this many times to the training or test frame get a warning."""
PROTOCOLS: tuple[str, ...] = ("paper", "whole")
"""``paper``: square resize, centre crop, zero outside (:class:`TransformConfig`); ``whole``: :class:`FrameConfig`."""


class _PresetLike(Protocol):
    kind: str
    rotation_deg: float
    channels: int


@dataclass(frozen=True)
class TransformConfig:
    """Sizes and options of the paper's transforms (NSA paper, Sec. 4.1).

    Attributes:
        kind: ``object`` or ``xray`` (rotate, centre crop, random crop) or ``texture`` (random crop).
        resize: side of the square image (paper: 256). The evaluation frame of every kind, and
            the training/test input side for textures.
        crop: training and test input side for objects and X-ray (paper: 224).
        pre_crop: centre crop taken before the random ``crop`` for objects (paper: 230).
        texture_resize: side textures are resized to before the random ``resize`` crop (paper: 264).
        rotation_deg: largest rotation, in degrees, for objects and X-ray (paper: 5 for four
            classes, 3 for chest X-ray, else 0). Textures are never rotated.
        grayscale: convert RGB images to one channel first (chest X-ray).
        variant: ``paper`` or ``authors`` (nearest-neighbour rotation with black fill, vertical
            flips of textures; :mod:`nsad.variants`). Training only: the test transform is the same.
    """

    kind: Kind = "object"
    resize: int = PAPER_RESIZE
    crop: int = PAPER_CROP
    pre_crop: int = PAPER_PRE_CROP
    texture_resize: int = PAPER_TEXTURE_RESIZE
    rotation_deg: float = 0.0
    grayscale: bool = False
    variant: Variant = DEFAULT_VARIANT

    def __post_init__(self) -> None:
        check_choice("transform kind", self.kind, KINDS)
        check_variant(self.variant)
        for name in ("resize", "crop", "pre_crop", "texture_resize"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
            object.__setattr__(self, name, int(value))
        if not self.crop <= self.pre_crop <= self.resize:
            raise ValueError(f"need crop <= pre_crop <= resize, got crop={self.crop}, "
                             f"pre_crop={self.pre_crop}, resize={self.resize}")
        if self.texture_resize < self.resize:
            raise ValueError(f"texture_resize must be at least resize={self.resize}, "
                             f"got {self.texture_resize}")
        check_range("rotation_deg", self.rotation_deg, 0.0, 180.0)
        object.__setattr__(self, "rotation_deg", float(self.rotation_deg))

    @classmethod
    def for_size(cls, kind: Kind = "object", image_size: int = PAPER_RESIZE, *, rotation_deg: float = 0.0,
                 grayscale: bool = False, variant: Variant = DEFAULT_VARIANT) -> TransformConfig:
        """Scale the paper's sizes (256, 224, 230, 264) to ``resize = image_size``, rounding each.

        Example:
            >>> c = TransformConfig.for_size("object", 128)
            >>> (c.resize, c.pre_crop, c.crop, c.texture_resize)
            (128, 115, 112, 132)

        Raises:
            ValueError: if ``image_size`` is below 8 or another value is out of range.
        """
        if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 8:
            raise ValueError(f"image_size must be an int of at least 8, got {image_size!r}")
        scale = image_size / PAPER_RESIZE
        return cls(kind=kind, resize=int(image_size), crop=round(PAPER_CROP * scale),
                   pre_crop=round(PAPER_PRE_CROP * scale), texture_resize=round(PAPER_TEXTURE_RESIZE * scale),
                   rotation_deg=rotation_deg, grayscale=grayscale, variant=variant)

    @classmethod
    def from_preset(cls, preset: _PresetLike, image_size: int = PAPER_RESIZE,
                    variant: Variant = DEFAULT_VARIANT) -> TransformConfig:
        """The transforms of an NSA preset (its ``kind``, ``rotation_deg`` and ``channels``).

        ``grayscale`` is set when the preset's model takes one channel (chest X-ray).

        Raises:
            ValueError: as for :meth:`for_size`.
        """
        return cls.for_size(preset.kind, image_size, rotation_deg=preset.rotation_deg,  # type: ignore[arg-type]
                            grayscale=preset.channels == 1, variant=variant)

    @property
    def input_size(self) -> int:
        """Side of the network's input in training and test: ``crop`` (objects, X-ray) or ``resize``."""
        return self.resize if self.kind == "texture" else self.crop


@dataclass(frozen=True)
class FrameConfig:
    """The whole-image protocol: the aspect ratio kept, random crops in training, the whole frame scored.

    Every image is resized to one ``frame_hw`` for the whole run (the evaluation frame): from the
    training images' typical size, scaled to the pixel count of the paper's 256 x 256 with sides
    rounded to multiples of 32 (ResNet-18's stride, so the fully convolutional network maps the
    frame without padding), see :meth:`for_images`. Training takes random ``crop_hw`` windows of
    the frame (7/8 of each side, the paper's 224/256, rounded likewise), rotated by up to
    ``rotation_deg``; scoring runs on the whole frame, so no band at the border is left unscored.

    With ``tile``, the frame is the images' own typical size (native resolution): training takes
    random ``tile x tile`` windows and scoring runs on overlapping tiles (``tile_overlap`` pixels)
    whose maps are blended across the overlaps (:func:`stitch_tiles`).

    Attributes:
        frame_hw: (height, width) every image is resized to; the evaluation frame.
        crop_hw: (height, width) of the random training window.
        rotation_deg: largest random rotation in training (the preset's).
        grayscale: convert RGB images to one channel first.
        tile: side of the square tiles scored one by one, or None to score the frame at once.
        tile_overlap: pixels neighbouring tiles share (at least; the grid spreads any slack evenly).
    """

    frame_hw: tuple[int, int]
    crop_hw: tuple[int, int]
    rotation_deg: float = 0.0
    grayscale: bool = False
    tile: int | None = None
    tile_overlap: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "frame_hw", _hw("frame_hw", self.frame_hw))
        object.__setattr__(self, "crop_hw", _hw("crop_hw", self.crop_hw))
        if self.crop_hw[0] > self.frame_hw[0] or self.crop_hw[1] > self.frame_hw[1]:
            raise ValueError(f"crop_hw {self.crop_hw} must fit in frame_hw {self.frame_hw}")
        check_range("rotation_deg", self.rotation_deg, 0.0, 180.0)
        object.__setattr__(self, "rotation_deg", float(self.rotation_deg))
        if self.tile is not None:
            check_tile(self.tile, self.tile_overlap, self.frame_hw)
            object.__setattr__(self, "tile", int(self.tile))
            object.__setattr__(self, "tile_overlap", int(self.tile_overlap))

    kind = "whole"
    """The protocol's name where :class:`TransformConfig` has ``object``/``texture``/``xray``."""

    @classmethod
    def for_images(cls, size_hw: Sequence[int], image_size: int = PAPER_RESIZE, *, tile: int | None = None,
                   tile_overlap: int | None = None, window: int | None = None, rotation_deg: float = 0.0,
                   grayscale: bool = False) -> FrameConfig:
        """The frame and crops for images of typical size ``size_hw`` (see the class docstring).

        Args:
            size_hw: (height, width) of the training images (e.g. their median).
            image_size: the pixel budget is ``image_size ** 2`` (paper: 256).
            tile: tile side (a multiple of 32) for native-resolution tiling, or None.
            tile_overlap: overlap of neighbouring tiles; default a quarter of the tile.
            window: side of square training crops (a multiple of 32; a frame side smaller than it
                bounds it); default 7/8 of each side of the frame.
            rotation_deg: largest random rotation in training.
            grayscale: convert RGB images to one channel first.

        Example:
            >>> FrameConfig.for_images((1260, 500)).frame_hw, FrameConfig.for_images((1260, 500)).crop_hw
            ((416, 160), (352, 128))
            >>> FrameConfig.for_images((1260, 500), window=128).crop_hw
            (128, 128)

        Raises:
            ValueError: for sizes that are not positive, ``image_size`` below 32, a bad tile or
                window, or a window with tiles (their training windows are the tiles).
        """
        height, width = _hw("size_hw", tuple(size_hw))
        if window is not None:
            if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < SIDE_MULTIPLE \
                    or window % SIDE_MULTIPLE:
                raise ValueError(f"training window must be a multiple of {SIDE_MULTIPLE} px, at least "
                                 f"{SIDE_MULTIPLE}, got {window!r}")
            if tile is not None:
                raise ValueError("a training window and tiles exclude each other: with tiles the training windows "
                                 "are the tiles")
        if tile is not None:
            overlap = tile // 4 if tile_overlap is None else tile_overlap
            check_tile(tile, overlap, (height, width))
            return cls((height, width), (tile, tile), rotation_deg, grayscale, tile, overlap)
        if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < SIDE_MULTIPLE:
            raise ValueError(f"image_size must be an int of at least {SIDE_MULTIPLE}, got {image_size!r}")
        scale = math.sqrt(image_size * image_size / (height * width))
        frame = (_multiple_of_stride(height * scale), _multiple_of_stride(width * scale))
        if window is None:
            crop = tuple(min(side, _multiple_of_stride(side * PAPER_CROP / PAPER_RESIZE)) for side in frame)
        else:
            crop = tuple(min(side, int(window)) for side in frame)
        return cls(frame, crop, rotation_deg, grayscale)  # type: ignore[arg-type]

    @property
    def resize(self) -> int:
        """Side of the square with the frame's pixel count: for code that sizes by one side (heatmap areas, figures)."""
        return int(round(math.sqrt(self.frame_hw[0] * self.frame_hw[1])))

    @property
    def input_hw(self) -> tuple[int, int]:
        """(height, width) of the network's test input: a tile, or the whole frame."""
        return (self.tile, self.tile) if self.tile is not None else self.frame_hw

    def to_dict(self) -> dict:
        """The JSON object ``run.json`` records (``geometry``); :meth:`from_dict` reads it back."""
        return {"protocol": "whole", "frame_hw": list(self.frame_hw), "crop_hw": list(self.crop_hw),
                "rotation_deg": self.rotation_deg, "grayscale": self.grayscale, "tile": self.tile,
                "tile_overlap": self.tile_overlap}

    @classmethod
    def from_dict(cls, data: dict) -> FrameConfig:
        """Rebuild from :meth:`to_dict`'s output.

        Raises:
            ValueError: for another protocol, unknown keys or bad values.
        """
        values = dict(data)
        if values.pop("protocol", None) != "whole":
            raise ValueError(f"geometry must have protocol 'whole', got {data.get('protocol')!r}")
        known = {"frame_hw", "crop_hw", "rotation_deg", "grayscale", "tile", "tile_overlap"}
        if set(values) - known:
            raise ValueError(f"unknown geometry keys {sorted(set(values) - known)}; accepted: {sorted(known)}")
        return cls(**{k: tuple(v) if k.endswith("_hw") else v for k, v in values.items()})


def _multiple_of_stride(side: float) -> int:
    return max(SIDE_MULTIPLE, SIDE_MULTIPLE * math.floor(side / SIDE_MULTIPLE + 0.5))  # halves round up


def check_tile(tile: int, overlap: int, frame_hw: Sequence[int]) -> None:
    """Check a tile side (a multiple of 32 that fits the frame) and its overlap (0 to half the tile).

    Raises:
        ValueError: naming the value and what is accepted.
    """
    if (isinstance(tile, bool) or not isinstance(tile, (int, np.integer)) or tile < SIDE_MULTIPLE
            or tile % SIDE_MULTIPLE):
        raise ValueError(f"tile must be a multiple of {SIDE_MULTIPLE} px, at least {SIDE_MULTIPLE}, got {tile!r}")
    if tile > min(frame_hw):
        largest = SIDE_MULTIPLE * (min(frame_hw) // SIDE_MULTIPLE)
        raise ValueError(f"tile {tile} px is larger than the images ({frame_hw[0]}x{frame_hw[1]} px, height x width); "
                         + (f"choose at most {largest}" if largest else "score them without tiles"))
    if isinstance(overlap, bool) or not isinstance(overlap, (int, np.integer)) or not 0 <= overlap <= tile // 2:
        raise ValueError(f"tile overlap must be an int from 0 to half the tile ({tile // 2}), got {overlap!r}")


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """First pixels of the tiles covering ``length`` pixels, neighbours sharing at least ``overlap``.

    The fewest tiles of stride at most ``tile - overlap``, spread evenly from 0 to ``length - tile``.

    Example:
        >>> tile_starts(500, 256, 64), tile_starts(256, 256, 64)
        ([0, 122, 244], [0])
    """
    if length <= tile:
        return [0]
    count = 1 + math.ceil((length - tile) / (tile - overlap))
    return [int(round(i * (length - tile) / (count - 1))) for i in range(count)]


def tile_boxes(frame_hw: Sequence[int], tile: int, overlap: int) -> list[tuple[int, int]]:
    """(top, left) of every tile of the frame, row by row (see :func:`tile_starts`)."""
    return [(top, left) for top in tile_starts(int(frame_hw[0]), tile, overlap)
            for left in tile_starts(int(frame_hw[1]), tile, overlap)]


def tile_weight(tile: int, overlap: int) -> np.ndarray:
    """(tile, tile) float64 blending weight: 1 inside, a linear ramp to near 0 across the ``overlap`` band.

    Stitched maps are weighted averages, so a pixel covered by two tiles moves linearly from one
    tile's value to the other's across their overlap: no seam, and a constant map stays constant.
    """
    ramp = np.ones(tile)
    if overlap > 0:
        edge = (np.arange(overlap) + 0.5) / overlap
        ramp[:overlap] = np.minimum(ramp[:overlap], edge)
        ramp[tile - overlap:] = np.minimum(ramp[tile - overlap:], edge[::-1])
    return np.outer(ramp, ramp)


def stitch_tiles(tile_maps: np.ndarray, boxes: Sequence[tuple[int, int]], frame_hw: Sequence[int],
                 overlap: int) -> np.ndarray:
    """Blend per-tile maps into one map of the frame: the :func:`tile_weight`-weighted mean of the tiles.

    Args:
        tile_maps: (T, tile, tile) maps, one per box.
        boxes: (top, left) of each tile, from :func:`tile_boxes`.
        frame_hw: (height, width) of the frame; the boxes must cover it.
        overlap: the overlap the boxes were made with.

    Returns:
        (height, width) float32 map.

    Raises:
        ValueError: if the counts differ, a tile does not fit, or a pixel is covered by no tile.
    """
    tile_maps = np.asarray(tile_maps)
    if tile_maps.ndim != 3 or tile_maps.shape[1] != tile_maps.shape[2] or len(tile_maps) != len(boxes):
        raise ValueError(f"need (T, tile, tile) maps for {len(boxes)} boxes, got {tile_maps.shape}")
    tile = tile_maps.shape[1]
    height, width = int(frame_hw[0]), int(frame_hw[1])
    weight = tile_weight(tile, overlap)
    total, weights = np.zeros((height, width)), np.zeros((height, width))
    for tile_map, (top, left) in zip(tile_maps, boxes, strict=True):
        if top < 0 or left < 0 or top + tile > height or left + tile > width:
            raise ValueError(f"tile at ({top}, {left}) does not fit the {height}x{width} frame")
        total[top:top + tile, left:left + tile] += weight * tile_map
        weights[top:top + tile, left:left + tile] += weight
    if (weights == 0).any():
        raise ValueError("the tiles do not cover the frame")
    return (total / weights).astype(np.float32)


def tiled_maps(frames: np.ndarray, config: FrameConfig, run_network: Callable[[np.ndarray], np.ndarray],
               batch_size: int) -> np.ndarray:
    """(B, H, W) maps of (B, C, H, W) frames scored tile by tile: the one tiling of the scorer and nsad.deploy.

    The tiles of :func:`tile_boxes` go through ``run_network`` ((T, C, tile, tile) inputs to
    (T, tile, tile) maps) ``batch_size`` at a time, and each frame's tile maps are blended by
    :func:`stitch_tiles`.
    """
    tile, overlap = config.tile, config.tile_overlap
    if tile is None:
        raise ValueError("tiled_maps needs a FrameConfig with a tile")
    boxes = tile_boxes(config.frame_hw, tile, overlap)
    tiles = np.concatenate([frames[:, :, top:top + tile, left:left + tile] for top, left in boxes])  # box-major
    outputs = np.concatenate([np.asarray(run_network(np.ascontiguousarray(tiles[start:start + batch_size])))
                              for start in range(0, len(tiles), max(1, int(batch_size)))])
    per_image = outputs.reshape(len(boxes), len(frames), tile, tile).transpose(1, 0, 2, 3)
    return np.stack([stitch_tiles(tile_maps, boxes, config.frame_hw, overlap) for tile_maps in per_image])


def split_tiles(image: np.ndarray, boxes: Sequence[tuple[int, int]], tile: int) -> np.ndarray:
    """(T, tile, tile, ...) windows of an (H, W, ...) image at ``boxes`` (see :func:`tile_boxes`)."""
    return np.stack([image[top:top + tile, left:left + tile] for top, left in boxes])


@dataclass(frozen=True)
class Geometry:
    """One draw of the geometric transform: resize, rotate about the centre, take a window.

    The image is resized to ``resize`` (a side for a square, or ``(height, width)``), rotated by
    ``angle_deg`` counter-clockwise about its centre, and the ``crop`` window (a side or
    ``(height, width)``) with top-left corner ``(top, left)`` is kept.

    Attributes:
        resize: side of the square the image is resized to, or its (height, width).
        crop: side of the square output window, or its (height, width).
        top: first row of the window, in ``[0, resize height - crop height]``.
        left: first column of the window, in ``[0, resize width - crop width]``.
        angle_deg: rotation in degrees, counter-clockwise in the displayed image.
        nearest_black: rotate with nearest-neighbour sampling and black fill (the authors'
            torchvision ``RandomRotation``) instead of bilinear sampling and mirrored borders.
        flip: flip the window upside down at the end (the authors' vertical flip of textures).
    """

    resize: int | tuple[int, int]
    crop: int | tuple[int, int]
    top: int
    left: int
    angle_deg: float = 0.0
    nearest_black: bool = False
    flip: bool = False

    def __post_init__(self) -> None:
        for name in ("resize", "crop"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)):
                object.__setattr__(self, name, _hw(name, value))
        (rh, rw), (ch, cw) = self.resize_hw, self.crop_hw
        if not (1 <= ch <= rh and 1 <= cw <= rw):
            raise ValueError(f"need 1 <= crop <= resize per side, got crop={self.crop}, resize={self.resize}")
        check_range("top", self.top, 0, rh - ch)
        check_range("left", self.left, 0, rw - cw)
        check_range("angle_deg", self.angle_deg, -180.0, 180.0)

    @property
    def resize_hw(self) -> tuple[int, int]:
        """(height, width) the image is resized to."""
        return _as_hw(self.resize)

    @property
    def crop_hw(self) -> tuple[int, int]:
        """(height, width) of the window kept."""
        return _as_hw(self.crop)


def _as_hw(value: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)):
        return int(value), int(value)
    return int(value[0]), int(value[1])


def _hw(name: str, value: object) -> tuple[int, int]:
    """Check a (height, width) pair of positive ints."""
    if (isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1 for v in value)):
        raise ValueError(f"{name} must be a positive int or (height, width) of positive ints, got {value!r}")
    return int(value[0]), int(value[1])


def sample_train_geometry(rng: np.random.Generator, config: TransformConfig | FrameConfig) -> Geometry:
    """Draw the random part of the training transform.

    Whole-image protocol (:class:`FrameConfig`): ``angle ~ U(-rotation_deg, rotation_deg)`` and a
    ``crop_hw`` window of the frame, uniform over its positions.

    Objects and X-ray: ``angle ~ U(-rotation_deg, rotation_deg)`` (not drawn when the range is 0),
    then the offset of a ``crop`` window inside the centred ``pre_crop`` square, uniform over the
    ``pre_crop - crop + 1`` positions per axis. Textures: the offset of a ``resize`` window inside
    the ``texture_resize`` image, uniform likewise. The authors' variant then draws a fair coin
    for a vertical flip of textures and rotates objects with nearest neighbours and black fill.

    Args:
        rng: the random source.
        config: the transform's sizes.

    Example:
        >>> sample_train_geometry(np.random.default_rng(0), TransformConfig(rotation_deg=5.0))
        Geometry(resize=256, crop=224, top=16, left=14, angle_deg=1.3696..., nearest_black=False, flip=False)
    """
    if isinstance(config, FrameConfig):
        angle = float(rng.uniform(-config.rotation_deg, config.rotation_deg)) if config.rotation_deg > 0 else 0.0
        (height, width), (crop_h, crop_w) = config.frame_hw, config.crop_hw
        top, left = int(rng.integers(0, height - crop_h + 1)), int(rng.integers(0, width - crop_w + 1))
        return Geometry(config.frame_hw, config.crop_hw, top, left, angle)
    authors = config.variant == "authors"
    if config.kind == "texture":
        span = config.texture_resize - config.resize + 1
        top, left = (int(v) for v in rng.integers(0, span, size=2))
        flip = authors and bool(rng.integers(2))
        return Geometry(config.texture_resize, config.resize, top, left, 0.0, flip=flip)
    angle = float(rng.uniform(-config.rotation_deg, config.rotation_deg)) if config.rotation_deg > 0 else 0.0
    margin = (config.resize - config.pre_crop) // 2
    top, left = (margin + int(v) for v in rng.integers(0, config.pre_crop - config.crop + 1, size=2))
    return Geometry(config.resize, config.crop, top, left, angle, nearest_black=authors)


def test_geometry(config: TransformConfig | FrameConfig) -> Geometry:
    """The test transform, as a geometry: no rotation, a centred window (the whole frame: :class:`FrameConfig`).

    Objects and X-ray: the centre ``crop`` window of the ``resize`` image, at offset
    ``(resize - crop) // 2``. Textures: the whole ``resize`` image.

    Example:
        >>> test_geometry(TransformConfig())
        Geometry(resize=256, crop=224, top=16, left=16, angle_deg=0.0, nearest_black=False, flip=False)
    """
    if isinstance(config, FrameConfig):
        return Geometry(config.frame_hw, config.frame_hw, 0, 0, 0.0)
    if config.kind == "texture":
        return Geometry(config.resize, config.resize, 0, 0, 0.0)
    offset = (config.resize - config.crop) // 2
    return Geometry(config.resize, config.crop, offset, offset, 0.0)


test_geometry.__test__ = False  # type: ignore[attr-defined]  # not a pytest test despite its name


def apply_geometry(image: np.ndarray, geometry: Geometry,
                   interpolation: Interpolation = "linear") -> np.ndarray:
    """Resize, rotate and crop ``image`` as ``geometry`` says; deterministic.

    Args:
        image: (H, W) or (H, W, C) array of bool, uint8, uint16, float32 or float64: an image, a
            mask or a label.
        geometry: from :func:`sample_train_geometry` or :func:`test_geometry`.
        interpolation: ``linear`` for images and continuous labels (area averaging when shrinking,
            bilinear otherwise), ``nearest`` for masks and discrete labels (values are kept).

    Returns:
        A ``crop_hw`` or ``crop_hw + (C,)`` array of the input's dtype.

    Raises:
        TypeError: if ``image`` is not a NumPy array of an accepted dtype.
        ValueError: for another layout, an unknown ``interpolation``, or ``linear`` on a bool mask.
    """
    check_choice("interpolation", interpolation, INTERPOLATIONS)
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype not in (np.bool_, np.uint8, np.uint16, np.float32, np.float64):
        raise TypeError(f"image must have dtype bool, uint8, uint16, float32 or float64, got {image.dtype}")
    if image.ndim not in (2, 3) or min(image.shape[:2]) < 1:
        raise ValueError(f"image must have shape (H, W) or (H, W, C), got {image.shape}")
    if image.dtype == np.bool_:
        if interpolation != "nearest":
            raise ValueError("a bool mask must use interpolation='nearest'")
        return apply_geometry(image.view(np.uint8), geometry, "nearest").astype(bool)
    if image.ndim == 3 and image.shape[2] > 4:  # OpenCV's warpAffine takes at most 4 channels
        return np.stack([apply_geometry(image[:, :, c], geometry, interpolation)
                         for c in range(image.shape[2])], axis=2)
    g = geometry
    (height, width), (crop_h, crop_w) = g.resize_hw, g.crop_hw
    out = _resize(image, (height, width), interpolation)
    if g.angle_deg == 0.0:
        out = out[g.top:g.top + crop_h, g.left:g.left + crop_w]
    else:
        centre = ((width - 1) / 2.0, (height - 1) / 2.0)  # pixel-centre convention of OpenCV
        matrix = cv2.getRotationMatrix2D(centre, g.angle_deg, 1.0)
        matrix[:, 2] -= (g.left, g.top)
        flags = cv2.INTER_LINEAR if interpolation == "linear" and not g.nearest_black else cv2.INTER_NEAREST
        border = cv2.BORDER_CONSTANT if g.nearest_black else cv2.BORDER_REFLECT_101
        out = cv2.warpAffine(out, matrix, (crop_w, crop_h), flags=flags, borderMode=border, borderValue=0)
    if g.flip:
        out = out[::-1]
    if image.ndim == 3 and out.ndim == 2:
        out = out[:, :, None]
    return np.ascontiguousarray(out)


def apply_train_transform(image: np.ndarray, config: TransformConfig | FrameConfig,
                          rng: np.random.Generator) -> tuple[np.ndarray, Geometry]:
    """The paper's random training transform of a normal image, before synthesis.

    Args:
        image: (H, W, C) uint8/uint16 image, C in {1, 3}, any size.
        config: the transform's sizes and options.
        rng: the random source (see :func:`sample_train_geometry`).

    Returns:
        The transformed image, (input_size, input_size, C') with C' = 1 when ``config.grayscale``,
        and the geometry drawn, to transform an object mask or label alike.

    Raises:
        TypeError, ValueError: if ``image`` is not in the engine's layout.
    """
    check_image("image", image)
    geometry = sample_train_geometry(rng, config)
    return apply_geometry(to_grayscale(image) if config.grayscale else image, geometry), geometry


def apply_test_transform(image: np.ndarray, config: TransformConfig | FrameConfig) -> np.ndarray:
    """The test transform: the centre crop of the resized image (paper, objects) or the resized image.

    Args:
        image: (H, W, C) uint8/uint16 image, C in {1, 3}, any size.
        config: the transform's sizes and options.

    Returns:
        (input_size, input_size, C') image (``frame_hw`` for :class:`FrameConfig`), C' = 1 when
        ``config.grayscale``.

    Raises:
        TypeError, ValueError: if ``image`` is not in the engine's layout.
    """
    check_image("image", image)
    return apply_geometry(to_grayscale(image) if config.grayscale else image, test_geometry(config))


def test_transform_of(kind: str, resize_hw: Sequence[int] | None, crop_hw: Sequence[int] | None,
                      channels: int, geometry: Mapping[str, Any] | None = None) -> TransformConfig | FrameConfig:
    """The test transform a run was trained for, from what ``run.json`` (and ``deploy.json``) record.

    Args:
        kind: the preset's kind (``object``, ``texture`` or ``xray``).
        resize_hw: (height, width) test images are resized to.
        crop_hw: (height, width) of the centre crop, or None for none (the resize).
        channels: the network's input channels (1: grayscale).
        geometry: the whole-image protocol's record (:meth:`FrameConfig.to_dict`); when given
            (not empty) it decides, and ``resize_hw`` and ``crop_hw`` must agree with it (its frame
            and None).

    Raises:
        ValueError: without ``resize_hw``, or for sizes :class:`TransformConfig` or :class:`FrameConfig` rejects.
    """
    if geometry:
        frame = FrameConfig.from_dict(dict(geometry))
        if crop_hw is not None or (resize_hw is not None and tuple(resize_hw) != frame.frame_hw):
            raise ValueError(f"a whole-image geometry (frame_hw {list(frame.frame_hw)}) needs resize_hw equal to "
                             "frame_hw and crop_hw null")
        return frame
    if resize_hw is None:
        raise ValueError("the run gives no resize_hw; cannot rebuild the test transform")
    resize = int(resize_hw[0])
    crop = int(crop_hw[0]) if crop_hw else resize
    return TransformConfig(kind=kind, resize=resize, crop=crop, pre_crop=crop,  # type: ignore[arg-type]
                           texture_resize=resize, grayscale=channels == 1)


test_transform_of.__test__ = False  # type: ignore[attr-defined]  # not a pytest test despite its name


def test_input(image: np.ndarray, config: TransformConfig | FrameConfig, channels: int) -> np.ndarray:
    """An image as the network's test input before normalisation: the test transform, then [0, 1] floats.

    The one preprocessing of the torch scorer and of the deployment runtime (``nsad.deploy``):
    :func:`apply_test_transform`, then :func:`to_unit_tensor`. The torch networks then get
    :func:`normalize_tensor`'s output; exported models normalise in their graph.

    Returns:
        (channels, input_size, input_size) float32 in [0, 1]; (channels, *frame_hw) for
        :class:`FrameConfig` (tiled runs cut it into tiles with :func:`tiled_maps`).

    Raises:
        TypeError, ValueError: as :func:`apply_test_transform` and :func:`to_unit_tensor`.
    """
    return to_unit_tensor(apply_test_transform(image, config), channels)


test_input.__test__ = False  # type: ignore[attr-defined]  # not a pytest test despite its name


def jitter_intensity(image: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    """A random global gain ``U(1 - amount, 1 + amount)`` and shift ``U(-amount, amount) / 2`` of the full range.

    Applied to a whole training example (one gain and shift for every pixel and channel), rounded
    and clipped to the image's dtype; ``amount`` 0 returns the image and draws nothing.

    Example:
        >>> image = np.full((2, 2, 1), 100, np.uint8)
        >>> jitter_intensity(image, np.random.default_rng(0), 0.0) is image
        True
    """
    if amount == 0:
        return image
    full = float(np.iinfo(image.dtype).max)
    gain = rng.uniform(1.0 - amount, 1.0 + amount)
    shift = rng.uniform(-amount, amount) / 2 * full
    return np.clip(np.rint(image.astype(np.float32) * gain + shift), 0, full).astype(image.dtype)


def to_grayscale(image: np.ndarray) -> np.ndarray:
    """Convert an RGB image to one channel (ITU-R BT.601 luma, ``cv2.COLOR_RGB2GRAY``); keep a gray one.

    Args:
        image: (H, W, C) uint8/uint16, C in {1, 3}.

    Returns:
        (H, W, 1) of the same dtype.

    Raises:
        TypeError, ValueError: if ``image`` is not in the engine's layout.
    """
    check_image("image", image)
    if image.shape[2] == 1:
        return image
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[:, :, None]


def to_unit_tensor(image: np.ndarray, channels: int | None = None) -> np.ndarray:
    """Turn an image into float32 (C, H, W) intensities in [0, 1], before normalisation.

    Intensities are divided by 255 for uint8, 65535 for uint16. This is the input of an exported
    model (``nsad export``), whose graph normalises; :func:`normalize_tensor` does the rest for
    the torch networks.

    Args:
        image: (H, W, C) uint8/uint16, C in {1, 3}, RGB order.
        channels: channels the model expects, 1 or 3; None keeps the image's. A one-channel
            image is replicated to 3 channels when 3 are expected.

    Returns:
        (channels, H, W) float32, C-contiguous.

    Raises:
        TypeError, ValueError: if ``image`` is not in the engine's layout.
        ValueError: for ``channels`` not in {1, 3} or an RGB image for a one-channel model
            (convert it with :func:`to_grayscale` first).
    """
    check_image("image", image)
    channels = image.shape[2] if channels is None else channels
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    if image.shape[2] == 3 and channels == 1:
        raise ValueError("the model takes 1 channel but the image has 3; convert it with to_grayscale first "
                         "(TransformConfig(grayscale=True) does so)")
    scale = 255.0 if image.dtype == np.uint8 else 65535.0
    x = image.astype(np.float32) * np.float32(1.0 / scale)
    if x.shape[2] != channels:
        x = np.repeat(x, channels, axis=2)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def normalize_tensor(x: np.ndarray, normalization: Normalization = "imagenet") -> np.ndarray:
    """Normalise (..., C, H, W) float32 intensities in [0, 1] for the network.

    ``imagenet`` gives ``(x - mean) / std`` per channel with ImageNet's RGB statistics
    (:data:`IMAGENET_MEAN`, :data:`IMAGENET_STD`); ``unit`` keeps ``x`` (chest X-ray, Bauer's
    autoencoder).

    Raises:
        ValueError: for an unknown ``normalization``, or ``imagenet`` without 3 channels.
    """
    check_choice("normalization", normalization, NORMALIZATIONS)
    if normalization == "unit":
        return x
    if x.ndim < 3 or x.shape[-3] != 3:
        raise ValueError("imagenet normalisation needs 3 channels (a gray image is replicated with "
                         "channels=3); use normalization='unit' for one-channel models")
    return np.ascontiguousarray((x - IMAGENET_MEAN[:, None, None]) / IMAGENET_STD[:, None, None])


def to_tensor_normalized(image: np.ndarray, normalization: Normalization = "imagenet",
                         channels: int | None = None) -> np.ndarray:
    """Turn an image into the network's input: float32 (C, H, W), normalised.

    :func:`to_unit_tensor`, then :func:`normalize_tensor`.

    Args:
        image: (H, W, C) uint8/uint16, C in {1, 3}, RGB order.
        normalization: ``imagenet`` or ``unit``.
        channels: channels the model expects, 1 or 3; None keeps the image's. A one-channel
            image is replicated to 3 channels when 3 are expected.

    Returns:
        (channels, H, W) float32, C-contiguous.

    Raises:
        TypeError, ValueError: if ``image`` is not in the engine's layout.
        ValueError: for an unknown ``normalization``, ``channels`` not in {1, 3}, an RGB image for
            a one-channel model (convert it with :func:`to_grayscale` first), or ``imagenet`` with
            one channel.
    """
    check_image("image", image)
    check_choice("normalization", normalization, NORMALIZATIONS)
    return normalize_tensor(to_unit_tensor(image, channels), normalization)


def denormalize(tensor: object, normalization: Normalization = "imagenet",
                dtype: type[np.uint8] | type[np.uint16] = np.uint8) -> np.ndarray:
    """Undo :func:`to_tensor_normalized` for display: (C, H, W) float -> (H, W, C) integer image.

    Values are clipped to the integer range, so images with synthetic anomalies or network
    outputs outside [0, 1] still display.

    Args:
        tensor: (C, H, W) array or torch tensor (moved to the CPU), C in {1, 3}.
        normalization: the normalisation it was made with.
        dtype: ``np.uint8`` or ``np.uint16``.

    Returns:
        (H, W, C) image of ``dtype``, RGB order.

    Raises:
        ValueError: for another shape, an unknown normalisation or dtype, or ``imagenet`` with one channel.
    """
    check_choice("normalization", normalization, NORMALIZATIONS)
    if hasattr(tensor, "detach"):  # a torch tensor, without importing torch
        tensor = tensor.detach().cpu().float().numpy()  # type: ignore[union-attr]
    x = np.asarray(tensor, dtype=np.float32)
    if x.ndim != 3 or x.shape[0] not in (1, 3):
        raise ValueError(f"tensor must have shape (C, H, W) with C in (1, 3), got {x.shape}")
    if np.dtype(dtype) not in (np.uint8, np.uint16):
        raise ValueError(f"dtype must be uint8 or uint16, got {np.dtype(dtype)}")
    x = x.transpose(1, 2, 0)
    if normalization == "imagenet":
        if x.shape[2] != 3:
            raise ValueError("imagenet normalisation has 3 channels; this tensor has 1")
        x = x * IMAGENET_STD + IMAGENET_MEAN
    top = float(np.iinfo(dtype).max)
    return np.clip(np.rint(x * top), 0, top).astype(dtype)


def place_in_frame(anomaly_map: np.ndarray, frame: int = PAPER_RESIZE) -> np.ndarray:
    """Put a centre-crop-sized map back into the full ``frame x frame`` image, zero outside.

    NSA paper's evaluation of object classes: the model sees the centre 224 crop of the 256
    image, and its 224 output is placed back into the 256 frame (zero outside) before the pixel
    metrics are computed on 256x256 masks. The offset is :func:`test_geometry`'s,
    ``(frame - crop) // 2``.

    Args:
        anomaly_map: (..., h, w) array with h, w <= ``frame``, e.g. (224, 224) or (N, 224, 224).
        frame: side of the full image.

    Returns:
        (..., frame, frame) array of the map's dtype.

    Raises:
        ValueError: if the map has fewer than 2 axes or is larger than the frame.
    """
    anomaly_map = np.asarray(anomaly_map)
    if anomaly_map.ndim < 2:
        raise ValueError(f"anomaly_map must have shape (..., H, W), got {anomaly_map.shape}")
    height, width = anomaly_map.shape[-2:]
    if height > frame or width > frame:
        raise ValueError(f"anomaly_map {height}x{width} does not fit in a {frame}x{frame} frame")
    top, left = (frame - height) // 2, (frame - width) // 2
    out = np.zeros(anomaly_map.shape[:-2] + (frame, frame), dtype=anomaly_map.dtype)
    out[..., top:top + height, left:left + width] = anomaly_map
    return out


def resize_map(anomaly_map: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Resize an (H, W) anomaly map to ``shape = (height, width)`` with bilinear interpolation.

    Bilinear keeps the map smooth when it is enlarged to an image's original resolution (it does
    not average when shrinking: resize masks to the map's size instead, with :func:`nsad.data.folder.read_mask`).

    Raises:
        ValueError: if the map is not 2-D or ``shape`` is not two positive ints.
    """
    anomaly_map = np.asarray(anomaly_map)
    if anomaly_map.ndim != 2:
        raise ValueError(f"anomaly_map must have shape (H, W), got {anomaly_map.shape}")
    if len(shape) != 2 or min(int(s) for s in shape) < 1:
        raise ValueError(f"shape must be (height, width) with positive values, got {tuple(shape)}")
    height, width = int(shape[0]), int(shape[1])
    if anomaly_map.shape == (height, width):
        return anomaly_map.copy()
    source = anomaly_map if anomaly_map.dtype in (np.float32, np.float64) else anomaly_map.astype(np.float32)
    return cv2.resize(source, (width, height), interpolation=cv2.INTER_LINEAR)


def describe_geometry(transform: TransformConfig | FrameConfig) -> str:
    """One line on the geometry, for the commands to print."""
    if isinstance(transform, TransformConfig):
        window = "the whole image" if transform.kind == "texture" else f"its centre {transform.crop} crop"
        return (f"geometry: the paper's protocol: square {transform.resize} x {transform.resize}, "
                f"trained on {transform.input_size}-px crops, scoring {window}")
    height, width = transform.frame_hw
    if transform.tile is not None:
        return (f"geometry: native {width} x {height} px (width x height), trained on random {transform.tile}-px "
                f"tiles, scored on tiles overlapping by {transform.tile_overlap} px, maps blended")
    return (f"geometry: aspect kept, {width} x {height} px (width x height), trained on random "
            f"{transform.crop_hw[1]} x {transform.crop_hw[0]} crops, the whole frame scored")


def training_frame_hw(config: TransformConfig | FrameConfig) -> tuple[int, int]:
    """(height, width) training images are resized to once, before their random windows are taken."""
    if isinstance(config, FrameConfig):
        return config.frame_hw
    side = config.texture_resize if config.kind == "texture" else config.resize
    return side, side


def evaluation_frame_hw(config: TransformConfig | FrameConfig) -> tuple[int, int]:
    """(height, width) of the evaluation frame: the resized image (``resize`` square, or ``frame_hw``)."""
    return config.frame_hw if isinstance(config, FrameConfig) else (config.resize, config.resize)


def test_input_hw(config: TransformConfig | FrameConfig) -> tuple[int, int]:
    """(height, width) of the network's test input: the crop, the resized texture, a tile or the frame."""
    return config.input_hw if isinstance(config, FrameConfig) else (config.input_size, config.input_size)


test_input_hw.__test__ = False  # type: ignore[attr-defined]  # not a pytest test despite its name


def frame_map(network_maps: np.ndarray, config: TransformConfig | FrameConfig) -> np.ndarray:
    """Network maps in the evaluation frame.

    The paper's objects and X-ray: (..., input_size, input_size) maps go into the (..., resize,
    resize) frame by :func:`place_in_frame` (zero outside the centre crop, as the NSA paper's
    authors evaluate). Textures: the maps as they are. The whole-image protocol
    (:class:`FrameConfig`): the maps are the frame's already (tiles stitched by :func:`stitch_tiles`).

    Raises:
        ValueError: if the maps are not of the test input's size (the frame's, for :class:`FrameConfig`).
    """
    network_maps = np.asarray(network_maps)
    whole = isinstance(config, FrameConfig)
    expected = evaluation_frame_hw(config) if whole else test_input_hw(config)
    if network_maps.ndim < 2 or network_maps.shape[-2:] != tuple(expected):
        raise ValueError(f"anomaly maps must have the test input's shape (..., {expected[0]}, {expected[1]}), "
                         f"got {network_maps.shape}")
    if whole or config.kind == "texture":
        return network_maps
    return place_in_frame(network_maps, config.resize)


def restore_map(anomaly_map: np.ndarray, config: TransformConfig | FrameConfig, shape: Sequence[int]) -> np.ndarray:
    """Map the network's test output back onto the original image: frame it, then resize it.

    Objects and X-ray: :func:`place_in_frame` into the ``resize`` frame (zero outside the centre
    crop), then :func:`resize_map` to ``shape``. Textures and :class:`FrameConfig` (a stitched map
    for tiles): :func:`resize_map` only.

    Args:
        anomaly_map: the map of the test input (of the frame, for :class:`FrameConfig`).
        config: the transform it was made with.
        shape: (height, width) of the original image.

    Raises:
        ValueError: if the map's size is not the test input's (the frame's), or as :func:`resize_map`.
    """
    anomaly_map = np.asarray(anomaly_map)
    expected = evaluation_frame_hw(config) if isinstance(config, FrameConfig) else test_input_hw(config)
    if anomaly_map.shape != tuple(expected):
        raise ValueError(f"anomaly_map must have the test input's shape {tuple(expected)}, got {anomaly_map.shape}")
    return resize_map(frame_map(anomaly_map, config), shape)


def _resize(image: np.ndarray, size_hw: tuple[int, int], interpolation: Interpolation) -> np.ndarray:
    height, width = image.shape[:2]
    if (height, width) == size_hw:
        return image
    if interpolation == "nearest":
        flag = cv2.INTER_NEAREST_EXACT
    else:
        flag = cv2.INTER_AREA if height >= size_hw[0] and width >= size_hw[1] else cv2.INTER_LINEAR
    return cv2.resize(image, (size_hw[1], size_hw[0]), interpolation=flag)
