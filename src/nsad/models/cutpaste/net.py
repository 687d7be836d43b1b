"""CutPaste's network (Li et al., CVPR 2021, Sec. 2.1): ResNet-18 encoder, MLP projection head, classifier.

- Encoder: torchvision's ``resnet18(weights=None)``, trained from scratch (the paper's 95.2 image
  AUROC is from scratch), with its global average pooling: a 512-d vector per image. For one
  input channel ``conv1`` is replaced by a 1-channel convolution of the same shape.
- Projection head: an MLP, each layer ``Linear -> BatchNorm1d -> ReLU``, with widths
  ``head_dims`` (default ``512 x 8, 128``: eight 512-unit layers and a 128-unit layer, as in the
  authors' code base for one-class representation learning that CutPaste builds on).
- Classifier: one linear layer from the head's output to ``num_classes`` logits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torchvision.models import resnet18

from nsad._checks import check_choice
from nsad.models._config import JsonConfig

CUTPASTE_CLASSES: dict[str, tuple[str, ...]] = {
    "cutpaste-binary": ("normal", "cutpaste"),
    "cutpaste-scar": ("normal", "scar"),
    "cutpaste-3way": ("normal", "cutpaste", "scar"),
}
"""Class names by method, in target order: the target of an image is its index here."""

DEFAULT_HEAD_DIMS: tuple[int, ...] = (512, 512, 512, 512, 512, 512, 512, 512, 128)
EMBEDDING_LAYERS: tuple[str, ...] = ("encoder", "head")
ENCODER_DIM = 512


def num_classes_for(method: str) -> int:
    """Return the number of classes of a CutPaste ``method`` (2 for binary and scar, 3 for 3-way).

    Raises:
        ValueError: if ``method`` is not one of :data:`CUTPASTE_CLASSES`.
    """
    check_choice("CutPaste method", method, CUTPASTE_CLASSES)
    return len(CUTPASTE_CLASSES[method])


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class CutPasteConfig(JsonConfig):
    """Everything needed to rebuild a :class:`CutPasteNet` (weights aside).

    Attributes:
        in_channels: input channels, 3 (RGB) or 1 (grayscale).
        num_classes: classifier outputs, 2 (binary, scar) or 3 (3-way).
        head_dims: widths of the projection MLP's layers (at least one).
    """

    config_name: ClassVar[str] = "CutPaste"

    in_channels: int = 3
    num_classes: int = 3
    head_dims: tuple[int, ...] = DEFAULT_HEAD_DIMS

    def __post_init__(self) -> None:
        if isinstance(self.in_channels, bool) or self.in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3, got {self.in_channels!r}")
        if isinstance(self.num_classes, bool) or self.num_classes not in (2, 3):
            raise ValueError(f"num_classes must be 2 (binary, scar) or 3 (3-way), got {self.num_classes!r}")
        dims = self.head_dims
        if (
            isinstance(dims, str)
            or not isinstance(dims, Sequence)
            or len(dims) < 1
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in dims)
        ):
            raise ValueError(f"head_dims must be a non-empty sequence of positive ints, got {dims!r}")
        object.__setattr__(self, "head_dims", tuple(dims))


class CutPasteNet(nn.Module):
    """ResNet-18 encoder, MLP projection head and linear classifier (CutPaste, Sec. 2.1).

    ``forward`` always returns class logits (B, num_classes); :meth:`embed` returns the
    representation used by the density estimator. Works on any input of at least 32x32 pixels
    (whole images or patches) thanks to the global average pooling.

    Args:
        config: the architecture; keyword arguments build one when it is omitted.
        **options: :class:`CutPasteConfig` fields, e.g. ``num_classes=2``.

    Example:
        >>> import torch
        >>> net = CutPasteNet(num_classes=3, head_dims=(64, 32)).eval()
        >>> net(torch.zeros(2, 3, 64, 64)).shape, net.embed(torch.zeros(2, 3, 64, 64)).shape
        (torch.Size([2, 3]), torch.Size([2, 512]))
    """

    def __init__(self, config: CutPasteConfig | None = None, **options: Any) -> None:
        super().__init__()
        if config is not None and options:
            raise TypeError(
                f"give either config or keyword options, not both (got options {sorted(options)})"
            )
        self.config = config if config is not None else CutPasteConfig(**options)
        cfg = self.config
        backbone = resnet18(weights=None)
        if cfg.in_channels != 3:
            backbone.conv1 = nn.Conv2d(cfg.in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
            nn.init.kaiming_normal_(backbone.conv1.weight, mode="fan_out", nonlinearity="relu")
        backbone.fc = nn.Identity()  # the pooled 512-d features are the encoder's output
        self.encoder = backbone
        layers: list[nn.Module] = []
        width = ENCODER_DIM
        for dim in cfg.head_dims:
            layers += [nn.Linear(width, dim), nn.BatchNorm1d(dim), nn.ReLU(inplace=True)]
            width = dim
        self.head = nn.Sequential(*layers)
        self.classifier = nn.Linear(width, cfg.num_classes)

    def _check(self, images: torch.Tensor) -> None:
        if images.ndim != 4 or images.shape[1] != self.config.in_channels:
            raise ValueError(
                f"images must have shape (B, {self.config.in_channels}, H, W), got {tuple(images.shape)}"
            )
        if min(images.shape[-2:]) < 32:
            raise ValueError(
                f"images must be at least 32x32 pixels (ResNet-18 downsamples by 32), "
                f"got {tuple(images.shape[-2:])}"
            )

    def features(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(encoder (B, 512), head (B, head_dims[-1]), logits (B, num_classes))`` in one pass."""
        self._check(images)
        encoded = self.encoder(images)
        projected = self.head(encoded)
        return encoded, projected, self.classifier(projected)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Return class logits.

        Args:
            images: (B, C, H, W) normalised float images (ImageNet mean/std for RGB), H, W >= 32.

        Returns:
            (B, num_classes) logits; class 0 is normal (see :data:`CUTPASTE_CLASSES`).

        Raises:
            ValueError: if ``images`` is not (B, in_channels, H, W) with H, W >= 32.
        """
        return self.features(images)[2]

    def embed(self, images: torch.Tensor, layer: str = "encoder") -> torch.Tensor:
        """Return the representation ``f`` for the density estimator.

        Args:
            images: as for :meth:`forward`.
            layer: ``encoder`` (512-d pooled ResNet features, before the projection head; the
                default) or ``head`` (the projection head's output).

        Returns:
            (B, D) embeddings. Runs in the module's current mode; use ``.eval()`` for inference.

        Raises:
            ValueError: for an unknown ``layer`` or badly shaped ``images``.
        """
        check_choice("embedding layer", layer, EMBEDDING_LAYERS)
        self._check(images)
        encoded = self.encoder(images)
        return encoded if layer == "encoder" else self.head(encoded)


