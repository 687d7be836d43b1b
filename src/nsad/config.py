"""The settings of a training run, :class:`TrainConfig`: one declaration per setting.

Each field carries its command-line help, parser and flag (:func:`nsad._options.option`), so
``nsad train`` and ``nsad compare`` are built from the class (:func:`nsad._options.add_options`)
and its docstring lists the same help: a new setting is written once, here. Importing this
module does not import torch; checking a config's method imports the method registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nsad._checks import check_choice, check_range
from nsad._options import field_docs, integer, key_values, number, option, yes_no
from nsad.data.transforms import PROTOCOLS
from nsad.postprocess import parse_score_rule
from nsad.synth.presets import PRESET_NAMES
from nsad.variants import DEFAULT_VARIANT, VARIANTS, check_variant

SYNTH_DEVICES = ("cpu", "batch")
"""Where training examples are made: ``cpu`` (in the loader workers) or ``batch`` (on the training device)."""

METHOD_HELP = ("nsa-logistic (the paper's best), nsa-binary, nsa-continuous, cutpaste-e2e, fpi, pii: the "
               "NSA paper's encoder-decoder on each synthetic task; cutpaste-binary, cutpaste-scar, "
               "cutpaste-3way: CutPaste's classifier and Gaussian density (Li et al., CVPR 2021); ssae: Bauer's "
               "autoencoder (Bauer 2022)")
"""The methods' help: :func:`nsad.pipeline.methods.method_help` of the registry, written out so that the
command line starts without importing torch (a test keeps the two equal)."""

VARIANT_HELP = ("paper: the NSA paper's text; authors: the NSA authors' published code (half-size resize clip, "
                "their object tests and label region, nearest-neighbour rotation with black fill, vertical flips of "
                "textures, their decoder, the learning rate stepped per epoch)")


def devices_value(text: str) -> str | int:
    """Lightning's ``devices``: a count as a number, anything else (``auto``, ``0,1``) as it is."""
    return int(text) if text.isdigit() else text


@dataclass(frozen=True)
class TrainConfig:
    """Everything ``nsad train`` needs; defaults are the NSA paper's protocol (Sec. 4.1).

    The network always runs channels-last: faster on this kind of CPU (see the README) and the
    layout tensor cores prefer.
    """

    data: Path = option(parse=Path, help="an MVTec AD category folder, a data set root with --category, or a "
                                         "plain layout (train/ with normal images, optional test/)")
    out: Path = option(parse=Path, shared=False, help="the run folder to write")
    category: str | None = option(None, help="category folder inside --data (also picks the preset mvtec/NAME)")
    method: str = option("nsa-logistic", metavar="METHOD", shared=False, help=METHOD_HELP)
    preset: str | None = option(
        None, choices=PRESET_NAMES, metavar="PRESET",
        help=f"per-class settings: {', '.join(PRESET_NAMES)}",
        default_text="mvtec/CATEGORY if it exists, else estimated from the training images "
                     "(nsad.synth.presets.resolve_preset): object or texture from their borders, grayscale or colour")
    epochs: int | None = option(None, parse=integer(1), help="training epochs",
                                default_text="the preset's, e.g. 320 for bottle")
    seed: int = option(0, parse=integer(0), shared=False,
                       help="seed of the model's initialisation and of every synthetic example")
    batch_size: int = option(64, parse=integer(1),
                             default_note="the paper's",
                             help="examples per optimiser step, shared out among the processes of a multi-process run")
    image_size: int = option(256, parse=integer(8),
                             default_note="the paper's",
                             help="side images are resized to; crops scale with it; the whole protocol keeps the pixel "
                                  "count image_size squared instead")
    lr: float = option(1e-3, parse=number(0.0, low_open=True),
                       default_note="the paper's",
                       help="the cosine schedule's first learning rate")
    lr_min: float = option(1e-6, parse=number(0.0),
                           default_note="the paper's",
                           help="the learning rate the cosine schedule anneals to")
    holdout: float = option(0.1, parse=number(0.0, 0.5),
                            help="fraction of normal images held out to calibrate the threshold")
    target_fpr: float = option(0.01, parse=number(0.0, 1.0),
                               help="false-positive rate on held-out normal images the threshold is set for")
    score_rule: str | None = option(
        None, help="image score: mean (the paper's), max, topk:F, toppx:N (mean of the N highest pixels), "
                   "smoothmax:S (maximum after a Gaussian blur of S px), area:N (Bauer's minimum defect area) or "
                   "density (CutPaste)",
        default_text="the method's: mean; density for CutPaste; area:N for ssae")
    accelerator: str = option("auto", help="Lightning accelerator: auto, cpu, gpu")
    devices: str | int = option("auto", parse=devices_value, help="Lightning devices: auto, N or a list like 0,1")
    strategy: str = option("auto", help="Lightning strategy, e.g. ddp")
    precision: str | None = option(None, help="Lightning precision, e.g. 32-true, bf16-mixed, 16-mixed",
                                   default_text="bf16-mixed on CUDA, 32-true on the CPU")
    num_nodes: int = option(1, parse=integer(1), help="machines for multi-node ddp")
    workers: int | None = option(None, parse=integer(0), help="data loader processes",
                                 default_text="CPU cores - 1, at most 8")
    examples_per_epoch: int | None = option(
        None, parse=integer(1), metavar="N",
        help="synthetic examples per epoch; raise it for small folders, which otherwise give one step per epoch",
        default_text="one per training image")
    intensity_jitter: float | None = option(
        None, parse=number(0.0, 0.5), metavar="J",
        help="random gain 1 +- J and shift +- J/2 of the range of every synthetic training example (not its "
             "label), so brighter or darker parts are normal; 0 for none",
        default_text="the preset's, 0")
    standardize_input: bool | None = option(
        None, parse=yes_no, metavar="yes|no",
        help="the encoder-decoder standardises each input by its own mean and standard deviation, so its maps do "
             "not follow a part's brightness",
        default_text="the preset's: yes for presets estimated from the data, no for mvtec/CLASS, the paper's")
    checkpoint_every: int = option(10, parse=integer(1), help="epochs between checkpoints")
    resume: bool = option(False, action="store_true", shared=False, help="continue from --out's last checkpoint")
    progress: bool = option(True, flag="--no-progress", action="store_false", help="hide the progress bar",
                            doc="show Lightning's progress bar")
    options: Mapping[str, Any] = option(
        default_factory=dict, flag="--option", action="append", metavar="KEY=VALUE", convert=key_values,
        help="an option of the CutPaste methods or ssae, repeatable, e.g. --option objective=1 --option "
             "stride_px=4; pixel sizes at the 256-px frame (an unknown KEY is refused with the list of the "
             "method's options, see their options classes in nsad.pipeline.methods)")
    synth_device: str = option(
        "cpu", flag="--synth-on-device", action="store_const", const="batch",
        help="NSA methods: draw each example's patches in the loader workers and blend and label the whole batch "
             "on the training device (GPU) after its transfer (default: the workers make the examples)",
        doc="where the synthetic examples are made: cpu (in the loader workers) or batch (the workers draw each "
            "example's plan, the training device blends and labels the whole batch after its transfer; NSA "
            "methods only, see nsad.pipeline.device_synth)")
    max_minutes: float | None = option(
        None, parse=number(0.0, low_open=True),
        help="time budget: after the first epoch, plan the epochs that fit in this many minutes and anneal the "
             "learning rate to its minimum over them (printed, in run.json; nsad.pipeline._budget)")
    variant: str = option(DEFAULT_VARIANT, choices=VARIANTS, help=f"NSA methods: {VARIANT_HELP}",
                          default_note="the paper's text")
    protocol: str | None = option(
        None, choices=PROTOCOLS,
        help="paper: square resize, centre crop, zero outside (the NSA paper's); whole: aspect ratio kept at the "
             "pixel count of --image-size squared, random crops, the whole frame scored; the CutPaste methods "
             "and ssae use the paper's",
        default_text="paper for the mvtec/CLASS presets, whole otherwise")
    tile: int | None = option(
        None, parse=integer(32), metavar="SIZE",
        help="train and score at the images' own resolution on SIZE x SIZE tiles (a multiple of 32, whole "
             "protocol), maps blended across the overlaps; for large images with small defects")
    tile_overlap: int | None = option(None, parse=integer(0), metavar="PX", help="pixels neighbouring tiles share",
                                      default_text="a quarter of --tile")
    train_window: int | None = option(
        None, parse=integer(32), metavar="PX",
        help="side of the square random training crops of the whole protocol (a multiple of 32; without tiles); "
             "smaller windows train faster per epoch",
        default_text="7/8 of each side of the frame")

    def __post_init__(self) -> None:
        from nsad.pipeline.methods import METHODS  # the registry (and torch), only when a config is checked

        check_choice("method", self.method, tuple(METHODS))
        check_variant(self.variant)
        method = METHODS[self.method]
        if self.variant not in method.variants:
            with_variant = [name for name, m in METHODS.items() if self.variant in m.variants]
            raise ValueError(f"variant {self.variant!r} is the NSA authors' code for {', '.join(with_variant)}; "
                             f"method {self.method!r} has only variant 'paper'")
        if self.variant == "authors" and self.synth_device == "batch":
            raise ValueError("variant 'authors' labels an object-restricted region that the on-device synthesis "
                             "does not make; drop --synth-on-device or use variant 'paper'")
        if method.option_names():
            method.options(self.options)
        elif self.options:
            with_options = [name for name, m in METHODS.items() if m.option_names()]
            raise ValueError(f"method {self.method!r} takes no options, got {sorted(self.options)}; "
                             f"options are for {', '.join(with_options)}")
        check_choice("synth_device", self.synth_device, SYNTH_DEVICES)
        if self.synth_device == "batch" and not method.device_synthesis:
            device_methods = [name for name, m in METHODS.items() if m.device_synthesis]
            raise ValueError(f"synth_device='batch' makes the examples of {', '.join(device_methods)} on the device; "
                             f"method {self.method!r} needs synth_device='cpu'")
        check_range("holdout", self.holdout, 0.0, 0.5)
        check_range("target_fpr", self.target_fpr, 0.0, 1.0)
        if self.score_rule is not None:
            parse_score_rule(self.score_rule)
        for name in ("batch_size", "checkpoint_every", "num_nodes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a whole number of at least 0, got {self.seed!r}")
        if self.epochs is not None and self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")
        if self.examples_per_epoch is not None and self.examples_per_epoch < 1:
            raise ValueError(f"examples_per_epoch must be at least 1, got {self.examples_per_epoch}")
        if self.intensity_jitter is not None:
            check_range("intensity_jitter", self.intensity_jitter, 0.0, 0.5)
            if self.intensity_jitter and self.synth_device == "batch":
                raise ValueError("intensity_jitter is applied by the loader's synthesis; drop --synth-on-device "
                                 "or set --intensity-jitter 0")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise ValueError(f"max_minutes must be positive, got {self.max_minutes}")
        if self.protocol is not None:
            check_choice("protocol", self.protocol, PROTOCOLS)
        if self.tile is not None and self.protocol == "paper":
            raise ValueError("tile needs the whole-image protocol; the paper's protocol resizes to a square")
        if self.tile_overlap is not None and self.tile is None:
            raise ValueError("tile_overlap needs tile")
        if self.train_window is not None:
            if self.protocol == "paper":
                raise ValueError("train_window is the whole protocol's; the paper's protocol crops its own windows")
            if self.tile is not None:
                raise ValueError("train_window and tile exclude each other: with tiles the training windows are the "
                                 "tiles")


TrainConfig.__doc__ = f"{TrainConfig.__doc__.rstrip()}\n\n    " + field_docs(TrainConfig).replace("\n", "\n    ") + "\n"
