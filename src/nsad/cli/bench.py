"""``nsad bench synth``: examples and patches per second of the synthetic tasks."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import cv2
import numpy as np
from threadpoolctl import threadpool_limits

from nsad.data.io import normal_image_paths, read_image
from nsad.synth import TASKS, SynthDataset, get_preset, get_task
from nsad.synth._blend import BLEND_BACKENDS


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="measure speed", description="Measure the speed of a part of nsad.")
    inner = parser.add_subparsers(dest="what", metavar="WHAT", required=True)
    synth = inner.add_parser(
        "synth", help="examples per second of synthetic tasks",
        description="Make examples of each --task on the images of --data (one process) and print one "
                    "JSON line per task and backend: examples/s, patches/s, median and 90th-percentile seconds "
                    "per example and per patch, the ratio against the opencv backend measured in the same run, "
                    "the threads and the load average.")
    synth.add_argument("--data", required=True, type=Path, help="MVTec AD category folder or folder of images")
    synth.add_argument("--preset", default="default", help="preset name (default: default)")
    synth.add_argument("--task", action="append", choices=sorted(TASKS), metavar="TASK",
                       help="task to measure (repeatable; default: nsa-logistic)")
    synth.add_argument("--backend", action="append", choices=sorted(BLEND_BACKENDS), metavar="BACKEND",
                       help=f"blending backend (repeatable; {', '.join(sorted(BLEND_BACKENDS))}; default: all)")
    synth.add_argument("--crop", type=int, default=224, help="centre crop side in pixels (default: 224; 0: none)")
    synth.add_argument("--count", type=int, default=300, help="examples per measurement (default: 300)")
    synth.add_argument("--images", type=int, default=32, help="number of images read (default: 32)")
    synth.add_argument("--threads", type=int, default=1,
                       help="OpenCV and BLAS threads: 1 (default) as a training loader worker has; 0 leaves the "
                            "libraries' defaults, as a user's own call finds them")
    synth.set_defaults(handler=run_synth)


def centre_crop(image: np.ndarray, side: int) -> np.ndarray:
    """The central ``side x side`` crop of ``image`` (the image itself if it is smaller)."""
    height, width = image.shape[:2]
    if side <= 0 or side >= min(height, width):
        return image
    top, left = (height - side) // 2, (width - side) // 2
    return np.ascontiguousarray(image[top:top + side, left:left + side])


def measure(dataset: SynthDataset, count: int) -> dict[str, float]:
    """Time ``count`` examples one by one; return rates and quantiles per example and per patch.

    The time per patch of an example is its time divided by its number of patches.
    """
    seconds, patches = np.empty(count), np.empty(count, int)
    for index in range(count):
        start = time.perf_counter()
        synth = dataset[index]
        seconds[index] = time.perf_counter() - start
        patches[index] = len(synth.patches)
    total = float(seconds.sum())
    per_patch = seconds[patches > 0] / patches[patches > 0]
    return {"examples_per_s": count / total, "patches_per_s": int(patches.sum()) / total,
            "median_s_per_example": float(np.median(seconds)), "p90_s_per_example": float(np.percentile(seconds, 90)),
            "median_s_per_patch": float(np.median(per_patch)) if per_patch.size else float("nan"),
            "p90_s_per_patch": float(np.percentile(per_patch, 90)) if per_patch.size else float("nan")}


def run_synth(args: argparse.Namespace) -> int:
    if args.threads < 0:
        raise ValueError(f"--threads must be 0 (the libraries' defaults) or more, got {args.threads}")
    if not args.threads:
        return _run_synth(args)
    previous = cv2.getNumThreads()
    cv2.setNumThreads(args.threads)
    try:
        with threadpool_limits(args.threads):
            return _run_synth(args)
    finally:
        cv2.setNumThreads(previous)


def _run_synth(args: argparse.Namespace) -> int:
    images = [centre_crop(read_image(path), args.crop) for path in normal_image_paths(args.data)[:args.images]]
    preset = get_preset(args.preset)
    backends = args.backend or sorted(BLEND_BACKENDS)
    if "opencv" not in backends:
        backends = ["opencv", *backends]
    for task_name in args.task or ["nsa-logistic"]:
        reference = None
        for backend in backends:
            blended = task_name in ("nsa-logistic", "nsa-binary", "nsa-continuous", "pii")
            task = get_task(task_name, preset, backend=backend) if blended else get_task(task_name, preset)
            dataset = SynthDataset(images, task, seed=0, length=args.count)
            dataset[0]  # warm caches (object masks, transform plans) outside the timing
            result = measure(dataset, args.count)
            reference = reference or result["examples_per_s"]
            print(json.dumps({"task": task_name, "backend": backend, "preset": preset.name,
                              "image_size": list(images[0].shape), **{k: round(v, 6) for k, v in result.items()},
                              "ratio_vs_opencv": round(result["examples_per_s"] / reference, 3),
                              "threads": args.threads or "default", "cv2_threads": cv2.getNumThreads(),
                              "load_average_1min": round(os.getloadavg()[0], 2)}), flush=True)
    return 0
