"""Bauer's self-supervised autoencoder: SDC autoencoder, objectives (1)-(3), heatmap, Lightning module.

A. Bauer, *Self-Supervised Training with Autoencoders for Visual Anomaly Detection* (arXiv, 2022).
An autoencoder ``F: [0, 1]^{n x m x 3} -> [0, 1]^{n x m x 3}`` is fed a distorted copy ``X̂`` of a
normal image ``X`` (a randomly shaped region ``M`` replaced by an elastically deformed copy of
itself, Sec. 3.2; built by :mod:`nsad.synth.elastic`) and trained to give back ``X``:

- objective (1) (:func:`masked_loss`) weights the reconstruction error on the untouched region
  ``M̄`` and on the modified region ``M`` by ``λ`` and ``1 - λ``, each normalised by its area;
- objective (3) (:func:`change_weighted_loss`) instead *rewards* error in the modified region,
  weighted by the real-valued mask ``|X̂ - X|`` (objective (2) is the same with the binary ``M``).

At test time the input is not modified; the heatmap is the channel mean of ``|F(X) - X|``,
Gaussian-smoothed (Sec. 3.1, :func:`reconstruction_anomaly_map`), and defects are segmented by a
threshold and a minimum defect area chosen on normal validation images (Sec. 4.2,
:func:`nsad.postprocess.calibrate_threshold`, :func:`nsad.postprocess.segment_defects`).

Images in this package are float tensors in [0, 1] (the paper's ``F`` maps [0, 1] to [0, 1]): the
network ends in a sigmoid, and ``X``, ``X̂``, ``|X̂ - X|`` and the heatmap all live in that range.

One file per part, like the NSA model: :mod:`~nsad.models.ssae.net` (the network, Table 1),
:mod:`~nsad.models.ssae.loss` (the objectives), :mod:`~nsad.models.ssae.heatmap` (the test-time
map) and :mod:`~nsad.models.ssae.module` (the Lightning module); this package re-exports them.
"""

from nsad.models.ssae.heatmap import gaussian_blur, reconstruction_anomaly_map
from nsad.models.ssae.loss import ERROR_KINDS, OBJECTIVES, ErrorKind, change_weighted_loss, masked_loss, ssae_loss
from nsad.models.ssae.module import SSAEModule
from nsad.models.ssae.net import STRIDE, SSAEConfig, SSAENet, StackedDilatedConv

__all__ = [
    "ERROR_KINDS",
    "OBJECTIVES",
    "STRIDE",
    "ErrorKind",
    "SSAEConfig",
    "SSAEModule",
    "SSAENet",
    "StackedDilatedConv",
    "change_weighted_loss",
    "gaussian_blur",
    "masked_loss",
    "reconstruction_anomaly_map",
    "ssae_loss",
]
