"""``nsad evaluate``: metrics of one or several runs on labelled test images."""

from __future__ import annotations

import argparse
from pathlib import Path

from nsad.metrics import format_table, mean_sem
from nsad.pipeline.evaluate import METRICS_FILE, REPORT_FILE, evaluate_run

COLUMNS = ("image_auroc", "pixel_auroc", "aupro", "image_f1_max", "pixel_f1_max")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="score a run's test set with MVTec AD's metrics",
        description=f"Score the labelled test images with each --run and write RUN/{METRICS_FILE}: image AUROC, "
                    "pixel AUROC, AU-PRO up to FPR 0.3 and F1-max, overall and per defect type, and "
                    f"RUN/{REPORT_FILE} (see nsad report). Several runs "
                    "(e.g. seeds) also print mean ± standard deviation over the runs, the standard error beside it.")
    parser.add_argument("--run", dest="runs", required=True, action="append", type=Path,
                        help="run folder (repeatable)")
    parser.add_argument("--data", type=Path, help="test data (default: the data the run was trained on)")
    parser.add_argument("--category", help="category folder inside --data")
    parser.add_argument("--device", help="torch device, e.g. cpu or cuda:0 (default: cuda if available)")
    parser.add_argument("--score-rule", help="override the run's image score: mean, max, topk:F, area:N (Bauer's "
                        "minimum defect area) or density (CutPaste runs)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    reports = [evaluate_run(path, args.data, args.category, args.device, args.score_rule, report=True)
               for path in args.runs]
    for report in reports:
        rows = {"all": report["metrics"], **report["by_defect_type"]}
        table = {name: {column: values.get(column, float("nan")) for column in COLUMNS}
                 for name, values in rows.items()}
        print(f"\n{report['run']}: {report['method']} on {report['category']} ({report['images']} test images, "
              f"score {report['score_rule']})")
        print(format_table(table, row_header="defect type"))
        print(f"report: {Path(report['run']) / REPORT_FILE}")
    if len(reports) > 1:
        summary = {column: mean_sem([r["metrics"].get(column, float("nan")) for r in reports]) for column in COLUMNS}
        print(f"\nmean ± standard deviation over {len(reports)} runs (ddof 1; se: standard error)")
        print(format_table({"all": summary}, row_header="runs", spread="std+sem"))
    return 0
