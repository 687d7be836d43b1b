"""Training on synthetic examples made on the device: ``TrainConfig(synth_device="batch")``.

The loader workers do only the random, cheap part of NSA (NSA paper, Sec. 3): for example
``index`` of ``epoch`` they draw, from ``default_rng([seed, epoch, index])`` exactly as
:class:`~nsad.pipeline.datasets.SynthTrainingSet` does, the destination and source views (the
paper's random transforms, Sec. 4.1) and the example's :meth:`NSA.plan <nsad.synth.nsa.NSA.plan>`:
placements, shapes, resized source patches and blending masks. The batch (the raw destination
images and the packed plans, :func:`~nsad.synth.device.collate_plans`) goes to the training
device, and :class:`DeviceSynthModule`'s ``on_after_batch_transfer`` blends every patch of the
batch there, computes the labels (eqs. 13-14) and normalises the images
(:func:`~nsad.synth.device.apply_plan`). The examples equal the CPU loader's to within one
intensity level, whatever the number of workers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from nsad.config import SYNTH_DEVICES
from nsad.data.transforms import TransformConfig
from nsad.models.module import DeviceSynthModule
from nsad.models.normalize import Normalize
from nsad.pipeline.datasets import SynthTrainingSet, training_label_scale
from nsad.synth.dataset import draw_source_index, example_rng
from nsad.synth.device import apply_plan, collate_plans, pack_plan
from nsad.synth.nsa import NSA, PlannedPatch
from nsad.synth.presets import Preset

DEVICE_TASKS = ("nsa-logistic", "nsa-binary", "nsa-continuous", "cutpaste-nsa")
"""Synthetic tasks that can be made on the device (the :class:`~nsad.synth.nsa.NSA` ones)."""

__all__ = ["DEVICE_TASKS", "SYNTH_DEVICES", "DevicePlanSet", "DeviceSynth", "DeviceSynthModule", "collate_plans"]


@dataclass(frozen=True)
class DeviceSynth:
    """How a batch of plans becomes the network's input on the device: blending, labels, normalisation.

    Attributes:
        mode: ``normal`` or ``mixed`` gradients, or ``paste``.
        label: ``binary``, ``continuous`` or ``logistic`` (eqs. 13-14).
        y0, k: the logistic's midpoint and slope in 8-bit levels.
        normalization: ``imagenet`` or ``unit`` (see :func:`~nsad.data.transforms.to_tensor_normalized`).
        channels: channels the network takes, 1 or 3 (a gray image is replicated to 3).
        label_scale: factor applied to the labels (:func:`~nsad.pipeline.datasets.training_label_scale`).
        group_ratio: patches within this size ratio share a blending call (see ``apply_plan``).
    """

    mode: str
    label: str = "logistic"
    y0: float = 15.0
    k: float = 1 / 6
    normalization: str = "imagenet"
    channels: int = 3
    label_scale: float = 1.0
    group_ratio: float | None = 1.5
    _normalize: Normalize = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels!r}")
        object.__setattr__(self, "_normalize", Normalize(self.normalization, self.channels))  # checks both

    @classmethod
    def from_task(cls, task: NSA, preset: Preset, group_ratio: float | None = 1.5) -> DeviceSynth:
        """The settings of an NSA ``task`` trained with ``preset``'s normalisation and channels.

        Raises:
            TypeError: if ``task`` is not an :class:`~nsad.synth.nsa.NSA` task.
        """
        if not isinstance(task, NSA):
            raise TypeError(f"synthetic examples can be made on the device for the NSA tasks {list(DEVICE_TASKS)} "
                            f"only, got {type(task).__name__}")
        return cls(mode="paste" if task.paste else (task.mode or task.preset.mode), label=task.label,
                   y0=task.preset.y0, k=task.preset.k, normalization=preset.normalization, channels=preset.channels,
                   label_scale=training_label_scale(task.label_kind), group_ratio=group_ratio)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) uint8/uint16 -> float32 network input, as ``to_tensor_normalized`` does per image.

        Raises:
            ValueError: for a 3-channel image and a one-channel model.
        """
        if images.shape[1] == 3 and self.channels == 1:
            raise ValueError("the model takes 1 channel but the images have 3; convert them with to_grayscale "
                             "first (TransformConfig(grayscale=True) does so)")
        top = 255.0 if images.dtype == torch.uint8 else 65535.0
        x = images.to(torch.float32) * float(np.float32(1.0 / top))
        if x.shape[1] != self.channels:
            x = x.expand(-1, self.channels, -1, -1)
        return self._normalize.to(x.device)(x).contiguous()

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """Finish a batch of :class:`DevicePlanSet` on its device: ``{image, plan, ...} -> {image, label, ...}``.

        Returns:
            The batch with ``image`` (B, C, H, W) float32 normalised and ``label`` (B, 1, H, W)
            float32 (times ``label_scale``) instead of the raw images and the plans.
        """
        images, labels = apply_plan(batch["image"], batch["plan"], mode=self.mode, label=self.label, y0=self.y0,
                                    k=self.k, group_ratio=self.group_ratio)
        if self.label_scale != 1.0:
            labels = labels * np.float32(self.label_scale)
        rest = {key: value for key, value in batch.items() if key not in ("image", "plan")}
        return {**rest, "image": self.normalize(images), "label": labels[:, None]}


class DevicePlanSet(SynthTrainingSet):
    """:class:`SynthTrainingSet`'s examples as plans: ``dataset[(epoch, index)] -> {"image", "plan"}``.

    ``image`` is the transformed destination, (C, H, W) uint8/uint16 and not normalised; ``plan``
    is the example's :func:`~nsad.synth.device.pack_plan`. Batch them with :func:`collate_plans`
    and finish them on the device with :class:`DeviceSynth` (as :class:`DeviceSynthModule` does).
    The random draws are those of :meth:`SynthTrainingSet.example`, so ``DeviceSynth`` on a plan
    gives that example to within one intensity level.

    Args:
        images, transform, preset, seed, length: as for :class:`SynthTrainingSet`.
        task: an :class:`~nsad.synth.nsa.NSA` task.

    Raises:
        TypeError: if ``task`` is not an NSA task.
    """

    def __init__(self, images: Sequence[np.ndarray], task: NSA, transform: TransformConfig, preset: Preset,
                 seed: int, length: int | None = None) -> None:
        if not isinstance(task, NSA):
            raise TypeError(f"synthetic examples can be made on the device for the NSA tasks {list(DEVICE_TASKS)} "
                            f"only, got {type(task).__name__}")
        super().__init__(images, task, transform, preset, seed, length)

    def plan(self, epoch: int, index: int) -> tuple[np.ndarray, tuple[PlannedPatch, ...]]:
        """The destination view (H, W, C) and the plan of example ``index`` in ``epoch``."""
        rng = example_rng(self.seed, epoch, index)
        dest = index % len(self.images)
        source = draw_source_index(rng, dest, len(self.images))
        image, image_object = self._view(rng, dest)
        source_image, source_object = self._view(rng, source)
        return image, self.task.plan(image, source_image, rng=rng, image_object=image_object,
                                     source_object=source_object)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        image, plan = self.plan(*key)
        return {"image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
                "plan": pack_plan(plan, image.dtype)}

