"""Bauer's self-supervised autoencoder: SDC autoencoder, objectives (1)-(3), heatmap, threshold protocol.

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

Images in this module are float tensors in [0, 1] (the paper's ``F`` maps [0, 1] to [0, 1]): the
network ends in a sigmoid, and ``X``, ``X̂``, ``|X̂ - X|`` and the heatmap all live in that range.
If the network should see standardised inputs, give :class:`SSAEConfig` ``input_mean`` and
``input_std``: it standardises inside ``forward`` so that callers keep passing [0, 1] images.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from nsad._checks import check_choice, check_range
from nsad.models._config import JsonConfig

ErrorKind = Literal["squared", "norm"]
ERROR_KINDS: tuple[str, ...] = ("squared", "norm")
OBJECTIVES: tuple[int, ...] = (1, 2, 3)
STRIDE = 8
"""Total downsampling of the encoder (three 2x2 max-poolings); inputs are padded to a multiple of it."""


# --------------------------------------------------------------------------------------------------
# Architecture (Bauer 2022, Sec. 3.3 and Table 1)
# --------------------------------------------------------------------------------------------------


def _int_tuple(name: str, value: Any, min_len: int = 1) -> tuple[int, ...]:
    if (
        isinstance(value, str)
        or not isinstance(value, Sequence)
        or len(value) < min_len
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        raise ValueError(f"{name} must be a sequence of at least {min_len} positive ints, got {value!r}")
    return tuple(int(v) for v in value)


def _float_tuple_or_none(name: str, value: Any, length: int) -> tuple[float, ...] | None:
    if value is None:
        return None
    if (
        isinstance(value, str)
        or not isinstance(value, Sequence)
        or len(value) != length
        or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value
        )
    ):
        raise ValueError(f"{name} must be None or {length} finite numbers (one per channel), got {value!r}")
    return tuple(float(v) for v in value)


@dataclass(frozen=True)
class SSAEConfig(JsonConfig):
    """Everything needed to rebuild an :class:`SSAENet` (weights aside).

    The paper's Table 1 is written for 512x512 RGB inputs with widths 32-64-128 (encoder), five
    64-filter dilated convolutions per SDC block, and 256-128-64-32 (decoder). Here every width is
    a multiple of ``base_channels`` (Table 1: 32), so the network can be scaled down for small
    inputs or CPUs; with the defaults it is Table 1 exactly. The layers are fully convolutional,
    so any input size works ("scaled to the input size": a 256 px input gives Table 1's output
    sizes halved); sizes that are not a multiple of 8 are padded and cropped back.

    Attributes:
        in_channels: image channels, 3 or 1 (the output has as many).
        base_channels: ``c`` in the layer table of :class:`SSAENet` (Table 1: 32).
        sdc_channels: filters of each dilated convolution in an SDC block (Table 1: 64 = 2c);
            None means ``2 * base_channels``.
        sdc_blocks: number of SDC blocks (Table 1: 4).
        dilations: dilation rates of the parallel convolutions of an SDC block (Table 1: 1, 2, 4, 8, 16).
        sdc_kernel_size: kernel size of the dilated convolutions (Table 1 as we read it: 5x5).
        input_mean, input_std: optional per-channel standardisation applied inside ``forward``
            (None: the network sees the [0, 1] image, as in the paper).
    """

    config_name: ClassVar[str] = "SSAE"

    in_channels: int = 3
    base_channels: int = 32
    sdc_channels: int | None = None
    sdc_blocks: int = 4
    dilations: tuple[int, ...] = (1, 2, 4, 8, 16)
    sdc_kernel_size: int = 5
    input_mean: tuple[float, ...] | None = None
    input_std: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.in_channels, bool) or self.in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3, got {self.in_channels!r}")
        for name in ("base_channels", "sdc_blocks", "sdc_kernel_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.sdc_kernel_size % 2 == 0:
            raise ValueError(f"sdc_kernel_size must be odd (same-size output), got {self.sdc_kernel_size!r}")
        if self.sdc_channels is not None and (
            isinstance(self.sdc_channels, bool)
            or not isinstance(self.sdc_channels, int)
            or self.sdc_channels < 1
        ):
            raise ValueError(f"sdc_channels must be None or a positive int, got {self.sdc_channels!r}")
        object.__setattr__(self, "dilations", _int_tuple("dilations", self.dilations))
        mean = _float_tuple_or_none("input_mean", self.input_mean, self.in_channels)
        std = _float_tuple_or_none("input_std", self.input_std, self.in_channels)
        if (mean is None) != (std is None):
            raise ValueError(f"give both input_mean and input_std or neither, got {mean!r} and {std!r}")
        if std is not None and not all(s > 0 for s in std):
            raise ValueError(f"input_std must be positive, got {std!r}")
        object.__setattr__(self, "input_mean", mean)
        object.__setattr__(self, "input_std", std)

    @property
    def sdc_width(self) -> int:
        """Filters per dilated convolution (``sdc_channels`` or ``2 * base_channels``)."""
        return self.sdc_channels if self.sdc_channels is not None else 2 * self.base_channels


def _conv_bn_relu(
    in_channels: int, out_channels: int, kernel_size: int = 3, dilation: int = 1
) -> nn.Sequential:
    padding = dilation * (kernel_size - 1) // 2
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, dilation=dilation, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def _up_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    # 3x3 / 2 transposed convolution that exactly doubles the size (Table 1's "Transp. Conv.").
    return nn.Sequential(
        nn.ConvTranspose2d(in_channels, out_channels, 3, stride=2, padding=1, output_padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class StackedDilatedConv(nn.Module):
    """SDC block: parallel dilated convolutions of one input, concatenated (Table 1, ``SDC_{1,2,4,8,16}``).

    Each branch is ``Conv(k x k, dilation r) -> BatchNorm -> ReLU`` with ``width`` filters; with
    five rates and 64 filters the block outputs 64 x 5 = 320 channels at the input's resolution.
    """

    def __init__(self, in_channels: int, width: int, dilations: Sequence[int], kernel_size: int) -> None:
        super().__init__()
        self.branches = nn.ModuleList(_conv_bn_relu(in_channels, width, kernel_size, r) for r in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return (B, width * len(dilations), H, W): the branches' outputs, concatenated."""
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class SSAENet(nn.Module):
    """The stacked-dilated-convolution autoencoder of Bauer 2022, Table 1, with widths scaled by ``c``.

    Layers (Table 1 with ``c = 32``, ``w = 64`` filters per dilated convolution, 512 px input;
    every convolution except the last is followed by batch norm and ReLU, the last by a sigmoid):

    ============================  ==========  =====================
    layer                         filters     output size (512 px)
    ============================  ==========  =====================
    Conv 3x3, Conv 3x3            c, c        512 x 512
    MaxPool 2x2/2                             256 x 256
    Conv 3x3, Conv 3x3            2c, 2c      256 x 256
    MaxPool 2x2/2                             128 x 128
    Conv 3x3, Conv 3x3            4c, 4c      128 x 128
    MaxPool 2x2/2                             64 x 64
    4 x SDC_{1,2,4,8,16} (k x k)  w x 5       64 x 64
    Conv 3x3                      8c          64 x 64
    Transp. Conv 3x3/2            8c          128 x 128
    Conv 3x3, Conv 3x3            8c, 4c      128 x 128
    Transp. Conv 3x3/2            4c          256 x 256
    Conv 3x3, Conv 3x3            4c, 2c      256 x 256
    Transp. Conv 3x3/2            2c          512 x 512
    Conv 3x3, Conv 3x3            2c, c       512 x 512
    Conv 1x1 + sigmoid            channels    512 x 512
    ============================  ==========  =====================

    The paper reduces the size with max-pooling (not strided convolutions) and enlarges it with
    3x3 transposed convolutions of stride 2; we follow it.

    Args:
        config: the architecture; keyword arguments build one when it is omitted.
        **options: :class:`SSAEConfig` fields, e.g. ``base_channels=8``.

    Example:
        >>> import torch
        >>> net = SSAENet(base_channels=4, sdc_blocks=1, sdc_kernel_size=3).eval()
        >>> net(torch.zeros(1, 3, 36, 52)).shape  # 36 x 52 is padded to 40 x 56 and cropped back
        torch.Size([1, 3, 36, 52])
    """

    def __init__(self, config: SSAEConfig | None = None, **options: Any) -> None:
        super().__init__()
        if config is not None and options:
            raise TypeError(
                f"give either config or keyword options, not both (got options {sorted(options)})"
            )
        self.config = config if config is not None else SSAEConfig(**options)
        cfg = self.config
        c, w, k = cfg.base_channels, cfg.sdc_width, cfg.sdc_kernel_size
        self.encoder = nn.Sequential(
            _conv_bn_relu(cfg.in_channels, c),
            _conv_bn_relu(c, c),
            nn.MaxPool2d(2, 2),
            _conv_bn_relu(c, 2 * c),
            _conv_bn_relu(2 * c, 2 * c),
            nn.MaxPool2d(2, 2),
            _conv_bn_relu(2 * c, 4 * c),
            _conv_bn_relu(4 * c, 4 * c),
            nn.MaxPool2d(2, 2),
        )
        blocks, width = [], 4 * c
        for _ in range(cfg.sdc_blocks):
            blocks.append(StackedDilatedConv(width, w, cfg.dilations, k))
            width = w * len(cfg.dilations)
        self.sdc = nn.Sequential(*blocks)
        self.decoder = nn.Sequential(
            _conv_bn_relu(width, 8 * c),
            _up_bn_relu(8 * c, 8 * c),
            _conv_bn_relu(8 * c, 8 * c),
            _conv_bn_relu(8 * c, 4 * c),
            _up_bn_relu(4 * c, 4 * c),
            _conv_bn_relu(4 * c, 4 * c),
            _conv_bn_relu(4 * c, 2 * c),
            _up_bn_relu(2 * c, 2 * c),
            _conv_bn_relu(2 * c, 2 * c),
            _conv_bn_relu(2 * c, c),
        )
        # No batch norm in the last layer: the paper saw gridding artefacts with it (Sec. 3.3).
        self.head = nn.Conv2d(c, cfg.in_channels, kernel_size=1)
        if cfg.input_mean is not None:
            shape = (1, cfg.in_channels, 1, 1)
            self.register_buffer("input_mean", torch.tensor(cfg.input_mean).reshape(shape), persistent=False)
            self.register_buffer("input_std", torch.tensor(cfg.input_std).reshape(shape), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Return the reconstruction ``F(images)``.

        Args:
            images: (B, C, H, W) float images in [0, 1], C equal to ``config.in_channels``, H, W >= 1.

        Returns:
            (B, C, H, W) reconstruction in (0, 1) (sigmoid output), pixel-aligned with the input.

        Raises:
            ValueError: if ``images`` is not 4-D or has the wrong number of channels.
        """
        if images.ndim != 4 or images.shape[1] != self.config.in_channels:
            raise ValueError(
                f"images must have shape (B, {self.config.in_channels}, H, W), got {tuple(images.shape)}"
            )
        height, width = images.shape[-2:]
        x = images
        if self.config.input_mean is not None:
            x = (x - self.input_mean) / self.input_std
        pad_h, pad_w = -height % STRIDE, -width % STRIDE
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        out = torch.sigmoid(self.head(self.decoder(self.sdc(self.encoder(x)))))
        return out[..., :height, :width] if pad_h or pad_w else out


# --------------------------------------------------------------------------------------------------
# Objectives (Bauer 2022, Sec. 3.1, eqs. 1-3)
# --------------------------------------------------------------------------------------------------


def _broadcast_mask(name: str, mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if mask.ndim == 3:
        mask = mask[:, None]
    if (
        mask.ndim != 4
        or mask.shape[0] != like.shape[0]
        or mask.shape[-2:] != like.shape[-2:]
        or mask.shape[1] not in (1, like.shape[1])
    ):
        raise ValueError(
            f"{name} must have shape (B, 1, H, W), (B, H, W) or (B, C, H, W) matching "
            f"{tuple(like.shape)}, got {tuple(mask.shape)}"
        )
    return mask.to(like.dtype).expand_as(like)


def _weighted_term(weights: torch.Tensor, error: torch.Tensor, kind: str) -> torch.Tensor:
    """Per image ``||W ⊙ e||₂^q / ||W||₁`` (q = 2 for ``squared``, 1 for ``norm``); 0 where ``W`` is empty."""
    numerator = (weights * error).square().flatten(1).sum(dim=1)
    if kind == "norm":
        numerator = numerator.sqrt()
    area = weights.abs().flatten(1).sum(dim=1)
    return torch.where(
        area > 0, numerator / area.clamp_min(torch.finfo(area.dtype).tiny), torch.zeros_like(area)
    )


def _check_pair(reconstruction: torch.Tensor, target: torch.Tensor, lam: float, error: str) -> None:
    if reconstruction.ndim != 4 or reconstruction.shape != target.shape:
        raise ValueError(
            f"reconstruction and target must be (B, C, H, W) of the same shape, got "
            f"{tuple(reconstruction.shape)} and {tuple(target.shape)}"
        )
    check_range("lam", lam, 0.0, 1.0)
    check_choice("error", error, ERROR_KINDS)


def masked_loss(
    reconstruction: torch.Tensor,
    target: torch.Tensor,
    region: torch.Tensor,
    lam: float = 0.5,
    error: ErrorKind = "squared",
) -> torch.Tensor:
    """Objective (1) of Bauer 2022: reconstruct the untouched region and restore the modified one.

    ``L(X̂, X) = λ / ||M̄||₁ · ||M̄ ⊙ (F(X̂) - X)||₂ + (1 - λ) / ||M||₁ · ||M ⊙ (F(X̂) - X)||₂``   (1)

    with ``M`` the modified region (broadcast over the C channels, so ``||M||₁`` counts C values
    per pixel, as the paper's ``M ∈ {0, 1}^{n x m x 3}``) and ``M̄ = 1 - M``. With
    ``error="norm"`` this is eq. (1) literally; with ``error="squared"`` (default) each L2 norm is
    squared, so each term is the mean squared error over its region (for a binary ``M``) and the
    loss does not depend on the region's size. A term whose region is empty is 0. The loss is
    computed per image and averaged over the batch. The paper finds ``λ = 0.5`` works well (Sec. 4.4).

    Args:
        reconstruction: (B, C, H, W) ``F(X̂)``.
        target: (B, C, H, W) the clean image ``X``.
        region: (B, 1, H, W), (B, H, W) or (B, C, H, W) mask ``M``, 1 where ``X̂`` was modified.
        lam: ``λ`` in [0, 1].
        error: ``squared`` or ``norm``.

    Returns:
        Scalar loss.

    Raises:
        ValueError: for mismatched shapes, ``lam`` outside [0, 1] or an unknown ``error``.

    Example:
        A reconstruction that is exact outside the region and off by 1 inside it costs ``1 - λ``:

        >>> import torch
        >>> region = torch.zeros(1, 1, 4, 4)
        >>> region[..., :2] = 1
        >>> target = region.expand(1, 3, 4, 4)
        >>> masked_loss(torch.zeros(1, 3, 4, 4), target, region, lam=0.25)
        tensor(0.7500)
    """
    _check_pair(reconstruction, target, lam, error)
    region = _broadcast_mask("region", region, reconstruction)
    diff = reconstruction - target
    loss = lam * _weighted_term(1.0 - region, diff, error) + (1.0 - lam) * _weighted_term(region, diff, error)
    return loss.mean()


def change_weighted_loss(
    reconstruction: torch.Tensor,
    target: torch.Tensor,
    region: torch.Tensor,
    change: torch.Tensor,
    lam: float = 0.5,
    error: ErrorKind = "squared",
) -> torch.Tensor:
    """Objective (3) of Bauer 2022: reconstruct the untouched region, amplify the error where ``X̂`` changed.

    ``L(X̂, X) = λ / ||M̄||₁ · ||M̄ ⊙ (F(X̂) - X)||₂ - (1 - λ) / ||X̂ - X||₁ · || |X̂ - X| ⊙ (F(X̂) - X) ||₂``   (3)

    The minus sign rewards a large reconstruction error in the modified area, and weighting it by
    ``|X̂ - X|`` instead of ``M`` (objective (2), which is this function with ``change=region``)
    stops the network from pushing error where the distortion changed nothing. ``error``, the
    broadcasting and the empty-region rule are as in :func:`masked_loss`; the loss is negative
    when the second term dominates.

    Args:
        reconstruction: (B, C, H, W) ``F(X̂)``.
        target: (B, C, H, W) the clean image ``X``.
        region: mask ``M`` as in :func:`masked_loss` (defines ``M̄``).
        change: (B, 1, H, W), (B, H, W) or (B, C, H, W) ``|X̂ - X|`` in [0, 1].
        lam: ``λ`` in [0, 1].
        error: ``squared`` or ``norm``.

    Returns:
        Scalar loss.

    Raises:
        ValueError: for mismatched shapes, ``lam`` outside [0, 1] or an unknown ``error``.
    """
    _check_pair(reconstruction, target, lam, error)
    region = _broadcast_mask("region", region, reconstruction)
    change = _broadcast_mask("change", change, reconstruction)
    diff = reconstruction - target
    loss = lam * _weighted_term(1.0 - region, diff, error) - (1.0 - lam) * _weighted_term(change, diff, error)
    return loss.mean()


def ssae_loss(
    reconstruction: torch.Tensor,
    target: torch.Tensor,
    region: torch.Tensor,
    objective: int = 1,
    lam: float = 0.5,
    change: torch.Tensor | None = None,
    error: ErrorKind = "squared",
) -> torch.Tensor:
    """Objective (1), (2) or (3) of Bauer 2022 (see :func:`masked_loss`, :func:`change_weighted_loss`).

    Args:
        reconstruction: (B, C, H, W) ``F(X̂)``.
        target: (B, C, H, W) the clean image ``X``.
        region: mask ``M`` as in :func:`masked_loss`.
        objective: 1, 2 (eq. 3 with the binary ``M`` as weight) or 3.
        lam: ``λ`` in [0, 1].
        change: ``|X̂ - X|`` as in :func:`change_weighted_loss`, required for objective 3.
        error: ``squared`` or ``norm``.

    Raises:
        ValueError: for an unknown ``objective``, a missing ``change`` for objective 3, or the
            errors of the objective functions.
    """
    if isinstance(objective, bool) or objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {list(OBJECTIVES)}, got {objective!r}")
    if objective == 1:
        return masked_loss(reconstruction, target, region, lam, error)
    if objective == 2:
        return change_weighted_loss(reconstruction, target, region, region, lam, error)
    if change is None:
        raise ValueError("objective 3 needs change = |X̂ - X| (B, 1 or C, H, W); got None")
    return change_weighted_loss(reconstruction, target, region, change, lam, error)


# --------------------------------------------------------------------------------------------------
# Heatmap (Sec. 3.1) and threshold protocol (Sec. 4.2)
# --------------------------------------------------------------------------------------------------


def gaussian_blur(maps: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """Smooth (B, H, W) maps with a Gaussian, as ``scipy.ndimage.gaussian_filter(mode="nearest")``.

    Separable kernel of radius ``int(4 sigma + 0.5)`` (scipy's default truncation), edge pixels
    replicated at the borders. ``sigma_px = 0`` returns the maps unchanged.

    Raises:
        ValueError: if ``maps`` is not 3-D or ``sigma_px`` is negative or not finite.
    """
    if maps.ndim != 3:
        raise ValueError(f"maps must have shape (B, H, W), got {tuple(maps.shape)}")
    if not (math.isfinite(sigma_px) and sigma_px >= 0):
        raise ValueError(f"sigma_px must be a finite number >= 0, got {sigma_px!r}")
    if sigma_px == 0:
        return maps
    radius = int(4.0 * sigma_px + 0.5)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64, device=maps.device)
    kernel = torch.exp(-0.5 * (offsets / sigma_px) ** 2)
    kernel = (kernel / kernel.sum()).to(maps.dtype)
    x = maps[:, None]
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"), kernel.reshape(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode="replicate"), kernel.reshape(1, 1, -1, 1))
    return x[:, 0]


def reconstruction_anomaly_map(
    reconstruction: torch.Tensor, image: torch.Tensor, sigma_px: float = 4.0
) -> torch.Tensor:
    """Heatmap of Bauer 2022, Sec. 3.1: channel mean of ``|F(X) - X|``, smoothed with a Gaussian.

    ``A = G_σ * (1/C Σ_c |F(X)_c - X_c|)``. The paper gives no ``σ``; 4 px is our default.

    Args:
        reconstruction: (B, C, H, W) ``F(X)``.
        image: (B, C, H, W) the unmodified input ``X`` (same range as the reconstruction, [0, 1]).
        sigma_px: Gaussian standard deviation in pixels, >= 0.

    Returns:
        (B, H, W) float32 maps, higher is more anomalous.

    Raises:
        ValueError: for mismatched shapes or a negative ``sigma_px``.
    """
    if reconstruction.ndim != 4 or reconstruction.shape != image.shape:
        raise ValueError(
            f"reconstruction and image must be (B, C, H, W) of the same shape, got "
            f"{tuple(reconstruction.shape)} and {tuple(image.shape)}"
        )
    error = (reconstruction.float() - image.float()).abs().mean(dim=1)
    return gaussian_blur(error, sigma_px)


# --------------------------------------------------------------------------------------------------
# Lightning module
# --------------------------------------------------------------------------------------------------


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
        error: ``squared`` (default) or ``norm`` (eq. (1) literally), see :func:`masked_loss`.
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
