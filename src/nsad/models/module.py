"""Lightning wrapper around :class:`AnomalyNet`: batch -> network -> loss, with the paper's optimiser.

NSA paper, Sec. 4.1: Adam with a cosine-annealing learning rate decaying from 1e-3 to 1e-6 over
the training epochs; BCE (eq. 15) for bounded labels, MSE after a ReLU (eq. 16) for continuous ones.
The module does no I/O and picks no device: the Trainer does that. Batches are dicts
``{"image": (B, C, H, W) float normalised, "label": (B, 1, H, W) or (B, H, W) float}``.
``on_after_batch_transfer`` is left to Lightning's default; :class:`DeviceSynthModule` overrides it
to synthesise the anomalies on the device (``nsad train --synth-on-device``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import lightning as L
import torch

from nsad._checks import check_choice
from nsad.models.loss import segmentation_loss
from nsad.models.net import AnomalyNet, LabelKind, NetConfig

LR_INTERVALS: tuple[str, ...] = ("step", "epoch")


def _images_of(batch: Any) -> torch.Tensor:
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, Mapping) and "image" in batch:
        return batch["image"]
    raise TypeError(
        f"a batch must be an image tensor or a dict with an 'image' key, got {type(batch).__name__}"
        + (f" with keys {sorted(batch)}" if isinstance(batch, Mapping) else "")
    )


class NSAModule(L.LightningModule):
    """Train :class:`AnomalyNet` to segment synthetic anomalies (NSA paper, Sec. 4.1).

    The cosine schedule is ``torch.optim.lr_scheduler.CosineAnnealingLR`` from ``lr`` to
    ``lr_min``. With ``lr_interval="step"`` (the default) it advances after every optimiser step
    over ``trainer.estimated_stepping_batches`` steps, so the last step of training runs at about
    ``lr_min`` whatever the number of epochs (a smooth version of the paper's schedule that also
    suits short runs). With ``lr_interval="epoch"`` it advances once per epoch over ``max_epochs``
    epochs (``trainer.max_epochs`` when None), as in the paper; the learning rate is ``lr_min``
    after the last epoch. On ``--resume`` Lightning restores the scheduler's state, including its
    length, so a resumed run keeps the schedule it started with.

    The network options are :class:`NetConfig`'s fields, so ``NSAModule(**config.to_dict())``
    rebuilds a module around a run's configuration.

    Args:
        in_channels: input channels, 3 or 1.
        label_kind: ``bounded`` (sigmoid + BCE) or ``continuous`` (ReLU + MSE).
        lr: initial learning rate of Adam (paper: 1e-3).
        lr_min: final learning rate of the cosine schedule (paper: 1e-6).
        max_epochs: schedule length in epochs for ``lr_interval="epoch"``; ignored for ``step``.
        lr_interval: ``step`` or ``epoch``, see above.
        channels_last: keep weights and inputs in channels-last memory format (faster on many
            CPUs and on tensor cores).
        bottleneck_channels, decoder_channels, skip_connections, decoder, standardize_input: see
            :class:`NetConfig`.

    Raises:
        ValueError: for an unknown ``label_kind`` or ``lr_interval``, non-positive learning rates,
            ``lr_min > lr`` or ``max_epochs < 1``.
    """

    def __init__(
        self,
        in_channels: int = 3,
        label_kind: LabelKind = "bounded",
        lr: float = 1e-3,
        lr_min: float = 1e-6,
        max_epochs: int | None = None,
        lr_interval: Literal["step", "epoch"] = "step",
        channels_last: bool = False,
        bottleneck_channels: Sequence[int] = (256, 128),
        decoder_channels: Sequence[int] = (128, 64, 32, 16, 16),
        skip_connections: bool = False,
        decoder: str = "nsad",
        standardize_input: bool = False,
    ) -> None:
        super().__init__()
        check_choice("lr_interval", lr_interval, LR_INTERVALS)
        if not (lr > 0 and lr_min > 0):
            raise ValueError(f"lr and lr_min must be positive, got lr={lr!r}, lr_min={lr_min!r}")
        if lr_min > lr:
            raise ValueError(f"lr_min must not exceed lr, got lr={lr!r}, lr_min={lr_min!r}")
        if max_epochs is not None and max_epochs < 1:
            raise ValueError(f"max_epochs must be at least 1 or None, got {max_epochs!r}")
        self.save_hyperparameters()
        self.net = AnomalyNet(
            NetConfig(
                in_channels=in_channels,
                label_kind=label_kind,
                bottleneck_channels=tuple(bottleneck_channels),
                decoder_channels=tuple(decoder_channels),
                skip_connections=skip_connections,
                decoder=decoder,
                standardize_input=standardize_input,
            )
        )
        self.channels_last = bool(channels_last)
        if self.channels_last:
            self.net.to(memory_format=torch.channels_last)

    @property
    def label_kind(self) -> LabelKind:
        """``bounded`` or ``continuous``."""
        return self.net.config.label_kind

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        return images.contiguous(memory_format=torch.channels_last) if self.channels_last else images

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Return (B, 1, H, W) raw logits (see :meth:`AnomalyNet.forward`)."""
        return self.net(self._prepare(images))

    def _loss(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        if not isinstance(batch, Mapping) or "image" not in batch or "label" not in batch:
            keys = sorted(batch) if isinstance(batch, Mapping) else type(batch).__name__
            raise TypeError(f"a training batch must be a dict with 'image' and 'label' keys, got {keys}")
        images = batch["image"]
        return segmentation_loss(self(images), batch["label"], self.label_kind), images.shape[0]

    def training_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Compute the loss of eq. 15 or 16 on a batch and log it as ``train_loss`` (progress bar)."""
        loss, batch_size = self._loss(batch)
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=batch_size)
        return loss

    def validation_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Log the loss on held-out synthetic examples as ``val_loss`` (never the test set)."""
        loss, batch_size = self._loss(batch)
        self.log(
            "val_loss",
            loss,
            prog_bar=True,
            on_step=False,
            on_epoch=True,
            batch_size=batch_size,
            sync_dist=True,
        )
        return loss

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        """Return (B, H, W) float32 anomaly maps for a batch (an image tensor or a dict with ``image``)."""
        return self.anomaly_map(_images_of(batch))

    @torch.no_grad()
    def anomaly_map(self, images: torch.Tensor) -> torch.Tensor:
        """Return (B, H, W) float32 anomaly maps, computed in eval mode; the mode is restored after.

        Args:
            images: (B, C, H, W) normalised float images on the module's device.
        """
        was_training = self.net.training
        self.net.eval()
        try:
            return self.net.anomaly_map(self._prepare(images))
        finally:
            self.net.train(was_training)

    def _schedule_length(self) -> int:
        if self.hparams.lr_interval == "step":
            return max(1, int(self.trainer.estimated_stepping_batches))
        epochs = self.hparams.max_epochs or self.trainer.max_epochs
        if epochs is None or epochs < 1:
            raise ValueError(
                "lr_interval='epoch' needs the schedule length: give NSAModule(max_epochs=...) or "
                f"Trainer(max_epochs=...), got Trainer max_epochs={self.trainer.max_epochs!r}"
            )
        return int(epochs)

    def configure_optimizers(self) -> dict[str, Any]:
        """Adam(lr) with cosine annealing to ``lr_min`` (NSA paper, Sec. 4.1)."""
        optimizer = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=self._schedule_length(), eta_min=self.hparams.lr_min
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": self.hparams.lr_interval, "frequency": 1},
        }


class DeviceSynthModule(NSAModule):
    """:class:`NSAModule` that makes its training examples on the device from planned batches.

    Set :attr:`device_synth` (not a constructor argument, so that the hyperparameters and the
    run files stay those of ``NSAModule``). A batch with a ``plan`` is finished by it in
    ``on_after_batch_transfer``, after Lightning moved it to the device and before the step;
    other batches pass unchanged.
    """

    device_synth: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None
    """A :class:`~nsad.pipeline.device_synth.DeviceSynth`: planned batch -> ``{"image", "label"}``."""

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Blend, label and normalise a planned batch on its device (see :attr:`device_synth`).

        Raises:
            RuntimeError: for a planned batch while :attr:`device_synth` is not set.
        """
        batch = super().on_after_batch_transfer(batch, dataloader_idx)
        if isinstance(batch, Mapping) and "plan" in batch:
            if self.device_synth is None:
                raise RuntimeError("a batch of plans reached DeviceSynthModule without device_synth; set "
                                   "module.device_synth = DeviceSynth.from_task(task, preset)")
            return self.device_synth(batch)
        return batch
