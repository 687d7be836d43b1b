"""Benchmark the Poisson blending backends on 20-90 px patches in 224-256 px images.

Prints one JSON line per backend with patches per second, the median and 90th percentile of the
seconds per patch, and the speed ratio against OpenCV measured in the same run:

- ``opencv``, ``dst``, ``torch``: ``seamless_clone(..., backend=NAME)``, the public entry point,
  one patch per call (for ``torch`` this is the single-call adapter, not its intended use);
- ``dst_into``: ``_blend_dst.blend_into`` on box-local arrays, in place: what the NSA engine calls;
- ``torch_batch``: ``poisson_blend_batch`` on ``--batch`` patches per call (on ``--device``), its
  per-patch times being each call's time divided by the batch size.

The CPU backends run interleaved, case by case and in a random order, so that the noise of a
shared machine and the caches left by the previous call hit them alike. ``--threads 0`` (the
default) leaves every library (OpenCV, BLAS, torch) at its default threads, as a user's call
finds them; ``--threads N`` limits them all to N (``1``: a loader worker's setting). Every line
records the threads and the load average before and after the run. Example::

    .venv/bin/python scripts/bench_blend.py --patches 2000 \
        --data /work/shared/data/mvtec_ad_256/bottle/train/good
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from threadpoolctl import threadpool_limits

from nsad.data.io import list_images, read_image
from nsad.synth._blend import mask_box, seamless_clone
from nsad.synth._blend_dst import blend_into, opencv_mask_box
from nsad.synth._blend_torch import poisson_blend_batch


def random_mask(rng: np.random.Generator, shape: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """A rectangle or a union of 1-3 ellipses filling an (h, w) = ``size`` box, somewhere in ``shape``."""
    h, w = size
    tile = np.zeros((h, w), np.uint8)
    if rng.random() < 0.5:
        tile[:] = 255
    else:
        for _ in range(int(rng.integers(1, 4))):
            center = (int(rng.integers(w // 4, w - w // 4 + 1)), int(rng.integers(h // 4, h - h // 4 + 1)))
            axes = (int(rng.integers(w // 4, w // 2 + 1)), int(rng.integers(h // 4, h // 2 + 1)))
            cv2.ellipse(tile, center, axes, float(rng.uniform(0, 180)), 0, 360, 255, -1)
        # stretch the union to fill the box, so the box size is what was asked for
        ys, xs = np.nonzero(tile)
        tight = tile[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
        tile = cv2.resize(tight, (w, h), interpolation=cv2.INTER_NEAREST)
    mask = np.zeros(shape, np.uint8)
    y, x = int(rng.integers(0, shape[0] - h + 1)), int(rng.integers(0, shape[1] - w + 1))
    mask[y:y + h, x:x + w] = tile
    return mask


def load_pool(data: str | None, rng: np.random.Generator, count: int) -> list[np.ndarray]:
    """Images to draw from: real ones from ``data``, else smooth random RGB images (256 px)."""
    if data:
        paths = list_images(Path(data))
        if not paths:
            raise FileNotFoundError(f"no images in {data}")
        return [read_image(p) for p in paths[:count]]
    pool = []
    for _ in range(count):
        coarse = rng.uniform(0, 255, (34, 34, 3)).astype(np.float32)
        image = cv2.resize(coarse, (256, 256), interpolation=cv2.INTER_CUBIC)
        image += rng.normal(0, 6, (256, 256, 3))
        pool.append(np.clip(image, 0, 255).astype(np.uint8))
    return pool


def make_cases(rng: np.random.Generator, pool: list[np.ndarray], patches: int, batch: int,
               mode: str) -> list[dict]:
    """Patches in batches; the images of a batch share one side drawn from 224..256."""
    cases = []
    for start in range(0, patches, batch):
        side = int(rng.integers(224, 257))
        for i in range(start, min(start + batch, patches)):
            src, dst = (pool[int(k)] for k in rng.choice(len(pool), 2, replace=False))
            oy, ox = rng.integers(0, src.shape[0] - side + 1), rng.integers(0, src.shape[1] - side + 1)
            src = np.ascontiguousarray(src[oy:oy + side, ox:ox + side])
            dst = np.ascontiguousarray(dst[oy:oy + side, ox:ox + side])
            size = (int(rng.integers(20, 91)), int(rng.integers(20, 91)))
            mask = random_mask(rng, (side, side), size)
            x, y, w, h = opencv_mask_box(mask)
            # seamless_clone checks the fit with the box before OpenCV's border zeroing (one pixel
            # larger where the mask touches the image edge); centres that fit it fit both.
            _, _, fit_w, fit_h = mask_box(mask)
            center = (int(rng.integers(fit_w // 2, side - fit_w + fit_w // 2 + 1)),
                      int(rng.integers(fit_h // 2, side - fit_h + fit_h // 2 + 1)))
            case_mode = mode if mode != "both" else ("normal", "mixed")[i % 2]
            cases.append({"src": src, "dst": dst, "mask": mask, "center": center, "mode": case_mode,
                          "box": (x, y, w, h), "top_left": (center[0] - w // 2, center[1] - h // 2),
                          "batch": start})
    return cases


def summarise(name: str, seconds: list[float], weights: list[int] | None = None) -> dict:
    """Patches per second, median and p90 seconds per patch."""
    per_patch = np.asarray(seconds) if weights is None else np.asarray(seconds) / np.asarray(weights)
    n = len(seconds) if weights is None else int(np.sum(weights))
    return {"backend": name, "patches": n, "patches_per_s": n / float(np.sum(seconds)),
            "median_s": float(np.median(per_patch)), "p90_s": float(np.percentile(per_patch, 90)),
            "p90_over_median": float(np.percentile(per_patch, 90) / np.median(per_patch))}


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo where there is one, else the platform's machine name."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    """Parse the options, run every backend on the same cases, print one JSON line per backend."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patches", type=int, default=1024)
    parser.add_argument("--data", default=None, help="folder of images (e.g. MVTec AD bottle train/good)")
    parser.add_argument("--mode", choices=["normal", "mixed", "both"], default="both")
    parser.add_argument("--threads", type=int, default=0,
                        help="threads of OpenCV, BLAS and torch; 0 (default) leaves the libraries' defaults")
    parser.add_argument("--batch", type=int, default=256, help="patches per torch_batch call")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--backends", default="opencv,dst,dst_into,torch,torch_batch",
                        help="comma-separated; 'torch' (one patch per call) is slow and pollutes the "
                             "caches of the backends interleaved with it: leave it out for their timings")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="cpu: this thread's CPU time, which ignores the time other processes of a "
                             "busy machine take (CPU backends only)")
    args = parser.parse_args()
    clock = time.perf_counter if args.clock == "wall" else time.thread_time
    backends = args.backends.split(",")

    load_before = os.getloadavg()
    if args.threads:
        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)
    threads = {"threads": args.threads or "default", "cv2_threads": cv2.getNumThreads(),
               "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count()}
    rng = np.random.default_rng(args.seed)
    pool = load_pool(args.data, rng, 64)
    cases = make_cases(rng, pool, args.patches, args.batch, args.mode)
    run = {
        "opencv": lambda c: seamless_clone(c["src"], c["dst"], c["mask"], c["center"], c["mode"], "opencv"),
        "dst": lambda c: seamless_clone(c["src"], c["dst"], c["mask"], c["center"], c["mode"], "dst"),
        "torch": lambda c: seamless_clone(c["src"], c["dst"], c["mask"], c["center"], c["mode"], "torch"),
    }

    def into(c: dict) -> None:
        x, y, w, h = c["box"]
        box = (slice(y, y + h), slice(x, x + w))
        blend_into(c["work"], c["src"][box], c["mask"][box], c["top_left"], c["mode"])

    run["dst_into"] = into
    cpu = [b for b in backends if b in run]
    times = {b: [] for b in cpu}
    with threadpool_limits(args.threads) if args.threads else contextlib.nullcontext():
        for c in cases[:20]:                                             # warm caches and imports
            c["work"] = c["dst"].copy()
            for b in cpu:
                run[b](c)
        for c in cases:
            c["work"] = c["dst"].copy()
            for b in rng.permutation(cpu):                           # no backend always runs first
                start = clock()
                run[b](c)
                times[b].append(clock() - start)
        rows = [summarise(b, times[b]) for b in cpu]
        if "torch_batch" in backends:
            rows.append(bench_torch_batch(cases, torch.device(args.device)))
    reference = next((r["patches_per_s"] for r in rows if r["backend"] == "opencv"), None)
    machine = {"cpu": cpu_name(), **threads, "load_average_1min": [round(load_before[0], 2),
                                                                   round(os.getloadavg()[0], 2)],
               "clock": args.clock, "data": args.data or "synthetic"}
    for row in rows:
        row["speedup_vs_opencv"] = row["patches_per_s"] / reference if reference else None
        print(json.dumps({**row, **machine}))


def bench_torch_batch(cases: list[dict], device: torch.device) -> dict:
    """Time ``poisson_blend_batch`` per batch (one mode per call), inputs already on the device."""
    groups: dict[tuple[int, str], list[dict]] = {}
    for c in cases:
        groups.setdefault((c["batch"], c["mode"]), []).append(c)
    calls = []
    for group in groups.values():
        rows = max(c["box"][3] for c in group)
        cols = max(c["box"][2] for c in group)
        src = np.zeros((len(group), rows, cols, 3), np.uint8)
        masks = np.zeros((len(group), rows, cols), bool)
        for i, c in enumerate(group):
            x, y, w, h = c["box"]
            src[i, :h, :w] = c["src"][y:y + h, x:x + w]
            masks[i, :h, :w] = c["mask"][y:y + h, x:x + w] != 0
        boxes = torch.tensor([[*c["top_left"], c["box"][2], c["box"][3]] for c in group])
        images = torch.from_numpy(np.stack([c["dst"] for c in group])).permute(0, 3, 1, 2)
        images = images.contiguous().to(device)
        calls.append((images, torch.from_numpy(src).permute(0, 3, 1, 2).contiguous().to(device),
                      torch.from_numpy(masks).to(device), boxes, group[0]["mode"]))
    seconds, sizes = [], []
    for repeat in range(2):                                              # the first pass warms up
        for images, src, masks, boxes, mode in calls:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            poisson_blend_batch(images, src, masks, boxes, mode, inplace=True)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if repeat:
                seconds.append(time.perf_counter() - start)
                sizes.append(images.shape[0])
    row = summarise("torch_batch", seconds, sizes)
    row["device"] = str(device) if device.type != "cuda" else torch.cuda.get_device_name(device)
    row["batch"] = max(sizes)
    return row


if __name__ == "__main__":
    main()
