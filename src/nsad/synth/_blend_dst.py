"""Poisson blending with a discrete sine transform: ``cv2.seamlessClone``'s problem, solved on the box only.

Seamless cloning (Pérez et al. 2003, eq. 7 discretised) finds the image ``u`` on a box whose
discrete Laplacian equals the divergence of a guidance field ``g`` and whose outer one-pixel ring
is fixed to the destination ``d``:

    u[p+x] + u[p-x] + u[p+y] + u[p-y] - 4 u[p] = gx[p] - gx[p-x] + gy[p] - gy[p-y]   (p inside)
    u[p] = d[p]                                                                       (p on the ring)

OpenCV 5.0.0 builds ``g`` from forward differences (``gx[p] = a[p+x] - a[p]``) per channel and
takes (measured against ``cv2.seamlessClone``, see tests/synth/test_blend.py):

- the box: the bounding box of the mask's non-zero pixels after its outer one-pixel image border is
  zeroed, put into ``dst`` with its top-left corner at ``center - (w // 2, h // 2)``;
- ``m``: the mask eroded by a 7x7 square (3 iterations of a 3x3 one) with zeros outside the box,
  so a pixel counts only if every pixel within 3 px of it (Chebyshev distance) is in the mask;
- ``normal``: ``g = m * grad(s) + (1 - m) * grad(d)`` with ``m`` taken at ``p`` for both
  directions of ``p``;
- ``mixed``: where ``m`` holds, per pixel and channel, the source differences (both directions)
  when ``|sx - sy| > |dx - dy|`` and the destination differences otherwise (ties: destination);
  note ``sx - sy = s[p+x] - s[p+y]``. This is not Pérez et al.'s eq. 13, which compares the
  magnitudes of the two differences per direction; choosing per direction differs from OpenCV by
  up to ~100 levels;
- the result truncated towards zero after clipping to the type's range (not rounded).

Writing ``u = d + v`` with ``e = s - d`` turns this into ``Δv = div(w * grad(e))`` with ``v = 0``
on the ring, where ``w`` is ``m`` (normal) or ``m`` and the mixed choice (mixed). Its solution is
diagonal in the type-I discrete sine transform ``S`` (orthonormal, symmetric, ``S @ S = I``): ``v =
S_y ((S_y f S_x) / (λ_y[k] + λ_x[l])) S_x`` with ``λ[k] = 2 cos(π k / (n + 1)) - 2``, ``k = 1..n``
for an interior of ``n`` pixels. For the box sizes of synthetic anomalies (interiors up to 160 px)
four dense float32 matrix products through BLAS are faster than SciPy's FFTs and have no slow sizes
(OpenCV's FFT solver is 2-4x slower at sizes that are not FFT-friendly); larger boxes use
``scipy.fft.dstn``. The products run on one BLAS thread whatever the caller's settings
(:mod:`nsad.synth._threads`): spread over several they are slower. The arithmetic is float32 like
OpenCV's; the two differ by one level only where the exact value lies within float error of an
integer (about one value in a thousand in the random tests, in both directions). Where the exact
result is an integer everywhere (e.g. a constant cloned onto the same constant) this solver returns
it, while OpenCV's float noise truncates about half of those pixels one level down; a mask with no
pixel left after the erosion leaves ``dst`` unchanged here (OpenCV: the same noise; below 3 px it
raises).

Public entry points: ``blend_into`` (in place, box-local inputs: the fast path for the synthesis
engine) and ``dst_clone`` (the ``BLEND_BACKENDS`` adapter with ``cv2.seamlessClone``'s arguments).
"""

from __future__ import annotations

from functools import cache

import cv2
import numpy as np
import scipy.fft

from nsad.synth._threads import one_blas_thread

_MODES = ("normal", "mixed")
_MAX_LEVEL = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
# 3 iterations of OpenCV's 3x3 erosion = one 7x7 erosion (zero padding outside the box).
_ERODE_KERNEL = np.ones((7, 7), np.uint8)
# Above this many interior pixels per side, O(n^2 log n) FFTs beat O(n^3) dense products.
_DENSE_MAX_SIDE = 160


@cache
def _sine_matrix(n: int) -> np.ndarray:
    """Orthonormal type-I DST matrix ``sqrt(2 / (n + 1)) sin(π j k / (n + 1))``, j, k = 1..n (float32)."""
    k = np.arange(1, n + 1, dtype=np.float64)
    return (np.sqrt(2.0 / (n + 1)) * np.sin(np.pi / (n + 1) * np.outer(k, k))).astype(np.float32)


@cache
def _eigenvalues(n: int) -> np.ndarray:
    """Eigenvalues ``2 cos(π k / (n + 1)) - 2``, k = 1..n, of the 1-D Dirichlet Laplacian (float32)."""
    return (2.0 * np.cos(np.pi * np.arange(1, n + 1) / (n + 1)) - 2.0).astype(np.float32)


def _guidance_divergence(s: np.ndarray, d: np.ndarray, m: np.ndarray, mode: str) -> np.ndarray:
    """Right-hand side ``div(w * grad(s - d))`` around the pixels whose edges take source gradients.

    Only the pixels of the eroded mask's bounding box carry a guidance term (``w`` is zero
    elsewhere), so everything is computed on that region plus one row and column.

    Args:
        s: (r + 1, C, c + 1) float32 source region (rows, channels, columns: both transforms are
            then single matrix products); overwritten.
        d: (r + 1, C, c + 1) float32 destination region.
        m: (r, c) bool eroded mask on the region: the pixels ``p`` whose edges ``p -> p + x`` and
            ``p -> p + y`` may take source differences.
        mode: ``normal`` or ``mixed``.

    Returns:
        (r + 1, C, c + 1) float32 divergence at the region's pixels (its last row and column
        receive the outflow of the edges ending there).
    """
    w = m[:, None, :]
    if mode == "mixed":
        # |sx - sy| = |s[p+x] - s[p+y]|; OpenCV keeps the source where it is strictly larger.
        src_var = np.abs(s[:-1, :, 1:] - s[1:, :, :-1])
        dst_var = np.abs(d[:-1, :, 1:] - d[1:, :, :-1])
        w = (src_var > dst_var) & w
    e = np.subtract(s, d, out=s)                         # s is the caller's scratch copy
    ex = e[:-1, :, 1:] - e[:-1, :, :-1]                  # forward differences at the region's pixels
    ey = e[1:, :, :-1] - e[:-1, :, :-1]
    if mode == "mixed" or not m.all():                   # a rectangle's eroded region is all True
        ex *= w
        ey *= w
    f = np.zeros(s.shape, np.float32)
    np.add(ex, ey, out=f[:-1, :, :-1])                   # div g[p] = gx[p] - gx[p-x] + gy[p] - gy[p-y]
    f[:-1, :, 1:] -= ex
    f[1:, :, :-1] -= ey
    return f


def _solve_dirichlet(f: np.ndarray, offset: tuple[int, int], interior: tuple[int, int]) -> np.ndarray:
    """Solve ``Δv = f`` on an interior with ``v = 0`` outside it, by a type-I DST (float32).

    Args:
        f: (r, C, c) right-hand side, zero outside this block of the interior.
        offset: (row, column) of the block's first pixel in the interior.
        interior: (ny, nx) interior size (the box less its one-pixel ring).

    Returns:
        (ny, C, nx) float32 solution.
    """
    (r0, c0), (ny, nx) = offset, interior
    rows, channels, cols = f.shape
    denominator = _eigenvalues(ny)[:, None, None] + _eigenvalues(nx)
    if max(ny, nx) > _DENSE_MAX_SIDE:
        full = np.zeros((ny, channels, nx), np.float32)
        full[r0:r0 + rows, :, c0:c0 + cols] = f
        spectrum = scipy.fft.dstn(full, type=1, axes=(0, 2), norm="ortho", workers=1)
        spectrum /= denominator
        return scipy.fft.idstn(spectrum, type=1, axes=(0, 2), norm="ortho", workers=1)
    sy, sx = _sine_matrix(ny), _sine_matrix(nx)
    with one_blas_thread():                              # small products: threads cost more than they give
        spectrum = (sy[:, r0:r0 + rows] @ f.reshape(rows, channels * cols)).reshape(ny * channels, cols)
        spectrum = (spectrum @ sx[c0:c0 + cols]).reshape(ny, channels, nx)
        spectrum /= denominator
        v = (sy @ spectrum.reshape(ny, channels * nx)).reshape(ny * channels, nx) @ sx
    return v.reshape(ny, channels, nx)


def _as_mask_u8(mask: np.ndarray) -> np.ndarray:
    """Non-zero test of ``mask`` as a uint8 array that OpenCV accepts, without a copy when possible."""
    if mask.dtype == np.bool_:
        mask = mask.view(np.uint8)
    elif mask.dtype != np.uint8:
        mask = (mask != 0).view(np.uint8)
    return mask if mask.strides[-1] == 1 else np.ascontiguousarray(mask)   # OpenCV needs unit column steps


def blend_into(out: np.ndarray, src_crop: np.ndarray, mask_crop: np.ndarray, top_left: tuple[int, int],
               mode: str = "normal") -> None:
    """Poisson-blend a box-sized source patch into ``out`` in place (OpenCV's discretisation).

    The fast path for the synthesis engine: no whole-image work and no copy of ``out``. The box
    ``out[y:y + h, x:x + w]`` with ``(x, y) = top_left`` is replaced by the solution of the
    discrete Poisson problem of the module docstring: its outer one-pixel ring keeps the values of
    ``out``, its interior gets the gradients of ``src_crop`` where ``mask_crop`` eroded by 3 px
    holds (``normal``), or per channel the source or destination differences (``mixed``), and
    ``out``'s own gradients elsewhere. Pixels of ``out`` outside the box are not read or written.

    The result equals ``cv2.seamlessClone(src, dst, mask, center, flag)`` to within one level when
    the crop is OpenCV's box: the bounding box of the mask's non-zero pixels (after zeroing the
    mask's outer one-pixel image border, see ``opencv_mask_box``) and
    ``top_left = (cx - w // 2, cy - h // 2)``. A crop with empty margins is a valid but larger
    Poisson problem, whose result differs slightly from OpenCV's inside the box.

    Args:
        out: (H, W, C) uint8 or uint16 image, C in {1, 3}; the destination, overwritten in the box.
        src_crop: (h, w, C) source patch with ``out``'s dtype and channels.
        mask_crop: (h, w) array of any dtype; non-zero marks the pixels whose gradients to take.
        top_left: (x, y) column and row in ``out`` of the box's top-left pixel.
        mode: ``normal`` (OpenCV's NORMAL_CLONE) or ``mixed`` (MIXED_CLONE).

    Raises:
        ValueError: for an unknown mode, mismatched shapes or dtypes, or a box that does not lie
            inside ``out``.
    """
    if mode not in _MODES:
        raise ValueError(f"unknown blend mode {mode!r}; choose one of {list(_MODES)}")
    if out.dtype not in _MAX_LEVEL or src_crop.dtype != out.dtype:
        raise ValueError(f"out and src_crop must share a uint8 or uint16 dtype, got {out.dtype} and "
                         f"{src_crop.dtype}")
    if out.ndim != 3 or src_crop.ndim != 3 or src_crop.shape[2] != out.shape[2]:
        raise ValueError(f"out {out.shape} and src_crop {src_crop.shape} must both be (H, W, C) with the "
                         "same number of channels")
    h, w, channels = src_crop.shape
    if mask_crop.shape != (h, w):
        raise ValueError(f"mask_crop {mask_crop.shape} must have src_crop's size {(h, w)}")
    x, y = int(top_left[0]), int(top_left[1])
    if x < 0 or y < 0 or x + w > out.shape[1] or y + h > out.shape[0]:
        raise ValueError(f"a {w}x{h} box at top_left {(x, y)} does not lie inside out ({out.shape[1]}x"
                         f"{out.shape[0]})")
    if h < 3 or w < 3:
        return                                           # no interior pixel: OpenCV's ring is all of it
    eroded = cv2.erode(_as_mask_u8(mask_crop), _ERODE_KERNEL, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    cx, cy, cw, ch = cv2.boundingRect(eroded)            # at least 3 px from the box's edges
    if not cw:
        return                                           # no source gradient anywhere: u = out's box
    box = out[y:y + h, x:x + w]
    d = box.transpose(0, 2, 1).astype(np.float32)
    region = (slice(cy, cy + ch + 1), slice(cx, cx + cw + 1))
    s = src_crop[region].transpose(0, 2, 1).astype(np.float32)
    f = _guidance_divergence(s, d[region[0], :, region[1]], eroded[cy:cy + ch, cx:cx + cw] != 0, mode)
    v = _solve_dirichlet(f, (cy - 1, cx - 1), (h - 2, w - 2))
    v += d[1:-1, :, 1:-1]
    np.clip(v, 0.0, _MAX_LEVEL[out.dtype], out=v)
    levels = v.astype(out.dtype)                         # truncation towards zero, as OpenCV
    if channels == 1:
        box[1:-1, 1:-1, 0] = levels[:, 0, :]
    else:
        box[1:-1, 1:-1] = cv2.merge([levels[:, c, :] for c in range(channels)])


def opencv_mask_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Bounding box ``(x, y, w, h)`` that ``cv2.seamlessClone`` uses: non-zero pixels off the image border.

    OpenCV zeroes the mask's outer one-pixel border before taking the bounding box, so a mask
    touching the image edge gives a box one pixel smaller there. An all-zero result is
    ``(0, 0, 0, 0)``.

    Args:
        mask: (H, W) uint8 or bool array.
    """
    inner = _as_mask_u8(mask)[1:-1, 1:-1]
    x, y, w, h = cv2.boundingRect(inner)
    return (x + 1, y + 1, w, h) if w else (0, 0, 0, 0)


def dst_clone(src: np.ndarray, dst: np.ndarray, mask: np.ndarray, center: tuple[int, int],
              mode: str) -> np.ndarray:
    """``BLEND_BACKENDS`` entry: ``cv2.seamlessClone`` semantics through ``blend_into``.

    Args:
        src: (H, W, C) uint8 or uint16, C in {1, 3}.
        dst: (H', W', C) with ``src``'s dtype.
        mask: (H, W) uint8 or bool, non-zero inside.
        center: (x, y) in ``dst`` of the centre of the mask's box.
        mode: ``normal`` or ``mixed``.

    Returns:
        A blended copy of ``dst``; an unchanged copy when the mask only touches the image border
        (OpenCV then returns ``dst`` too).

    Raises:
        ValueError: as ``blend_into``.
    """
    x, y, w, h = opencv_mask_box(mask)
    out = dst.copy()
    if w:
        blend_into(out, src[y:y + h, x:x + w], mask[y:y + h, x:x + w],
                   (int(center[0]) - w // 2, int(center[1]) - h // 2), mode)
    return out
