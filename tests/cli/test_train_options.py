"""The train and compare command lines are TrainConfig's fields: one declaration of each setting."""

import argparse
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from nsad._options import add_options, field_docs, integer, option, values_from_args
from nsad.cli import build_parser, given_options
from nsad.cli.train import config_from_args
from nsad.config import TrainConfig

TRAIN_ONLY = {"out", "method", "seed", "resume"}


def _parse(argv):
    return build_parser(argv).parse_args(argv)


def test_every_setting_is_on_the_command_line_with_the_class_default():
    args = _parse(["train", "--data", "d", "--out", "o"])
    config = config_from_args(args)
    assert config == TrainConfig(data=Path("d"), out=Path("o"))
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert fields <= set(vars(args))  # every field is an option, under its own name


def test_compare_takes_the_shared_settings_but_seed_method_and_resume():
    args = _parse(["compare", "--data", "d", "--out", "o", "--methods", "fpi"])
    names = set(vars(args))
    shared = {f.name for f in dataclasses.fields(TrainConfig)} - TRAIN_ONLY
    assert shared <= names and not {"method", "seed", "resume"} & names
    data = next(a for a in build_parser(["compare"])._subparsers._group_actions[0].choices["compare"]._actions
                if a.dest == "data")
    assert "train/ and test/" in data.help and data.required  # compare's own help for the shared field


def test_flags_reach_their_fields():
    argv = ["train", "--data", "d", "--out", "o", "--batch-size", "8", "--lr", "0.01", "--lr-min", "0",
            "--devices", "2", "--no-progress", "--synth-on-device", "--option", "stride_px=4", "--method",
            "cutpaste-binary", "--standardize-input", "no", "--tile", "64", "--protocol", "whole"]
    values = values_from_args(_parse(argv), TrainConfig)
    assert values["batch_size"] == 8 and values["lr"] == 0.01 and values["lr_min"] == 0.0
    assert values["devices"] == 2 and values["progress"] is False and values["synth_device"] == "batch"
    assert values["options"] == {"stride_px": 4} and values["standardize_input"] is False
    assert given_options(argv) == {"data", "out", "batch_size", "lr", "lr_min", "devices", "progress",
                                   "synth_device", "options", "method", "standardize_input", "tile", "protocol"}


def test_help_shows_each_default_once_and_the_docstring_the_same_help(capsys):
    with pytest.raises(SystemExit):
        build_parser(["train"]).parse_args(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "examples per optimiser step, shared out among the processes of a multi-process run (default: 64, " \
           "the paper's)" in text
    assert "--lr LR the cosine schedule's first learning rate (default: 0.001, the paper's)" in text
    assert "workers: data loader processes (default: CPU cores - 1, at most 8)" in " ".join(TrainConfig.__doc__.split())
    assert "progress: show Lightning's progress bar (default: True)." in TrainConfig.__doc__


def test_a_new_field_needs_one_declaration():
    @dataclasses.dataclass(frozen=True)
    class Settings:
        name: str = option(help="what to call it")
        steps: int = option(3, parse=integer(1), help="optimiser steps")

    parser = argparse.ArgumentParser()
    add_options(parser, Settings)
    assert values_from_args(parser.parse_args(["--name", "x"]), Settings) == {"name": "x", "steps": 3}
    assert Settings(**values_from_args(parser.parse_args(["--name", "x", "--steps", "5"]), Settings)).steps == 5
    assert "optimiser steps (default: 3)" in parser.format_help()
    with pytest.raises(SystemExit):
        parser.parse_args(["--steps", "5"])  # --name is required: the field has no default
    with pytest.raises(SystemExit):
        parser.parse_args(["--name", "x", "--steps", "0"])
    assert field_docs(Settings) == ("Attributes:\n    name: what to call it (required).\n"
                                    "    steps: optimiser steps (default: 3).")


def test_the_command_line_is_built_without_torch():
    code = ("import sys; from nsad.cli import build_parser; build_parser(['train']); build_parser(['compare']); "
            "import nsad.config; assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
