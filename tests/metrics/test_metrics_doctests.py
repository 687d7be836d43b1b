"""The examples in the metrics docstrings run and print what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize("name", ["auroc", "aupro", "thresholds", "aggregate"])
def test_docstring_examples(name):
    module = importlib.import_module(f"nsad.metrics.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
