"""Bauer's self-supervised autoencoder as a method of ``nsad train`` (Bauer 2022).

- **Network**: the stacked-dilated-convolution autoencoder of Bauer 2022, Table 1
  (:class:`~nsad.models.ssae.SSAENet`, widths ``base_channels`` = 32 as in the table; it is fully
  convolutional, so the layer sizes scale with the input). It takes and gives [0, 1] images: no
  ImageNet normalisation.
- **Training inputs** (Sec. 3.2): each example is a normal image after the paper's random training
  transform with a randomly shaped region ``M`` replaced by an elastically deformed copy of itself
  (:class:`~nsad.synth.elastic.ElasticPatch`), drawn from ``default_rng([seed, epoch, index])``;
  the network reconstructs the clean image.
- **Objective**: (3) by default, ``λ/|M̄| ||M̄ ⊙ (F(X̂) - X)||² - (1-λ)/||X̂-X||₁ || |X̂-X| ⊙ (F(X̂) - X) ||²``,
  or (1) (``--option objective=1``), with ``λ`` = ``lam`` (0.5, the paper's value for (1); it
  reports none for (3)). Adam at ``nsad train``'s ``lr`` (1e-3), constant (the paper names no
  optimiser; ``lr_min`` is not used).
- **Heatmap** (Sec. 3.1): channel mean of ``|F(X) - X|``, smoothed with a Gaussian of ``sigma_px``
  (4 px at the 256-px frame, scaled with the image; the paper gives no width).
- **Decision** (Sec. 4.2): an image is anomalous when the heatmap above a threshold has a connected
  component of at least ``min_area`` pixels; the threshold is the lowest that leaves every
  held-out normal (validation) image without such a component. As a score for the ROC this is the
  ``area:N`` rule (:func:`~nsad.postprocess.defect_area_scores`), the run's default, with ``N``
  = ``min_area_px`` (64 px at 256, scaled with the image's area; the paper sets it per category and
  does not publish the values), and the threshold is set at a false-positive rate of 0 on the
  held-out images: exactly Bauer's protocol.

Geometry: ``nsad train``'s, like the segmentation methods': the paper's square protocol for the
``mvtec/`` presets, else the whole image at its aspect ratio, random crops of it in training (or
``--tile``), the whole frame scored; the pixel sizes above scale with the frame's pixel count.
Not done here: the paper's progressive training (growing input sizes) and its 90° rotation / flip
augmentation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch.utils.data import Dataset

from nsad.data.transforms import TransformConfig, apply_geometry, sample_train_geometry, to_tensor_normalized
from nsad.models.runfile import LoadedRun, RunFormatError
from nsad.models.ssae import ERROR_KINDS, OBJECTIVES, SSAEModule, reconstruction_anomaly_map
from nsad.pipeline.methods._base import Method, TrainSetup, check_number, check_positive, check_text
from nsad.synth.dataset import example_rng
from nsad.synth.elastic import ALPHA_PX, ElasticPatch
from nsad.synth.presets import Preset


@dataclass(frozen=True)
class SSAEOptions:
    """Options of ``ssae`` (``--option KEY=VALUE``); pixel sizes are at the 256-px frame.

    Attributes:
        objective: 1, 2 or 3 (Bauer 2022's equations; default 3).
        lam: ``λ`` in [0, 1].
        error: ``squared`` (each term a mean squared error) or ``norm`` (eq. 1's L2 norms literally).
        base_channels: network width ``c`` (Table 1: 32).
        sigma_px: Gaussian smoothing of the heatmap.
        min_area_px: smallest defect area of the decision rule, scaled with the image's area.
        alpha_px: strength of the elastic deformation (Simard's alpha at 256 px).
        brightness: (low, high) factor on the deformed patch's intensities, or None (Sec. 3.2's option).
        weight_decay: Adam's weight decay.
    """

    objective: int = 3
    lam: float = 0.5
    error: str = "squared"
    base_channels: int = 32
    sigma_px: float = 4.0
    min_area_px: float = 64.0
    alpha_px: float = ALPHA_PX
    brightness: Sequence[float] | None = None
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.objective, bool) or self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {list(OBJECTIVES)}, got {self.objective!r}")
        check_number("lam", self.lam, 0.0, 1.0)
        check_text("error", self.error, ERROR_KINDS)
        check_positive("base_channels", self.base_channels, integer=True)
        check_number("sigma_px", self.sigma_px, 0.0, 1e3)
        check_positive("min_area_px", self.min_area_px)
        check_number("weight_decay", self.weight_decay, 0.0, 1.0)
        check_number("alpha_px", self.alpha_px, 0.0, 1e4)
        self.elastic()  # checks brightness

    def elastic(self) -> ElasticPatch:
        """The elastic-patch task with these options."""
        brightness = None if self.brightness is None else tuple(self.brightness)
        return ElasticPatch(alpha_px=self.alpha_px, brightness=brightness)

    def min_area(self, scale: float) -> int:
        """``min_area_px`` in pixels of a frame ``scale`` times the 256-px one (at least 1)."""
        return max(1, round(self.min_area_px * scale * scale))


class ElasticTrainingSet(Dataset):
    """Bauer's training examples: ``dataset[(epoch, index)] -> {"image", "target", "region", "change"}``.

    ``image`` is ``X̂`` and ``target`` ``X``, (C, h, w) in [0, 1]; ``region`` is ``M`` and
    ``change`` ``|X̂ - X|`` (channel mean), (1, h, w). Example ``index`` uses training image
    ``index mod n`` after the paper's random training transform, all drawn from
    ``default_rng([seed, epoch, index])``.

    Args:
        images: normal images resized by :func:`~nsad.pipeline.datasets.load_training_images`.
        task: the elastic-patch task.
        transform: the paper's transforms.
        channels: the network's channels.
        seed: the run's seed.
        length: examples per epoch; default one per image.
    """

    def __init__(
        self,
        images: Sequence[np.ndarray],
        task: ElasticPatch,
        transform: TransformConfig,
        channels: int,
        seed: int,
        length: int | None = None,
    ) -> None:
        if len(images) == 0:
            raise ValueError("no training images")
        self.images, self.task, self.transform, self.channels, self.seed = (
            list(images),
            task,
            transform,
            channels,
            seed,
        )
        self.length = len(self.images) if length is None else int(length)

    def __len__(self) -> int:
        return self.length

    def example(self, epoch: int, index: int) -> tuple[np.ndarray, Any]:
        """The clean view (h, w, C) and the :class:`~nsad.synth.elastic.ElasticSynth` made from it."""
        rng = example_rng(self.seed, epoch, index)
        image = apply_geometry(self.images[index % len(self.images)], sample_train_geometry(rng, self.transform))
        return image, self.task(image, image, rng=rng)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        image, synth = self.example(*key)
        return {
            "image": torch.from_numpy(to_tensor_normalized(synth.image, "unit", self.channels)),
            "target": torch.from_numpy(to_tensor_normalized(image, "unit", self.channels)),
            "region": torch.from_numpy(synth.region.astype(np.float32))[None],
            "change": torch.from_numpy(synth.label)[None],
        }


class SSAEMethod(Method):
    """``ssae``: Bauer's autoencoder (see the module docstring)."""

    model: ClassVar[str] = "ssae"
    options_type: ClassVar[type] = SSAEOptions
    task = "elastic"
    family: ClassVar[str] = "Bauer's autoencoder (Bauer 2022)"
    protocols = ("paper", "whole")

    def normalization(self, preset: Preset) -> str:
        """Always ``unit``: the autoencoder maps [0, 1] images to [0, 1] images."""
        return "unit"

    def scorer(self, run: LoadedRun, device: torch.device) -> SSAEScorer:
        """The run's scorer (:class:`SSAEScorer`)."""
        return SSAEScorer(run, device)

    def default_score_rule(self, setup: TrainSetup) -> str:
        """``area:N``: Bauer's decision rule with the minimum defect area in pixels of the network's input."""
        return f"area:{self.options(setup.options).min_area(setup.scale)}"

    def training_set(self, setup: TrainSetup) -> ElasticTrainingSet:
        """Elastic-deformation examples (see :class:`ElasticTrainingSet`)."""
        options = self.options(setup.options)
        return ElasticTrainingSet(
            setup.images,
            options.elastic(),
            setup.transform,
            setup.preset.channels,
            setup.seed,
            setup.examples_per_epoch,
        )

    def module(self, setup: TrainSetup) -> SSAEModule:
        """The autoencoder with the chosen objective, Adam at ``lr``."""
        options = self.options(setup.options)
        return SSAEModule(
            objective=options.objective,
            lam=options.lam,
            error=options.error,
            lr=setup.lr,
            weight_decay=options.weight_decay,
            sigma_px=float(options.sigma_px * setup.scale),
            in_channels=setup.preset.channels,
            base_channels=options.base_channels,
        )

    def finish(self, module: SSAEModule, setup: TrainSetup, out: Path) -> dict[str, Any]:
        """The heatmap's smoothing and the minimum area, in pixels of the network's input."""
        options = self.options(setup.options)
        return {
            "sigma_px": float(options.sigma_px * setup.scale),
            "min_area_px": options.min_area(setup.scale),
        }

    def threshold_fpr(self, target_fpr: float) -> float:
        """0: Bauer's protocol flags none of the held-out normal images."""
        return 0.0


class SSAEScorer:
    """An SSAE run as a scorer: the smoothed reconstruction error of [0, 1] images."""

    image_level = False

    def __init__(self, run: LoadedRun, device: torch.device) -> None:
        sigma = run.metadata.model_options.get("sigma_px")
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not 0 <= sigma < 1e3:
            raise RunFormatError(
                f"{str(run.folder / 'run.json')!r}: model_options needs sigma_px, a number "
                f">= 0, for an ssae run; got {sigma!r}"
            )
        self.sigma_px = float(sigma)
        self.net = run.net.eval()
        self.normalization = run.normalization  # [0, 1] images: nsad train writes mean 0 and std 1

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, None]:
        """(B, h, w) heatmaps (Bauer 2022, Sec. 3.1); no image-level score of its own."""
        return reconstruction_anomaly_map(self.net(images), images, self.sigma_px), None
