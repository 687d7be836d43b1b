"""``nsad predict``: scores, anomaly maps and heatmaps for new images."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from nsad._options import integer, number

SCORES_FILE, REGIONS_FILE, UNREADABLE_FILE = "scores.csv", "regions.json", "unreadable.csv"  # as predict writes them
SKIPPED_STATUS = 3
"""Exit status when ``--skip-unreadable`` skipped some inputs (the others were scored)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict", help="find defects in new images",
        description=f"Score images with a trained run and write, per image, STEM.npy (the anomaly map at the "
                    "image's resolution), STEM_heatmap.png (image, heatmap with the predicted regions outlined and a "
                    "colour bar, on the run's fixed colour scale) and one line of "
                    f"{SCORES_FILE} (score, threshold, normal/anomalous decision, number of defect regions); "
                    f"{REGIONS_FILE} holds each anomalous image's defect regions (connected regions of the map at "
                    "or above the threshold at the image's resolution: bounding box, area, peak and mean).")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", type=Path, help="run folder written by nsad train (scored with torch)")
    source.add_argument("--model", type=Path,
                        help="model folder written by nsad export (scored with ONNX Runtime; same outputs)")
    parser.add_argument("inputs", nargs="+", type=Path, metavar="IMAGE_OR_FOLDER", help="images or folders of images")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--threshold", type=number(-math.inf),
                        help="decision threshold on the image score (default: the one nsad train calibrated)")
    parser.add_argument("--device", help="torch device for --run (default: cuda if available, else cpu)")
    parser.add_argument("--min-area", type=integer(1), default=1,
                        help=f"smallest defect region written to {REGIONS_FILE}, in pixels of the image (default 1)")
    parser.add_argument("--region-threshold", type=number(-math.inf),
                        help="map level of the defect regions (default: the decision threshold; needed for "
                             "CutPaste's density scores, which are on another scale than its maps)")
    parser.add_argument("--score-rule", help="override the run's image score: mean, max, topk:F, toppx:N, "
                        "smoothmax:S, area:N (Bauer's minimum defect area) or density (CutPaste runs); decisions "
                        "then need --threshold (the run's is calibrated for its own rule)")
    parser.add_argument("--skip-unreadable", action="store_true",
                        help=f"score the images that can be read, list the others with the reason in "
                             f"OUT/{UNREADABLE_FILE} and on stderr, and exit with status {SKIPPED_STATUS} "
                             "(default: stop at the first unreadable image, writing nothing)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from nsad.pipeline.predict import predict

    rows = predict(args.run, args.inputs, args.out, args.threshold, args.device, args.score_rule, model=args.model,
                   min_area=args.min_area, region_threshold=args.region_threshold,
                   skip_unreadable=args.skip_unreadable)
    flagged = sum(row["decision"] == "anomalous" for row in rows)
    for row in rows:
        print(f"{row['score']:.5f}  {row['decision'] or '-':9s}  {row['file']}")
    for file, reason in rows.unreadable:
        print(f"nsad predict: skipped {file}: {reason}", file=sys.stderr)
    skipped = f"; {len(rows.unreadable)} unreadable, listed in {args.out / UNREADABLE_FILE}" if rows.unreadable else ""
    print(f"nsad predict: {len(rows)} images, {flagged} anomalous; maps and heatmaps in {args.out}, "
          f"scores in {args.out / SCORES_FILE}{skipped}", file=sys.stderr)
    return SKIPPED_STATUS if rows.unreadable else 0
