"""``nsad train``: train a model on normal images (the paper's protocol by default)."""

from __future__ import annotations

import argparse
from pathlib import Path

from nsad.pipeline.train import SEGMENTATION_METHODS, TrainConfig, train
from nsad.synth.presets import PRESET_NAMES


def add_training_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``train`` and ``compare``."""
    parser.add_argument("--category", help="category folder inside --data (also picks the preset mvtec/NAME)")
    parser.add_argument("--preset", choices=PRESET_NAMES, metavar="PRESET",
                        help=f"per-class settings: {', '.join(PRESET_NAMES)} (default: mvtec/CATEGORY if it "
                             "exists, else default)")
    parser.add_argument("--epochs", type=int, help="training epochs (default: the preset's, e.g. 320 for bottle)")
    parser.add_argument("--batch-size", type=int, default=64, help="examples per step (default: 64, the paper's)")
    parser.add_argument("--image-size", type=int, default=256,
                        help="side images are resized to; crops scale with it (default: 256, the paper's)")
    parser.add_argument("--holdout", type=float, default=0.1,
                        help="fraction of normal images held out to calibrate the threshold (default: 0.1)")
    parser.add_argument("--target-fpr", type=float, default=0.01,
                        help="false-positive rate on held-out normal images for the threshold (default: 0.01)")
    parser.add_argument("--score-rule", default="mean",
                        help="image score from the map: mean (the paper's), max or topk:F (default: mean)")
    parser.add_argument("--accelerator", default="auto", help="Lightning accelerator: auto, cpu, gpu (default: auto)")
    parser.add_argument("--devices", default="auto", help="Lightning devices: auto, N or a list like 0,1")
    parser.add_argument("--strategy", default="auto", help="Lightning strategy, e.g. ddp (default: auto)")
    parser.add_argument("--num-nodes", type=int, default=1, help="machines for multi-node ddp (default: 1)")
    parser.add_argument("--precision", help="Lightning precision, e.g. 32-true, bf16-mixed, 16-mixed "
                                            "(default: bf16-mixed on CUDA, 32-true on the CPU)")
    parser.add_argument("--workers", type=int, help="data loader processes (default: CPU cores - 1, at most 8)")
    parser.add_argument("--checkpoint-every", type=int, default=10, help="epochs between checkpoints (default: 10)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="train a model on normal images",
        description="Train the NSA paper's encoder-decoder on the normal images of --data with synthetic "
                    "anomalies of --method, and write a run folder: model.safetensors, run.json (all that "
                    "is needed to score), checkpoints/last.ckpt, logs/metrics.csv and config.json.")
    parser.add_argument("--data", required=True, type=Path,
                        help="an MVTec AD category folder, a data set root with --category, or a plain layout "
                             "(train/ with normal images, optional test/)")
    parser.add_argument("--method", default="nsa-logistic", choices=sorted(SEGMENTATION_METHODS), metavar="METHOD",
                        help=f"what the model learns: {', '.join(sorted(SEGMENTATION_METHODS))} "
                             "(default: nsa-logistic, the paper's best)")
    parser.add_argument("--out", required=True, type=Path, help="run folder to write")
    parser.add_argument("--seed", type=int, default=0, help="seed of the model and the synthetic examples")
    parser.add_argument("--resume", action="store_true", help="continue from --out's last checkpoint")
    add_training_options(parser)
    parser.set_defaults(handler=run)


def config_from_args(args: argparse.Namespace, **overrides: object) -> TrainConfig:
    devices: str | int = args.devices
    if isinstance(devices, str) and devices.isdigit():
        devices = int(devices)
    values = dict(data=args.data, out=getattr(args, "out", None), category=args.category,
                  method=getattr(args, "method", "nsa-logistic"), preset=args.preset, epochs=args.epochs,
                  seed=getattr(args, "seed", 0), batch_size=args.batch_size, image_size=args.image_size,
                  holdout=args.holdout, target_fpr=args.target_fpr, score_rule=args.score_rule,
                  accelerator=args.accelerator, devices=devices, strategy=args.strategy, num_nodes=args.num_nodes,
                  precision=args.precision, workers=args.workers, checkpoint_every=args.checkpoint_every,
                  resume=getattr(args, "resume", False), progress=not args.no_progress)
    values.update(overrides)
    return TrainConfig(**values)


def run(args: argparse.Namespace) -> int:
    train(config_from_args(args))
    return 0
