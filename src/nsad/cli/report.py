"""``nsad report``: one self-contained HTML page of a run (or of a ``nsad compare`` folder)."""

from __future__ import annotations

import argparse
from pathlib import Path

from nsad.pipeline.evaluate import REPORT_FILE
from nsad.pipeline.report import write_report


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report", help="write an HTML report of a run or a comparison",
        description=f"Score the labelled test images with --run and write one self-contained HTML file (default "
                    f"RUN/{REPORT_FILE}; images inline, nothing loaded from the network): the run's settings, "
                    "threshold and colour scale; metrics overall and per defect type beside the paper's; image "
                    "ROC, PRO curve to FPR 0.3, score histogram, confusion matrix and training loss; every test "
                    "image worst first (missed defects, false alarms, then by score) with its heatmap, predicted "
                    "regions and ground truth. For a 'nsad compare' folder: its table and one row of heatmaps "
                    "per method.")
    parser.add_argument("--run", required=True, type=Path, help="run folder, or a 'nsad compare' output folder")
    parser.add_argument("--data", type=Path, help="test data (default: the data the run was trained on)")
    parser.add_argument("--category", help="category folder inside --data")
    parser.add_argument("--out", type=Path, help=f"HTML file to write (default: RUN/{REPORT_FILE})")
    parser.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    path = write_report(args.run, args.data, args.category, args.out, args.device)
    print(f"nsad report: wrote {path}")
    return 0
