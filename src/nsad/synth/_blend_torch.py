"""Batched Poisson blending in torch: many patches at once on the training device (CPU or CUDA).

The same discrete problem as ``_blend_dst`` (OpenCV's ``seamlessClone`` as measured on OpenCV 5.0.0;
the equations are in that module's docstring), solved for a whole batch of patches with batched dense
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

The solve runs in float32 with autocast disabled and full-precision float32 matrix products,
whatever the caller's settings (under bf16 autocast the result was 2 levels off on a CPU; TF32's
10-bit mantissa is no better). ``torch.set_float32_matmul_precision`` is global: it is set to
"highest" for the duration of a call and restored, which other threads may notice.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import numpy as np
import torch

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


_TABLE_MAX = 256                  # cache DST matrices for interiors up to this many pixels per side
_SINE_TABLES: dict[str, torch.Tensor] = {}


def _sine_matrices_direct(n: torch.Tensor, size: int) -> torch.Tensor:
    """Orthonormal type-I DST matrices of sizes ``n`` (B,), zero-padded to (B, size, size), float32."""
    k = torch.arange(1, size + 1, device=n.device)
    # j*k mod 2(n+1) keeps sin's argument small: float32 sin of ~n^2 radians would lose digits.
    phase = torch.outer(k, k)[None] % (2 * (n + 1))[:, None, None]
    nf = (n + 1).to(torch.float32)
    angle = phase.to(torch.float32) * (math.pi / nf)[:, None, None]
    valid = (k[None, :] <= n[:, None]).to(torch.float32)                          # (B, size)
    return torch.sin(angle) * (valid * torch.sqrt(2.0 / nf)[:, None])[:, :, None] * valid[:, None, :]


def _sine_matrices(n: torch.Tensor, size: int) -> torch.Tensor:
    """``_sine_matrices_direct`` through a per-device table ``table[n] = S_n`` padded (built once)."""
    if size > _TABLE_MAX:
        return _sine_matrices_direct(n, size)
    key = str(n.device)
    table = _SINE_TABLES.get(key)
    if table is None or table.shape[1] < size:
        full = max(size, 96)
        table = _sine_matrices_direct(torch.arange(full + 1, device=n.device), full)
        _SINE_TABLES[key] = table
    return table[n, :size, :size]


def _eigenvalues(n: torch.Tensor, size: int) -> torch.Tensor:
    """``2 cos(π k / (n + 1)) - 2`` for k = 1..size (B, size); -1 beyond ``n`` (padding, any non-zero)."""
    k = torch.arange(1, size + 1, device=n.device, dtype=torch.float32)
    lam = 2.0 * torch.cos(math.pi * k[None, :] / (n + 1).to(torch.float32)[:, None]) - 2.0
    return torch.where(k[None, :] <= n[:, None], lam, torch.full_like(lam, -1.0))


def _erode7(mask: torch.Tensor) -> torch.Tensor:
    """7x7 binary erosion of a (B, P, Q) bool mask with False outside (OpenCV's 3 x 3x3 iterations)."""
    batch, rows, cols = mask.shape
    padded = mask.new_zeros((batch, rows + 6, cols + 6))
    padded[:, 3:-3, 3:-3] = mask
    vertical = padded[:, :rows]
    for k in range(1, 7):
        vertical = vertical & padded[:, k:k + rows]
    eroded = vertical[:, :, :cols]
    for k in range(1, 7):
        eroded = eroded & vertical[:, :, k:k + cols]
    return eroded


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
        raise ValueError(f"box {b} (x, y, w, h) = {tuple(box[b].tolist())} must have 1 <= w <= {cols}, "
                         f"1 <= h <= {rows} and lie inside the {images.shape[3]}x{images.shape[2]} image")
    return box


def poisson_blend_batch(images: torch.Tensor, src: torch.Tensor, masks: torch.Tensor, boxes: torch.Tensor,
                        mode: str = "normal", index: torch.Tensor | None = None,
                        max_value: float = 1.0, inplace: bool = False) -> torch.Tensor:
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
        inplace: write into ``images`` and return it instead of a copy (saves a copy of the
            batch when the caller owns it).

    Returns:
        A new tensor like ``images`` (``images`` itself with ``inplace``) with the patches blended
        in; integer images are truncated to their levels as OpenCV does.

    Raises:
        ValueError: for an unknown mode, inconsistent shapes, a repeated or out-of-range index,
            or a box that is empty, larger than the padded patch, or not inside its image.
        TypeError: for an image dtype other than uint8, uint16 or floating point.
    """
    boxes = torch.as_tensor(boxes)
    if index is None:
        if images.shape[0] != src.shape[0]:
            raise ValueError(f"without index, images ({images.shape[0]}) and src ({src.shape[0]}) must hold "
                             "as many entries")
        index = torch.arange(src.shape[0])
    box = _check_batch(images, src, masks, boxes, mode, torch.as_tensor(index))
    out = images if inplace else images.clone()
    batch, channels, rows, cols = src.shape
    if batch and rows >= 3 and cols >= 3:
        with _exact_float32(images.device):
            _blend_batch_into(out, src, masks, box, mode, index, max_value)
    return out


def _blend_batch_into(out: torch.Tensor, src: torch.Tensor, masks: torch.Tensor, box: np.ndarray, mode: str,
                      index: torch.Tensor, max_value: float) -> None:
    """The work of ``poisson_blend_batch`` on checked arguments, in (B, rows, C, cols) layout.

    That layout makes both transforms plain batched matrix products without copies: the row
    transform multiplies (B, P, C*Q) from the left, the column one (B, P*C, Q) from the right.
    """
    device = out.device
    batch, channels, rows, cols = src.shape
    _, _, height, width = out.shape
    xs, ys, ws, hs = (torch.as_tensor(box[:, i], device=device) for i in range(4))
    # Memory offsets of each padded window in out, (B, P, C, Q), from out's strides (any layout,
    # channels_last included); past the image they repeat its last row/column, which is only read
    # there and written back unchanged.
    stride_n, stride_c, stride_h, stride_w = out.stride()
    r = torch.clamp(ys[:, None] + torch.arange(rows, device=device), max=height - 1) * stride_h
    c = torch.clamp(xs[:, None] + torch.arange(cols, device=device), max=width - 1) * stride_w
    plane = (torch.as_tensor(index, device=device).long()[:, None] * stride_n
             + torch.arange(channels, device=device) * stride_c)                      # (B, C)
    flat = plane[:, None, :, None] + r[:, :, None, None] + c[:, None, None, :]
    native = out.view(torch.int16) if out.dtype == torch.uint16 else out              # no uint16 index_put
    span = 1 + sum((size - 1) * stride for size, stride in zip(out.shape, out.stride(), strict=True))
    memory = native.as_strided((span,), (1,))
    d_native = memory[flat]
    d = (d_native.view(torch.uint16) if out.dtype == torch.uint16 else d_native).to(torch.float32)
    s = src.to(device=device).permute(0, 2, 1, 3).to(torch.float32)
    inside = (torch.arange(rows, device=device)[None, :, None] < hs[:, None, None]) & (
        torch.arange(cols, device=device)[None, None, :] < ws[:, None, None])
    m = _erode7((masks.to(device) != 0) & inside)[:, :-1, None, :-1]
    e = s - d
    ex = e[:, :-1, :, 1:] - e[:, :-1, :, :-1]
    ey = e[:, 1:, :, :-1] - e[:, :-1, :, :-1]
    if mode == "mixed":
        # |sx - sy| = |s[p+x] - s[p+y]|; the source wins only where strictly larger.
        m = m & ((s[:, :-1, :, 1:] - s[:, 1:, :, :-1]).abs() > (d[:, :-1, :, 1:] - d[:, 1:, :, :-1]).abs())
    ex = ex * m
    ey = ey * m
    f = ex[:, 1:, :, 1:] - ex[:, 1:, :, :-1] + ey[:, 1:, :, 1:] - ey[:, :-1, :, 1:]  # (B, P-2, C, Q-2)
    ny, nx = (hs - 2).clamp(min=0), (ws - 2).clamp(min=0)
    py, px = rows - 2, cols - 2
    sy, sx = _sine_matrices(ny, py), _sine_matrices(nx, px)
    lam = _eigenvalues(ny, py)[:, :, None, None] + _eigenvalues(nx, px)[:, None, None, :]
    spectrum = torch.bmm(sy, f.reshape(batch, py, channels * px)).view(batch, py * channels, px)
    spectrum = torch.bmm(spectrum, sx)
    spectrum = spectrum.view(batch, py, channels, px) / lam
    v = torch.bmm(torch.bmm(sy, spectrum.view(batch, py, channels * px)).view(batch, py * channels, px), sx)
    u = d[:, 1:-1, :, 1:-1] + v.view(batch, py, channels, px)
    if out.dtype in _INT_MAX:
        u = u.clamp_(0.0, _INT_MAX[out.dtype]).to(out.dtype)                   # truncates, as OpenCV
        if out.dtype == torch.uint16:
            u = u.view(torch.int16)
    else:
        u = u.clamp_(0.0, max_value).to(out.dtype)
    interior = (torch.arange(py, device=device)[None, :, None, None] < ny[:, None, None, None]) & (
        torch.arange(px, device=device)[None, None, None, :] < nx[:, None, None, None])
    # Each image takes one patch per call, so positions past a box just get their own value back.
    memory[flat[:, 1:-1, :, 1:-1]] = torch.where(interior, u, d_native[:, 1:-1, :, 1:-1])


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
