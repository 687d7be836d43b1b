"""``nsad evaluate``: metrics of one or several runs on labelled test images."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nsad.metrics import format_table, mean_sem

METRICS_FILE, REPORT_FILE = "metrics.json", "report.html"  # as nsad.pipeline.evaluate writes them

COLUMNS = ("image_auroc", "pixel_auroc", "aupro", "image_f1_max", "pixel_f1_max")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="score a run's test set with MVTec AD's metrics",
        description=f"Score the labelled test images with each --run and write RUN/{METRICS_FILE}: image AUROC, "
                    "pixel AUROC, AU-PRO up to FPR 0.3 and F1-max, overall and per defect type, and "
                    f"RUN/{REPORT_FILE} (see nsad report). Several runs "
                    "(e.g. seeds) also print mean ± standard deviation over the runs, the standard error beside it. "
                    f"RUN/{METRICS_FILE} holds the result on the run's own test data with its score rule and is "
                    "never replaced: other results (--data, --score-rule, a resumed run) go to RUN/metrics-2.json, "
                    "metrics-3.json..., and the command says which.")
    parser.add_argument("--run", dest="runs", required=True, action="append", type=Path,
                        help="run folder (repeatable)")
    parser.add_argument("--data", type=Path, help="test data (default: the data the run was trained on)")
    parser.add_argument("--category", help="category folder inside --data")
    parser.add_argument("--device", help="torch device, e.g. cpu or cuda:0 (default: cuda if available)")
    parser.add_argument("--score-rule", help="override the run's image score: mean, max, topk:F, toppx:N, "
                        "smoothmax:S, area:N (Bauer's minimum defect area) or density (CutPaste runs)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from nsad.pipeline.evaluate import evaluate_run

    reports = [evaluate_run(path, args.data, args.category, args.device, args.score_rule, report=True)
               for path in args.runs]
    for report in reports:
        if Path(report["file"]).name != METRICS_FILE:
            print(f"nsad evaluate: wrote {report['file']} ({Path(report['run']) / METRICS_FILE} is kept for the "
                  "run's own test data and score rule)", file=sys.stderr)
        rows = {"all": report["metrics"], **report["by_defect_type"]}
        table = {name: {column: values.get(column, float("nan")) for column in COLUMNS}
                 for name, values in rows.items()}
        print(f"\n{report['run']}: {report['method']} on {report['category']} ({report['images']} test images, "
              f"score {report['score_rule']})")
        print(format_table(table, row_header="defect type"))
        print(f"report: {report['report']}")
    if len(reports) > 1:
        summary = {column: mean_sem([r["metrics"].get(column, float("nan")) for r in reports]) for column in COLUMNS}
        print(f"\nmean ± standard deviation over {len(reports)} runs (ddof 1; se: standard error)")
        print(format_table({"all": summary}, row_header="runs", spread="std+sem"))
    return 0
