"""``nsad demo``: the main job end to end on the sample images that ship with nsad."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from nsad._options import integer
from nsad.data.folder import sample_data_path

DEMO_IMAGE_SIZE = 128


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="train, evaluate and predict on the bundled sample images (a few minutes on a CPU)",
        description="Train a small NSA (logistic) model on the 16 MVTec AD bottle images that ship with nsad "
                    "(128 px, CC BY-NC-SA 4.0), evaluate it on the 9 bundled test images and write heatmaps "
                    "for them. A real model needs the full data and the paper's 320 epochs: see nsad train.")
    parser.add_argument("--out", type=Path, default=Path("demo-output"), help="output folder (default: demo-output)")
    parser.add_argument("--epochs", type=integer(1), default=25, help="training epochs (default: 25)")
    parser.add_argument("--examples-per-epoch", type=integer(1), default=64,
                        help="synthetic examples per epoch (default: 64)")
    parser.add_argument("--seed", type=integer(0), default=0, help="random seed (default: 0)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from nsad.pipeline.evaluate import METRICS_FILE, evaluate_run
    from nsad.pipeline.predict import SCORES_FILE, predict
    from nsad.pipeline.train import TrainConfig, train

    start = time.perf_counter()
    data = sample_data_path()
    run_dir = args.out / "run"
    train(TrainConfig(data=data, out=run_dir, method="nsa-logistic", preset="mvtec/bottle", epochs=args.epochs,
                      seed=args.seed, batch_size=32, image_size=DEMO_IMAGE_SIZE, holdout=0.125,
                      examples_per_epoch=args.examples_per_epoch, checkpoint_every=max(1, args.epochs // 5)))
    report = evaluate_run(run_dir)
    metrics = report["metrics"]
    predictions = args.out / "predictions"
    rows = predict(run_dir, [data / "test"], predictions)
    seconds = time.perf_counter() - start
    print(f"\nnsad demo: done in {seconds:.0f} s")
    print(f"  model:       {run_dir}/model.safetensors (+ run.json)")
    print(f"  metrics:     {run_dir / METRICS_FILE}: image AUROC {metrics['image_auroc']:.3f}, pixel AUROC "
          f"{metrics['pixel_auroc']:.3f}, AU-PRO {metrics['aupro']:.3f} on {report['images']} test images")
    print(f"  heatmaps:    {predictions}/*_heatmap.png ({len(rows)} images)")
    print(f"  scores:      {predictions / SCORES_FILE}")
    print("  next: nsad train --data PATH/TO/mvtec_ad/bottle --out runs/bottle (the paper's 320 epochs)")
    return 0
