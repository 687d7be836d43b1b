r"""Speed and parity of the deployment runtime (ONNX Runtime) against the torch Scorer, per image and per batch.

Prints, for 1 and 2 threads: single-image latency (p50, p99) and throughput at batch 1 and 8 for
torch and onnxruntime, and how a single image's time splits between reading, preprocessing, the
network and postprocessing (the same code for both but the network). Also prints the largest map
difference and image score difference between the two over the images (parity on real data).

    .venv/bin/python scripts/bench_deploy.py --run runs/bottle [--model runs/bottle-onnx] \\
        --images ../shared/data/mvtec_ad_256/bottle/test --repeats 30
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from nsad.data.io import IMAGE_SUFFIXES, read_image
from nsad.data.transforms import FrameConfig, normalize_tensor, test_input, tiled_maps
from nsad.deploy import Inferencer
from nsad.pipeline.export import export_run
from nsad.pipeline.scoring import Scorer
from nsad.postprocess import predictions_from_network


def torch_network(scorer: Scorer):
    """The torch scorer's network as a function of [0, 1] inputs (normalised, and tiled, as the Scorer does)."""
    def run(inputs: np.ndarray):
        with torch.inference_mode():
            maps, scores = scorer.model(torch.from_numpy(normalize_tensor(inputs, scorer.normalization)))
        return maps.float().numpy(), None if scores is None else scores.double().numpy()

    transform = scorer.transform
    if isinstance(transform, FrameConfig) and transform.tile is not None:
        return lambda inputs: (tiled_maps(inputs, transform, lambda tiles: run(tiles)[0], scorer.batch_size), None)
    return run


def one_image(path: Path, transform, channels: int, network, rule: str, threshold):
    """Seconds spent reading, preprocessing, in the network and postprocessing one image."""
    t0 = time.perf_counter()
    image = read_image(path)
    t1 = time.perf_counter()
    inputs = test_input(image, transform, channels)[None]
    t2 = time.perf_counter()
    maps, scores = network(inputs)
    t3 = time.perf_counter()
    prediction = predictions_from_network(maps, scores, transform, rule, threshold, [image.shape])[0]
    t4 = time.perf_counter()
    return (t1 - t0, t2 - t1, t3 - t2, t4 - t3), prediction


def batch_rate(paths, transform, channels, network, rule, threshold, batch: int, repeats: int) -> float:
    """Images per second, reading to predictions, in batches of ``batch``."""
    images = [read_image(p) for p in paths[:batch]] * (batch // max(1, len(paths[:batch])) + 1)
    images = images[:batch]
    start = time.perf_counter()
    for _ in range(repeats):
        inputs = np.stack([test_input(image, transform, channels) for image in images])
        maps, scores = network(inputs)
        predictions_from_network(maps, scores, transform, rule, threshold, [i.shape for i in images])
    return batch * repeats / (time.perf_counter() - start)


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, type=Path)
    parser.add_argument("--model", type=Path, help="exported model folder (default: export the run now)")
    parser.add_argument("--images", type=Path, help="folder of images (default: the bundled sample's test images)")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", default="1,2")
    args = parser.parse_args()
    from nsad.data.folder import sample_data_path

    folder = args.images or sample_data_path() / "test"
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    scratch = tempfile.TemporaryDirectory()
    model = args.model
    if model is None:
        model = Path(scratch.name) / "model"
        start = time.perf_counter()
        export_run(args.run, model)
        print(f"export: {time.perf_counter() - start:.1f} s")
    print(f"{len(paths)} images from {folder}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    scorer = Scorer(args.run, device="cpu")
    transform, channels, rule = scorer.transform, scorer.metadata.in_channels, scorer.score_rule
    threshold = scorer.threshold

    # parity over all the images
    worst_map, largest_map, worst_score, decisions = 0.0, 0.0, 0.0, 0
    onnx = Inferencer(model)
    for path in paths:
        _, a = one_image(path, transform, channels, torch_network(scorer), rule, threshold)
        _, b = one_image(path, transform, channels, onnx.run_network, rule, threshold)
        worst_map = max(worst_map, float(np.abs(a.anomaly_map - b.anomaly_map).max()))
        largest_map = max(largest_map, float(np.abs(a.anomaly_map).max()))
        worst_score = max(worst_score, abs(a.score - b.score) / max(abs(a.score), 1e-12))
        decisions += a.decision != b.decision
    print(f"parity over {len(paths)} images: max |map difference| {worst_map:.2e} (largest |map| value "
          f"{largest_map:.3g}), max relative score difference {worst_score:.2e}, {decisions} decisions differ")

    print("threads backend   p50 ms  p99 ms  read  prep  net   post (ms, median)  img/s b=1  img/s b=8")
    for threads in (int(t) for t in args.threads.split(",")):
        torch.set_num_threads(threads)
        backends = {"torch": torch_network(scorer), "onnx": Inferencer(model, threads=threads).run_network}
        for name, network in backends.items():
            one_image(paths[0], transform, channels, network, rule, threshold)  # warm up
            times = np.array([one_image(paths[i % len(paths)], transform, channels, network, rule, threshold)[0]
                              for i in range(args.repeats)]) * 1e3
            totals = times.sum(axis=1)
            parts = np.median(times, axis=0)
            rate1 = batch_rate(paths, transform, channels, network, rule, threshold, 1, args.repeats)
            rate8 = batch_rate(paths, transform, channels, network, rule, threshold, 8, max(2, args.repeats // 8))
            print(f"{threads:7d} {name:8s} {np.percentile(totals, 50):7.1f} {np.percentile(totals, 99):7.1f}  "
                  + " ".join(f"{v:5.1f}" for v in parts) + f"  {rate1:17.1f}  {rate8:9.1f}")


if __name__ == "__main__":
    main()
