"""Measure image score rules on one scoring pass of a run: image AUROC per rule, pixel metrics once.

    .venv/bin/python scripts/score_rules.py --run runs/ksdd --rules mean,max,topk:0.01,toppx:100,smoothmax:4
    .venv/bin/python scripts/score_rules.py --run runs/bottle --frame whole   # a paper run scored on its whole frame

The test images of the run's data are scored once (``Scorer.network_outputs``); every rule is then
applied to the same maps (``nsad.postprocess.image_scores``), so the rules are compared on one
model. ``--frame whole`` scores a paper-protocol run on the whole resized image instead of its
centre crop (the network is fully convolutional), to measure what the crop and its zero border
cost. Prints a Markdown table and the machine's load average; ``--json`` writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from nsad.data.folder import find_dataset, read_sample_mask
from nsad.data.transforms import FrameConfig, TransformConfig, frame_map
from nsad.metrics import evaluate, image_auroc
from nsad.pipeline.scoring import Scorer
from nsad.postprocess import image_scores

DEFAULT_RULES = ("mean,max,topk:0.01,topk:0.001,toppx:10,toppx:50,toppx:200,smoothmax:2,smoothmax:4,smoothmax:8,"
                 "area:16,area:64")


def whole_frame_of(transform: TransformConfig) -> FrameConfig:
    """The paper transform's resized square, scored whole (its crop kept as the training window)."""
    return FrameConfig((transform.resize, transform.resize), (transform.input_size, transform.input_size),
                       grayscale=transform.grayscale)


def main() -> None:
    """Score the run's test set once and print every rule's image AUROC."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, type=Path)
    parser.add_argument("--rules", default=DEFAULT_RULES, help=f"comma-separated (default: {DEFAULT_RULES})")
    parser.add_argument("--frame", choices=("run", "whole"), default="run",
                        help="run: the run's own protocol; whole: a paper run scored on its whole resized image")
    parser.add_argument("--json", type=Path, help="write the numbers here")
    args = parser.parse_args()
    start = time.perf_counter()
    scorer = Scorer(args.run, device="cpu")
    if args.frame == "whole" and isinstance(scorer.transform, TransformConfig):
        scorer.transform = whole_frame_of(scorer.transform)
    training = scorer.metadata.training
    layout = find_dataset(training["data"], training.get("category_arg"))
    samples = layout.test
    maps, _ = scorer.network_outputs([s.path for s in samples])
    framed = frame_map(maps, scorer.transform)
    labels = np.array([s.is_anomalous for s in samples], int)
    masks = np.stack([read_sample_mask(s, framed.shape[-2:]) for s in samples]).astype(np.uint8)
    pixel = evaluate(image_scores(maps, scorer.score_rule), labels, framed, masks)
    rows = {rule: float(image_auroc(image_scores(maps, rule), labels)) for rule in args.rules.split(",")}
    load = os.getloadavg()
    result = {"run": str(args.run), "frame": args.frame, "score_rule_of_run": scorer.score_rule,
              "pixel_auroc": pixel["pixel_auroc"], "aupro": pixel["aupro"], "image_auroc": rows,
              "seconds": round(time.perf_counter() - start, 1), "loadavg": [round(v, 1) for v in load]}
    print(f"{args.run} ({args.frame} frame {framed.shape[-2]}x{framed.shape[-1]}, {len(samples)} test images): "
          f"pixel AUROC {100 * pixel['pixel_auroc']:.1f}, AU-PRO {100 * pixel['aupro']:.1f}; "
          f"{result['seconds']} s, load average {load[0]:.1f}")
    print("| rule | image AUROC |\n|---|---|")
    for rule, value in rows.items():
        print(f"| `{rule}` | {100 * value:.1f} |")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
