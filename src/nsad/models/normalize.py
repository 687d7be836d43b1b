"""The network input's normalisation in torch, for batches on the training device and in exported graphs.

The statistics are :data:`~nsad.data.transforms.IMAGENET_MEAN` and
:data:`~nsad.data.transforms.IMAGENET_STD`; :func:`~nsad.data.transforms.normalize_tensor` is the
same operation on NumPy arrays (the loaders' and the deployment runtime's), and the two agree bit
for bit (``tests/models/test_normalize.py``).
"""

from __future__ import annotations

import torch
from torch import nn

from nsad._checks import check_choice
from nsad.data.transforms import IMAGENET_MEAN, IMAGENET_STD, NORMALIZATIONS


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel with ImageNet's statistics (``imagenet``), or nothing (``unit``).

    Args:
        normalization: ``imagenet`` or ``unit``.
        channels: channels of the input; ``imagenet`` needs 3.

    Raises:
        ValueError: for an unknown ``normalization``, or ``imagenet`` without 3 channels.
    """

    def __init__(self, normalization: str, channels: int) -> None:
        super().__init__()
        check_choice("normalization", normalization, NORMALIZATIONS)
        self.active = normalization == "imagenet"
        if self.active and channels != 3:
            raise ValueError("imagenet normalisation needs 3 channels; use normalization='unit' for one-channel "
                             "models")
        self.register_buffer("mean", torch.from_numpy(IMAGENET_MEAN.copy()).reshape(1, -1, 1, 1))
        self.register_buffer("std", torch.from_numpy(IMAGENET_STD.copy()).reshape(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) float intensities in [0, 1] -> normalised network input."""
        return (x - self.mean) / self.std if self.active else x
