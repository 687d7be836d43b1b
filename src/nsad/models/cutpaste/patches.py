"""CutPaste's localisation (Li et al. 2021, Sec. 2.4): embed every patch of a grid.

At test time every patch on a grid (the paper: 64x64 patches with stride 4 on 256x256 images) is
embedded (:func:`embed_patches`) and scored by the patch density; "a Gaussian smoothing
propagates the score to every pixel" (:func:`nsad.postprocess.patch_anomaly_map`, torch-free, so
that the deployment runtime shares it). The image score of the patch model is the maximum patch
score (Fig. 1, "spatial max-pooling").
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from nsad.models.cutpaste.net import _positive_int
from nsad.postprocess import patch_positions


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
