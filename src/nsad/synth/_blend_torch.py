"""Batched Poisson blending in torch: many patches at once on the training device (CPU or CUDA).

The same discrete problem as ``_blend_dst`` (OpenCV's ``seamlessClone``, SPEC.md section 2; the
equations are in that module's docstring), solved for a whole batch of patches with batched dense
type-I DST matrices. Patches of different sizes share one padded size ``(P, Q)``: patch ``b`` uses
the top-left ``(h_b, w_b)`` corner of its padded arrays, and its transform matrices are the
``(h_b - 2)``-point DST matrices padded with zeros, so padding changes nothing in the result; it
only costs time (``O(P Q (P + Q))`` per patch). Group patches of very different sizes into
separate calls when that matters.

Intended use: the geometry (boxes, masks, source crops, which image each patch goes into) is drawn
on the CPU from the per-example seeded generators, the crops are cut or resized on the device, and
one call blends the whole batch, e.g. in Lightning's ``on_after_batch_transfer``. Patches applied
one after the other to the same image (NSA's up to ``n_max`` patches) go in successive calls, one
patch per image per call.

The solve runs in float32 with autocast disabled and full-precision float32 matrix products
(TF32/bf16 products would cost several intensity levels), whatever the caller's settings.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from nsad.synth._blend_dst import opencv_mask_box

_MODES = ("normal", "mixed")
_INT_MAX = {torch.uint8: 255.0, torch.uint16: 65535.0}
_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


@contextlib.contextmanager
def _exact_float32(device: torch.device) -> Iterator[None]:
    """Disable autocast and TF32/bf16 float32 matrix products for the duration (restored afterwards)."""
    previous = torch.get_float32_matmul_precision()
    if previous != "highest":
        torch.set_float32_matmul_precision("highest")
    try:
        with torch.autocast(device_type=device.type, enabled=False):
            yield
    finally:
        if previous != "highest":
            torch.set_float32_matmul_precision(previous)


def _sine_matrices(n: torch.Tensor, size: int) -> torch.Tensor:
    """Orthonormal type-I DST matrices of sizes ``n`` (B,), zero-padded to (B, size, size), float32."""
    k = torch.arange(1, size + 1, device=n.device)
    period = 2 * (n + 1)
    # j*k mod 2(n+1) keeps sin's argument small: float32 sin of ~n^2 radians would lose digits.
    phase = torch.outer(k, k)[None] % period[:, None, None]
    angle = phase.to(torch.float32) * (math.pi / (n + 1).to(torch.float32))[:, None, None]
    valid = (k[None, :] <= n[:, None]).to(torch.float32)
    scale = torch.sqrt(2.0 / (n + 1).to(torch.float32))
    return torch.sin(angle) * (scale[:, None, None] * valid[:, :, None] * valid[:, None, :])


def _eigenvalues(n: torch.Tensor, size: int) -> torch.Tensor:
    """``2 cos(π k / (n + 1)) - 2`` for k = 1..size (B, size); -1 beyond ``n`` (padding, any non-zero)."""
    k = torch.arange(1, size + 1, device=n.device, dtype=torch.float32)
    lam = 2.0 * torch.cos(math.pi * k[None, :] / (n + 1).to(torch.float32)[:, None]) - 2.0
    return torch.where(k[None, :] <= n[:, None], lam, torch.full_like(lam, -1.0))


def _erode7(mask: torch.Tensor) -> torch.Tensor:
    """7x7 binary erosion of a (B, P, Q) float mask with zeros outside (OpenCV's 3 x 3x3 iterations)."""
    padded = F.pad(mask[:, None], (3, 3, 3, 3), value=0.0)
    eroded = -F.max_pool2d(-padded, (7, 1), stride=1)
    return -F.max_pool2d(-eroded, (1, 7), stride=1)[:, 0]


def _check_batch(images: torch.Tensor, src: torch.Tensor, masks: torch.Tensor, boxes: torch.Tensor,
                 mode: str, index: torch.Tensor) -> np.ndarray:
    """Validate the arguments of ``poisson_blend_batch``; return the boxes as an (B, 4) int64 array."""
    if mode not in _MODES:
        raise ValueError(f"unknown blend mode {mode!r}; choose one of {list(_MODES)}")
    if images.dtype not in _INT_MAX and images.dtype not in _FLOATS:
        raise TypeError(f"images must be uint8, uint16 or floating point, got {images.dtype}")
    if images.ndim != 4 or src.ndim != 4 or src.shape[1] != images.shape[1]:
        raise ValueError(f"images {tuple(images.shape)} and src {tuple(src.shape)} must be (N, C, H, W) and "
                         "(B, C, P, Q) with the same C")
    batch, _, rows, cols = src.shape
    if masks.shape != (batch, rows, cols):
        raise ValueError(f"masks {tuple(masks.shape)} must be (B, P, Q) = {(batch, rows, cols)}")
    if boxes.shape != (batch, 4) or index.shape != (batch,):
        raise ValueError(f"boxes {tuple(boxes.shape)} must be (B, 4) and index {tuple(index.shape)} (B,) "
                         f"with B = {batch}")
    box = boxes.detach().cpu().numpy().astype(np.int64)
    idx = index.detach().cpu().numpy()
    if batch and (idx.min() < 0 or idx.max() >= images.shape[0]):
        raise ValueError(f"index must lie in [0, {images.shape[0] - 1}], got {idx.min()}..{idx.max()}")
    if len(np.unique(idx)) != batch:
        raise ValueError("index must not repeat an image: blend one patch per image per call")
    x, y, w, h = box.T
    bad = (w < 1) | (h < 1) | (w > cols) | (h > rows) | (x < 0) | (y < 0) | (x + w > images.shape[3]) | (
        y + h > images.shape[2])
    if bad.any():
        b = int(np.flatnonzero(bad)[0])
        raise ValueError(f"box {b} (x, y, w, h) = {tuple(box[b])} must have 1 <= w <= {cols}, 1 <= h <= {rows} "
                         f"and lie inside the {images.shape[3]}x{images.shape[2]} image")
    return box


def poisson_blend_batch(images: torch.Tensor, src: torch.Tensor, masks: torch.Tensor, boxes: torch.Tensor,
                        mode: str = "normal", index: torch.Tensor | None = None,
                        max_value: float = 1.0) -> torch.Tensor:
    """Poisson-blend B patches into images at once (OpenCV's discretisation, see ``_blend_dst``).

    Patch ``b`` is ``src[b, :, :h, :w]`` with mask ``masks[b, :h, :w]``; it goes into image
    ``index[b]`` at columns ``x..x+w-1`` and rows ``y..y+h-1`` where ``(x, y, w, h) = boxes[b]``.
    The box's outer one-pixel ring keeps the image's values; inside, the result has the source
    gradients where the mask eroded by 3 px holds (``normal``), or per channel the source or
    image differences (``mixed``), and the image's own gradients elsewhere. With the box of
    ``_blend_dst.opencv_mask_box`` this matches ``cv2.seamlessClone`` to within one level.

    Args:
        images: (N, C, H, W) destination images, uint8, uint16 or floating point, on any device.
        src: (B, C, P, Q) source patches padded to a common size; values past each patch's
            ``(h, w)`` are ignored (they must be finite).
        masks: (B, P, Q) bool or numeric, non-zero inside; values past each ``(h, w)`` are ignored.
        boxes: (B, 4) integer ``(x, y, w, h)`` per patch, ``3 <= w <= Q`` and ``3 <= h <= P`` to
            change anything. Best kept on the CPU: the checks read it there.
        mode: ``normal`` (NORMAL_CLONE) or ``mixed`` (MIXED_CLONE), for all patches.
        index: (B,) distinct image indices; None means ``arange(B)`` (then N must equal B).
        max_value: for floating-point images only, the upper clamp (levels are not truncated).

    Returns:
        A new tensor like ``images`` with the patches blended in; integer images are truncated to
        their levels as OpenCV does.

    Raises:
        ValueError: for an unknown mode, inconsistent shapes, a repeated or out-of-range index,
            or a box that is empty, larger than the padded patch, or not inside its image.
        TypeError: for an image dtype other than uint8, uint16 or floating point.
    """
    device = images.device
    if index is None:
        if images.shape[0] != src.shape[0]:
            raise ValueError(f"without index, images ({images.shape[0]}) and src ({src.shape[0]}) must hold "
                             "as many entries")
        index = torch.arange(src.shape[0])
    box = _check_batch(images, src, masks, boxes, mode, index)
    out = images.clone()
    batch, channels, rows, cols = src.shape
    if batch == 0 or rows < 3 or cols < 3:
        return out
    with _exact_float32(device):
        xs, ys, ws, hs = (torch.as_tensor(box[:, i], device=device) for i in range(4))
        idx = torch.as_tensor(index, device=device).long()
        r = torch.clamp(ys[:, None] + torch.arange(rows, device=device), max=images.shape[2] - 1)
        c = torch.clamp(xs[:, None] + torch.arange(cols, device=device), max=images.shape[3] - 1)
        window = (idx[:, None, None], slice(None), r[:, :, None], c[:, None, :])
        d_native = images[window]                                        # (B, P, Q, C)
        d = d_native.permute(0, 3, 1, 2).to(torch.float32)
        s = src.to(device=device, dtype=torch.float32)
        inside = (torch.arange(rows, device=device)[None, :, None] < hs[:, None, None]) & (
            torch.arange(cols, device=device)[None, None, :] < ws[:, None, None])
        m = _erode7(((masks.to(device) != 0) & inside).to(torch.float32))[:, None, :-1, :-1]
        e = s - d
        ex = (e[..., :-1, 1:] - e[..., :-1, :-1]) * m
        ey = (e[..., 1:, :-1] - e[..., :-1, :-1]) * m
        if mode == "mixed":
            keep = (s[..., :-1, 1:] - s[..., 1:, :-1]).abs() > (d[..., :-1, 1:] - d[..., 1:, :-1]).abs()
            ex = ex * keep
            ey = ey * keep
        f = ex[..., 1:, 1:] - ex[..., 1:, :-1] + ey[..., 1:, 1:] - ey[..., :-1, 1:]   # (B, C, P-2, Q-2)
        ny, nx = hs - 2, ws - 2
        sy, sx = _sine_matrices(ny.clamp(min=0), rows - 2)[:, None], _sine_matrices(nx.clamp(min=0), cols - 2)[:, None]
        lam = _eigenvalues(ny, rows - 2)[:, None, :, None] + _eigenvalues(nx, cols - 2)[:, None, None, :]
        v = sy @ ((sy @ f @ sx) / lam) @ sx
        u = d[..., 1:-1, 1:-1] + v
        if images.dtype in _INT_MAX:
            u = torch.floor(u.clamp_(0.0, _INT_MAX[images.dtype]))
        else:
            u = u.clamp_(0.0, max_value)
        interior = (torch.arange(rows - 2, device=device)[None, :, None] < ny[:, None, None]) & (
            torch.arange(cols - 2, device=device)[None, None, :] < nx[:, None, None])
        # Positions past a box are written back unchanged (each image takes one patch per call).
        values = torch.where(interior[..., None], u.permute(0, 2, 3, 1).to(images.dtype), d_native[:, 1:-1, 1:-1])
        target = (idx[:, None, None], slice(None), r[:, 1:-1, None], c[:, None, 1:-1])
        if images.dtype == torch.uint16:                                 # index_put has no uint16 kernel
            out.view(torch.int16)[target] = values.view(torch.int16)
        else:
            out[target] = values
    return out


def torch_clone(src: np.ndarray, dst: np.ndarray, mask: np.ndarray, center: tuple[int, int],
                mode: str) -> np.ndarray:
    """``BLEND_BACKENDS`` entry: one ``cv2.seamlessClone``-style call through ``poisson_blend_batch`` (CPU).

    Args:
        src: (H, W, C) uint8 or uint16, C in {1, 3}.
        dst: (H', W', C) with ``src``'s dtype.
        mask: (H, W) uint8 or bool, non-zero inside.
        center: (x, y) in ``dst`` of the centre of the mask's box.
        mode: ``normal`` or ``mixed``.

    Returns:
        A blended copy of ``dst`` (numpy, same shape and dtype).
    """
    x, y, w, h = opencv_mask_box(mask)
    if not w:
        return dst.copy()
    left, top = int(center[0]) - w // 2, int(center[1]) - h // 2
    images = torch.from_numpy(np.ascontiguousarray(dst.transpose(2, 0, 1)))[None]
    patch = torch.from_numpy(np.ascontiguousarray(src[y:y + h, x:x + w].transpose(2, 0, 1)))[None]
    crop = torch.from_numpy(np.ascontiguousarray(mask[y:y + h, x:x + w] != 0))[None]
    out = poisson_blend_batch(images, patch, crop, torch.tensor([[left, top, w, h]]), mode)
    return np.ascontiguousarray(out[0].numpy().transpose(1, 2, 0))
