"""Input checks shared by the metrics: array conversion, finite scores, binary labels and masks.

Torch tensors are accepted everywhere without importing torch: a tensor is recognised by its
module name and converted with ``.detach().cpu()``.
"""

from __future__ import annotations

import os
import sys
import warnings

import numpy as np

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


class UndefinedMetricWarning(UserWarning):
    """A metric is undefined for the data given (e.g. only one class); the metric returns NaN."""


def warn_undefined(message: str) -> float:
    """Warn with ``message`` (an :class:`UndefinedMetricWarning`) and return NaN.

    The warning points at the caller's line outside ``nsad.metrics``, however deep the call.
    """
    frame, level = sys._getframe(0), 1  # stacklevel 1 is this function
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, UndefinedMetricWarning, stacklevel=level)
    return float("nan")


def as_array(name: str, value: object) -> np.ndarray:
    """Return ``value`` as a NumPy array; torch tensors are detached and moved to the CPU first.

    Raises:
        TypeError: if ``value`` cannot be turned into a numeric NumPy array.
    """
    if type(value).__module__.split(".")[0] == "torch" and hasattr(value, "detach"):
        tensor = value.detach().cpu()
        if str(tensor.dtype) == "torch.bfloat16":  # NumPy has no bfloat16; float32 holds it exactly
            tensor = tensor.float()
        value = tensor.numpy()
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be array-like (NumPy array, torch tensor or nested lists), "
                        f"got {type(value).__name__}: {error}") from error
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers (bool, int or float), got dtype {array.dtype}")
    return array


def as_scores(name: str, value: object) -> np.ndarray:
    """Return finite, non-empty scores as float32 (float16/float32 input) or float64 (anything else).

    float32 maps stay float32 (no copy), so that sorting is fast; other dtypes become float64,
    which holds every int32 and float32 value exactly, so no two distinct scores merge.

    Raises:
        TypeError: if ``value`` is not numeric.
        ValueError: if it is empty or holds NaN or infinite values.
    """
    array = as_array(name, value)
    if array.size == 0:
        raise ValueError(f"{name} is empty (shape {array.shape}); need at least one score")
    if array.dtype == np.float16:
        array = array.astype(np.float32)
    elif array.dtype != np.float32:
        array = array.astype(np.float64, copy=False)
    # One float64 sum is finite iff every element is finite (float32 sums cannot overflow float64);
    # the per-element count runs only on failure, or when a float64 sum overflowed.
    with np.errstate(over="ignore", invalid="ignore"):
        total = np.sum(array, dtype=np.float64)
    if not np.isfinite(total):
        n_nan = int(np.isnan(array).sum())
        n_inf = int(np.isinf(array).sum())
        if n_nan or n_inf:
            first = np.unravel_index(int(np.flatnonzero(~np.isfinite(array.ravel()))[0]), array.shape)
            raise ValueError(f"{name} must be finite; found {n_nan} NaN and {n_inf} infinite values "
                             f"(first at index {tuple(int(i) for i in first)})")
    return array


def as_binary(name: str, value: object, *, allow_255: bool) -> np.ndarray:
    """Return a bool array that is True where ``value`` is non-zero, after checking its values.

    Accepted: bool arrays; numbers that are all 0 or 1; with ``allow_255`` also numbers that are
    all 0 or 255 (8-bit masks as saved on disk). A mix such as {0, 1, 255} is rejected.

    Raises:
        TypeError: if ``value`` is not numeric.
        ValueError: if it is empty or holds other values (the values found are listed).
    """
    array = as_array(name, value)
    if array.size == 0:
        raise ValueError(f"{name} is empty (shape {array.shape})")
    if array.dtype == bool:
        return array
    # Valid iff every non-zero value equals the maximum and that maximum is 1 (or 255): three
    # vectorised passes, much faster than np.unique on millions of pixels (NaN fails the test).
    n_nonzero = int(np.count_nonzero(array))
    if n_nonzero == 0:
        return np.zeros(array.shape, dtype=bool)
    top = array.max()
    if top in ((1, 255) if allow_255 else (1,)) and int(np.count_nonzero(array == top)) == n_nonzero:
        return array != 0
    values = np.unique(array)
    accepted = "only 0/1 or only 0/255" if allow_255 else "only 0 and 1 (or bool)"
    shown = ", ".join(str(v) for v in values[:10].tolist()) + (", ..." if values.size > 10 else "")
    raise ValueError(f"{name} must hold {accepted}; found {values.size} distinct values: [{shown}]")


def check_same_shape(name_a: str, a: np.ndarray, name_b: str, b: np.ndarray) -> None:
    """Raise ``ValueError`` unless ``a`` and ``b`` have the same shape."""
    if a.shape != b.shape:
        raise ValueError(f"{name_a} and {name_b} must have the same shape, got {a.shape} and {b.shape}")


def check_ndim(name: str, array: np.ndarray, ndim: int, layout: str) -> None:
    """Raise ``ValueError`` unless ``array`` has ``ndim`` axes (``layout`` names them, e.g. "(N, H, W)")."""
    if array.ndim != ndim:
        hint = ""
        if ndim == 3 and array.ndim == 4 and array.shape[1] == 1:
            hint = "; drop the channel axis first, e.g. maps[:, 0]"
        elif ndim == 3 and array.ndim == 2:
            hint = "; for a single image use maps[None]"
        raise ValueError(f"{name} must have shape {layout}, got {array.shape}{hint}")


def check_fraction(name: str, value: float, *, include_zero: bool) -> float:
    """Return ``value`` as a float if it lies in [0, 1] (or (0, 1] without ``include_zero``)."""
    try:
        number = float(value)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be a number, got {type(value).__name__}") from error
    low_ok = number >= 0.0 if include_zero else number > 0.0
    if not (np.isfinite(number) and low_ok and number <= 1.0):
        interval = "[0, 1]" if include_zero else "(0, 1]"
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    return number
