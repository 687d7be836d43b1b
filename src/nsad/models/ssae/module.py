"""Lightning module of Bauer's autoencoder: distorted batch -> :class:`SSAENet` -> objective (1), (2) or (3)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import lightning as L
import torch

from nsad._checks import check_choice, check_range
from nsad.models.ssae.heatmap import reconstruction_anomaly_map
from nsad.models.ssae.loss import ERROR_KINDS, OBJECTIVES, ErrorKind, ssae_loss
from nsad.models.ssae.net import SSAEConfig, SSAENet


class SSAEModule(L.LightningModule):
    """Train :class:`SSAENet` with objective (1), (2) or (3) of Bauer 2022.

    Training batches are dicts ``{"image": X̂ (B, C, H, W) in [0, 1], "target": X (B, C, H, W) in
    [0, 1], "region": M (B, 1, H, W) bool or float, "change": |X̂ - X| (B, 1 or C, H, W),
    optional}``; without ``change``, objective 3 uses the per-channel ``|image - target|``. The
    paper states no optimiser or learning rate; we use Adam with a constant ``lr`` (1e-3 by
    default). The paper also grows the input size during training (progressive training, Sec. 3.2)
    and augments with 90° rotations and flips (Sec. 4.1): that is the data pipeline's business.

    Args:
        objective: 1 (default, the paper's easier-to-train choice), 2 or 3.
        lam: ``λ`` (paper: 0.5 for objective 1; not reported for objective 3).
        error: ``squared`` (default) or ``norm`` (eq. (1) literally), see :func:`~nsad.models.ssae.loss.masked_loss`.
        lr: Adam learning rate.
        weight_decay: Adam's L2 weight decay.
        sigma_px: Gaussian smoothing of the heatmap in pixels.
        **net_options: :class:`SSAEConfig` fields (``in_channels``, ``base_channels``, ...).

    Raises:
        ValueError: for an unknown ``objective`` or ``error``, ``lam`` outside [0, 1], a
            non-positive ``lr``, a negative ``weight_decay`` or ``sigma_px``, or invalid net options.
    """

    def __init__(
        self,
        objective: int = 1,
        lam: float = 0.5,
        error: ErrorKind = "squared",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        sigma_px: float = 4.0,
        **net_options: Any,
    ) -> None:
        super().__init__()
        if isinstance(objective, bool) or objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {list(OBJECTIVES)}, got {objective!r}")
        check_range("lam", lam, 0.0, 1.0)
        check_choice("error", error, ERROR_KINDS)
        if not lr > 0:
            raise ValueError(f"lr must be positive, got {lr!r}")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
        if not (math.isfinite(sigma_px) and sigma_px >= 0):
            raise ValueError(f"sigma_px must be a finite number >= 0, got {sigma_px!r}")
        self.save_hyperparameters()
        self.net = SSAENet(SSAEConfig(**net_options))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Return the reconstruction (B, C, H, W) in (0, 1)."""
        return self.net(images)

    def _loss(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        needed = ("image", "target", "region")
        if not isinstance(batch, Mapping) or any(key not in batch for key in needed):
            keys = sorted(batch) if isinstance(batch, Mapping) else type(batch).__name__
            raise TypeError(
                f"an SSAE batch must be a dict with keys {list(needed)} (and optionally 'change'), got {keys}"
            )
        images, targets = batch["image"], batch["target"]
        change = batch.get("change")
        if change is None and self.hparams.objective == 3:
            change = (images - targets).abs()
        loss = ssae_loss(
            self(images),
            targets,
            batch["region"],
            objective=self.hparams.objective,
            lam=self.hparams.lam,
            change=change,
            error=self.hparams.error,
        )
        return loss, images.shape[0]

    def training_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Objective (1)/(2)/(3) on a batch; logs ``train_loss``."""
        loss, batch_size = self._loss(batch)
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=batch_size)
        return loss

    def validation_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Logs ``val_loss`` on held-out distorted examples."""
        loss, batch_size = self._loss(batch)
        self.log("val_loss", loss, prog_bar=True, on_step=False, on_epoch=True, batch_size=batch_size)
        return loss

    @torch.no_grad()
    def anomaly_map(self, images: torch.Tensor) -> torch.Tensor:
        """Return (B, H, W) float32 heatmaps of unmodified [0, 1] images, in eval mode (restored after)."""
        was_training = self.net.training
        self.net.eval()
        try:
            return reconstruction_anomaly_map(self.net(images), images, self.hparams.sigma_px)
        finally:
            self.net.train(was_training)

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        """Return (B, H, W) heatmaps of a batch (an image tensor or a dict with ``image``)."""
        images = batch["image"] if isinstance(batch, Mapping) else batch
        return self.anomaly_map(images)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adam with a constant learning rate (the paper names none)."""
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
