"""Labelled data sets on disk: MVTec AD categories and plain folders -> training paths and test samples.

Two layouts are recognised, both rooted at a *category folder*:

- **MVTec AD** (Bergmann et al., CVPR 2019)::

      CATEGORY/train/good/*.png                      normal training images
      CATEGORY/test/good/*.png                       normal test images
      CATEGORY/test/<defect type>/NNN.png            anomalous test images
      CATEGORY/ground_truth/<defect type>/NNN_mask.png

  :func:`find_dataset` accepts the data set root plus a category name, or the category folder.

- **Plain**, for users' own data: the same tree with looser rules. Normal training images lie
  directly in ``train/`` or in ``train/good``, ``train/normal`` or ``train/ok``; a test folder named
  ``good``, ``normal`` or ``ok`` holds normal images and any other name is a defect type; masks are
  optional and may be called ``<stem>_mask.png`` or ``<stem>.png`` (any image type). Without
  masks only image-level metrics can be computed. A folder that only holds images is a training
  set without test images (``require_test=False``).

Masks are binary images at the resolution of their image; :func:`read_mask` checks both and
resizes with nearest-neighbour interpolation, so a resized mask stays binary.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import cv2
import numpy as np

from nsad.data.io import decode_file, is_image_file, list_images

NORMAL_NAMES: tuple[str, ...] = ("good", "normal", "ok")
"""Test (and training) folder names that mean "normal"; any other test folder name is a defect type."""

MASK_FOLDER = "ground_truth"
MASK_SUFFIX = "_mask"
_SHOWN = 5  # how many offending files an error message lists


@dataclass(frozen=True)
class Sample:
    """One test image and what is known about it.

    Attributes:
        path: the image file.
        is_anomalous: False for images in a ``good``/``normal``/``ok`` test folder, True otherwise.
        defect_type: the name of the test folder the image lies in (``good`` for MVTec AD normals).
        mask_path: the ground-truth mask of an anomalous image, or None (normal images, and data
            sets without masks). A normal image's mask is all zero by definition.
    """

    path: Path
    is_anomalous: bool
    defect_type: str
    mask_path: Path | None = None


@dataclass(frozen=True)
class DatasetLayout:
    """What :func:`find_dataset` found in a category folder.

    Attributes:
        root: the category folder.
        category: its name (the folder's name).
        train: normal training images, sorted by name.
        test: test samples, sorted by folder then name; empty when the folder has no test images.
        layout: ``mvtec`` when the tree follows MVTec AD's naming exactly, else ``plain``.
    """

    root: Path
    category: str
    train: tuple[Path, ...]
    test: tuple[Sample, ...]
    layout: str = "plain"

    @property
    def has_masks(self) -> bool:
        """Whether anomalous test images have masks (then every one has), so pixel metrics apply."""
        return any(sample.mask_path is not None for sample in self.test)

    @property
    def defect_types(self) -> tuple[str, ...]:
        """The anomalous test folders' names, sorted."""
        return tuple(sorted({s.defect_type for s in self.test if s.is_anomalous}))


def sample_data_path() -> Path:
    """Return the MVTec AD bottle sample that ships with nsad (an MVTec AD category folder).

    It holds 16 training images, 3 normal and 6 anomalous test images with masks, at 128x128
    (CC BY-NC-SA 4.0, see ``LICENSE.txt`` and ``README.md`` inside it).

    Raises:
        FileNotFoundError: if the package was installed without its data files.
    """
    folder = Path(str(resources.files("nsad").joinpath("assets", "bottle_sample")))
    if not (folder / "train" / "good").is_dir():
        raise FileNotFoundError(f"nsad's sample images are missing from {folder}; reinstall nsad with its "
                                "package data (assets/**/*)")
    return folder


def find_dataset(path: str | Path, category: str | None = None, *,
                 require_test: bool = True) -> DatasetLayout:
    """Find the training images and labelled test samples of a category.

    Args:
        path: a category folder (holding ``train/``), or a data set root holding category folders
            when ``category`` is given.
        category: the category's folder name inside ``path`` (e.g. ``bottle``), or None when
            ``path`` is the category folder. Passing a category folder together with its own name
            is accepted too.
        require_test: raise when there are no test images; with False, a missing ``test/`` folder
            gives an empty ``test`` and a folder holding only images is taken as the training set.

    Returns:
        The layout; see :class:`DatasetLayout`.

    Raises:
        FileNotFoundError: if ``path`` or a required folder (``train``, ``test``) does not exist.
        ValueError: for an unknown category (the categories found are listed, with the closest
            name), a root given without a category, empty or unlabelled folders, anomalous test
            images without masks while other images have them, masks for no image, masks for
            normal images, or two files with the same name stem.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"data folder not found: {path}")
    if not path.is_dir():
        raise ValueError(f"data path {path} is a file; give a category folder (holding train/ and test/) "
                         "or a data set root with a category")
    if category is None and not (path / "train").is_dir():
        categories = _categories(path)
        if categories:
            raise ValueError(f"{path} is a data set root holding the categories {categories}; "
                             "choose one with category=NAME (--category NAME)")
    folder = path if category is None else _category_folder(path, category)
    if not (folder / "train").is_dir():
        if not require_test and _images_in(folder):
            return DatasetLayout(folder, _name_of(folder), tuple(list_images(folder)), (), "plain")
        raise FileNotFoundError(
            f"no train folder in {folder}: expected {folder / 'train' / 'good'} (MVTec AD) or "
            f"{folder / 'train'} holding normal images, beside {folder / 'test'}/<good|defect type>/")
    train, train_mvtec = _train_images(folder / "train")
    test_folder = folder / "test"
    if not test_folder.is_dir():
        if require_test:
            raise FileNotFoundError(f"no test folder in {folder}: expected {test_folder}/good/ for normal "
                                    f"and {test_folder}/<defect type>/ for anomalous test images")
        return DatasetLayout(folder, _name_of(folder), tuple(train), (), "plain")
    test, test_mvtec = find_test_samples(test_folder, folder / MASK_FOLDER)
    layout = "mvtec" if train_mvtec and test_mvtec else "plain"
    return DatasetLayout(folder, _name_of(folder), tuple(train), tuple(test), layout)


def find_test_samples(test_folder: str | Path,
                      mask_folder: str | Path | None = None) -> tuple[list[Sample], bool]:
    """Label the images of ``test_folder/<type>/`` and pair anomalous ones with their masks.

    Args:
        test_folder: holds one sub-folder per type: ``good``/``normal``/``ok`` for normal images,
            any other name for a defect type.
        mask_folder: holds ``<defect type>/<stem>_mask.png`` or ``<defect type>/<stem>.png`` for the
            anomalous image ``<defect type>/<stem>.*``; None or a missing folder means no masks.

    Returns:
        The samples (sorted by type folder, then file name) and whether the tree follows MVTec AD's
        naming (normal images in ``good``, every anomalous image with a ``_mask`` file).

    Raises:
        FileNotFoundError: if ``test_folder`` does not exist.
        ValueError: as listed for :func:`find_dataset`.
    """
    test_folder = Path(test_folder)
    if not test_folder.is_dir():
        raise FileNotFoundError(f"test folder not found: {test_folder}")
    types = _subfolders(test_folder)
    loose = _images_in(test_folder)
    if loose:
        raise ValueError(f"{len(loose)} images lie directly in {test_folder} (e.g. {loose[0].name}) and have "
                         f"no label: move them into {test_folder}/good/ (normal) or "
                         f"{test_folder}/<defect type>/")
    if not types:
        raise ValueError(f"test folder {test_folder} has no sub-folders; put normal test images in "
                         f"{test_folder}/good/ and anomalous ones in {test_folder}/<defect type>/")
    images = {name: list_images(test_folder / name) for name in types}
    for name, paths in images.items():
        _check_unique_stems(test_folder / name, paths)
    masks = _find_masks(Path(mask_folder) if mask_folder is not None else None, images)
    samples: list[Sample] = []
    missing: list[Path] = []
    for name in types:
        anomalous = name.lower() not in NORMAL_NAMES
        for image in images[name]:
            mask = masks.get((name, image.stem)) if anomalous else None
            if anomalous and mask is None:
                missing.append(image)
            samples.append(Sample(image, anomalous, name, mask))
    if masks and missing:
        shown = ", ".join(str(p) for p in missing[:_SHOWN]) + (", ..." if len(missing) > _SHOWN else "")
        first = missing[0]
        expected = Path(mask_folder) / first.parent.name / f"{first.stem}{MASK_SUFFIX}.png"
        raise ValueError(
            f"{len(missing)} anomalous test images have no mask while {len(masks)} others have one: {shown}. "
            f"Pixel metrics need a mask for every anomalous image, e.g. {expected} (or "
            f"{expected.with_name(first.stem + '.png')}); add them, or remove {mask_folder} for image "
            "metrics only")
    mvtec = (all(name == "good" or name.lower() not in NORMAL_NAMES for name in types)
             and bool(masks) and all(m.stem.endswith(MASK_SUFFIX) for m in masks.values()))
    return samples, mvtec


def verify_dataset(layout: DatasetLayout) -> None:
    """Check every file of ``layout`` before long work starts: images readable, masks binary and sized.

    Image files are checked from their headers (cheap); masks are read in full and compared with
    their image's size.

    Raises:
        FileNotFoundError: if a file has gone.
        ValueError: naming the first unreadable image or bad mask (see :func:`read_mask`).
    """
    for path in layout.train:
        image_size(path)
    for sample in layout.test:
        if sample.mask_path is not None:
            read_mask(sample.mask_path, image_path=sample.path)
        else:
            image_size(sample.path)


def read_mask(path: str | Path, size: int | Sequence[int] | None = None, *,
              image_path: str | Path | None = None) -> np.ndarray:
    """Read a binary ground-truth mask at full resolution, check it, and resize it (nearest neighbour).

    Args:
        path: a single-channel image (or one whose channels are equal) holding only 0 and 255, or
            only 0 and 1 (16-bit files: 0 and 65535 or 0 and 1). An all-zero mask is accepted, and so
            is one holding 0 and up to three levels within 2% of the maximum (0, 253, 254 and 255, as
            a public benchmark ships them): every non-zero pixel is then defect, with a warning.
        size: the output size: an int for a square, or (height, width); None keeps the file's size.
            Resizing uses nearest-neighbour interpolation (``cv2.INTER_NEAREST_EXACT``, which
            samples pixel centres like PIL's nearest filter), so the result stays binary.
        image_path: the mask's image; when given, the mask must have the image's height and width
            (read from the image file's header).

    Returns:
        An (H, W) bool array, True on the anomaly.

    Raises:
        FileNotFoundError: if ``path`` or ``image_path`` does not exist.
        ValueError: if the file cannot be read, holds other values than a binary mask (the values
            found are listed), has channels that differ, does not match its image's size (both
            files and sizes are named), or ``size`` is not positive.
    """
    path = Path(path)
    mask = decode_file(path, "mask")
    if mask.ndim == 3:
        if mask.shape[2] in (2, 4):  # drop alpha
            mask = mask[:, :, :-1]
        if any(not np.array_equal(mask[:, :, 0], mask[:, :, c]) for c in range(1, mask.shape[2])):
            raise ValueError(f"mask {path} has {mask.shape[2]} channels that differ; a mask must be a "
                             "single-channel (grayscale) image holding 0 and 255")
        mask = mask[:, :, 0]
    binary = _as_binary(mask, path)
    if image_path is not None:
        image_hw = image_size(image_path)
        if image_hw != binary.shape:
            raise ValueError(f"mask {path} is {binary.shape[1]}x{binary.shape[0]} (width x height) but its "
                             f"image {image_path} is {image_hw[1]}x{image_hw[0]}; a mask must have its "
                             "image's size")
    if size is None:
        return binary
    height, width = _size_hw(size)
    if (height, width) == binary.shape:
        return binary
    resized = cv2.resize(binary.view(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST_EXACT)
    return resized.astype(bool)


def read_sample_mask(sample: Sample, size: int | Sequence[int] | None = None) -> np.ndarray | None:
    """Return the mask of a test sample as (H, W) bool: all False for normal images.

    Args:
        sample: a test sample from :func:`find_dataset`.
        size: as for :func:`read_mask`; None gives the image's own size.

    Returns:
        The mask, or None for an anomalous image without a mask (data sets without masks).

    Raises:
        FileNotFoundError, ValueError: as for :func:`read_mask`.
    """
    if not sample.is_anomalous:
        shape = image_size(sample.path) if size is None else _size_hw(size)
        return np.zeros(shape, dtype=bool)
    if sample.mask_path is None:
        return None
    return read_mask(sample.mask_path, size, image_path=sample.path)


def image_size(path: str | Path) -> tuple[int, int]:
    """Return (height, width) of an image file, reading only its header where Pillow can.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if it is not an image.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    from PIL import Image, UnidentifiedImageError  # only needed here; keeps `import nsad.data` light

    try:
        with Image.open(path) as image:
            width, height = image.size
        return height, width
    except (UnidentifiedImageError, OSError, ValueError):
        from nsad.data.io import read_image  # formats Pillow does not know but OpenCV does

        return read_image(path).shape[:2]


NEAR_MAXIMUM_LEVELS = 3
"""A mask may hold up to this many non-zero levels within :data:`NEAR_MAXIMUM_SPAN` of the maximum and still be
binary: some public benchmarks ship masks with 0, 253, 254 and 255, and their evaluation counts every non-zero
pixel as defect."""
NEAR_MAXIMUM_SPAN = 0.02


def _as_binary(mask: np.ndarray, path: Path) -> np.ndarray:
    nonzero = int(np.count_nonzero(mask))
    if nonzero == 0:
        return np.zeros(mask.shape, dtype=bool)
    top = int(mask.max())
    accepted = (1, 255) if mask.dtype == np.uint8 else (1, 255, 65535)
    if top in accepted and int(np.count_nonzero(mask == top)) == nonzero:
        return mask != 0
    values = np.unique(mask)
    levels = values[values > 0]
    full = np.iinfo(mask.dtype).max
    if levels.size <= NEAR_MAXIMUM_LEVELS and levels.min() >= (1 - NEAR_MAXIMUM_SPAN) * full:
        warnings.warn("masks holding 0 and a few levels near the maximum (such as 253, 254, 255) are read as binary: "
                      "every non-zero pixel is defect, as the benchmarks' own evaluation counts them", stacklevel=3)
        return mask != 0
    shown = ", ".join(str(v) for v in values[:10].tolist()) + (", ..." if values.size > 10 else "")
    pairs = "0/255 or 0/1" if mask.dtype == np.uint8 else "0/65535, 0/255 or 0/1"
    raise ValueError(f"mask {path} must be binary ({pairs}, or 0 and a few levels near the maximum); found "
                     f"{values.size} distinct values: [{shown}] (a mask saved as JPEG or resized with "
                     "interpolation is no longer binary)")


def _size_hw(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        hw = (int(size), int(size))
    elif isinstance(size, Sequence) and not isinstance(size, str) and len(size) == 2:
        hw = (int(size[0]), int(size[1]))
    else:
        raise ValueError(f"size must be an int or (height, width), got {size!r}")
    if min(hw) < 1:
        raise ValueError(f"size must be positive, got {size!r}")
    return hw


def _name_of(folder: Path) -> str:
    return folder.resolve().name


def _subfolders(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if is_image_file(p))


def _categories(root: Path) -> list[str]:
    return [name for name in _subfolders(root)
            if (root / name / "train").is_dir() or (root / name / "test").is_dir()]


def _category_folder(path: Path, category: str) -> Path:
    folder = path / category
    if folder.is_dir():
        return folder
    if (path / "train").is_dir() and _name_of(path) == category:  # the category folder plus its own name
        return path
    categories = _categories(path)
    if not categories:
        itself = (f"; {path} is itself the category {_name_of(path)!r}: pass it without a category"
                  if (path / "train").is_dir() else "")
        raise ValueError(f"unknown category {category!r}: {path} holds no category folders (folders with "
                         f"train/ or test/ inside){itself}")
    close = difflib.get_close_matches(category, categories, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"unknown category {category!r} in {path}; categories found: {categories}.{hint}")


def _train_images(train: Path) -> tuple[list[Path], bool]:
    """Return the normal training images and whether they lie in ``train/good`` (MVTec AD)."""
    subfolders = _subfolders(train)
    normal = [name for name in subfolders if name.lower() in NORMAL_NAMES]
    if len(normal) > 1:
        raise ValueError(f"training folder {train} has several normal sub-folders {normal}; keep one")
    if normal:
        paths = list_images(train / normal[0])
        _check_unique_stems(train / normal[0], paths)
        return paths, normal[0] == "good"
    if not _images_in(train):
        others = (f" (sub-folders found: {subfolders}; training images must all be normal)"
                  if subfolders else "")
        raise ValueError(f"no training images in {train}: put normal images in {train / 'good'} or directly "
                         f"in {train}{others}")
    return list_images(train), False


def _check_unique_stems(folder: Path, paths: list[Path]) -> None:
    seen: dict[str, Path] = {}
    for p in paths:
        if p.stem in seen:
            raise ValueError(f"{folder} holds two images with the name {p.stem!r} ({seen[p.stem].name}, "
                             f"{p.name}); masks and results are matched by name, so rename one")
        seen[p.stem] = p


def _find_masks(mask_folder: Path | None, images: dict[str, list[Path]]) -> dict[tuple[str, str], Path]:
    """Map (type, image stem) to the mask file; check that every mask belongs to an image."""
    if mask_folder is None or not mask_folder.exists():
        return {}
    if not mask_folder.is_dir():
        raise ValueError(f"mask folder {mask_folder} is a file; expected "
                         f"{mask_folder}/<defect type>/<stem>_mask.png")
    types = _subfolders(mask_folder)
    if not types:
        raise ValueError(f"mask folder {mask_folder} is empty: add {mask_folder}/<defect type>/"
                         "<stem>_mask.png for each anomalous test image, or remove the folder for image "
                         "metrics only")
    masks: dict[tuple[str, str], Path] = {}
    for name in types:
        folder = mask_folder / name
        if name.lower() in NORMAL_NAMES:
            raise ValueError(f"mask folder {folder} holds masks for normal images; normal images need none "
                             "(their mask is all zero): remove it")
        if name not in images:
            anomalous = sorted(n for n in images if n.lower() not in NORMAL_NAMES)
            close = difflib.get_close_matches(name, anomalous, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"mask folder {folder} belongs to no test folder (the anomalous test folders "
                             f"are {anomalous}).{hint}")
        stems = {p.stem: p for p in images[name]}
        for mask in list_images(folder):
            stem = mask.stem[: -len(MASK_SUFFIX)] if mask.stem.endswith(MASK_SUFFIX) else mask.stem
            if stem not in stems:
                raise ValueError(f"mask {mask} belongs to no image: expected an image named {stem}.* in "
                                 f"{images[name][0].parent}")
            if (name, stem) in masks:
                raise ValueError(f"image {stems[stem]} has two masks: {masks[(name, stem)].name} and "
                                 f"{mask.name}; keep one")
            masks[(name, stem)] = mask
    return masks
