"""Reading and writing images in the engine's layout: (H, W, C) uint8 or uint16, C in {1, 3}, RGB order."""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def is_image_file(path: Path) -> bool:
    """Whether ``path`` is a visible image file: an image suffix, and not hidden (``.name``, macOS ``._name``)."""
    return not path.name.startswith(".") and path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()


def decode_file(path: Path, kind: str = "image") -> np.ndarray:
    """Decode an 8- or 16-bit image file as OpenCV stores it (BGR order, alpha kept).

    Args:
        path: the file.
        kind: what the file is, for the error messages (``image``, ``mask``).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the file cannot be decoded or holds another bit depth (e.g. float TIFF).
    """
    if not path.is_file():
        raise FileNotFoundError(f"{kind} file not found: {path}")
    return decode_bytes(np.fromfile(path, dtype=np.uint8), str(path), kind, "file")


def decode_bytes(data: bytes | np.ndarray, source: str, kind: str = "image", what: str = "data") -> np.ndarray:
    """Decode an encoded 8- or 16-bit image held in memory, as :func:`decode_file` does a file.

    Args:
        data: the encoded bytes (PNG, JPEG, BMP, TIFF, WebP).
        source: where they came from, for the error messages (a path, ``upload``...).
        kind: what the image is, for the error messages.
        what: ``file`` or ``data``, for the error messages.

    Raises:
        ValueError: if the bytes cannot be decoded or hold another bit depth (e.g. float TIFF).
    """
    buffer = np.frombuffer(data, dtype=np.uint8) if isinstance(data, (bytes, bytearray, memoryview)) else data
    decoded = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED) if buffer.size else None
    if decoded is None:
        raise ValueError(f"cannot read {kind} {source}: the {what} is empty, corrupt or not an image "
                         f"(accepted: {', '.join(IMAGE_SUFFIXES)})")
    if decoded.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"{kind} {source} has {decoded.dtype} pixels; accepted are 8-bit and 16-bit integer images")
    return decoded


def read_image(path: str | Path) -> np.ndarray:
    """Read an 8- or 16-bit grayscale, RGB or RGBA image as (H, W, C) with C = 1 or 3, RGB order.

    An alpha channel is dropped; if it is not fully opaque a warning says so, since the
    transparent pixels then keep whatever colour the file stores under them.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the file cannot be decoded or holds another bit depth (e.g. float TIFF).
    """
    path = Path(path)
    return to_engine_layout(decode_file(path, "image"), str(path))


def read_image_bytes(data: bytes, source: str = "upload") -> np.ndarray:
    """Decode an encoded image held in memory as :func:`read_image` reads a file (same layout and checks).

    Raises:
        ValueError: if the bytes cannot be decoded, hold another bit depth or channel count.
    """
    return to_engine_layout(decode_bytes(data, source, "image"), source)


def to_engine_layout(image: np.ndarray, source: str) -> np.ndarray:
    """A decoded OpenCV image (BGR[A], gray or gray + alpha) as (H, W, C), C = 1 or 3, RGB order.

    Raises:
        ValueError: for another number of channels.
    """
    if image.ndim == 2:
        return image[:, :, None]
    channels = image.shape[2]
    if channels in (2, 4):
        alpha = image[:, :, -1]
        if alpha.min() < np.iinfo(image.dtype).max:
            warnings.warn(f"image {source} has transparent pixels; the alpha channel is ignored", stacklevel=3)
        image = image[:, :, :-1]
        channels -= 1
    if channels == 1:
        return np.ascontiguousarray(image)
    if channels == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    raise ValueError(f"image {source} has {image.shape[2]} channels; accepted are 1 (gray), 2, 3 (RGB) and 4 (RGBA)")


def write_image(path: str | Path, image: np.ndarray) -> None:
    """Write an (H, W) or (H, W, C) uint8/uint16 image with C in {1, 3} (RGB order) to ``path``.

    Raises:
        ValueError: if the image layout is not accepted or the file cannot be written.
    """
    path = Path(path)
    if image.dtype not in (np.uint8, np.uint16) or image.ndim not in (2, 3):
        raise ValueError(f"cannot write {path}: need a uint8/uint16 (H, W[, C]) image, "
                         f"got {image.dtype} {image.shape}")
    if image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    elif image.ndim == 3 and image.shape[2] != 1:
        raise ValueError(f"cannot write {path}: need 1 or 3 channels, got {image.shape[2]}")
    ok, encoded = cv2.imencode(path.suffix or ".png", image)
    if not ok:
        raise ValueError(f"cannot encode an image for {path}")
    encoded.tofile(path)


def list_images(folder: str | Path) -> list[Path]:
    """Return the image files directly inside ``folder``, sorted by name; hidden files (``.*``, ``._*``) are skipped.

    Raises:
        FileNotFoundError: if ``folder`` does not exist or is not a folder.
        ValueError: if it holds no image files.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    paths = sorted(p for p in folder.iterdir() if is_image_file(p))
    if not paths:
        raise ValueError(f"no images in {folder}; accepted file types: {', '.join(IMAGE_SUFFIXES)}")
    return paths


def normal_image_paths(folder: str | Path) -> list[Path]:
    """Return the normal training images of an MVTec AD category folder or of a plain folder.

    An MVTec AD category (a folder with ``train/good``) gives the images of ``train/good``; any
    other folder gives the images directly inside it.

    Raises:
        FileNotFoundError: if ``folder`` does not exist.
        ValueError: if it holds no images.
    """
    folder = Path(folder)
    train_good = folder / "train" / "good"
    return list_images(train_good if train_good.is_dir() else folder)
