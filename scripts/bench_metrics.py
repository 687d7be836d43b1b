"""Time and memory of every nsad.metrics function on a synthetic MVTec-AD-sized evaluation set.

The set imitates one MVTec AD category at 256 x 256: by default 170 test images (40 normal,
130 anomalous in 4 defect types) with blob-shaped masks and smooth float32 anomaly maps that
are higher inside the blobs, so the metrics are neither trivial nor chance.

For each metric it prints one JSON line: the median wall time of ``--repeats`` runs and the peak
memory the call allocated beyond its inputs (``tracemalloc``, which sees NumPy's buffers),
measured in a separate run. A last line gives the process's peak resident set size.

    .venv/bin/python scripts/bench_metrics.py            # 170 x 256 x 256
    .venv/bin/python scripts/bench_metrics.py --images 20 --size 64 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
import tracemalloc
from collections.abc import Callable

import numpy as np
from scipy import ndimage

from nsad import metrics


def make_category(rng: np.random.Generator, n_images: int, size: int, n_normal: int
                  ) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    """Image scores, defect types, (N, size, size) float32 maps and uint8 0/255 blob masks."""
    types = ["good"] * n_normal + [f"defect_{i % 4}" for i in range(n_images - n_normal)]
    masks = np.zeros((n_images, size, size), np.uint8)
    for index in range(n_normal, n_images):
        noise = ndimage.gaussian_filter(rng.standard_normal((size, size)), sigma=size / 24)
        blobs = noise > np.quantile(noise, 1.0 - rng.uniform(0.005, 0.06))  # 0.5-6 % of the image
        masks[index][blobs] = 255
    maps = np.empty((n_images, size, size), np.float32)
    for index in range(n_images):
        smooth = ndimage.gaussian_filter(rng.standard_normal((size, size)).astype(np.float32), sigma=2.0)
        strength = rng.uniform(0.0, 1.5)
        bump = ndimage.gaussian_filter((masks[index] > 0) * 2.0, 3.0)
        maps[index] = smooth / smooth.std() + strength * bump
    scores = maps.reshape(n_images, -1).mean(axis=1)
    return scores, types, maps, masks


def measure(function: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median seconds over ``repeats`` calls, then peak MiB allocated during one traced call."""
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - start)
    tracemalloc.start()
    tracemalloc.reset_peak()
    result = function()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del result
    return statistics.median(seconds), peak / 2**20


def main() -> None:
    """Build the synthetic category, then time and trace each metric."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=170)
    parser.add_argument("--normal", type=int, default=40, help="normal images among --images")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not 0 < args.normal < args.images:
        parser.error(f"--normal must be in (0, --images={args.images}), got {args.normal}")

    rng = np.random.default_rng(args.seed)
    scores, types, maps, masks = make_category(rng, args.images, args.size, args.normal)
    labels = np.array([name != "good" for name in types])
    print(json.dumps({"images": args.images, "normal": args.normal, "size": args.size,
                      "pixels": int(maps.size), "anomalous_pixel_frac": round(float((masks > 0).mean()), 4),
                      "maps_mib": round(maps.nbytes / 2**20, 1),
                      "masks_mib": round(masks.nbytes / 2**20, 1)}))
    cases: dict[str, Callable[[], object]] = {
        "image_auroc": lambda: metrics.image_auroc(scores, labels),
        "image_f1_max": lambda: metrics.image_f1_max(scores, labels),
        "pixel_auroc": lambda: metrics.pixel_auroc(maps, masks),
        "pixel_f1_max": lambda: metrics.pixel_f1_max(maps, masks),
        "aupro": lambda: metrics.aupro(maps, masks, fpr_limit=0.3),
        "pro_curve(max_fpr=0.3)": lambda: metrics.pro_curve(maps, masks, max_fpr=0.3),
        "pro_curve(full)": lambda: metrics.pro_curve(maps, masks),
        "threshold_at_fpr(pixels)": lambda: metrics.threshold_at_fpr(maps[: args.normal], fpr=0.01),
        "evaluate(all five)": lambda: metrics.evaluate(scores, labels, maps, masks),
        "evaluate_by_defect_type": lambda: metrics.evaluate_by_defect_type(scores, types, maps, masks),
    }
    values = metrics.evaluate(scores, labels, maps, masks)
    for name, function in cases.items():
        seconds, peak_mib = measure(function, args.repeats)
        print(json.dumps({"metric": name, "seconds": round(seconds, 3),
                          "peak_alloc_mib": round(peak_mib, 1)}))
    max_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    print(json.dumps({"values": {key: round(value, 4) for key, value in values.items()},
                      "process_max_rss_mib": round(max_rss_mib, 1)}))


if __name__ == "__main__":
    main()
