"""The ``nsad`` command line: one module per subcommand, each with ``register(subparsers)``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from nsad import __version__
from nsad.cli import bench, compare, demo, evaluate, predict, synth, train

COMMANDS = (demo, train, evaluate, predict, compare, synth, bench)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="nsad",
        description="Train image anomaly detectors from normal images with natural synthetic anomalies "
                    "(NSA) and its baselines; find and outline defects in new images.")
    parser.add_argument("--version", action="version", version=f"nsad {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; user errors print one line and return 2 instead of a traceback."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except (ValueError, FileNotFoundError, NotADirectoryError, FileExistsError) as error:
        print(f"nsad {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"nsad {args.command}: interrupted", file=sys.stderr)
        return 130
