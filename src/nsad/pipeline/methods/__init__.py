"""The methods of ``nsad train``, one entry each: :data:`METHODS`.

An entry (a :class:`~nsad.pipeline.methods._base.Method`) owns the method's synthetic task, its
Lightning module, its options, its run kind, its scorer and its image score rule; ``nsad train``,
scoring, ``nsad compare`` and the command line's help read them from here, and the export graph
of each run kind is :data:`nsad.pipeline.export.GRAPHS`.

- the segmentation methods (:mod:`~nsad.pipeline.methods.segmentation`): the NSA paper's
  encoder-decoder on NSA's, CutPaste's, FPI's or PII's synthetic examples;
- ``cutpaste-3way``, ``cutpaste-binary``, ``cutpaste-scar``: CutPaste as its authors built it
  (Li et al., CVPR 2021): a ResNet-18 classifier, then Gaussian densities on its embeddings
  (:mod:`~nsad.pipeline.methods.cutpaste`);
- ``ssae``: Bauer's self-supervised autoencoder (Bauer 2022) (:mod:`~nsad.pipeline.methods.ssae`).

Adding a method: write its module here (a ``Method`` subclass: task, training set, module,
scorer; its graph in :data:`nsad.pipeline.export.GRAPHS` if it is a new run kind) and add its
entry to :data:`METHODS`.
"""

from __future__ import annotations

from collections.abc import Callable

from nsad.models.cutpaste import CUTPASTE_CLASSES
from nsad.pipeline.methods._base import Method, TrainSetup, build_options
from nsad.pipeline.methods.cutpaste import (
    DENSITY_NAME,
    CutPasteMethod,
    CutPasteOptions,
    CutPasteScorer,
    CutPasteTrainingSet,
)
from nsad.pipeline.methods.segmentation import SEGMENTATION_ENTRIES, SegmentationMethod, SegmentationModel
from nsad.pipeline.methods.ssae import ElasticTrainingSet, SSAEMethod, SSAEOptions, SSAEScorer

METHODS: dict[str, Method] = {
    **{method.name: method for method in SEGMENTATION_ENTRIES},
    **{name: CutPasteMethod(name) for name in CUTPASTE_CLASSES},
    "ssae": SSAEMethod("ssae"),
}
"""Method name -> its entry, in the order the command line lists them."""

SCORING_MODELS: dict[str, Callable] = {}
"""Run model kind -> ``scorer(loaded_run, device) -> MapModel`` (the first method of each kind)."""
for _method in METHODS.values():
    SCORING_MODELS.setdefault(_method.model, _method.scorer)


def method_help() -> str:
    """The methods for the command line's help: names (with their notes) grouped by family."""
    groups: dict[str, list[str]] = {}
    for method in METHODS.values():
        groups.setdefault(method.family, []).append(f"{method.name} ({method.help})" if method.help else method.name)
    return "; ".join(f"{', '.join(names)}: {family}" for family, names in groups.items())


__all__ = [
    "DENSITY_NAME",
    "METHODS",
    "SCORING_MODELS",
    "CutPasteMethod",
    "CutPasteOptions",
    "CutPasteScorer",
    "CutPasteTrainingSet",
    "ElasticTrainingSet",
    "Method",
    "SSAEMethod",
    "SSAEOptions",
    "SSAEScorer",
    "SegmentationMethod",
    "SegmentationModel",
    "TrainSetup",
    "build_options",
    "method_help",
]
