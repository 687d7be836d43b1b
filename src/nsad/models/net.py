"""The NSA paper's segmentation network: a ResNet-18 encoder, a 1x1 bottleneck and a light decoder.

NSA paper (Schlüter et al., ECCV 2022), Sec. 4.1: "an encoder-decoder architecture with ResNet-18
without the classification layers as the encoder, two 1x1 convolutions in the bottleneck to reduce
the number of channels and a simpler ResNet-based decoder", about 11 M parameters, trained from
scratch. The paper gives no more detail, so the choices below are ours:

- Encoder: torchvision's ``resnet18(weights=None)`` up to ``layer4`` (no average pooling, no
  ``fc``), 512 channels at 1/32 of the input. For one input channel (chest X-ray) ``conv1`` is
  replaced by a 1-channel convolution of the same shape.
- Bottleneck: two 1x1 convolutions with batch norm and ReLU, 512 -> 256 -> 128 channels.
- Decoder: five stages, each a 2x bilinear upsampling followed by one residual basic block
  (two 3x3 convolutions with batch norm, a 1x1 projection on the shortcut when the channel count
  changes), with 128, 64, 32, 16, 16 output channels, then a 3x3 convolution to one channel of raw
  logits at the input resolution.
- No skip connections from encoder to decoder by default: the paper describes a plain
  encoder-decoder with a channel bottleneck, which skip connections would bypass. They can be
  switched on (``skip_connections=True``): the inputs of the decoder stages at 1/16, 1/8, 1/4 and
  1/2 then get a 1x1 projection of the encoder feature map of the same resolution added to them
  (U-Net-like but additive, so the decoder's width does not change).

``decoder="authors"`` builds the network of the NSA authors' code instead (their bottleneck and
decoder; the paper's numbers come from it): the bottleneck's two 1x1 convolutions have a bias and a
ReLU but no batch norm, and the decoder is three residual blocks whose first convolution and
shortcut are stride-2 transposed convolutions (128 -> 64 -> 32 -> 16 channels, up to 1/4 of the
input: 56 px at 224), a bilinear x2 upsampling (``align_corners=True``) and a 7x7 stride-2
transposed convolution without bias to one channel at the input resolution; 11,498,096
parameters for three input channels.

Inputs of any height and width are accepted: they are padded on the bottom and right (edge
replication) to a multiple of 32 and the logits are cropped back, so the output is pixel-aligned
with the input. Sizes that are already multiples of 32 (224, 256) are not padded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet18

from nsad._checks import check_choice
from nsad.models._config import JsonConfig

LabelKind = Literal["bounded", "continuous"]
LABEL_KINDS: tuple[str, ...] = ("bounded", "continuous")
Decoder = Literal["nsad", "authors"]
DECODERS: tuple[str, ...] = ("nsad", "authors")
AUTHORS_DECODER_CHANNELS = (64, 32, 16)
"""Output channels of the authors' three transposed-convolution blocks (from the bottleneck's 128)."""
STRIDE = 32
"""Total downsampling factor of the encoder; inputs are padded to a multiple of it."""


@dataclass(frozen=True)
class NetConfig(JsonConfig):
    """Everything needed to rebuild an :class:`AnomalyNet` (weights aside).

    Attributes:
        in_channels: input channels, 3 (RGB) or 1 (grayscale, e.g. chest X-ray).
        label_kind: ``bounded`` (binary or logistic labels: sigmoid output, BCE, eq. 15) or
            ``continuous`` (unbounded labels: ReLU output, MSE, eq. 16).
        bottleneck_channels: output channels of the two 1x1 bottleneck convolutions.
        decoder_channels: output channels of the five upsampling stages (1/16 ... 1/1).
        skip_connections: add 1x1-projected encoder features to the decoder stages.
        decoder: ``nsad`` (the batch-normed bottleneck and five upsampling stages above) or
            ``authors`` (the NSA authors' bottleneck and transposed-convolution decoder; takes the
            default ``decoder_channels`` and no skip connections).
        standardize_input: subtract each input's own mean and divide by its own standard
            deviation (per image and channel) before the encoder, so that the maps do not follow
            a part's overall brightness and contrast; False (the paper's) for none.
    """

    config_name: ClassVar[str] = "network"

    in_channels: int = 3
    label_kind: LabelKind = "bounded"
    bottleneck_channels: tuple[int, int] = (256, 128)
    decoder_channels: tuple[int, int, int, int, int] = (128, 64, 32, 16, 16)
    skip_connections: bool = False
    decoder: Decoder = "nsad"
    standardize_input: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.in_channels, bool) or self.in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3, got {self.in_channels!r}")
        check_choice("label_kind", self.label_kind, LABEL_KINDS)
        for name, count in (("bottleneck_channels", 2), ("decoder_channels", 5)):
            value = getattr(self, name)
            if isinstance(value, str) or not isinstance(value, Sequence) or len(value) != count:
                raise ValueError(f"{name} must be a sequence of {count} positive ints, got {value!r}")
            if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
                raise ValueError(f"{name} must be a sequence of {count} positive ints, got {value!r}")
            object.__setattr__(self, name, tuple(value))
        for name in ("skip_connections", "standardize_input"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")
        check_choice("decoder", self.decoder, DECODERS)
        if self.decoder == "authors" and (self.skip_connections or self.decoder_channels != (128, 64, 32, 16, 16)):
            raise ValueError("decoder='authors' has its own fixed widths and no skip connections; leave "
                             "decoder_channels and skip_connections at their defaults")


STANDARDIZE_EPS = 1e-3
"""Floor of the standard deviation :func:`standardize` divides by (a flat image stays finite)."""


def standardize(images: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) images minus their own mean, over their own standard deviation, per image and channel.

    Example:
        >>> import torch
        >>> x = standardize(torch.tensor([[[[1.0, 3.0]]]]))
        >>> x.flatten().tolist(), standardize(2 * torch.tensor([[[[1.0, 3.0]]]]) + 5).flatten().tolist()
        ([-1.0, 1.0], [-1.0, 1.0])
    """
    # statistics in float64 (Apple's MPS has none), so that torch and ONNX Runtime agree on them: 100 times
    # closer maps between the exported model and the run on KolektorSDD than with float32 statistics
    exact = images if images.device.type == "mps" else images.double()
    mean = exact.mean(dim=(2, 3), keepdim=True)
    std = exact.std(dim=(2, 3), keepdim=True, unbiased=False).clamp_min(STANDARDIZE_EPS)
    return ((exact - mean) / std).to(images.dtype)


def logits_to_anomaly_map(logits: torch.Tensor, label_kind: LabelKind) -> torch.Tensor:
    """Turn raw network outputs into anomaly maps with the paper's final activation.

    Sigmoid for bounded labels (scores in (0, 1)), ReLU for continuous labels (scores >= 0, in
    the units the network was trained in: fractions of the full intensity range, i.e. the
    synthetic label's 8-bit levels divided by 255); NSA paper, Sec. 4.1.

    Args:
        logits: (B, 1, H, W) or (B, H, W) raw outputs of :class:`AnomalyNet`.
        label_kind: ``bounded`` or ``continuous``.

    Returns:
        (B, H, W) float32 anomaly maps, higher is more anomalous.

    Raises:
        ValueError: if ``label_kind`` is unknown or ``logits`` has another shape.

    Example:
        >>> import torch
        >>> logits = torch.tensor([[[-2.0, 0.0, 3.0]]])
        >>> logits_to_anomaly_map(logits, "bounded")
        tensor([[[0.1192, 0.5000, 0.9526]]])
        >>> logits_to_anomaly_map(logits, "continuous")
        tensor([[[0., 0., 3.]]])
    """
    check_choice("label_kind", label_kind, LABEL_KINDS)
    if logits.ndim == 4 and logits.shape[1] == 1:
        logits = logits[:, 0]
    if logits.ndim != 3:
        raise ValueError(f"logits must have shape (B, 1, H, W) or (B, H, W), got {tuple(logits.shape)}")
    logits = logits.float()
    return torch.sigmoid(logits) if label_kind == "bounded" else torch.relu(logits)


class _BasicBlock(nn.Module):
    """Residual block of two 3x3 convolutions (He et al.), projecting the shortcut when needed."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x), inplace=True)


class _TransposedBlock(nn.Module):
    """The authors' upsampling residual block: a 3x3 stride-2 transposed convolution, then a 3x3 convolution.

    The shortcut is a 1x1 stride-2 transposed convolution with batch norm; the output has twice
    the input's height and width.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.ConvTranspose2d(in_channels, out_channels, 3, stride=2, padding=1, output_padding=1,
                                        bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Sequential(
            nn.ConvTranspose2d(in_channels, out_channels, 1, stride=2, output_padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x), inplace=True)


class _AuthorsDecoder(nn.Module):
    """The NSA authors' decoder: three :class:`_TransposedBlock`, bilinear x2, a 7x7 stride-2 transposed convolution."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        blocks, width = [], in_channels
        for channels in AUTHORS_DECODER_CHANNELS:
            blocks.append(_TransposedBlock(width, channels))
            width = channels
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.ConvTranspose2d(width, 1, 7, stride=2, padding=3, output_padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.interpolate(self.blocks(x), scale_factor=2.0, mode="bilinear", align_corners=True)
        return self.head(y)


def _conv_relu_1x1(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), nn.ReLU(inplace=True))


def _conv_bn_relu_1x1(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class AnomalyNet(nn.Module):
    """ResNet-18 encoder-decoder mapping images to per-pixel anomaly logits (NSA paper, Sec. 4.1).

    ``forward`` always returns raw logits of shape (B, 1, H, W), in training and in eval mode;
    :meth:`anomaly_map` applies the final activation of the configured ``label_kind``. Weights are
    initialised from scratch (torchvision's ResNet initialisation for the encoder, PyTorch's
    defaults elsewhere); nothing is downloaded.

    Args:
        config: the architecture; keyword arguments build one when it is omitted.
        **options: :class:`NetConfig` fields, e.g. ``in_channels=1``.

    Example:
        >>> import torch
        >>> from nsad.models import AnomalyNet, count_parameters
        >>> net = AnomalyNet(in_channels=3).eval()
        >>> net(torch.zeros(2, 3, 64, 96)).shape
        torch.Size([2, 1, 64, 96])
        >>> count_parameters(net)
        11797937
    """

    def __init__(self, config: NetConfig | None = None, **options: Any) -> None:
        super().__init__()
        if config is not None and options:
            raise TypeError(
                f"give either config or keyword options, not both (got options {sorted(options)})"
            )
        self.config = config if config is not None else NetConfig(**options)
        cfg = self.config

        backbone = resnet18(weights=None)
        if cfg.in_channels != 3:
            backbone.conv1 = nn.Conv2d(cfg.in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
            nn.init.kaiming_normal_(backbone.conv1.weight, mode="fan_out", nonlinearity="relu")
        self.stem = nn.Sequential(backbone.conv1, backbone.bn1, backbone.relu, backbone.maxpool)  # 1/4
        self.layer1, self.layer2 = backbone.layer1, backbone.layer2  # 64 @ 1/4, 128 @ 1/8
        self.layer3, self.layer4 = backbone.layer3, backbone.layer4  # 256 @ 1/16, 512 @ 1/32

        mid, out = cfg.bottleneck_channels
        self.skips: nn.ModuleList | None = None
        if cfg.decoder == "authors":
            self.bottleneck = nn.Sequential(_conv_relu_1x1(512, mid), _conv_relu_1x1(mid, out))
            self.authors_decoder: _AuthorsDecoder | None = _AuthorsDecoder(out)
        else:
            self.bottleneck = nn.Sequential(_conv_bn_relu_1x1(512, mid), _conv_bn_relu_1x1(mid, out))
            self.authors_decoder = None
            stages, width = [], out
            for channels in cfg.decoder_channels:
                stages.append(_BasicBlock(width, channels))
                width = channels
            self.decoder = nn.ModuleList(stages)
            self.head = nn.Conv2d(width, 1, kernel_size=3, padding=1)
        if cfg.skip_connections:
            # Encoder features at 1/16, 1/8, 1/4, 1/2 (stem conv output) are added to the inputs of
            # decoder stages 0-3, which have the bottleneck's and the previous stages' widths.
            encoder_widths = (256, 128, 64, 64)
            stage_inputs = (out, *cfg.decoder_channels[:3])
            self.skips = nn.ModuleList(
                nn.Conv2d(enc, dec, 1, bias=False)
                for enc, dec in zip(encoder_widths, stage_inputs, strict=True)
            )

    @property
    def label_kind(self) -> LabelKind:
        """``bounded`` (sigmoid, BCE) or ``continuous`` (ReLU, MSE)."""
        return self.config.label_kind

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Return raw anomaly logits.

        Args:
            images: (B, C, H, W) float images, normalised as in training (ImageNet mean and std
                for RGB MVTec AD), C equal to ``config.in_channels``, any H, W >= 1.

        Returns:
            (B, 1, H, W) logits, in the input's dtype (or the autocast dtype).

        Raises:
            ValueError: if ``images`` is not 4-D or has the wrong number of channels.
        """
        if images.ndim != 4 or images.shape[1] != self.config.in_channels:
            raise ValueError(
                f"images must have shape (B, {self.config.in_channels}, H, W), got {tuple(images.shape)}"
            )
        if self.config.standardize_input:
            images = standardize(images)
        height, width = images.shape[-2:]
        pad_h, pad_w = -height % STRIDE, -width % STRIDE
        x = F.pad(images, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else images

        stem_conv = self.stem[2](self.stem[1](self.stem[0](x)))  # 64 @ 1/2, before max pooling
        f1 = self.layer1(self.stem[3](stem_conv))
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        y = self.bottleneck(self.layer4(f3))
        if self.authors_decoder is not None:
            logits = self.authors_decoder(y)
            return logits[..., :height, :width] if pad_h or pad_w else logits

        skips = (f3, f2, f1, stem_conv)
        for index, stage in enumerate(self.decoder):
            y = F.interpolate(y, scale_factor=2.0, mode="bilinear", align_corners=False)
            if self.skips is not None and index < len(self.skips):
                y = y + self.skips[index](skips[index])
            y = stage(y)
        logits = self.head(y)
        return logits[..., :height, :width] if pad_h or pad_w else logits

    def anomaly_map(self, images: torch.Tensor) -> torch.Tensor:
        """Return (B, H, W) float32 anomaly maps for ``images`` (see :func:`logits_to_anomaly_map`).

        Runs in whatever mode the module is in; call ``.eval()`` first for inference, or use
        :meth:`nsad.models.module.NSAModule.anomaly_map`, which does.
        """
        return logits_to_anomaly_map(self(images), self.config.label_kind)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Return the number of parameters of ``model`` (all, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
