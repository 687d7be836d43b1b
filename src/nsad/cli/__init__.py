"""The ``nsad`` command line: one module per subcommand, each with ``register(subparsers)``.

Conventions: results go to stdout, messages (progress, warnings, errors) to stderr. A user error
(bad option, file or data) prints one line ``nsad COMMAND: error: ...`` and exits with 2; Ctrl-C
exits with 130; a failure of the machine (disk full, permissions) prints one line and exits with 1.
Warnings print once each as ``nsad COMMAND: warning: ...``; Lightning's own notices are hidden
unless ``--verbose``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import sys
import warnings
from collections.abc import Iterator, Sequence

from nsad import __version__

COMMANDS = ("demo", "train", "evaluate", "predict", "report", "export", "serve", "compare", "synth", "bench")
"""The subcommands, each a module ``nsad.cli.NAME`` with ``register(subparsers)``; only the one run is imported."""
USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError, FileExistsError,
               PermissionError, TimeoutError)
"""Exceptions whose message is the whole story (nsad raises them naming the file or value): exit status 2."""
LIBRARY_LOGGERS = ("lightning.pytorch", "lightning.fabric", "lightning", "lightning.pytorch.utilities.rank_zero",
                   "lightning.fabric.utilities.rank_zero")
"""Loggers of Lightning's notices. Importing Lightning resets the level of its two top loggers, so the loggers
its notices go through (``rank_zero_info``) are quietened too."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line naming the option, with where to read more."""

    def error(self, message: str) -> None:  # type: ignore[override]
        """Print ``PROG: error: MESSAGE (see PROG --help)`` on stderr and exit with 2."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The top-level parser: with every subcommand, or only the one ``argv`` names (so that only its module loads)."""
    parser = Parser(
        prog="nsad",
        description="Train image anomaly detectors from normal images with natural synthetic anomalies "
                    "(NSA) and its baselines; find and outline defects in new images.")
    parser.add_argument("--version", action="version", version=f"nsad {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=Parser)
    named = next((item for item in argv or () if not item.startswith("-")), None)
    for name in [named] if named in COMMANDS else COMMANDS:
        importlib.import_module(f"nsad.cli.{name}").register(subparsers)
    for name, subparser in subparsers.choices.items():
        subparser.add_argument("--verbose", action="store_true",
                               help="also show the libraries' notices (Lightning's device summary, its warnings)")
        subparser.set_defaults(command=name)
    return parser


def given_options(argv: Sequence[str]) -> set[str]:
    """The destinations of the options written on the command line ``argv`` (not left at their defaults)."""
    parser = build_parser(argv)
    stack = [parser]
    while stack:
        current = stack.pop()
        for action in current._actions:
            action.default = argparse.SUPPRESS
            if isinstance(action, argparse._SubParsersAction):
                stack.extend(action.choices.values())
    namespace, _ = parser.parse_known_args(argv)
    return set(vars(namespace)) - {"command", "handler"}


@contextlib.contextmanager
def messages(command: str, verbose: bool) -> Iterator[None]:
    """Warnings as one line each, once, on stderr; the libraries' notices hidden unless ``verbose``."""
    shown: set[str] = set()

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int, file=None,
             line: str | None = None) -> None:
        text = " ".join(str(message).split())
        if text not in shown:
            shown.add(text)
            print(f"nsad {command}: warning: {text}", file=sys.stderr, flush=True)

    levels = {name: logging.getLogger(name).level for name in LIBRARY_LOGGERS}
    with warnings.catch_warnings():
        warnings.showwarning = show
        if not verbose:
            warnings.filterwarnings("ignore", module=r"lightning(\.|$)")
            warnings.filterwarnings("ignore", module=r"torch(\.|$)")
            for name in LIBRARY_LOGGERS:
                logging.getLogger(name).setLevel(logging.WARNING)
        try:
            yield
        finally:
            for name, level in levels.items():
                logging.getLogger(name).setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; user errors print one line and return 2 instead of a traceback, Ctrl-C 130."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # reported by the subcommand's parser, which names the command and its --help
        subcommands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        subcommands.choices[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    args.given = given_options(argv)
    try:
        with messages(args.command, args.verbose):
            return int(args.handler(args) or 0)
    except USER_ERRORS as error:
        print(f"nsad {args.command}: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nnsad {args.command}: interrupted", file=sys.stderr)
        return 130
    except OSError as error:  # the machine, not the input: disk full, device gone...
        print(f"nsad {args.command}: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 1
