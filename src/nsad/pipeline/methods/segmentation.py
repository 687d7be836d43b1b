"""The segmentation methods: the NSA paper's encoder-decoder trained on one synthetic task each.

- ``nsa-logistic``, ``nsa-binary``, ``nsa-continuous``: NSA with its three labels (NSA paper,
  Sec. 3.3, eqs. 13-14), with the ``authors`` variant (:mod:`nsad.variants`);
- ``cutpaste-e2e``: CutPaste's patches blended by NSA's machinery and learned end to end
  (a baseline of the NSA paper);
- ``fpi``, ``pii``: Foreign Patch Interpolation (Tan et al. 2020) and Poisson Image Interpolation
  (Tan et al. 2021).

All share one network (:class:`~nsad.models.NSAModule`), one run kind (``anomaly-net``) and one
scorer (:class:`SegmentationModel`: the map is the output, the image score a rule on it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import lightning as L
import torch
from torch.utils.data import Dataset

from nsad.models import NSAModule
from nsad.models.runfile import LoadedRun
from nsad.pipeline.datasets import SynthTrainingSet
from nsad.pipeline.device_synth import DEVICE_TASKS, DevicePlanSet, DeviceSynth, DeviceSynthModule
from nsad.pipeline.methods._base import Method, TrainSetup
from nsad.synth.registry import Task, get_task
from nsad.variants import DEFAULT_VARIANT, VARIANTS


@dataclass(frozen=True)
class NoOptions:
    """The segmentation methods take no ``--option``: their settings are the preset's and ``nsad train``'s."""


class SegmentationModel:
    """The NSA paper's encoder-decoder: its output is the map (no image-level score of its own)."""

    image_level = False

    def __init__(self, run: LoadedRun) -> None:
        self.net = run.net.eval()
        self.normalization = run.normalization

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, None]:
        """AnomalyNet's (B, H, W) maps; no image scores."""
        return self.net.anomaly_map(images), None


class SegmentationMethod(Method):
    """A segmentation method: its synthetic task (``task``) and the encoder-decoder that learns it.

    Args:
        name: the method's name.
        task: the synthetic task it trains on (a name of :func:`nsad.synth.registry.get_task`).
        variants: the variants it has (``authors`` for the tasks of NSA's code).
        help: the method's note in the command line's help, if any.
    """

    model: ClassVar[str] = "anomaly-net"
    options_type: ClassVar[type] = NoOptions
    family: ClassVar[str] = "the NSA paper's encoder-decoder on each synthetic task"
    protocols = ("paper", "whole")

    def __init__(self, name: str, task: str, variants: tuple[str, ...] = (DEFAULT_VARIANT,), help: str = "") -> None:
        super().__init__(name)
        self.task = task
        self.variants = variants
        self.help = help
        self.device_synthesis = task in DEVICE_TASKS

    def scorer(self, run: LoadedRun, device: torch.device) -> SegmentationModel:
        """The network's map."""
        return SegmentationModel(run)

    def default_score_rule(self, setup: TrainSetup) -> str:
        """``mean``: the map's mean, the NSA paper's image score."""
        return "mean"

    def synthetic_task(self, setup: TrainSetup) -> Task:
        """The task at the run's preset (and variant, for the methods that have several)."""
        variant = {"variant": setup.variant} if len(self.variants) > 1 else {}
        return get_task(self.task, setup.preset, **variant)

    def training_set(self, setup: TrainSetup) -> Dataset:
        """Synthetic examples, made in the loader or, with ``synth_device="batch"``, planned there for the device."""
        dataset_type = DevicePlanSet if setup.synth_device == "batch" else SynthTrainingSet
        return dataset_type(setup.images, self.synthetic_task(setup), setup.transform, setup.preset, setup.seed,
                            setup.examples_per_epoch)

    def module(self, setup: TrainSetup) -> L.LightningModule:
        """The encoder-decoder: the paper's (per-step cosine), or the authors' decoder and per-epoch schedule."""
        task = self.synthetic_task(setup)
        authors = setup.variant == "authors"
        module_type = DeviceSynthModule if setup.synth_device == "batch" else NSAModule
        module = module_type(in_channels=setup.preset.channels, label_kind=task.label_kind, lr=setup.lr,
                             lr_min=setup.lr_min, channels_last=True, lr_interval="epoch" if authors else "step",
                             max_epochs=setup.epochs if authors else None, decoder="authors" if authors else "nsad",
                             standardize_input=setup.preset.standardize_input)
        if setup.synth_device == "batch":
            module.device_synth = DeviceSynth.from_task(task, setup.preset)
        return module

    def normalization(self, preset: Any) -> str:
        """The preset's normalisation (``imagenet`` or ``unit``)."""
        return preset.normalization

    def finish(self, module: L.LightningModule, setup: TrainSetup, out: Any) -> dict[str, Any]:
        """Nothing after training: the network is the whole model."""
        return {}


NSA_VARIANTS = tuple(VARIANTS)
SEGMENTATION_ENTRIES: tuple[SegmentationMethod, ...] = (
    SegmentationMethod("nsa-logistic", "nsa-logistic", NSA_VARIANTS, help="the paper's best"),
    SegmentationMethod("nsa-binary", "nsa-binary", NSA_VARIANTS),
    SegmentationMethod("nsa-continuous", "nsa-continuous", NSA_VARIANTS),
    SegmentationMethod("cutpaste-e2e", "cutpaste-nsa", NSA_VARIANTS),
    SegmentationMethod("fpi", "fpi"),
    SegmentationMethod("pii", "pii"),
)
"""The segmentation methods, in the order the command line lists them."""
