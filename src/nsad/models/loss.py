"""Pixel-wise training objectives of the NSA paper (eqs. 15-16), chosen by the kind of label.

Bounded labels (binary, eq. 13, or logistic, eq. 14, values in [0, 1]) are learned with binary
cross-entropy on a sigmoid output; unbounded continuous labels (eq. 13; the training set divides
the synthetic label's 8-bit levels by 255, so they are fractions of the intensity range) with mean
squared error on a ReLU output. Both losses take the network's raw logits, so that the
sigmoid is folded into a numerically stable BCE-with-logits. Losses are computed in float32 even
under autocast.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from nsad._checks import check_choice
from nsad.models.net import LABEL_KINDS, LabelKind


def _match_shapes(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if labels.ndim == 3:
        labels = labels.unsqueeze(1)
    if logits.ndim != 4 or logits.shape[1] != 1:
        raise ValueError(f"logits must have shape (B, 1, H, W), got {tuple(logits.shape)}")
    if labels.shape != logits.shape:
        raise ValueError(
            f"labels must have shape {tuple(logits.shape)} or (B, H, W) to match the logits, "
            f"got {tuple(labels.shape)}"
        )
    if not labels.is_floating_point():
        raise TypeError(f"labels must be a floating-point tensor, got {labels.dtype}")
    return logits.float(), labels.float()


def bce_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy for bounded labels (NSA paper, eq. 15).

    L_bce = 1/(W H) sum_i [ -y_i log(s_i) - (1 - y_i) log(1 - s_i) ],  s_i = sigmoid(logit_i),

    averaged over the batch as well.

    Args:
        logits: (B, 1, H, W) raw network outputs.
        labels: (B, 1, H, W) or (B, H, W) float labels in [0, 1] (not checked, to avoid a device
            synchronisation per step).

    Returns:
        A float32 scalar tensor.

    Raises:
        ValueError: if the shapes do not match.
        TypeError: if ``labels`` is not floating point.

    Example:
        >>> import torch
        >>> bce_loss(torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2))  # -log(sigmoid(0)) = log 2
        tensor(0.6931)
    """
    logits, labels = _match_shapes(logits, labels)
    return F.binary_cross_entropy_with_logits(logits, labels)


def mse_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean squared error after a ReLU, for unbounded continuous labels (NSA paper, eq. 16).

    L_mse = 1/(W H) sum_i ( y_i - relu(logit_i) )^2, averaged over the batch as well.

    Args:
        logits: (B, 1, H, W) raw network outputs.
        labels: (B, 1, H, W) or (B, H, W) float labels >= 0 (for NSA's continuous labels: 8-bit
            levels divided by 255, as the training set gives them).

    Returns:
        A float32 scalar tensor.

    Raises:
        ValueError: if the shapes do not match.
        TypeError: if ``labels`` is not floating point.

    Example:
        >>> import torch
        >>> mse_loss(torch.tensor([[[[-1.0, 3.0]]]]), torch.tensor([[[0.5, 1.0]]]))  # ((0.5 - 0)² + (1 - 3)²) / 2
        tensor(2.1250)
    """
    logits, labels = _match_shapes(logits, labels)
    return F.mse_loss(torch.relu(logits), labels)


def segmentation_loss(logits: torch.Tensor, labels: torch.Tensor, label_kind: LabelKind) -> torch.Tensor:
    """Return :func:`bce_loss` for ``bounded`` labels and :func:`mse_loss` for ``continuous`` ones.

    Raises:
        ValueError: if ``label_kind`` is unknown or the shapes do not match.
        TypeError: if ``labels`` is not floating point.
    """
    check_choice("label_kind", label_kind, LABEL_KINDS)
    return bce_loss(logits, labels) if label_kind == "bounded" else mse_loss(logits, labels)
