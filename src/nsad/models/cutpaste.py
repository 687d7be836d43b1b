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

Architecture (:class:`CutPasteNet`), following the paper and its appendix as widely reproduced:

- Encoder: torchvision's ``resnet18(weights=None)``, trained from scratch (the paper's 95.2 image
  AUROC is from scratch), with its global average pooling: a 512-d vector per image. For one
  input channel ``conv1`` is replaced by a 1-channel convolution of the same shape.
- Projection head: an MLP, each layer ``Linear -> BatchNorm1d -> ReLU``, with widths
  ``head_dims`` (default ``512 x 8, 128``: eight 512-unit layers and a 128-unit layer, as in the
  authors' code base for one-class representation learning that CutPaste builds on).
- Classifier: one linear layer from the head's output to ``num_classes`` logits.

Which representation feeds the density estimator: the paper writes ``f`` without naming the layer.
We use the 512-d pooled encoder output (``layer="encoder"``, the default), the representation
before the projection head, as the reference reimplementations do and as Sohn et al. (ICLR 2021,
the two-stage framework CutPaste follows) recommend; the 128-d head output is available as
``layer="head"``.

Optimiser (:class:`CutPasteModule`): SGD, learning rate 0.03, momentum 0.9, weight decay 3e-5,
cosine decay of the learning rate to 0 over training (the paper's appendix as reported by the
reference reimplementations; our copy of the paper ends before the appendix).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet18

from nsad._checks import check_choice
from nsad.models._config import JsonConfig
from nsad.postprocess import patch_anomaly_map, patch_positions  # noqa: F401  (re-exported: the shared, torch-free implementation)

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


class CutPasteModule(L.LightningModule):
    """Train :class:`CutPasteNet` on normal / CutPaste (/ scar) classification (CutPaste, eqs. 1, 3).

    Batches are dicts ``{"image": (B, C, H, W) float normalised, "target": (B,) long class index}``
    (class order in :data:`CUTPASTE_CLASSES`); the loss is the cross-entropy. The optimiser is SGD
    (``lr``, ``momentum``, ``weight_decay``) with ``CosineAnnealingLR`` advanced after every
    optimiser step over ``trainer.estimated_stepping_batches`` steps down to ``lr_min``. The
    module does no I/O and picks no device.

    Args:
        num_classes: 2 (binary, scar) or 3 (3-way).
        in_channels: 3 or 1.
        head_dims: projection-MLP widths (see :class:`CutPasteConfig`).
        lr: initial SGD learning rate (paper: 0.03).
        momentum: SGD momentum (paper: 0.9).
        weight_decay: L2 weight decay (paper: 3e-5).
        lr_min: learning rate at the end of the cosine decay (0 in the paper).
        embedding_layer: which representation :meth:`embed` returns, ``encoder`` or ``head``.

    Raises:
        ValueError: for invalid architecture values, a non-positive ``lr``, ``lr_min`` outside
            ``[0, lr]``, negative ``momentum`` or ``weight_decay``, or an unknown ``embedding_layer``.
    """

    def __init__(
        self,
        num_classes: int = 3,
        in_channels: int = 3,
        head_dims: Sequence[int] = DEFAULT_HEAD_DIMS,
        lr: float = 0.03,
        momentum: float = 0.9,
        weight_decay: float = 3e-5,
        lr_min: float = 0.0,
        embedding_layer: str = "encoder",
    ) -> None:
        super().__init__()
        check_choice("embedding layer", embedding_layer, EMBEDDING_LAYERS)
        if not lr > 0:
            raise ValueError(f"lr must be positive, got {lr!r}")
        if not 0 <= lr_min <= lr:
            raise ValueError(f"lr_min must be in [0, lr={lr!r}], got {lr_min!r}")
        if momentum < 0 or weight_decay < 0:
            raise ValueError(
                f"momentum and weight_decay must be >= 0, got momentum={momentum!r}, "
                f"weight_decay={weight_decay!r}"
            )
        self.save_hyperparameters()
        self.net = CutPasteNet(
            CutPasteConfig(in_channels=in_channels, num_classes=num_classes, head_dims=tuple(head_dims))
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Return (B, num_classes) logits."""
        return self.net(images)

    def _loss(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, int]:
        if not isinstance(batch, Mapping) or "image" not in batch or "target" not in batch:
            keys = sorted(batch) if isinstance(batch, Mapping) else type(batch).__name__
            raise TypeError(f"a CutPaste batch must be a dict with 'image' and 'target' keys, got {keys}")
        images, targets = batch["image"], batch["target"].long()
        if targets.ndim != 1 or targets.shape[0] != images.shape[0]:
            raise ValueError(f"target must have shape ({images.shape[0]},), got {tuple(targets.shape)}")
        logits = self(images)
        loss = F.cross_entropy(logits, targets)
        accuracy = (logits.argmax(dim=1) == targets).float().mean()
        return loss, accuracy, images.shape[0]

    def training_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Cross-entropy of eq. 1 (or eq. 3 on crops); logs ``train_loss`` and ``train_acc``."""
        loss, accuracy, batch_size = self._loss(batch)
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=batch_size)
        self.log("train_acc", accuracy, on_step=False, on_epoch=True, batch_size=batch_size)
        return loss

    def validation_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Log ``val_loss`` and ``val_acc`` on held-out synthetic examples."""
        loss, accuracy, batch_size = self._loss(batch)
        self.log("val_loss", loss, prog_bar=True, on_step=False, on_epoch=True, batch_size=batch_size)
        self.log("val_acc", accuracy, on_step=False, on_epoch=True, batch_size=batch_size)
        return loss

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Return (B, D) float32 embeddings (``embedding_layer``), computed in eval mode (mode restored)."""
        was_training = self.net.training
        self.net.eval()
        try:
            return self.net.embed(images, layer=self.hparams.embedding_layer).float()
        finally:
            self.net.train(was_training)

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        """Return (B, D) embeddings of a batch (an image tensor or a dict with ``image``)."""
        images = batch["image"] if isinstance(batch, Mapping) else batch
        return self.embed(images)

    def configure_optimizers(self) -> dict[str, Any]:
        """SGD with momentum and weight decay, cosine decay per step (CutPaste's training setup)."""
        optimizer = torch.optim.SGD(
            self.parameters(),
            lr=self.hparams.lr,
            momentum=self.hparams.momentum,
            weight_decay=self.hparams.weight_decay,
        )
        steps = max(1, int(self.trainer.estimated_stepping_batches))
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=steps, eta_min=self.hparams.lr_min
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1},
        }


@torch.no_grad()
def embed_patches(
    embed: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    patch_size: int,
    stride: int,
    batch_size: int = 256,
) -> torch.Tensor:
    """Embed every patch on the grid of :func:`patch_positions` (CutPaste, Sec. 2.4).

    Args:
        embed: maps (N, C, p, p) patches to (N, D) embeddings, e.g. ``CutPasteModule.embed``.
        images: (B, C, H, W) normalised images.
        patch_size: patch side ``p`` in pixels (paper: 64 at 256 px).
        stride: grid step in pixels (paper: 4).
        batch_size: patches per call of ``embed`` (at least one row of patches is passed at once).

    Returns:
        (B, nh, nw, D) embeddings, nh and nw the numbers of offsets along height and width.

    Raises:
        ValueError: if ``images`` is not 4-D, a patch does not fit, or ``batch_size < 1``.
    """
    if images.ndim != 4:
        raise ValueError(f"images must have shape (B, C, H, W), got {tuple(images.shape)}")
    batch_size = _positive_int("batch_size", batch_size)
    n_images, channels, height, width = images.shape
    rows = torch.as_tensor(patch_positions(height, patch_size, stride), device=images.device)
    cols = torch.as_tensor(patch_positions(width, patch_size, stride), device=images.device)
    windows = images.unfold(2, patch_size, 1).unfold(3, patch_size, 1)  # (B, C, H-p+1, W-p+1, p, p) view
    rows_per_call = max(1, batch_size // max(1, n_images * len(cols)))
    chunks = []
    for start in range(0, len(rows), rows_per_call):
        block = windows[:, :, rows[start : start + rows_per_call, None], cols[None, :]]  # (B, C, m, nw, p, p)
        m = block.shape[2]
        patches = block.permute(0, 2, 3, 1, 4, 5).reshape(-1, channels, patch_size, patch_size)
        chunks.append(embed(patches).reshape(n_images, m, len(cols), -1))
    return torch.cat(chunks, dim=1)
