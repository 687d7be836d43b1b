"""Seconds per epoch, images per second and peak GPU memory of a short bottle training, per synthesis path.

For each path (``cpu``: the loader workers make the examples; ``batch``: ``--synth-on-device``,
the training device blends and labels the batch) the same training is run twice, for 1 and for
``1 + --extra-epochs`` epochs, into a scratch folder that is deleted afterwards; the difference of
the two wall times divided by the extra epochs is the time of an epoch without the setup (image
loading, worker start, threshold scoring). Prints one JSON object with both paths and the
machine (GPU name, CUDA, torch, CPU count, load average). Example::

    .venv/bin/python scripts/device_train_probe.py --data /work/shared/data/mvtec_ad_256/bottle --out probe.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import torch

from nsad.pipeline.train import TrainConfig, train
from nsad.synth import PatchPlacementWarning

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mvtec_ad_256" / "bottle"


def timed_training(config: TrainConfig) -> tuple[float, dict]:
    """Wall seconds of ``train(config)`` and the CUDA memory peaks it reached (bytes; empty without CUDA)."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PatchPlacementWarning)
        train(config)
    seconds = time.perf_counter() - start
    memory = {}
    if torch.cuda.is_available():
        memory = {"max_allocated_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1),
                  "max_reserved_mib": round(torch.cuda.max_memory_reserved() / 2**20, 1)}
    return seconds, memory


def probe(base: TrainConfig, synth_device: str, extra_epochs: int, scratch: Path) -> dict:
    """Train 1 and ``1 + extra_epochs`` epochs with ``synth_device``; the per-epoch figures from the difference."""
    times, memory = {}, {}
    for epochs in (1, 1 + extra_epochs):
        out = scratch / f"{synth_device}-{epochs}"
        times[epochs], memory = timed_training(TrainConfig(**{**base.__dict__, "out": out, "epochs": epochs,
                                                              "synth_device": synth_device}))
        settings = json.loads((out / "config.json").read_text())
        examples = settings["examples_per_epoch"] or settings["train_images"]
        shutil.rmtree(out, ignore_errors=True)
    per_epoch = (times[1 + extra_epochs] - times[1]) / extra_epochs
    return {"synth_device": synth_device, "examples_per_epoch": examples, "seconds_1_epoch": round(times[1], 2),
            f"seconds_{1 + extra_epochs}_epochs": round(times[1 + extra_epochs], 2),
            "seconds_per_epoch": round(per_epoch, 3),
            "images_per_s": round(examples / per_epoch, 1) if per_epoch > 0 else None, **memory}


def main() -> None:
    """Parse the options, run both paths, print and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, help="JSON file to write (default: print only)")
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--examples-per-epoch", type=int, help="default: one per training image")
    parser.add_argument("--extra-epochs", type=int, default=3)
    parser.add_argument("--workers", type=int, help="loader processes (default: nsad train's)")
    parser.add_argument("--holdout", type=float, default=0.1, help="held-out fraction (default: 0.1, nsad train's)")
    parser.add_argument("--precision", help="default: nsad train's (bf16-mixed on CUDA, 32-true on the CPU)")
    parser.add_argument("--paths", default="cpu,batch", help="comma-separated synthesis paths: cpu, batch")
    args = parser.parse_args()

    base = TrainConfig(data=args.data, out=Path("unused"), image_size=args.image_size, batch_size=args.batch_size,
                       examples_per_epoch=args.examples_per_epoch, workers=args.workers, precision=args.precision,
                       holdout=args.holdout,
                       progress=False, checkpoint_every=1000)
    machine = {"cuda": torch.cuda.is_available(), "torch": torch.__version__, "cpus": os.cpu_count(),
               "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
               "load_average_1min_before": round(os.getloadavg()[0], 2)}
    scratch = Path(tempfile.mkdtemp(prefix="nsad-probe-"))
    try:
        rows = [probe(base, path, args.extra_epochs, scratch) for path in args.paths.split(",")]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    result = {"training": rows, "image_size": args.image_size, "batch_size": args.batch_size, **machine,
              "load_average_1min_after": round(os.getloadavg()[0], 2)}
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
