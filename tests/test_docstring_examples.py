"""Every example in nsad's docstrings runs and prints what it shows.

The examples are found in every module of the package; a module whose examples all vanish, or a
package without examples, fails here instead of passing with nothing run.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import nsad

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
MODULES = sorted(info.name for info in pkgutil.walk_packages(nsad.__path__, "nsad."))


def _examples(name: str) -> list[doctest.DocTest]:
    return [test for test in doctest.DocTestFinder().find(importlib.import_module(name)) if test.examples]


EXAMPLES = {name: tests for name in MODULES if (tests := _examples(name))}
DOCUMENTED = {
    "nsad._options",
    "nsad.data.transforms",
    "nsad.metrics.aggregate",
    "nsad.metrics.aupro",
    "nsad.metrics.auroc",
    "nsad.metrics.thresholds",
    "nsad.models.cutpaste.density",
    "nsad.models.cutpaste.net",
    "nsad.models.loss",
    "nsad.models.net",
    "nsad.models.ssae.loss",
    "nsad.models.ssae.net",
    "nsad.pipeline.datasets",
    "nsad.postprocess",
    "nsad.synth.cutpaste",
    "nsad.synth.device",
    "nsad.synth.elastic",
}
"""Modules that must keep examples (more may have them)."""


def test_the_documented_modules_have_examples():
    assert DOCUMENTED <= set(EXAMPLES), sorted(DOCUMENTED - set(EXAMPLES))
    assert sum(len(test.examples) for tests in EXAMPLES.values() for test in tests) >= 50


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_docstring_examples(name):
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    for test in EXAMPLES[name]:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.attempted == sum(len(test.examples) for test in EXAMPLES[name]) > 0
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed (output above)"
