"""``nsad train``: train a model on normal images (the paper's protocol by default).

Its options are :class:`nsad.config.TrainConfig`'s fields (help, parser and default declared
there, :func:`nsad._options.add_options`); ``nsad compare`` takes the same ones but the seed,
method and run folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from nsad._options import add_options, values_from_args
from nsad.config import TrainConfig


def add_training_options(parser: argparse.ArgumentParser, help_overrides: dict[str, str] | None = None) -> None:
    """The options shared by ``train`` and ``compare``: every :class:`TrainConfig` field but seed, method, out."""
    add_options(parser, TrainConfig, shared_only=True, help_overrides=help_overrides)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``nsad train`` to the command line."""
    parser = subparsers.add_parser(
        "train", help="train a model on normal images",
        description="Train a model of --method on the normal images of --data (the NSA paper's "
                    "encoder-decoder on synthetic anomalies by default) and write a run folder: "
                    "model.safetensors, run.json (all that is needed to score; CutPaste runs add "
                    "density.safetensors), checkpoints/last.ckpt, logs/metrics.csv and config.json.")
    add_options(parser, TrainConfig)
    parser.set_defaults(handler=run)


def config_from_args(args: argparse.Namespace, **overrides: object) -> TrainConfig:
    """The :class:`TrainConfig` of the parsed command line, with ``overrides`` on top."""
    return TrainConfig(**{**values_from_args(args, TrainConfig), **overrides})


def with_run_settings(config: TrainConfig, given: set[str]) -> TrainConfig:
    """For ``--resume``: the run's own settings (its ``config.json``) where the command line does not give one.

    Settings that are given are kept, so that :func:`nsad.pipeline.train.train` refuses those that
    differ from the run's; settings of how to train (devices, workers...) keep this call's values.
    """
    from nsad.pipeline._runfolder import CONFIG_FILE, RUNTIME_SETTINGS

    try:
        saved = json.loads((Path(config.out) / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return config  # train() says what is wrong with the folder
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    # the preset is resolved again from the data (config.json holds the resolved name, which may be an
    # estimated one that is no --preset value); a --preset given is compared with it by train()
    taken = {name: saved[name] for name in fields - (RUNTIME_SETTINGS - {"epochs"}) - {"preset"}
             if name in saved and name not in given}
    return dataclasses.replace(config, **taken)


def run(args: argparse.Namespace) -> int:
    """Train the run the command line describes."""
    from nsad.pipeline.train import train

    config = config_from_args(args)
    if config.resume:
        config = with_run_settings(config, getattr(args, "given", set()))
    train(config)
    return 0
