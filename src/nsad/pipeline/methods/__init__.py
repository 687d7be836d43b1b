"""The methods of ``nsad train`` that do not train the NSA paper's encoder-decoder.

- ``cutpaste-3way``, ``cutpaste-binary``, ``cutpaste-scar``: CutPaste as its authors built it
  (Li et al., CVPR 2021): a ResNet-18 classifier, then Gaussian densities on its embeddings
  (:mod:`nsad.pipeline.methods.cutpaste`).
- ``ssae``: Bauer's self-supervised autoencoder (Bauer 2022) (:mod:`nsad.pipeline.methods.ssae`).

The segmentation methods (``nsa-*``, ``cutpaste-e2e``, ``fpi``, ``pii``) are in
:data:`nsad.pipeline.train.SEGMENTATION_METHODS`. Each method here is a
:class:`~nsad.pipeline.methods._base.Method`; :data:`SCORING_MODELS` turns a loaded run of each
model kind into a scorer for :class:`~nsad.pipeline.scoring.Scorer`.
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
from nsad.pipeline.methods.ssae import ElasticTrainingSet, SSAEMethod, SSAEOptions, SSAEScorer

METHODS: dict[str, Method] = {
    **{name: CutPasteMethod(name) for name in CUTPASTE_CLASSES},
    "ssae": SSAEMethod("ssae"),
}
"""Method name -> its part of ``nsad train``."""

SCORING_MODELS: dict[str, Callable] = {"cutpaste": CutPasteScorer, "ssae": SSAEScorer}
"""Run model kind -> scorer class ``(loaded_run, device) -> MapModel``."""

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
    "TrainSetup",
    "build_options",
]
