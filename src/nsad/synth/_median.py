"""Exact median filter over a disk, computed only where it can differ from the background.

:func:`median_disk` returns exactly ``scipy.ndimage.median_filter(values, footprint=disk(radius),
mode="reflect")`` (the NSA paper's continuous-label filter, eq. 13, uses ``radius = 5``: an 81-pixel
footprint). Two observations make it fast on NSA's labels, which are zero outside the patches:

1. **Background skip.** With ``b = min(values)`` and ``n`` footprint pixels, the median is the
   ``n // 2``-th smallest footprint value (0-based), so it is ``b`` wherever at most ``n // 2`` of
   the footprint values exceed ``b``. A box count of ``values > b`` (OpenCV's unnormalised box
   filter, reflect border) plus the number of disk pixels outside the box bounds the disk count
   from above, so only pixels where that bound exceeds ``n // 2`` are filtered: per row, the span
   from the first to the last of them. The box is the square closest to the disk (9 x 9 for
   ``r = 5``, which leaves out the disk's 4 tips: filtered where the box count exceeds 36).
2. **Sliding histogram** (T. S. Huang, G. J. Yang and G. Y. Tang, "A fast two-dimensional median
   filtering algorithm", IEEE TASSP 27(1), 1979). Along a span, moving the disk one pixel to the
   right removes the left end and adds the right end of each of its ``2r+1`` rows, and the median
   is tracked from the previous one with the count of values below it. Wide value ranges (more
   than 1,024 bins) add a coarse histogram so that the median moves by whole blocks.

The histogram runs on integer codes: ``uint8``/``uint16`` values are their own codes; any other
dtype (floats, signed integers, bool) is replaced by its rank (the minimum is 0, the distinct
values above it ``1, 2, ...`` in order, from ``numpy.unique``), which the median commutes with;
more than 65,536 distinct values go to SciPy's median. The compiled kernel is ``numba``'s (a
dependency of nsad, imported on first use and cached on disk with ``cache=True``); the
``skimage`` backend, the reference the tests hold it to, runs scikit-image's rank median (or
SciPy's median for more than 4,096 codes) on the bounding box of the spans, with the same results.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Any, Literal

import cv2
import numpy as np

from nsad._checks import check_choice

MedianBackend = Literal["auto", "numba", "skimage"]
MEDIAN_BACKENDS = ("auto", "numba", "skimage")
_MAX_CODES = 1 << 16          # codes are uint16
_FINE_ONLY_BINS = 1024        # up to this many bins the median steps one bin at a time
_SKIMAGE_MAX_BINS = 1 << 12   # scikit-image's rank filters scan the histogram per pixel


@functools.cache
def disk_half_widths(radius: int) -> np.ndarray:
    """Half-width ``h`` of each row ``dy`` of a disk: the row spans ``-h..h``, ``h^2 + dy^2 <= r^2``.

    Rows are listed from ``dy = -radius`` to ``radius``, so the footprint is the pixels within
    Euclidean distance ``radius`` of the centre (the same set as ``nsad.synth.labels.disk``).
    """
    rows = range(-radius, radius + 1)
    half_widths = np.array([math.isqrt(radius * radius - dy * dy) for dy in rows], np.int64)
    half_widths.flags.writeable = False
    return half_widths


def median_disk(values: np.ndarray, radius: int = 5, *, backend: MedianBackend = "auto") -> np.ndarray:
    """Median over a disk of ``radius`` pixels with SciPy's ``reflect`` border (``dcba|abcd``), exactly.

    The result equals ``scipy.ndimage.median_filter(values, footprint=disk, mode="reflect")``,
    i.e. at every pixel the ``n // 2``-th smallest (0-based) of the ``n`` values in the disk.

    Args:
        values: (H, W) array of any real dtype; floats must not contain NaN.
        radius: disk radius in pixels, ``>= 0`` (NSA's continuous label uses 5).
        backend: ``numba`` (compiled sliding histogram), ``skimage`` (scikit-image/SciPy on the
            region that needs filtering) or ``auto`` (``numba``).

    Returns:
        (H, W) array of the dtype of ``values``.

    Raises:
        TypeError: if ``values`` is not a NumPy array of a real (bool, integer or float) dtype.
        ValueError: if ``values`` is not 2-D or contains NaN, ``radius`` is negative or not an
            integer, or ``backend`` is unknown.
    """
    if not isinstance(values, np.ndarray) or values.dtype.kind not in "biuf":
        kind = values.dtype if isinstance(values, np.ndarray) else type(values).__name__
        raise TypeError(f"values must be a numpy array of bool, integer or float dtype, got {kind}")
    if values.ndim != 2:
        raise ValueError(f"values must be a 2-D (H, W) array, got shape {values.shape}")
    if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or radius < 0:
        raise ValueError(f"radius must be an integer >= 0, got {radius!r}")
    check_choice("median backend", backend, MEDIAN_BACKENDS)
    if backend == "auto":
        backend = "numba"
    radius = int(radius)
    if values.size == 0:
        return values.copy()
    if values.dtype == np.uint8 or values.dtype == np.uint16:
        return _median_codes(values, radius, backend).astype(values.dtype, copy=False)
    if values.dtype.kind == "f" and np.isnan(values).any():
        raise ValueError("values contain NaN; the median of a footprint with NaN is undefined")
    # Rank only the values above the minimum (few, in a label): the minimum is code 0.
    background = values.min()
    above = values > background
    distinct_above, inverse = np.unique(values[above], return_inverse=True)
    if distinct_above.size + 1 > _MAX_CODES:
        from scipy import ndimage

        return ndimage.median_filter(values, footprint=_disk_footprint(radius), mode="reflect")
    codes = np.zeros(values.shape, np.uint16)
    codes[above] = inverse.reshape(-1) + 1
    distinct = np.concatenate([background[None], distinct_above])
    return distinct[_median_codes(codes, radius, backend)]


def _disk_footprint(radius: int) -> np.ndarray:
    offsets = np.arange(-radius, radius + 1)
    return offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius**2


def _median_codes(codes: np.ndarray, radius: int, backend: str) -> np.ndarray:
    """Disk median of uint8/uint16 ``codes``; uint16 (H, W). See the module docstring for the method."""
    codes = np.ascontiguousarray(codes, dtype=np.uint16)
    half_widths = disk_half_widths(radius)
    rank = int((2 * half_widths + 1).sum()) // 2
    background = codes.min()
    out = np.full(codes.shape, background, np.uint16)
    side, outside = _skip_box(radius)
    above = (codes > background).view(np.uint8)
    count = cv2.boxFilter(above, cv2.CV_16U if side * side < 1 << 16 else cv2.CV_32S, (side, side),
                          normalize=False, borderType=cv2.BORDER_REFLECT)
    need = count > rank - outside
    if not need.any():
        return out
    padded = cv2.copyMakeBorder(codes, radius, radius, radius, radius, cv2.BORDER_REFLECT)
    if backend == "numba":
        bins = int(codes.max()) + 1
        # A coarse level of about sqrt(bins) blocks keeps wide, noisy ranges from stepping bin by bin.
        coarse_shift = 0 if bins <= _FINE_ONLY_BINS else (int(bins - 1).bit_length() + 1) // 2
        _numba_kernel()(padded, need, half_widths, rank, bins, coarse_shift, out)
    else:
        _median_box_reference(padded, need, radius, out)
    return out


@functools.cache
def _skip_box(radius: int) -> tuple[int, int]:
    """Side of the square closest to the disk of ``radius`` and the number of disk pixels outside it.

    Closest means fewest pixels in one but not the other; ``count(square) + outside`` is an upper
    bound of any count over the disk.
    """
    half_widths = disk_half_widths(radius)
    size = int((2 * half_widths + 1).sum())
    best = None
    for half in range(radius + 1):
        rows = half_widths[radius - half:radius + half + 1]
        inside = int((2 * np.minimum(rows, half) + 1).sum())
        mismatch = (2 * half + 1) ** 2 - inside + size - inside
        if best is None or mismatch < best[0]:
            best = (mismatch, 2 * half + 1, size - inside)
    return best[1], best[2]


def _median_box_reference(padded: np.ndarray, need: np.ndarray, radius: int, out: np.ndarray) -> None:
    """Fill ``out`` on the bounding box of ``need`` with scikit-image's (or SciPy's) median."""
    rows, cols = np.flatnonzero(need.any(axis=1)), np.flatnonzero(need.any(axis=0))
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    window = padded[y0:y1 + 2 * radius, x0:x1 + 2 * radius]
    footprint = _disk_footprint(radius)
    if int(window.max()) < _SKIMAGE_MAX_BINS:
        from skimage.filters import rank

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # bit-depth performance notes
            filtered = rank.median(window, footprint=footprint)
    else:
        from scipy import ndimage

        filtered = ndimage.median_filter(window, footprint=footprint, mode="reflect")
    # Only the interior is kept, where the whole footprint lies inside the window.
    out[y0:y1, x0:x1] = filtered[radius:radius + y1 - y0, radius:radius + x1 - x0]


def _median_spans(padded: np.ndarray, need: np.ndarray, half_widths: np.ndarray, rank: int, bins: int,
                  coarse_shift: int, out: np.ndarray) -> None:  # pragma: no cover - compiled by numba
    """Huang's sliding-histogram median along each row's span of ``need`` (compiled by numba).

    Args:
        padded: (H + 2r, W + 2r) uint16 codes with the reflect border already added.
        need: (H, W) bool, pixels whose median must be computed (per row, the span from the first
            to the last is filtered; other pixels keep ``out``'s value).
        half_widths: (2r + 1,) int64 half-width of each footprint row (:func:`disk_half_widths`).
        rank: 0-based rank of the median among the footprint's values (``n // 2``).
        bins: number of histogram bins, ``max(codes) + 1``.
        coarse_shift: log2 of the coarse block size, 0 for no coarse level.
        out: (H, W) uint16 output, written in place.
    """
    height, width = out.shape
    rows = half_widths.shape[0]
    radius = rows // 2
    padded_width = padded.shape[1]
    flat = padded.ravel()
    # Offsets of the pixel leaving and the pixel entering each footprint row when the centre moves
    # from x - 1 to x, relative to the flat index of padded[y, x - 1]; unsigned to skip wraparound checks.
    leave = np.empty(rows, np.uint64)
    enter = np.empty(rows, np.uint64)
    for i in range(rows):
        leave[i] = i * padded_width + radius - half_widths[i]
        enter[i] = i * padded_width + radius + half_widths[i] + 1
    hist = np.zeros(bins, np.int32)
    use_coarse = coarse_shift > 0
    block = 1 << coarse_shift
    block_mask = block - 1
    coarse = np.zeros((bins >> coarse_shift) + 1 if use_coarse else 1, np.int32)
    for y in range(height):
        x0 = 0
        while x0 < width and not need[y, x0]:
            x0 += 1
        if x0 == width:
            continue
        x1 = width
        while not need[y, x1 - 1]:
            x1 -= 1
        for i in range(rows):
            for c in range(x0 + radius - half_widths[i], x0 + radius + half_widths[i] + 1):
                v = padded[y + i, c]
                hist[v] += 1
                if use_coarse:
                    coarse[v >> coarse_shift] += 1
        # m is the median while below (the count of values < m) <= rank < below + hist[m].
        m = 0
        below = 0
        if use_coarse:
            while below + coarse[m >> coarse_shift] <= rank:
                below += coarse[m >> coarse_shift]
                m += block
        while below + hist[m] <= rank:
            below += hist[m]
            m += 1
        out[y, x0] = m
        for x in range(x0 + 1, x1):
            base = np.uint64(y * padded_width + x - 1)
            for i in range(rows):
                v = flat[base + leave[i]]
                w = flat[base + enter[i]]
                hist[v] -= 1
                hist[w] += 1
                if use_coarse:
                    coarse[v >> coarse_shift] -= 1
                    coarse[w >> coarse_shift] += 1
                below += np.int64(w < m) - np.int64(v < m)
            while below > rank:
                if use_coarse and (m & block_mask) == 0 and below - coarse[(m >> coarse_shift) - 1] > rank:
                    m -= block
                    below -= coarse[m >> coarse_shift]
                else:
                    m -= 1
                    below -= hist[m]
            while below + hist[m] <= rank:
                if use_coarse and (m & block_mask) == 0 and below + coarse[m >> coarse_shift] <= rank:
                    below += coarse[m >> coarse_shift]
                    m += block
                else:
                    below += hist[m]
                    m += 1
            out[y, x] = m
        for i in range(rows):  # empty the histogram for the next row
            for c in range(x1 - 1 + radius - half_widths[i], x1 + radius + half_widths[i]):
                v = padded[y + i, c]
                hist[v] -= 1
                if use_coarse:
                    coarse[v >> coarse_shift] -= 1


@functools.cache
def _numba_kernel() -> Any:
    """``_median_spans`` compiled by numba (imported here so that importing nsad stays light)."""
    import numba

    return numba.njit(cache=True, nogil=True, boundscheck=False)(_median_spans)
