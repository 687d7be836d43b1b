"""``nsad compare``: train several methods over several seeds and tabulate them as the papers do."""

from __future__ import annotations

import argparse
from pathlib import Path

from nsad._options import integer, values_from_args
from nsad.cli.train import add_training_options
from nsad.config import METHOD_HELP, TrainConfig

TABLE_MD, TABLE_CSV, FIGURE = "comparison.md", "comparison.csv", "heatmaps.png"  # as nsad.pipeline.compare writes


def _names(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _seeds(text: str) -> list[int]:
    try:
        return [int(item) for item in _names(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"seeds must be whole numbers separated by commas, got {text!r}"
        ) from None


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``nsad compare`` to the command line."""
    parser = subparsers.add_parser(
        "compare",
        help="train and evaluate several methods x seeds, write a table and heatmaps",
        description=f"Train every --methods x --seeds under the same settings into OUT/METHOD/seedK, "
        f"evaluate each on the test images, and write OUT/{TABLE_MD} and OUT/{TABLE_CSV} (image AUROC, pixel "
        f"AUROC, AU-PRO as mean ± standard deviation over the seeds with the standard error beside it, one row per "
        f"method) and "
        f"OUT/{FIGURE} (one row of heatmaps per method on the same test images). Finished runs are "
        f"kept: run it again to continue an interrupted comparison.",
    )
    parser.add_argument(
        "--methods", required=True, type=_names, help=f"comma-separated methods: {METHOD_HELP}"
    )
    parser.add_argument(
        "--seeds",
        type=_seeds,
        default=[0, 1, 2, 3, 4],
        help="comma-separated seeds (default: 0,1,2,3,4, the papers' five)",
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument(
        "--heatmap-images",
        type=integer(0),
        default=4,
        help="test images in the heatmap figure (default: 4; 0 for none)",
    )
    parser.add_argument("--device", help="torch device for evaluation (default: cuda if available, else cpu)")
    add_training_options(parser, {"data": "an MVTec AD category folder, a data set root with --category, or a plain "
                                          "layout with train/ and test/ (the comparison evaluates every run)"})
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the comparison and print its table."""
    from nsad.pipeline.compare import compare, markdown_table

    settings = values_from_args(args, TrainConfig)
    base = TrainConfig(**{**settings, "method": args.methods[0] if args.methods else "nsa-logistic", "options": {}})
    result = compare(base, args.methods, args.seeds, args.out, settings["options"], args.heatmap_images, args.device)
    print(markdown_table(result))
    return 0
