"""Lightning module of CutPaste's first stage: normal / CutPaste / scar classification (Li et al. 2021, eqs. 1, 3)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F

from nsad._checks import check_choice
from nsad.models.cutpaste.net import DEFAULT_HEAD_DIMS, EMBEDDING_LAYERS, CutPasteConfig, CutPasteNet


class CutPasteModule(L.LightningModule):
    """Train :class:`CutPasteNet` on normal / CutPaste (/ scar) classification (CutPaste, eqs. 1, 3).

    Batches are dicts ``{"image": (B, C, H, W) float normalised, "target": (B,) long class index}``
    (class order in :data:`~nsad.models.cutpaste.net.CUTPASTE_CLASSES`), or balanced items of K
    views each, (B, K, C, H, W) images and (B, K) targets, which are flattened into B*K examples
    after the transfer to the device; the loss is the cross-entropy. The optimiser is SGD (``lr``,
    ``momentum``, ``weight_decay``) with ``CosineAnnealingLR`` advanced after every optimiser step
    over ``trainer.estimated_stepping_batches`` steps down to ``lr_min``. The module does no I/O
    and picks no device.

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

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Flatten balanced items, (B, K, C, h, w) images and (B, K) targets, into B*K examples."""
        if isinstance(batch, Mapping) and batch["image"].ndim == 5:
            return {"image": batch["image"].flatten(0, 1), "target": batch["target"].flatten()}
        return batch

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


