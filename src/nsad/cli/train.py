"""``nsad train``: train a model on normal images (the paper's protocol by default)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nsad.cli._types import integer, number
from nsad.data.transforms import PROTOCOLS
from nsad.synth.presets import PRESET_NAMES
from nsad.variants import DEFAULT_VARIANT, VARIANTS

VARIANT_HELP = ("paper: the NSA paper's text; authors: the NSA authors' published code (half-size resize clip, "
                "their object tests and label region, nearest-neighbour rotation with black fill, vertical flips of "
                "textures, their decoder, the learning rate stepped per epoch)")

if TYPE_CHECKING:
    from nsad.pipeline.train import TrainConfig

METHOD_HELP = ("nsa-logistic (the paper's best), nsa-binary, nsa-continuous, cutpaste-e2e, fpi, pii: the "
               "NSA paper's encoder-decoder on each synthetic task; cutpaste-binary, cutpaste-scar, "
               "cutpaste-3way: CutPaste's classifier and Gaussian density (Li et al., CVPR 2021); ssae: Bauer's "
               "autoencoder (Bauer 2022)")
"""The methods' help: :func:`nsad.pipeline.methods.method_help` of the registry, written out so that the
command line starts without importing torch (a test keeps the two equal)."""


def _yes_no(text: str) -> bool:
    if text not in ("yes", "no"):
        raise argparse.ArgumentTypeError(f"give yes or no, got {text!r}")
    return text == "yes"


def parse_options(items: Sequence[str] | None) -> dict[str, Any]:
    """``["KEY=VALUE", ...]`` -> dict; values are read as JSON when they parse (1, 0.5, [0.8, 1.2], null).

    Raises:
        ValueError: for an item without ``=`` or a repeated key.
    """
    options: dict[str, Any] = {}
    for item in items or ():
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--option takes KEY=VALUE, got {item!r}")
        if key in options:
            raise ValueError(f"--option {key} is given twice")
        try:
            options[key] = json.loads(text)
        except json.JSONDecodeError:
            options[key] = text
    return options


def add_training_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``train`` and ``compare``."""
    parser.add_argument("--variant", choices=VARIANTS, default=DEFAULT_VARIANT,
                        help=f"NSA methods: {VARIANT_HELP} (default: {DEFAULT_VARIANT})")
    parser.add_argument("--category", help="category folder inside --data (also picks the preset mvtec/NAME)")
    parser.add_argument("--preset", choices=PRESET_NAMES, metavar="PRESET",
                        help=f"per-class settings: {', '.join(PRESET_NAMES)} (default: mvtec/CATEGORY if it "
                             "exists, else estimated from the training images: object or texture from their "
                             "borders, grayscale or colour)")
    parser.add_argument("--protocol", choices=PROTOCOLS,
                        help="paper: square resize, centre crop, zero outside (the NSA paper's); whole: aspect "
                             "ratio kept at the pixel count of --image-size squared, random crops, the whole frame "
                             "scored (default: paper for the mvtec/CLASS presets, whole otherwise)")
    parser.add_argument("--tile", type=integer(32), metavar="SIZE",
                        help="train and score at the images' own resolution on SIZE x SIZE tiles (a multiple of "
                             "32), maps blended across the overlaps; for large images with small defects")
    parser.add_argument("--tile-overlap", type=integer(0), metavar="PX",
                        help="pixels neighbouring tiles share (default: a quarter of --tile)")
    parser.add_argument("--examples-per-epoch", type=integer(1), metavar="N",
                        help="synthetic examples per epoch (default: one per training image); raise it for small "
                             "folders, which otherwise give one step per epoch")
    parser.add_argument("--intensity-jitter", type=float, metavar="J",
                        help="random gain 1 +- J and shift +- J/2 of the range of every synthetic training example, "
                             "so brighter or darker parts are normal; 0 for none (default: the preset's, 0)")
    parser.add_argument("--standardize-input", type=_yes_no, metavar="yes|no",
                        help="the encoder-decoder standardises each input by its own mean and standard deviation, "
                             "so its maps do not follow a part's brightness (default: the preset's: yes for presets "
                             "estimated from the data, no for mvtec/CLASS, the paper's)")
    parser.add_argument("--epochs", type=integer(1),
                        help="training epochs (default: the preset's, e.g. 320 for bottle)")
    parser.add_argument("--batch-size", type=integer(1), default=64,
                        help="examples per optimiser step, shared out among the processes of a multi-process run "
                             "(default: 64, the paper's)")
    parser.add_argument("--image-size", type=integer(8), default=256,
                        help="side images are resized to; crops scale with it (default: 256, the paper's)")
    parser.add_argument("--holdout", type=number(0.0, 0.5), default=0.1,
                        help="fraction of normal images held out to calibrate the threshold (default: 0.1)")
    parser.add_argument("--target-fpr", type=number(0.0, 1.0), default=0.01,
                        help="false-positive rate on held-out normal images for the threshold (default: 0.01)")
    parser.add_argument("--score-rule",
                        help="image score: mean (the paper's), max, topk:F, toppx:N (mean of the N highest pixels), "
                             "smoothmax:S (maximum after a Gaussian blur of S px), area:N (Bauer's minimum defect "
                             "area) or density (CutPaste) (default: the method's: mean; density for CutPaste; "
                             "area:N for ssae)")
    parser.add_argument("--option", action="append", metavar="KEY=VALUE",
                        help="an option of the CutPaste methods or ssae, repeatable, e.g. --option "
                             "objective=1 --option stride_px=4; pixel sizes at the 256-px frame (an unknown "
                             "KEY is refused with the list of the method's options)")
    parser.add_argument("--accelerator", default="auto", help="Lightning accelerator: auto, cpu, gpu (default: auto)")
    parser.add_argument("--devices", default="auto", help="Lightning devices: auto, N or a list like 0,1")
    parser.add_argument("--strategy", default="auto", help="Lightning strategy, e.g. ddp (default: auto)")
    parser.add_argument("--num-nodes", type=integer(1), default=1, help="machines for multi-node ddp (default: 1)")
    parser.add_argument("--precision", help="Lightning precision, e.g. 32-true, bf16-mixed, 16-mixed "
                                            "(default: bf16-mixed on CUDA, 32-true on the CPU)")
    parser.add_argument("--workers", type=integer(0), help="data loader processes (default: CPU cores - 1, at most 8)")
    parser.add_argument("--checkpoint-every", type=integer(1), default=10,
                        help="epochs between checkpoints (default: 10)")
    parser.add_argument("--max-minutes", type=number(0.0, low_open=True),
                        help="time budget: after the first epoch, plan the epochs that fit in this many minutes "
                             "and anneal the learning rate to its minimum over them (printed, in run.json)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--synth-on-device", action="store_true",
                        help="NSA methods: draw each example's patches in the loader workers and blend and label "
                             "the whole batch on the training device (GPU) after its transfer (default: the "
                             "workers make the examples)")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="train a model on normal images",
        description="Train a model of --method on the normal images of --data (the NSA paper's "
                    "encoder-decoder on synthetic anomalies by default) and write a run folder: "
                    "model.safetensors, run.json (all that is needed to score; CutPaste runs add "
                    "density.safetensors), checkpoints/last.ckpt, logs/metrics.csv and config.json.")
    parser.add_argument("--data", required=True, type=Path,
                        help="an MVTec AD category folder, a data set root with --category, or a plain layout "
                             "(train/ with normal images, optional test/)")
    parser.add_argument("--method", default="nsa-logistic", metavar="METHOD",
                        help=f"{METHOD_HELP} (default: nsa-logistic)")
    parser.add_argument("--out", required=True, type=Path, help="run folder to write")
    parser.add_argument("--seed", type=integer(0), default=0, help="seed of the model and the synthetic examples")
    parser.add_argument("--resume", action="store_true", help="continue from --out's last checkpoint")
    add_training_options(parser)
    parser.set_defaults(handler=run)


def config_from_args(args: argparse.Namespace, **overrides: object) -> TrainConfig:
    from nsad.pipeline.train import TrainConfig

    devices: str | int = args.devices
    if isinstance(devices, str) and devices.isdigit():
        devices = int(devices)
    values = dict(data=args.data, out=getattr(args, "out", None), category=args.category,
                  method=getattr(args, "method", "nsa-logistic"), preset=args.preset, epochs=args.epochs,
                  seed=getattr(args, "seed", 0), batch_size=args.batch_size, image_size=args.image_size,
                  holdout=args.holdout, target_fpr=args.target_fpr, score_rule=args.score_rule,
                  accelerator=args.accelerator, devices=devices, strategy=args.strategy, num_nodes=args.num_nodes,
                  precision=args.precision, workers=args.workers, checkpoint_every=args.checkpoint_every,
                  max_minutes=args.max_minutes, protocol=args.protocol, tile=args.tile,
                  tile_overlap=args.tile_overlap, examples_per_epoch=args.examples_per_epoch,
                  intensity_jitter=getattr(args, "intensity_jitter", None),
                  standardize_input=getattr(args, "standardize_input", None),
                  resume=getattr(args, "resume", False), progress=not args.no_progress,
                  options=parse_options(getattr(args, "option", None)),
                  synth_device="batch" if getattr(args, "synth_on_device", False) else "cpu",
                  variant=args.variant)
    values.update(overrides)
    return TrainConfig(**values)


DESTINATIONS = {"options": "option", "synth_device": "synth_on_device"}
"""``TrainConfig`` field -> ``argparse`` destination where they differ."""


def with_run_settings(config: TrainConfig, given: set[str]) -> TrainConfig:
    """For ``--resume``: the run's own settings (its ``config.json``) where the command line does not give one.

    Settings that are given are kept, so that :func:`nsad.pipeline.train.train` refuses those that
    differ from the run's; settings of how to train (devices, workers...) keep this call's values.
    """
    from nsad.pipeline._runfolder import CONFIG_FILE, RUNTIME_SETTINGS
    from nsad.pipeline.train import TrainConfig

    try:
        saved = json.loads((Path(config.out) / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return config  # train() says what is wrong with the folder
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    # the preset is resolved again from the data (config.json holds the resolved name, which may be an
    # estimated one that is no --preset value); a --preset given is compared with it by train()
    taken = {name: saved[name] for name in fields - (RUNTIME_SETTINGS - {"epochs"}) - {"preset"}
             if name in saved and DESTINATIONS.get(name, name) not in given}
    return dataclasses.replace(config, **taken)


def run(args: argparse.Namespace) -> int:
    from nsad.pipeline.train import train

    config = config_from_args(args)
    if config.resume:
        config = with_run_settings(config, getattr(args, "given", set()))
    train(config)
    return 0
