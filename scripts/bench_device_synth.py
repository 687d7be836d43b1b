"""Benchmark NSA made on the training device: plans on the CPU, one ``apply_plan`` per batch on each device.

The examples are those of training: 224 x 224 centre crops of real images (default: the MVTec AD
bottle images beside the repository), the preset's task (default ``nsa-logistic`` with
``mvtec/bottle``), example ``i`` planned from ``default_rng([seed, 0, i])`` with image ``i mod n``
as destination and the next one as source. Prints one JSON line per measurement:

- ``plan``: what the loader workers do per example, on one CPU thread: ``NSA.plan`` plus
  ``pack_plan`` (examples per second), and ``collate_plans`` per batch;
- ``apply``: for every device (the CPU, and CUDA when present) and batch size (64, 256, 1024 by
  default): the median over ``--repeats`` runs (after one warm-up) of ``apply_plan`` on a batch
  already on the device (blending and labels), of the labels alone (``nsa_label_batch``), and of
  the host-to-device copy of the collated batch; patches per second and examples per second of
  ``apply_plan``. CUDA timings are synchronised.

Runs unchanged on a machine with a GPU. Example::

    .venv/bin/python scripts/bench_device_synth.py --data /work/shared/data/mvtec_ad_256/bottle
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from nsad.cli.bench import centre_crop
from nsad.data.io import normal_image_paths, read_image
from nsad.synth import PatchPlacementWarning, get_preset, get_task
from nsad.synth.device import apply_plan, collate_plans, nsa_label_batch, pack_plan

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mvtec_ad_256" / "bottle"


def timed(run: Callable[[], object], device: torch.device, repeats: int) -> list[float]:
    """Seconds per call of ``run`` after one warm-up call, synchronising CUDA around each."""
    run()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    """Parse the options, plan the examples, time ``apply_plan`` per device and batch size."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="category folder or folder of images")
    parser.add_argument("--preset", default="mvtec/bottle")
    parser.add_argument("--task", default="nsa-logistic")
    parser.add_argument("--crop", type=int, default=224, help="side of the centre crops (default: 224)")
    parser.add_argument("--images", type=int, default=64, help="distinct images to use (default: 64)")
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--devices", nargs="+", help="torch devices (default: cpu, and cuda when present)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cpu-threads", type=int, default=1,
                        help="torch threads for the CPU device (default: 1, a per-core rate)")
    parser.add_argument("--group-ratio", type=float, default=1.5, help="apply_plan's size grouping; 0 for none")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    paths = normal_image_paths(args.data)[:args.images]
    if not paths:
        raise SystemExit(f"no images found in {args.data}")
    images = [centre_crop(read_image(p), args.crop) for p in paths]
    preset = get_preset(args.preset)
    task = get_task(args.task, preset)
    mode = "paste" if task.paste else (task.mode or preset.mode)
    objects = [task.object_masks(image, image, None, None)[0] for image in images]   # cached, as in training
    largest = max(args.batches)
    items, start = [], time.perf_counter()
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore", PatchPlacementWarning)
        for i in range(largest):
            dest, other = i % len(images), (i + 1) % len(images)
            plan = task.plan(images[dest], images[other], rng=np.random.default_rng([args.seed, 0, i]),
                             image_object=objects[dest], source_object=objects[other])
            image = images[dest]
            items.append({"image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
                          "plan": pack_plan(plan, image.dtype)})
    plan_s = time.perf_counter() - start
    collate_s = {b: statistics.median(timed(lambda b=b: collate_plans(items[:b]), torch.device("cpu"), 3))
                 for b in args.batches}
    machine = {"cpu": platform.processor() or platform.machine(), "torch": torch.__version__}
    print(json.dumps({"plan": {"examples": largest, "examples_per_s": round(largest / plan_s, 1),
                               "collate_ms": {b: round(1e3 * s, 2) for b, s in collate_s.items()},
                               "threads": 1, "task": args.task, "preset": args.preset, "crop": args.crop},
                      **machine}), flush=True)

    devices = args.devices or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    group_ratio = args.group_ratio or None
    for name in devices:
        device = torch.device(name)
        if device.type == "cpu":
            torch.set_num_threads(args.cpu_threads)
        for size in args.batches:
            batch = collate_plans(items[:size])
            if device.type == "cuda":
                batch = {"image": batch["image"].pin_memory(),
                         "plan": {k: v.pin_memory() for k, v in batch["plan"].items()}}

            def transfer(batch=batch, device=device):
                return (batch["image"].to(device, non_blocking=True),
                        {k: v.to(device, non_blocking=True) for k, v in batch["plan"].items()})

            on_device, plan = transfer()
            patches = int(batch["plan"]["count"].sum())
            result: dict[str, torch.Tensor] = {}

            def apply(on_device=on_device, plan=plan, result=result):
                result["images"], result["labels"] = apply_plan(
                    on_device, plan, mode=mode, label=task.label, y0=preset.y0, k=preset.k, group_ratio=group_ratio)

            apply_s = statistics.median(timed(apply, device, args.repeats))
            label_s = float("nan")
            if mode != "paste":
                label_s = statistics.median(timed(
                    lambda on_device=on_device, plan=plan, result=result: nsa_label_batch(
                        result["images"], on_device, plan["label_boxes"], plan["count"], task.label, preset.y0,
                        preset.k), device, args.repeats))
            transfer_s = statistics.median(timed(transfer, device, args.repeats))
            print(json.dumps({"apply": {
                "device": str(device), "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda"
                                                       else machine["cpu"]),
                "threads": torch.get_num_threads() if device.type == "cpu" else None,
                "batch": size, "patches": patches, "apply_s": round(apply_s, 4), "label_s": round(label_s, 4),
                "transfer_s": round(transfer_s, 4), "patches_per_s": round(patches / apply_s, 1),
                "examples_per_s": round(size / apply_s, 1), "group_ratio": group_ratio}}), flush=True)


if __name__ == "__main__":
    main()
