"""Synthetic examples from a list of normal images, reproducible from (seed, epoch, index).

Each example has its own generator, ``numpy.random.default_rng([seed, epoch, index])``, so the
examples do not depend on the number of loader workers or the order they are asked for in.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nsad.synth._types import Synth
from nsad.synth.objects import object_mask
from nsad.synth.registry import Task


def example_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of example ``index`` of ``epoch``: the one place where (seed, epoch, index) becomes randomness.

    Every training set of nsad draws each example from it, so an example does not depend on the
    number of loader workers or on the order examples are asked for in.
    """
    return np.random.default_rng([seed, epoch, index])


def draw_source_index(rng: np.random.Generator, index: int, count: int) -> int:
    """Draw the source image of an example: another of the ``count`` images than ``index``, uniformly.

    With a single image the image is its own source.
    """
    if count == 1:
        return index
    other = int(rng.integers(count - 1))
    return other + (other >= index)


class SynthDataset:
    """Example ``i`` blends patches from another image, drawn at random, into image ``i mod n``.

    Object masks (eq. 8) are computed once per image and cached, when the task uses them.

    Args:
        images: the normal images, (H, W, C) uint8/uint16 arrays of one shape.
        task: the synthetic task, e.g. ``get_task("nsa-logistic", "mvtec/bottle")``.
        seed: the run's seed.
        length: number of examples per epoch; defaults to the number of images.

    Raises:
        ValueError: if ``images`` is empty or the images differ in shape or dtype.
    """

    def __init__(self, images: Sequence[np.ndarray], task: Task, seed: int = 0, length: int | None = None):
        if len(images) == 0:
            raise ValueError("SynthDataset needs at least one image, got none")
        first = images[0]
        for index, image in enumerate(images):
            if image.shape != first.shape or image.dtype != first.dtype:
                raise ValueError(f"images must share shape and dtype: image 0 is {first.shape} {first.dtype}, "
                                 f"image {index} is {image.shape} {image.dtype}")
        self.images = list(images)
        self.task = task
        self.seed = int(seed)
        self.length = len(self.images) if length is None else int(length)
        self.epoch = 0
        self._objects: dict[int, np.ndarray | None] = {}

    def __len__(self) -> int:
        return self.length

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose examples ``__getitem__`` returns."""
        self.epoch = int(epoch)

    def _object(self, index: int) -> np.ndarray | None:
        preset = getattr(self.task, "preset", None)
        if preset is None or not preset.uses_object_mask:
            return None
        if index not in self._objects:
            self._objects[index] = object_mask(self.images[index], preset.background, preset.t_brightness)
        return self._objects[index]

    def example(self, index: int) -> tuple[Synth, int, int]:
        """Example ``index`` of the current epoch with its destination and source image indices.

        Raises:
            IndexError: if ``index`` is outside ``[0, len(self))``.
        """
        if not 0 <= index < self.length:
            raise IndexError(f"example index {index} out of range for {self.length} examples")
        rng = example_rng(self.seed, self.epoch, index)
        dest = index % len(self.images)
        source = draw_source_index(rng, dest, len(self.images))
        synth = self.task(self.images[dest], self.images[source], rng=rng,
                          image_object=self._object(dest), source_object=self._object(source))
        return synth, dest, source

    def __getitem__(self, index: int) -> Synth:
        return self.example(index)[0]
