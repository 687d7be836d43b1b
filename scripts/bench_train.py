r"""Benchmark the paper's protocol on one category: training speed, prediction speed, memory, metrics.

Trains NSA (logistic) with the paper's settings (batch 64, Adam, cosine 1e-3 -> 1e-6, the preset's
transforms) for ``--epochs`` epochs or until the ``--minutes`` budget is spent, then scores the test
set, and prints one JSON line with seconds per epoch, training images per second, prediction images
per second, peak memory and the metrics. The full protocol is ``--epochs 320`` for bottle (hours on a laptop CPU).

Example:
    .venv/bin/python scripts/bench_train.py --data ../shared/data/mvtec_ad_256/bottle --epochs 40 \\
        --out runs/bench-bottle --precision bf16-mixed
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from pathlib import Path

import torch

from nsad.data.folder import find_dataset
from nsad.pipeline import TrainConfig, evaluate_run, train
from nsad.pipeline.scoring import Scorer


def main() -> None:
    """Train, score and print the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="MVTec AD category folder")
    parser.add_argument("--out", type=Path, required=True, help="run folder (must not exist, unless --resume)")
    parser.add_argument("--epochs", type=int, required=True, help="training epochs (paper: 320 for bottle)")
    parser.add_argument("--minutes", type=float, default=None,
                        help="time budget: stop after this many minutes of training even if epochs remain")
    parser.add_argument("--method", default="nsa-logistic")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--precision", default=None, help="Lightning precision (default: nsad's choice)")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--holdout", type=float, default=0.0,
                        help="held-out normal images (default 0: train on all, as the paper)")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()

    start = time.perf_counter()
    train(TrainConfig(data=args.data, out=args.out, method=args.method, epochs=args.epochs, seed=args.seed,
                      image_size=args.image_size, precision=args.precision, workers=args.workers,
                      holdout=args.holdout, resume=args.resume, progress=False, max_minutes=args.minutes))
    train_seconds = time.perf_counter() - start
    run = json.loads((args.out / "run.json").read_text())
    train_images = run["training"]["train_images"]
    epochs_run = run["training"]["epochs_run"]

    test_paths = [sample.path for sample in find_dataset(args.data).test]
    scorer = Scorer(args.out)
    scorer.score(test_paths[:4])  # warm up
    start = time.perf_counter()
    scorer.score(test_paths)
    predict_seconds = time.perf_counter() - start

    report = evaluate_run(args.out)
    result = {
        "category": report["category"], "method": args.method, "epochs": epochs_run, "schedule_epochs": args.epochs,
        "precision": run["training"]["precision"], "image_size": args.image_size,
        "seconds_per_epoch": round(train_seconds / max(epochs_run, 1), 2),
        "train_images_per_s": round(train_images * epochs_run / train_seconds, 2),
        "predict_images_per_s": round(len(test_paths) / predict_seconds, 2),
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "peak_cuda_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None,
        **{name: round(100 * value, 1) for name, value in report["metrics"].items()},
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
                   f"{torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU'}",
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
