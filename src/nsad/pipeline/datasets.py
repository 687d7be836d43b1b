"""Torch datasets of the pipeline: synthetic training examples and test images.

:class:`SynthTrainingSet` is the paper's training input (NSA paper, Sec. 4.1): a normal image,
transformed at random (resize, rotation, crops), blended with patches from another transformed
training image by a synthetic task, normalised. Every example is drawn from
``default_rng([seed, epoch, index])`` (see :class:`~nsad.pipeline._sampling.EpochSampler`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from nsad.data.io import read_image
from nsad.data.transforms import (
    ENLARGED_WARNING,
    FrameConfig,
    Geometry,
    TransformConfig,
    apply_geometry,
    jitter_intensity,
    normalize_tensor,
    sample_train_geometry,
    test_input,
    to_grayscale,
    to_tensor_normalized,
    training_frame_hw,
)
from nsad.synth.dataset import draw_source_index, example_rng
from nsad.synth.objects import object_mask
from nsad.synth.presets import Preset
from nsad.synth.registry import Task

CONTINUOUS_LABEL_SCALE = 1.0 / 255.0
"""Continuous labels (8-bit levels) are trained in units of the full intensity range."""


def training_label_scale(label_kind: str) -> float:
    """The factor a task's labels are trained at: :data:`CONTINUOUS_LABEL_SCALE` for ``continuous``, else 1.

    The one place the label scale is decided, for the loaders' examples and those made on the device.

    Example:
        >>> training_label_scale("continuous") * 255, training_label_scale("bounded")
        (1.0, 1.0)
    """
    return CONTINUOUS_LABEL_SCALE if label_kind == "continuous" else 1.0


def load_training_images(paths: Sequence[Path], config: TransformConfig | FrameConfig) -> list[np.ndarray]:
    """Read the normal images once and resize them to the training frame (:func:`training_frame_hw`).

    Raises:
        ValueError: if the images do not all have the same number of channels and bit depth.
    """
    frame = training_frame_hw(config)
    side = min(frame)
    whole = Geometry(resize=frame, crop=frame, top=0, left=0)
    images, enlarged = [], []
    for path in paths:
        image = read_image(path)
        if min(image.shape[:2]) * ENLARGED_WARNING < side:
            enlarged.append(f"{path} ({image.shape[1]}x{image.shape[0]})")
        images.append(apply_geometry(to_grayscale(image) if config.grayscale else image, whole))
        if images[-1].shape != images[0].shape or images[-1].dtype != images[0].dtype:
            raise ValueError(f"training images must share channels and bit depth: {paths[0].name} is "
                             f"{images[0].shape[2]}-channel {images[0].dtype}, {path.name} is "
                             f"{images[-1].shape[2]}-channel {images[-1].dtype}")
    if enlarged:
        warnings.warn(f"{len(enlarged)} training images are enlarged more than {ENLARGED_WARNING:g}x to the "
                      f"{side}-px training frame: {', '.join(enlarged[:3])}{', ...' if len(enlarged) > 3 else ''}",
                      stacklevel=2)
    return images


class SynthTrainingSet(Dataset):
    """Synthetic training examples: ``dataset[(epoch, index)] -> {"image", "label"}`` tensors.

    Example ``index`` uses image ``index mod n`` as destination and another image, drawn at
    random, as source; both get their own random training transform. Object masks (eq. 8) are
    computed once per image and transformed with the image. The preset's ``intensity_jitter``
    changes the example's brightness and contrast last (not its label).

    Args:
        images: normal images already resized by :func:`load_training_images`.
        task: the synthetic task.
        transform: the paper's transform sizes.
        preset: the task's preset (for object masks and normalisation).
        seed: the run's seed.
        length: examples per epoch; default one per image.
    """

    def __init__(self, images: Sequence[np.ndarray], task: Task, transform: TransformConfig | FrameConfig,
                 preset: Preset, seed: int, length: int | None = None) -> None:
        if len(images) == 0:
            raise ValueError("no training images")
        self.images, self.task, self.transform, self.preset, self.seed = list(images), task, transform, preset, seed
        self.length = len(self.images) if length is None else int(length)
        self.objects = ([object_mask(image, preset.background, preset.t_brightness) for image in self.images]
                        if preset.uses_object_mask and getattr(task, "preset", None) is not None else None)
        self.label_scale = training_label_scale(task.label_kind)

    def __len__(self) -> int:
        return self.length

    def _view(self, rng: np.random.Generator, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        geometry = sample_train_geometry(rng, self.transform)
        image = apply_geometry(self.images[index], geometry)
        objects = None if self.objects is None else apply_geometry(self.objects[index], geometry, "nearest")
        return image, objects

    def example(self, epoch: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The synthetic (image, label) of ``index`` in ``epoch`` as NumPy arrays (H, W, C) and (H, W)."""
        rng = example_rng(self.seed, epoch, index)
        dest = index % len(self.images)
        source = draw_source_index(rng, dest, len(self.images))
        image, image_object = self._view(rng, dest)
        source_image, source_object = self._view(rng, source)
        synth = self.task(image, source_image, rng=rng, image_object=image_object, source_object=source_object)
        return jitter_intensity(synth.image, rng, self.preset.intensity_jitter), synth.label

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        epoch, index = key
        image, label = self.example(epoch, index)
        tensor = to_tensor_normalized(image, self.preset.normalization, self.preset.channels)
        return {"image": torch.from_numpy(tensor),
                "label": torch.from_numpy(label * np.float32(self.label_scale))[None]}


class TestImages(Dataset):
    """Images for scoring: ``dataset[i] -> {"image": tensor, "index": i}`` after the test transform.

    The preprocessing is the deployment runtime's (:func:`~nsad.data.transforms.test_input`), then
    the normalisation its exported graph holds (:func:`~nsad.data.transforms.normalize_tensor`).
    """

    __test__ = False  # not a pytest class despite its name

    def __init__(self, paths: Sequence[Path], transform: TransformConfig | FrameConfig, normalization: str,
                 channels: int) -> None:
        self.paths, self.transform, self.normalization, self.channels = list(paths), transform, normalization, channels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, object]:
        unit = test_input(read_image(self.paths[index]), self.transform, self.channels)
        tensor = normalize_tensor(unit, self.normalization)  # type: ignore[arg-type]
        return {"image": torch.from_numpy(tensor), "index": index}
