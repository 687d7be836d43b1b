"""Bauer's heatmap (Bauer 2022, Sec. 3.1): the smoothed reconstruction error of an unmodified image.

At test time the input is not modified; the heatmap is the channel mean of ``|F(X) - X|``,
Gaussian-smoothed. It is what :class:`~nsad.models.ssae.module.SSAEModule` and the run's scorer
(:class:`~nsad.pipeline.methods.ssae.SSAEScorer`) return; defects are then segmented by a threshold
and a minimum defect area chosen on normal validation images (Sec. 4.2,
:func:`nsad.postprocess.calibrate_threshold`, :func:`nsad.postprocess.segment_defects`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


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

