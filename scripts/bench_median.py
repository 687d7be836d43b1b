"""Benchmark NSA's disk median (radius 5) on the inputs the real labels give it, old against new.

The inputs are recorded while an NSA task makes examples from centre crops of real images: the
uint16 channel sums ``nsa_label`` passes to ``labels.median_disk``, on crops around the patches.
Prints JSON lines:

- ``median``: milliseconds per call for each implementation on the recorded inputs, all of them
  and those of about 120 x 120 pixels, interleaved call by call:
  ``old`` (the previous code: pad, then scikit-image's rank median over the whole crop),
  ``numba`` and ``skimage`` (the two backends of ``nsad.synth._median.median_disk``);
- ``example``: NSA examples per second (one core: BLAS, OpenMP and OpenCV limited to
  ``--threads``, default 1) with the old and the new median, measured in alternating rounds on
  the same examples in the same run, and the ratio of the best rounds.

Example::

    .venv/bin/python scripts/bench_median.py --data /work/shared/data/mvtec_ad_256/bottle
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import cv2
import numpy as np
from scipy import ndimage
from skimage.filters import rank
from threadpoolctl import threadpool_limits

import nsad.synth.labels as labels
from nsad.cli.bench import centre_crop
from nsad.data.io import normal_image_paths, read_image
from nsad.synth import SynthDataset, get_task
from nsad.synth._median import median_disk


def old_median_disk(values: np.ndarray) -> np.ndarray:
    """The previous ``labels.median_disk`` for integer input: scikit-image's rank median, padded crop."""
    radius = labels.CONTINUOUS_MEDIAN_RADIUS
    padded = np.pad(values, radius, mode="symmetric")
    return rank.median(padded, footprint=labels.disk(radius))[radius:-radius, radius:-radius]


def make_dataset(images: list[np.ndarray], args: argparse.Namespace, length: int) -> SynthDataset:
    """``length`` examples of ``args.task`` with ``args.preset`` and blending ``args.backend``."""
    task = get_task(args.task, args.preset, backend=args.backend)
    return SynthDataset(images, task, seed=0, length=length)


def record_inputs(images: list[np.ndarray], args: argparse.Namespace) -> list[np.ndarray]:
    """The arrays ``labels.median_disk`` receives while ``args.count`` examples are made."""
    inputs, original = [], labels.median_disk

    def spy(values: np.ndarray) -> np.ndarray:
        inputs.append(values.copy())
        return original(values)

    labels.median_disk = spy
    try:
        dataset = make_dataset(images, args, args.count)
        for index in range(args.count):
            dataset[index]
    finally:
        labels.median_disk = original
    return inputs


def time_calls(inputs: list[np.ndarray], functions: dict[str, object], repeats: int) -> dict[str, np.ndarray]:
    """Seconds per call of each function on each input (best of ``repeats``), interleaved input by input."""
    seconds = {name: np.full(len(inputs), np.inf) for name in functions}
    for _ in range(repeats):
        for index, values in enumerate(inputs):
            for name, function in functions.items():
                start = time.perf_counter()
                function(values)
                seconds[name][index] = min(seconds[name][index], time.perf_counter() - start)
    return seconds


def examples_per_s(dataset: SynthDataset) -> float:
    """Examples per second, making every example of ``dataset`` once in this process."""
    start = time.perf_counter()
    for index in range(len(dataset)):
        dataset[index]
    return len(dataset) / (time.perf_counter() - start)


def main() -> None:
    """Parse the arguments and run the benchmark with the threads limited."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data/mvtec_ad_256/bottle"),
                        help="MVTec AD category folder or folder of normal images")
    parser.add_argument("--preset", default="mvtec/bottle")
    parser.add_argument("--task", default="nsa-logistic")
    parser.add_argument("--backend", default="opencv", help="blending backend of the task (default: opencv)")
    parser.add_argument("--crop", type=int, default=224, help="centre crop side (default: 224)")
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--count", type=int, default=300, help="examples recorded and per timing round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of the example timing")
    parser.add_argument("--repeats", type=int, default=3, help="calls per input for the median timing (best)")
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS/OpenMP/OpenCV threads (default: 1, a per-core rate)")
    args = parser.parse_args()
    cv2.setNumThreads(args.threads)
    with threadpool_limits(args.threads):
        run(args)


def run(args: argparse.Namespace) -> None:
    """Record the inputs, time them and print the JSON lines."""
    paths = normal_image_paths(args.data)[:args.images]
    images = [centre_crop(read_image(path), args.crop) for path in paths]
    inputs = record_inputs(images, args)
    footprint = labels.disk(labels.CONTINUOUS_MEDIAN_RADIUS)
    for values in inputs:  # the benchmark is only worth reading if the results are exact
        expected = ndimage.median_filter(values, footprint=footprint, mode="reflect")
        if not np.array_equal(median_disk(values, 5), expected):
            raise SystemExit(f"median_disk differs from scipy on a {values.shape} input")
    functions = {"old": old_median_disk, "numba": lambda v: median_disk(v, 5, backend="numba"),
                 "skimage": lambda v: median_disk(v, 5, backend="skimage")}
    for function in functions.values():  # compile / load the cache outside the timing
        function(inputs[0])
    seconds = time_calls(inputs, functions, args.repeats)
    area = np.array([v.size for v in inputs])
    typical = (area >= 100 * 100) & (area <= 140 * 140)
    shapes = np.array([v.shape for v in inputs])
    nonzero = np.array([(v > 0).mean() for v in inputs])
    for subset, where in (("all", np.ones(len(inputs), bool)), ("about_120x120", typical)):
        if not where.any():
            continue
        row = {"bench": "median", "inputs": subset, "calls": int(where.sum()),
               "mean_shape": [round(float(s), 1) for s in shapes[where].mean(axis=0)],
               "nonzero_frac": round(float(nonzero[where].mean()), 3)}
        for name, per_call in seconds.items():
            row[f"{name}_ms_mean"] = round(float(per_call[where].mean()) * 1e3, 4)
            row[f"{name}_ms_median"] = round(float(np.median(per_call[where])) * 1e3, 4)
        row["old_over_numba"] = round(row["old_ms_mean"] / row["numba_ms_mean"], 2)
        row["old_over_skimage"] = round(row["old_ms_mean"] / row["skimage_ms_mean"], 2)
        print(json.dumps(row), flush=True)

    new = labels.median_disk
    rates: dict[str, list[float]] = {"old": [], "new": []}
    dataset = make_dataset(images, args, args.count)  # the same examples for both
    examples_per_s(dataset)  # object masks and plans outside the timing
    for _ in range(args.rounds):
        for name in ("old", "new"):
            labels.median_disk = old_median_disk if name == "old" else new
            try:
                rates[name].append(examples_per_s(dataset))
            finally:
                labels.median_disk = new
    old_rate, new_rate = max(rates["old"]), max(rates["new"])
    machine = (f"{platform.machine()}, {os.cpu_count()} cpus, {args.threads} thread(s), "
               f"python {platform.python_version()}")
    print(json.dumps({"bench": "example", "task": args.task, "preset": args.preset, "backend": args.backend,
                      "crop": args.crop, "examples_per_round": args.count,
                      "old_examples_per_s": [round(r, 1) for r in rates["old"]],
                      "new_examples_per_s": [round(r, 1) for r in rates["new"]],
                      "best_ratio_new_over_old": round(new_rate / old_rate, 3),
                      "machine": machine}),
          flush=True)


if __name__ == "__main__":
    main()
