"""CutPaste as its authors built it: a ResNet-18 classifier of normal / CutPaste / scar images.

CutPaste (Li, Sohn, Yoon, Pfister, CVPR 2021) is a two-stage method:

1. Self-supervised representation learning (Sec. 2.1-2.2): a network ``g`` learns to tell normal
   images from CutPaste-augmented ones with a cross-entropy loss,
   ``L_CP = E_x [CE(g(x), 0) + CE(g(CP(x)), 1)]`` (eq. 1); the 3-way variant adds CutPaste-Scar
   as a third class (normal 0, CutPaste 1, scar 2).
2. A Gaussian density estimator on the learned representations ``f`` of the normal training
   images (eq. 2, :class:`nsad.models.density.GaussianDensity`); the anomaly score is the
   Mahalanobis distance of a test image's representation.

For localisation (Sec. 2.4) the same classifier is trained on random crops (eq. 3,
``E_x [CE(g(c(x)), 0) + CE(g(CP(c(x))), 1)]``, e.g. 64x64 crops); at test time every patch on a
grid (the paper: 64x64 patches with stride 4 on 256x256 images) is embedded and scored, and "a
Gaussian smoothing propagates the score to every pixel" (:func:`patch_anomaly_map`). The image
score of the patch model is the maximum patch score (Fig. 1, "spatial max-pooling").

Architecture (:class:`CutPasteNet`, following the paper and its appendix as widely reproduced): a
ResNet-18 encoder trained from scratch, an MLP projection head and a linear classifier, described
in :mod:`~nsad.models.cutpaste.net`.

Which representation feeds the density estimator: the paper writes ``f`` without naming the layer.
We use the 512-d pooled encoder output (``layer="encoder"``, the default), the representation
before the projection head, as the reference reimplementations do and as Sohn et al. (ICLR 2021,
the two-stage framework CutPaste follows) recommend; the 128-d head output is available as
``layer="head"``.

One file per part, like the NSA model: :mod:`~nsad.models.cutpaste.net` (the network),
:mod:`~nsad.models.cutpaste.module` (the Lightning module of stage 1),
:mod:`~nsad.models.cutpaste.density` (stage 2) and :mod:`~nsad.models.cutpaste.patches` (patch
embeddings; the torch-free map itself is :func:`nsad.postprocess.patch_anomaly_map`); this package
re-exports them.

Optimiser (:class:`CutPasteModule`): SGD, learning rate 0.03, momentum 0.9, weight decay 3e-5,
cosine decay of the learning rate to 0 over training (the paper's appendix as reported by the
reference reimplementations; our copy of the paper ends before the appendix).
"""

from nsad.models.cutpaste.density import GaussianDensity, estimate_ledoit_wolf
from nsad.models.cutpaste.module import CutPasteModule
from nsad.models.cutpaste.net import (
    CUTPASTE_CLASSES,
    DEFAULT_HEAD_DIMS,
    EMBEDDING_LAYERS,
    ENCODER_DIM,
    CutPasteConfig,
    CutPasteNet,
    num_classes_for,
)
from nsad.models.cutpaste.patches import embed_patches
from nsad.postprocess import patch_anomaly_map, patch_positions

__all__ = [
    "CUTPASTE_CLASSES",
    "DEFAULT_HEAD_DIMS",
    "EMBEDDING_LAYERS",
    "ENCODER_DIM",
    "CutPasteConfig",
    "CutPasteModule",
    "CutPasteNet",
    "GaussianDensity",
    "embed_patches",
    "estimate_ledoit_wolf",
    "num_classes_for",
    "patch_anomaly_map",
    "patch_positions",
]
