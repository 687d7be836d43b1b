"""Bauer's stacked-dilated-convolution autoencoder (Bauer 2022, Sec. 3.3 and Table 1).

The network ``F: [0, 1]^{n x m x C} -> [0, 1]^{n x m x C}``: an encoder of 3x3 convolutions and
max-poolings, stacked dilated convolutions (SDC blocks) at 1/8 of the input, and a decoder of
transposed convolutions back to the input size, ending in a sigmoid. If the network should see
standardised inputs, give :class:`SSAEConfig` ``input_mean`` and ``input_std``: it standardises
inside ``forward`` so that callers keep passing [0, 1] images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from nsad.models._config import JsonConfig, finite_floats

STRIDE = 8
"""Total downsampling of the encoder (three 2x2 max-poolings); inputs are padded to a multiple of it."""


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
    floats = finite_floats(value, length)
    if floats is None:
        raise ValueError(f"{name} must be None or {length} finite numbers (one per channel), got {value!r}")
    return floats


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

