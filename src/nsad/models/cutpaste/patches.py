"""CutPaste's localisation (Li et al. 2021, Sec. 2.4): embed every patch of a grid, spread the scores to pixels.

At test time every patch on a grid (the paper: 64x64 patches with stride 4 on 256x256 images) is
embedded (:func:`embed_patches`) and scored by the patch density, and "a Gaussian smoothing
propagates the score to every pixel" (:func:`patch_anomaly_map`). The image score of the patch
model is the maximum patch score (Fig. 1, "spatial max-pooling").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import scipy.ndimage
import torch

from nsad.models.cutpaste.net import _positive_int


def patch_positions(size: int, patch_size: int, stride: int) -> np.ndarray:
    """Return the start offsets of patches along one image side.

    Offsets ``0, stride, 2 stride, ...`` up to ``size - patch_size``; when ``size - patch_size`` is
    not a multiple of ``stride`` a last patch flush with the border is added, so every pixel is
    covered (256 px, 64 px patches, stride 4: 49 offsets ``0, 4, ..., 192``).

    Args:
        size: image side in pixels.
        patch_size: patch side, ``1 <= patch_size <= size``.
        stride: step between patches, >= 1.

    Returns:
        (n,) int64 offsets, increasing.

    Raises:
        ValueError: if a value is not a positive int or ``patch_size > size``.

    Example:
        >>> patch_positions(10, 4, 4)  # 0, 4 and the last patch flush with the border
        array([0, 4, 6])
        >>> len(patch_positions(256, 64, 4))
        49
    """
    size, patch_size, stride = (
        _positive_int(n, v) for n, v in (("size", size), ("patch_size", patch_size), ("stride", stride))
    )
    if patch_size > size:
        raise ValueError(f"patch_size must not exceed the image side {size}, got {patch_size}")
    offsets = np.arange(0, size - patch_size + 1, stride, dtype=np.int64)
    if offsets[-1] != size - patch_size:
        offsets = np.append(offsets, size - patch_size)
    return offsets


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


def patch_anomaly_map(
    patch_scores: np.ndarray | torch.Tensor,
    image_size: tuple[int, int],
    patch_size: int,
    stride: int,
    sigma_px: float = 4.0,
) -> np.ndarray:
    """Spread patch scores over the pixels they cover, then smooth (CutPaste, Sec. 2.4).

    Receptive-field upsampling: the score of pixel ``(y, x)`` is the mean score of all patches
    whose window contains it, ``A(y, x) = Σ_ij s_ij R_i(y) C_j(x) / (Σ_i R_i(y) Σ_j C_j(x))`` with
    ``R_i``, ``C_j`` the indicator functions of the patch rows and columns (:func:`patch_positions`).
    The map is then smoothed with a Gaussian of standard deviation ``sigma_px`` (the paper's
    "Gaussian smoothing to propagate the score to every pixel"; it gives no width, we default to
    the paper's stride, 4 px), ``scipy.ndimage.gaussian_filter`` with ``mode="nearest"``.

    Args:
        patch_scores: (B, nh, nw) or (nh, nw) scores, e.g. ``GaussianDensity.score`` of
            :func:`embed_patches`'s output.
        image_size: (H, W) of the images the patches came from.
        patch_size: patch side in pixels.
        stride: grid step in pixels.
        sigma_px: Gaussian standard deviation in pixels, >= 0 (0: no smoothing).

    Returns:
        (B, H, W) or (H, W) float32 anomaly maps (same leading shape as ``patch_scores``).

    Raises:
        ValueError: if the grid of ``patch_scores`` does not match ``image_size``, ``patch_size`` and
            ``stride``, the scores are not finite, or ``sigma_px`` is negative.

    Example:
        Two 4-px patches with stride 2 on a 4 x 6 image; columns 2-3 lie in both:

        >>> import numpy as np
        >>> patch_anomaly_map(np.array([[1.0, 3.0]]), (4, 6), patch_size=4, stride=2, sigma_px=0)[0]
        array([1., 1., 2., 2., 3., 3.], dtype=float32)
    """
    scores = (
        patch_scores.detach().cpu().numpy()
        if isinstance(patch_scores, torch.Tensor)
        else np.asarray(patch_scores)
    )
    if not (isinstance(image_size, Sequence) and len(image_size) == 2):
        raise ValueError(f"image_size must be (height, width), got {image_size!r}")
    height, width = (_positive_int("image_size", v) for v in image_size)
    rows, cols = patch_positions(height, patch_size, stride), patch_positions(width, patch_size, stride)
    single = scores.ndim == 2
    if single:
        scores = scores[None]
    if scores.ndim != 3 or scores.shape[1:] != (len(rows), len(cols)):
        raise ValueError(
            f"patch_scores must have shape (B, {len(rows)}, {len(cols)}) or ({len(rows)}, {len(cols)}) "
            f"for image_size {(height, width)}, patch_size {patch_size}, stride {stride}; "
            f"got {scores.shape if not single else scores.shape[1:]}"
        )
    if not np.isfinite(scores).all():
        raise ValueError("patch_scores must be finite")
    if not (np.isfinite(sigma_px) and sigma_px >= 0):
        raise ValueError(f"sigma_px must be a finite number >= 0, got {sigma_px!r}")
    row_cover = (np.arange(height)[None, :] >= rows[:, None]) & (
        np.arange(height)[None, :] < rows[:, None] + patch_size
    )
    col_cover = (np.arange(width)[None, :] >= cols[:, None]) & (
        np.arange(width)[None, :] < cols[:, None] + patch_size
    )
    row_cover, col_cover = row_cover.astype(np.float64), col_cover.astype(np.float64)
    summed = np.einsum("iy,bij,jx->byx", row_cover, scores.astype(np.float64), col_cover, optimize=True)
    counts = np.outer(row_cover.sum(axis=0), col_cover.sum(axis=0))
    maps = summed / counts
    if sigma_px > 0:
        maps = np.stack([scipy.ndimage.gaussian_filter(m, sigma=sigma_px, mode="nearest") for m in maps])
    maps = maps.astype(np.float32)
    return maps[0] if single else maps
