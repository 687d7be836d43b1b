"""Shared argument checks with error messages that name the value and what is accepted."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path

import numpy as np


def check_range(name: str, value: float, low: float, high: float) -> float:
    """Return ``value`` unchanged if ``low <= value <= high``.

    Raises:
        ValueError: if ``value`` lies outside ``[low, high]`` or is not finite.
    """
    if not (np.isfinite(value) and low <= value <= high):
        raise ValueError(f"{name} must be in [{low}, {high}], got {value!r}")
    return value


def check_choice(kind: str, name: str, choices: Iterable[str]) -> str:
    """Return ``name`` if it is one of ``choices``; otherwise list them and suggest the closest.

    Raises:
        ValueError: if ``name`` is not among ``choices``.
    """
    choices = sorted(choices)
    if name not in choices:
        close = difflib.get_close_matches(name, choices, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown {kind} {name!r}; choose one of {choices}.{hint}")
    return name


def check_image(name: str, image: np.ndarray) -> np.ndarray:
    """Check that ``image`` is an (H, W, C) uint8 or uint16 array with C in {1, 3}.

    This is the engine's working layout: images as OpenCV holds them (RGB order is kept as read),
    grayscale with one channel, intensities in their native 8- or 16-bit levels.

    Raises:
        TypeError: if ``image`` is not a NumPy array of dtype uint8 or uint16.
        ValueError: if its shape is not (H, W, 1) or (H, W, 3).
    """
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(image).__name__}")
    if image.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"{name} must have dtype uint8 or uint16, got {image.dtype}")
    if image.ndim != 3 or image.shape[2] not in (1, 3):
        raise ValueError(f"{name} must have shape (H, W, 1) or (H, W, 3), got {image.shape}")
    return image


def check_image_pair(image: np.ndarray, source: np.ndarray) -> None:
    """Check a destination and a source image of a synthetic task: engine layout, same shape and dtype.

    Raises:
        TypeError, ValueError: as :func:`check_image`, or if the two differ in shape or dtype.
    """
    check_image("image", image)
    check_image("source", source)
    if source.shape != image.shape or source.dtype != image.dtype:
        raise ValueError(f"source {source.shape} {source.dtype} must match image {image.shape} {image.dtype}")


def levels_per_8bit(dtype: np.dtype) -> float:
    """Intensity levels of ``dtype`` per 8-bit level: 1 for uint8, 257 for uint16 (65535 / 255)."""
    return 1.0 if np.dtype(dtype) == np.uint8 else 257.0


def check_new_folder(out: Path, command: str) -> None:
    """Refuse an output folder that is a file, lies inside a file, or already holds something.

    Commands write their results only into a new or empty folder, so earlier results are never
    overwritten or mixed with new ones.

    Raises:
        FileExistsError: if ``out`` is a file or a folder that is not empty.
        NotADirectoryError: if a parent of ``out`` is a file.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} is a file; give a new or empty folder for the results")
    if out.is_dir() and any(out.iterdir()):
        names = sorted(path.name for path in out.iterdir())
        shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        raise FileExistsError(f"--out {out} already holds {len(names)} files or folders ({shown}); nsad {command} "
                              "does not overwrite or mix results: choose a new or empty --out")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(f"--out {out}: {parent} is a file, so no folder can be made inside it")
            break
