"""What every method gives ``nsad train``: data, module, scorer, scoring options, threshold.

``nsad train`` does the common work for every method (data discovery, the held-out split, the
Lightning loop, checkpoints, the run folder) and asks a :class:`Method` for the parts that differ;
scoring finds the method's scorer by its run kind (:attr:`Method.model`), export its graph
(:data:`nsad.pipeline.export.GRAPHS`).
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import numpy as np
from torch.utils.data import Dataset

from nsad._checks import check_choice, check_range
from nsad.data.transforms import PAPER_RESIZE, FrameConfig, TransformConfig
from nsad.synth.presets import Preset
from nsad.variants import DEFAULT_VARIANT


@dataclass(frozen=True, eq=False)
class TrainSetup:
    """What ``nsad train`` hands a method: the data, the transforms and the shared settings.

    Attributes:
        method: the method's name, e.g. ``cutpaste-3way``.
        options: the method's options as given (``--option KEY=VALUE``), not yet checked.
        preset: the per-class preset (kind, channels, normalisation, rotation).
        transform: the paper's transforms at the run's image size.
        images: the normal training images, resized by :func:`~nsad.pipeline.datasets.load_training_images`.
        train_paths: their files (for steps that read the images again, e.g. CutPaste's density fit).
        seed: the run's seed.
        batch_size: examples per optimiser step.
        lr, lr_min: ``nsad train``'s learning-rate settings (a method may use its own, see its options).
        examples_per_epoch: training items per epoch; None for one per training image.
        variant: ``paper`` or ``authors`` (:mod:`nsad.variants`; the NSA methods only).
        synth_device: ``cpu`` or ``batch`` (synthesis on the training device; NSA methods only).
        epochs: the run's planned epochs (the authors' per-epoch schedule spans them).
    """

    method: str
    options: Mapping[str, Any]
    preset: Preset
    transform: TransformConfig | FrameConfig
    images: Sequence[np.ndarray]
    train_paths: Sequence[Path]
    seed: int
    batch_size: int
    lr: float = 1e-3
    lr_min: float = 1e-6
    examples_per_epoch: int | None = None
    variant: str = DEFAULT_VARIANT
    synth_device: str = "cpu"
    epochs: int | None = None

    @property
    def scale(self) -> float:
        """Factor from pixel sizes at the paper's 256-px frame to this run's frame (``resize / 256``)."""
        return self.transform.resize / PAPER_RESIZE

    @property
    def length(self) -> int:
        """Training items per epoch."""
        return len(self.images) if self.examples_per_epoch is None else int(self.examples_per_epoch)


def build_options(cls: type, options: Mapping[str, Any], method: str) -> Any:
    """Build the frozen options dataclass ``cls`` from ``options``, rejecting unknown keys.

    Raises:
        ValueError: for a key that is not a field of ``cls`` (the message lists the accepted
            ones and suggests the closest), or a value the dataclass rejects.
    """
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(options) - set(names))
    if unknown:
        close = difflib.get_close_matches(unknown[0], names, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"method {method!r} has no option {unknown[0]!r}; its options are {names}.{hint}")
    return cls(**dict(options))


def check_positive(name: str, value: Any, integer: bool = False) -> None:
    """Reject a value that is not a positive number (a positive int with ``integer``).

    Raises:
        ValueError: naming the option and the value.
    """
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if isinstance(value, bool) or not isinstance(value, kinds) or not value > 0:
        raise ValueError(f"{name} must be a positive {'whole number' if integer else 'number'}, got {value!r}")


def check_number(name: str, value: Any, low: float, high: float) -> None:
    """Reject a value that is not a real number in ``[low, high]`` (``--option`` values may be any JSON).

    Raises:
        ValueError: naming the option, the value and the range.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number in [{low}, {high}], got {value!r}")
    check_range(name, value, low, high)


def check_text(name: str, value: Any, choices: Sequence[str]) -> None:
    """Reject a value that is not one of the strings ``choices`` (the message lists them).

    Raises:
        ValueError: naming the option and the value.
    """
    if not isinstance(value, str):
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    check_choice(name, value, choices)


class Method:
    """A method of ``nsad train``: its parts of training, and how its runs are scored.

    Subclasses set :attr:`model` (the run's model kind), :attr:`options_type`, :attr:`task` and
    :attr:`family`, and implement the methods below.
    """

    model: ClassVar[str]
    options_type: ClassVar[type]
    task: str
    """The synthetic examples it trains on, for the run's record."""
    family: ClassVar[str]
    """What the methods of this kind are, for the command line's help."""
    variants: tuple[str, ...] = (DEFAULT_VARIANT,)
    """The variants it has (:mod:`nsad.variants`)."""
    protocols: tuple[str, ...] = ("paper",)
    """The geometries it trains with (:data:`nsad.data.transforms.PROTOCOLS`): the paper's, or also ``whole``."""
    device_synthesis: bool = False
    """Whether its examples can be made on the training device (``synth_device="batch"``)."""
    help: str = ""
    """A note on this method in the command line's help."""

    def __init__(self, name: str) -> None:
        self.name = name

    def options(self, options: Mapping[str, Any]) -> Any:
        """The checked options (see :func:`build_options`)."""
        return build_options(self.options_type, options, self.name)

    def option_names(self) -> list[str]:
        """Names of the options this method accepts."""
        return [f.name for f in dataclasses.fields(self.options_type)]

    def scorer(self, run: Any, device: Any) -> Any:
        """A loaded run of this method as a map model for :class:`~nsad.pipeline.scoring.Scorer`."""
        raise NotImplementedError

    def normalization(self, preset: Preset) -> str:
        """How images are normalised for the network: ``imagenet`` or ``unit``."""
        return "unit" if preset.normalization == "unit" else "imagenet"

    def default_score_rule(self, setup: TrainSetup) -> str:
        """The image score rule a run of this method uses unless told otherwise."""
        raise NotImplementedError

    def training_set(self, setup: TrainSetup) -> Dataset:
        """Training examples ``dataset[(epoch, index)]``, each from ``default_rng([seed, epoch, index])``."""
        raise NotImplementedError

    def loader_batch_size(self, setup: TrainSetup) -> int:
        """Dataset items per step (an item may hold several examples)."""
        return setup.batch_size

    def module(self, setup: TrainSetup) -> L.LightningModule:
        """A fresh Lightning module with a ``net`` attribute (the network the run saves)."""
        raise NotImplementedError

    def finish(self, module: L.LightningModule, setup: TrainSetup, out: Path) -> dict[str, Any]:
        """Work after training (e.g. fit a density, write its file into ``out``); return ``model_options``."""
        raise NotImplementedError

    def threshold_fpr(self, target_fpr: float) -> float:
        """The false-positive rate on held-out normal images the decision threshold is set for."""
        return target_fpr
