"""``nsad synth``: write synthetic anomalous examples, their labels and a gallery to a folder."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from nsad._checks import check_new_folder
from nsad._options import integer
from nsad.data.folder import find_dataset
from nsad.data.io import normal_image_paths, read_image, write_image
from nsad.data.transforms import ENLARGED_WARNING, Geometry, apply_geometry
from nsad.synth import TASKS, SynthDataset, Task, get_task
from nsad.synth._blend import BLEND_BACKENDS
from nsad.synth.presets import PRESET_NAMES, resolve_preset
from nsad.variants import DEFAULT_VARIANT, VARIANTS
from nsad.viz import grid, overlay, to_display

GALLERY_ROWS = 8
NSA_TASKS = ("nsa-logistic", "nsa-binary", "nsa-continuous", "cutpaste-nsa")
"""Tasks made by :class:`nsad.synth.NSA`, the ones with an ``authors`` variant."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "synth", help="write synthetic anomalies made from normal images",
        description="Make COUNT synthetic anomalous examples from the normal images of --data and write, per "
                    "example, NNNN_image.png and NNNN_label.png (bounded labels as 8-bit 0-255; continuous "
                    "labels as 16-bit, 257 per 8-bit intensity level), plus examples.jsonl with what was done "
                    "and gallery.png (normal image, synthetic image, label scaled to its maximum, overlay) to judge "
                    "them by eye.")
    parser.add_argument("--data", required=True, type=Path,
                        help="an MVTec AD category folder (its train/good is used) or a folder of images")
    parser.add_argument("--task", default="nsa-logistic", choices=sorted(TASKS), metavar="TASK",
                        help=f"synthetic task: {', '.join(sorted(TASKS))} (default: nsa-logistic)")
    parser.add_argument("--preset", metavar="PRESET",
                        help=f"per-class settings: {', '.join(PRESET_NAMES)} (default: as nsad train chooses: "
                             "mvtec/CATEGORY for an MVTec AD class folder, else estimated from the images)")
    parser.add_argument("--count", type=integer(1), default=64, help="number of examples (default: 64)")
    parser.add_argument("--seed", type=integer(0), default=0, help="random seed; example i uses (seed, 0, i)")
    parser.add_argument("--out", required=True, type=Path, help="output folder (created; must be empty)")
    parser.add_argument("--backend", choices=sorted(BLEND_BACKENDS), default=None,
                        help="Poisson blending backend (default: the library's default)")
    parser.add_argument("--ellipses", type=integer(0), default=0,
                        help="NSA/FPI/PII: shape patches as a union of this many random ellipses (default: 0, "
                             "rectangles)")
    parser.add_argument("--variant", choices=VARIANTS, default=DEFAULT_VARIANT,
                        help="NSA tasks: paper (the paper's text) or authors (the NSA authors' code: half-size resize "
                             f"clip, their object tests and label region) (default: {DEFAULT_VARIANT})")
    parser.set_defaults(handler=run)


def label_to_png(label: np.ndarray, label_kind: str) -> np.ndarray:
    """Bounded labels as uint8 (255 = 1); continuous labels as uint16 (257 per 8-bit level)."""
    if label_kind == "continuous":
        return np.clip(np.rint(label * 257.0), 0, 65535).astype(np.uint16)
    return np.clip(np.rint(label * 255.0), 0, 255).astype(np.uint8)


def _describe(image: np.ndarray) -> str:
    return f"{image.shape[1]}x{image.shape[0]} px, {image.shape[2]}-channel {image.dtype}"


def data_category(data: Path) -> str | None:
    """The category ``nsad train`` would see for ``data`` (a category folder's name), or None for a plain folder."""
    try:
        return find_dataset(data, require_test=False).category
    except (FileNotFoundError, ValueError):
        return None


def run(args: argparse.Namespace) -> int:
    check_new_folder(args.out, "synth")
    paths = normal_image_paths(args.data)
    images = [read_image(path) for path in paths]
    sizes = {image.shape[:2] for image in images}
    if len(sizes) > 1:  # a synthetic example needs two images of one size: bring them to the median one
        typical = tuple(int(v) for v in np.median(np.array([image.shape[:2] for image in images]), axis=0))
        largest = paths[int(np.argmax([min(image.shape[:2]) for image in images]))]
        for path, image in zip(paths, images, strict=True):
            if min(image.shape[0] / typical[0], image.shape[1] / typical[1]) * ENLARGED_WARNING < 1:
                raise ValueError(f"{path} is {_describe(image)}, more than {ENLARGED_WARNING:g}x smaller than the "
                                 f"typical {typical[1]}x{typical[0]} px of the folder (e.g. {largest}); synthesis "
                                 "brings the images to one size: remove or replace it")
        images = [apply_geometry(image, Geometry(typical, typical, 0, 0)) for image in images]
        print(f"nsad synth: the images have {len(sizes)} sizes; resized to {typical[1]} x {typical[0]} "
              "(width x height)", file=sys.stderr)
    options = {"backend": args.backend} if args.backend else {}
    if args.ellipses:
        options["ellipses"] = args.ellipses
    if args.variant != DEFAULT_VARIANT:
        if args.task not in NSA_TASKS:
            raise ValueError(f"--variant {args.variant} is the NSA authors' code for the tasks {', '.join(NSA_TASKS)}; "
                             f"task {args.task!r} has only variant {DEFAULT_VARIANT!r}")
        options["variant"] = args.variant
    choice = resolve_preset(args.preset, data_category(args.data), paths)
    for line in choice.lines("synth"):
        print(line, file=sys.stderr)
    task = get_task(args.task, choice.preset, **options)
    dataset = SynthDataset(images, task, seed=args.seed, length=args.count)
    dataset.example(0)  # fail on bad settings (e.g. images too small) before creating anything
    args.out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{args.out.name}.", suffix=".new", dir=args.out.parent))
    try:
        write_examples(staging, dataset, task, paths, images, args)
        os.replace(staging, args.out)  # complete or absent; an empty --out is replaced
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"wrote {args.count} {args.task} examples from {len(paths)} images to {args.out} "
          f"(gallery: {args.out / 'gallery.png'})")
    return 0


def write_examples(out: Path, dataset: SynthDataset, task: Task, paths: list[Path], images: list[np.ndarray],
                   args: argparse.Namespace) -> None:
    """Write ``args.count`` examples, their labels, ``examples.jsonl`` and ``gallery.png`` into ``out``."""
    gallery_rows = []
    with open(out / "examples.jsonl", "w") as lines:
        for index in range(args.count):
            synth, dest, source = dataset.example(index)
            image_name, label_name = f"{index:04d}_image.png", f"{index:04d}_label.png"
            write_image(out / image_name, synth.image)
            write_image(out / label_name, label_to_png(synth.label, task.label_kind))
            record = {"index": index, "image": image_name, "label": label_name, "destination": paths[dest].name,
                      "source": paths[source].name, "patches": [p.as_dict() for p in synth.patches]}
            lines.write(json.dumps(record) + "\n")
            if len(gallery_rows) < GALLERY_ROWS:
                vmax = max(float(synth.label.max()), 1e-6)  # each label scaled to its own maximum
                gallery_rows.append([to_display(images[dest]), to_display(synth.image),
                                     overlay(np.zeros_like(synth.image), synth.label, vmax=vmax, opacity=1.0),
                                     overlay(synth.image, synth.label, vmax=vmax)])
    titles = ("normal", "synthetic", "label (to its max)", "overlay")
    write_image(out / "gallery.png", grid(gallery_rows, titles=titles))
