"""Data set discovery (MVTec AD and plain layouts), mask reading, and the packaged sample."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nsad.data.folder import (
    DatasetLayout,
    Sample,
    find_dataset,
    find_test_samples,
    image_size,
    read_mask,
    read_sample_mask,
    sample_data_path,
    verify_dataset,
)
from nsad.data.io import read_image, write_image

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
BOTTLE_256 = SHARED_DATA / "mvtec_ad_256" / "bottle"
BOTTLE_FULLRES = SHARED_DATA / "mvtec_ad_fullres_xs" / "bottle"


def _needs(folder: Path) -> Path:
    if not folder.is_dir():
        pytest.skip(f"real MVTec AD data not found at {folder}")
    return folder


def _image(path: Path, size: tuple[int, int] = (8, 8), value: int = 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, np.full((*size, 3), value, np.uint8))
    return path


def _mask(path: Path, size: tuple[int, int] = (8, 8), on: int = 255) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    mask = np.zeros(size, np.uint8)
    mask[2:5, 3:6] = on
    write_image(path, mask)
    return path


def _mvtec(root: Path, *, masks: bool = True) -> Path:
    """A tiny MVTec AD category: 3 train, 2 good, 2 crack, 1 hole test images."""
    cat = root / "widget"
    for i in range(3):
        _image(cat / "train" / "good" / f"{i:03d}.png")
    for kind, n in (("good", 2), ("crack", 2), ("hole", 1)):
        for i in range(n):
            _image(cat / "test" / kind / f"{i:03d}.png")
            if masks and kind != "good":
                _mask(cat / "ground_truth" / kind / f"{i:03d}_mask.png")
    return cat


# ---------------------------------------------------------------- real data


def test_real_bottle_counts_from_root_and_category():
    root = _needs(BOTTLE_256).parent
    layout = find_dataset(root, "bottle")
    assert (len(layout.train), len(layout.test)) == (209, 83)
    assert sum(s.mask_path is not None for s in layout.test) == 63
    assert sum(not s.is_anomalous for s in layout.test) == 20
    assert layout.defect_types == ("broken_large", "broken_small", "contamination")
    assert layout.category == "bottle" and layout.layout == "mvtec" and layout.has_masks
    for sample in layout.test:
        if sample.is_anomalous:
            assert sample.mask_path.name == f"{sample.path.stem}_mask.png"
            assert sample.mask_path.parent.name == sample.defect_type == sample.path.parent.name
        else:
            assert sample.mask_path is None and sample.defect_type == "good"


def test_real_bottle_category_folder_gives_the_same_layout():
    folder = _needs(BOTTLE_256)
    assert find_dataset(folder) == find_dataset(folder.parent, "bottle")
    assert find_dataset(folder, "bottle") == find_dataset(folder)  # the folder plus its own name


def test_real_fullres_masks_match_the_256_copy():
    fullres, small = _needs(BOTTLE_FULLRES), _needs(BOTTLE_256)
    layout = find_dataset(fullres)
    assert (len(layout.train), len(layout.test), layout.has_masks) == (5, 10, True)
    for sample in (s for s in layout.test if s.is_anomalous):
        assert image_size(sample.path) == (900, 900)
        full = read_mask(sample.mask_path, image_path=sample.path)
        assert full.shape == (900, 900) and full.dtype == bool
        resized = read_sample_mask(sample, 256)
        reference = read_mask(small / "ground_truth" / sample.defect_type / sample.mask_path.name)
        iou = (resized & reference).sum() / (resized | reference).sum()
        assert iou > 0.97, (sample.path, iou)
        assert abs(resized.mean() - full.mean()) < 0.01  # nearest keeps the defect's area fraction


# ---------------------------------------------------------------- packaged sample


def test_packaged_sample_is_a_small_mvtec_category_with_licence():
    folder = sample_data_path()
    layout = find_dataset(folder)
    assert (len(layout.train), len(layout.test), layout.layout) == (16, 9, "mvtec")
    assert layout.defect_types == ("broken_large", "broken_small", "contamination")
    assert sum(s.mask_path is not None for s in layout.test) == 6
    for sample in layout.test:
        mask = read_sample_mask(sample)
        assert mask.shape == (128, 128) and mask.any() == sample.is_anomalous
    assert all(read_image(p).shape == (128, 128, 3) for p in layout.train)
    licence = (folder / "LICENSE.txt").read_text()
    assert "Attribution-NonCommercial-ShareAlike 4.0" in licence
    readme = (folder / "README.md").read_text()
    for needed in ("MVTec Software GmbH", "Bergmann", "CC BY-NC-SA 4.0", "128x128"):
        assert needed in readme
    total = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert total < 1_000_000


# ---------------------------------------------------------------- layouts built here


def test_mvtec_layout(tmp_path):
    cat = _mvtec(tmp_path)
    layout = find_dataset(tmp_path, "widget")
    assert isinstance(layout, DatasetLayout) and layout.layout == "mvtec" and layout.category == "widget"
    assert [p.name for p in layout.train] == ["000.png", "001.png", "002.png"]
    assert [(s.defect_type, s.path.name, s.is_anomalous) for s in layout.test] == [
        ("crack", "000.png", True), ("crack", "001.png", True), ("good", "000.png", False),
        ("good", "001.png", False), ("hole", "000.png", True)]
    assert layout.test[0] == Sample(cat / "test" / "crack" / "000.png", True, "crack",
                                    cat / "ground_truth" / "crack" / "000_mask.png")


def test_plain_layout_with_optional_masks(tmp_path):
    for i in range(4):
        _image(tmp_path / "train" / f"part{i}.jpg")
    _image(tmp_path / "test" / "normal" / "a.png")
    _image(tmp_path / "test" / "OK" / "b.png")
    _image(tmp_path / "test" / "scratch" / "c.png")
    _image(tmp_path / "test" / "scratch" / "d.bmp")
    _image(tmp_path / "test" / "dent" / "e.png")
    layout = find_dataset(tmp_path)
    assert layout.layout == "plain" and len(layout.train) == 4 and not layout.has_masks
    assert {s.path.name: s.is_anomalous for s in layout.test} == {
        "a.png": False, "b.png": False, "c.png": True, "d.bmp": True, "e.png": True}
    assert layout.defect_types == ("dent", "scratch")
    dent = next(s for s in layout.test if s.defect_type == "dent")
    assert read_sample_mask(dent) is None  # no masks: image metrics only
    _mask(tmp_path / "ground_truth" / "scratch" / "c.png")  # both mask names are accepted
    _mask(tmp_path / "ground_truth" / "scratch" / "d_mask.png")
    _mask(tmp_path / "ground_truth" / "dent" / "e.png")
    masked = find_dataset(tmp_path)
    assert masked.has_masks and masked.layout == "plain"
    assert {s.path.name: s.mask_path and s.mask_path.name for s in masked.test} == {
        "a.png": None, "b.png": None, "c.png": "c.png", "d.bmp": "d_mask.png", "e.png": "e.png"}


@pytest.mark.parametrize("sub", ["good", "normal", "ok"])
def test_plain_training_subfolder_names(tmp_path, sub):
    _image(tmp_path / "train" / sub / "x.png")
    layout = find_dataset(tmp_path, require_test=False)
    assert [p.name for p in layout.train] == ["x.png"] and layout.test == ()


def test_folder_of_images_is_a_training_set_without_test(tmp_path):
    _image(tmp_path / "a.png")
    _image(tmp_path / "b.png")
    layout = find_dataset(tmp_path, require_test=False)
    assert len(layout.train) == 2 and layout.test == () and not layout.has_masks
    with pytest.raises(FileNotFoundError, match="no train folder in"):
        find_dataset(tmp_path)


def test_find_test_samples_alone(tmp_path):
    cat = _mvtec(tmp_path)
    samples, mvtec = find_test_samples(cat / "test", cat / "ground_truth")
    assert mvtec and len(samples) == 5
    samples, mvtec = find_test_samples(cat / "test")
    assert not mvtec and all(s.mask_path is None for s in samples)


# ---------------------------------------------------------------- discovery errors


def test_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="data folder not found: .*nowhere"):
        find_dataset(tmp_path / "nowhere")


def test_file_instead_of_folder(tmp_path):
    path = _image(tmp_path / "x.png")
    with pytest.raises(ValueError, match="x.png is a file"):
        find_dataset(path)


def test_unknown_category_lists_the_categories_and_suggests_one(tmp_path):
    _mvtec(tmp_path)
    _image(tmp_path / "bottle" / "train" / "good" / "0.png")
    with pytest.raises(ValueError, match=re.escape("unknown category 'widgit'") + ".*"
                       + re.escape("categories found: ['bottle', 'widget']. Did you mean 'widget'?")):
        find_dataset(tmp_path, "widgit")
    with pytest.raises(ValueError, match=r"categories found: \['bottle', 'widget'\]\.$"):
        find_dataset(tmp_path, "zzz")


def test_category_in_a_folder_without_categories(tmp_path):
    cat = _mvtec(tmp_path)
    with pytest.raises(ValueError, match="holds no category folders.*is itself the category 'widget'"):
        find_dataset(cat, "bottle")


def test_root_without_category(tmp_path):
    _mvtec(tmp_path)
    with pytest.raises(ValueError, match=r"data set root holding the categories \['widget'\]; choose one"):
        find_dataset(tmp_path)


def test_no_train_folder(tmp_path):
    _image(tmp_path / "test" / "good" / "a.png")
    with pytest.raises(FileNotFoundError, match="no train folder in .*expected .*train/good"):
        find_dataset(tmp_path)


def test_category_folder_without_train_folder(tmp_path):
    _image(tmp_path / "widget" / "test" / "good" / "a.png")
    with pytest.raises(FileNotFoundError, match="no train folder in .*widget: expected"):
        find_dataset(tmp_path, "widget")


def test_empty_training_folder(tmp_path):
    (tmp_path / "train" / "good").mkdir(parents=True)
    with pytest.raises(ValueError, match="no images in .*train/good"):
        find_dataset(tmp_path)


def test_training_folder_with_other_subfolders(tmp_path):
    _image(tmp_path / "train" / "defect" / "a.png")
    with pytest.raises(ValueError, match=r"no training images in .*sub-folders found: \['defect'\]"):
        find_dataset(tmp_path)


def test_several_normal_training_folders(tmp_path):
    _image(tmp_path / "train" / "good" / "a.png")
    _image(tmp_path / "train" / "ok" / "b.png")
    with pytest.raises(ValueError, match=r"several normal sub-folders \['good', 'ok'\]"):
        find_dataset(tmp_path)


def test_no_test_folder(tmp_path):
    _image(tmp_path / "train" / "good" / "a.png")
    with pytest.raises(FileNotFoundError, match="no test folder in .*test/good/"):
        find_dataset(tmp_path)
    assert find_dataset(tmp_path, require_test=False).test == ()


def test_test_folder_without_subfolders(tmp_path):
    _image(tmp_path / "train" / "a.png")
    (tmp_path / "test").mkdir()
    with pytest.raises(ValueError, match="test folder .*test has no sub-folders"):
        find_dataset(tmp_path)


def test_unlabelled_images_in_the_test_folder(tmp_path):
    _image(tmp_path / "train" / "a.png")
    _image(tmp_path / "test" / "good" / "b.png")
    _image(tmp_path / "test" / "c.png")
    with pytest.raises(ValueError, match=r"1 images lie directly in .*test \(e.g. c.png\) and have no label"):
        find_dataset(tmp_path)


def test_empty_test_type_folder(tmp_path):
    cat = _mvtec(tmp_path)
    (cat / "test" / "bent").mkdir()
    with pytest.raises(ValueError, match="no images in .*test/bent"):
        find_dataset(cat)


def test_anomalous_image_without_mask_when_others_have_one(tmp_path):
    cat = _mvtec(tmp_path)
    (cat / "ground_truth" / "crack" / "001_mask.png").unlink()
    with pytest.raises(ValueError, match=r"1 anomalous test images have no mask while 2 others have one: "
                                         r".*test/crack/001.png\. .*e.g. .*ground_truth/crack/001_mask.png"):
        find_dataset(cat)


def test_mask_for_no_image(tmp_path):
    cat = _mvtec(tmp_path)
    _mask(cat / "ground_truth" / "crack" / "007_mask.png")
    with pytest.raises(ValueError, match="mask .*crack/007_mask.png belongs to no image: expected an image "
                                         "named 007.* in .*test/crack"):
        find_dataset(cat)


def test_mask_folder_for_no_test_folder(tmp_path):
    cat = _mvtec(tmp_path)
    _mask(cat / "ground_truth" / "cracks" / "000_mask.png")
    with pytest.raises(ValueError, match=r"mask folder .*cracks belongs to no test folder "
                                         r".*\['crack', 'hole'\]\)\. Did you mean 'crack'\?"):
        find_dataset(cat)


def test_masks_for_normal_images(tmp_path):
    cat = _mvtec(tmp_path)
    _mask(cat / "ground_truth" / "good" / "000_mask.png")
    with pytest.raises(ValueError, match="ground_truth/good holds masks for normal images"):
        find_dataset(cat)


def test_two_masks_for_one_image(tmp_path):
    cat = _mvtec(tmp_path)
    _mask(cat / "ground_truth" / "crack" / "000.png")
    with pytest.raises(ValueError, match="crack/000.png has two masks: 000.png and 000_mask.png"):
        find_dataset(cat)


def test_two_images_with_one_name(tmp_path):
    cat = _mvtec(tmp_path)
    _image(cat / "test" / "hole" / "000.jpg")
    with pytest.raises(ValueError, match="holds two images with the name '000' \\(000.jpg, 000.png\\)"):
        find_dataset(cat)


def test_empty_mask_folder(tmp_path):
    cat = _mvtec(tmp_path, masks=False)
    (cat / "ground_truth").mkdir()
    with pytest.raises(ValueError, match="mask folder .*ground_truth is empty"):
        find_dataset(cat)


def test_missing_sample_assets_message(monkeypatch, tmp_path):
    from importlib import resources

    monkeypatch.setattr(resources, "files", lambda package: tmp_path)
    with pytest.raises(FileNotFoundError, match="sample images are missing"):
        sample_data_path()


def test_verify_dataset_names_the_bad_file(tmp_path):
    cat = _mvtec(tmp_path)
    verify_dataset(find_dataset(cat))
    (cat / "train" / "good" / "001.png").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="cannot read image .*train/good/001.png"):
        verify_dataset(find_dataset(cat))
    _image(cat / "train" / "good" / "001.png")
    _mask(cat / "ground_truth" / "hole" / "000_mask.png", size=(9, 8))
    with pytest.raises(ValueError, match="mask .*hole/000_mask.png is 8x9 .* but its image .*hole/000.png "
                                         "is 8x8"):
        verify_dataset(find_dataset(cat))


def test_verify_real_bottle():
    verify_dataset(find_dataset(_needs(BOTTLE_256)))


# ---------------------------------------------------------------- masks


@pytest.mark.parametrize("on", [1, 255], ids=["0-1", "0-255"])
def test_read_mask_accepts_both_conventions(tmp_path, on):
    mask = read_mask(_mask(tmp_path / "m.png", on=on))
    assert mask.dtype == bool and mask.sum() == 9 and mask[2:5, 3:6].all()


def test_read_mask_16_bit_and_rgb(tmp_path):
    mask = np.zeros((6, 7), np.uint16)
    mask[1:3, 2:4] = 65535
    write_image(tmp_path / "m16.png", mask)
    assert read_mask(tmp_path / "m16.png").sum() == 4
    rgb = np.repeat((mask > 0).astype(np.uint8)[:, :, None] * 255, 3, axis=2)
    write_image(tmp_path / "rgb.png", rgb)
    np.testing.assert_array_equal(read_mask(tmp_path / "rgb.png"), mask > 0)
    rgb[0, 0, 1] = 255
    write_image(tmp_path / "rgb.png", rgb)
    with pytest.raises(ValueError, match="rgb.png has 3 channels that differ"):
        read_mask(tmp_path / "rgb.png")


def test_read_mask_all_zero_is_accepted(tmp_path):
    write_image(tmp_path / "z.png", np.zeros((5, 5), np.uint8))
    assert not read_mask(tmp_path / "z.png").any()


@pytest.mark.parametrize("values, shown", [((0, 128, 255), "[0, 128, 255]"), ((0, 1, 255), "[0, 1, 255]"),
                                           ((0, 7), "[0, 7]")], ids=["gray", "mixed", "other"])
def test_read_mask_rejects_non_binary_values(tmp_path, values, shown):
    mask = np.array([values], np.uint8)
    write_image(tmp_path / "bad.png", mask)
    message = (f"bad.png must be binary (0/255 or 0/1, or 0 and a few levels near the maximum); found "
               f"{len(values)} distinct values: {shown}")
    with pytest.raises(ValueError, match=re.escape(message)):
        read_mask(tmp_path / "bad.png")


@pytest.mark.parametrize("dtype, levels", [(np.uint8, (253, 254, 255)), (np.uint8, (254,)),
                                           (np.uint16, (65000, 65535))])
def test_read_mask_levels_near_the_maximum_are_binary_with_a_warning(tmp_path, dtype, levels):
    mask = np.zeros((4, 6), dtype)
    mask[1, :len(levels)] = levels
    mask[2, 2] = levels[0]
    write_image(tmp_path / "m.png", mask)
    with pytest.warns(UserWarning, match="read as binary: every non-zero pixel is defect"):
        binary = read_mask(tmp_path / "m.png")
    np.testing.assert_array_equal(binary, mask > 0)


@pytest.mark.parametrize("levels", [(250, 252, 254, 255), (240, 255)], ids=["four levels", "far from 255"])
def test_read_mask_refuses_more_or_farther_levels(tmp_path, levels):
    write_image(tmp_path / "m.png", np.array([(0, *levels)], np.uint8))
    with pytest.raises(ValueError, match="must be binary"):
        read_mask(tmp_path / "m.png")


def test_read_mask_size_mismatch_names_both_files(tmp_path):
    image = _image(tmp_path / "img.png", size=(10, 12))
    mask = _mask(tmp_path / "img_mask.png", size=(8, 8))
    with pytest.raises(ValueError, match=r"mask .*img_mask.png is 8x8 \(width x height\) but its image "
                                         r".*img.png is 12x10"):
        read_mask(mask, image_path=image)
    sample = Sample(image, True, "x", mask)
    with pytest.raises(ValueError, match="img_mask.png is 8x8"):
        read_sample_mask(sample, 4)


def test_read_mask_unreadable_and_missing(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot read mask .*broken.png"):
        read_mask(tmp_path / "broken.png")
    with pytest.raises(FileNotFoundError, match="mask file not found: .*gone.png"):
        read_mask(tmp_path / "gone.png")
    with pytest.raises(FileNotFoundError, match="image file not found: .*gone.png"):
        read_mask(_mask(tmp_path / "m.png"), image_path=tmp_path / "gone.png")


@pytest.mark.parametrize("size", [0, (3, -1), (1, 2, 3), "8"], ids=["zero", "negative", "three", "str"])
def test_read_mask_rejects_bad_sizes(tmp_path, size):
    with pytest.raises(ValueError, match="size must be"):
        read_mask(_mask(tmp_path / "m.png"), size)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), height=st.integers(1, 40), width=st.integers(1, 40),
       out_h=st.integers(1, 60), out_w=st.integers(1, 60))
def test_resized_masks_stay_binary_and_pick_source_pixels(tmp_path_factory, seed, height, width, out_h,
                                                           out_w):
    mask = np.random.default_rng(seed).random((height, width)) < 0.3
    path = tmp_path_factory.mktemp("m") / "m.png"
    write_image(path, mask.astype(np.uint8) * 255)
    resized = read_mask(path, (out_h, out_w))
    assert resized.shape == (out_h, out_w) and resized.dtype == bool
    # nearest neighbour with pixel centres (INTER_NEAREST_EXACT): output row i samples source row
    # floor((i + 0.5) * h / H); at an exact tie OpenCV's fixed-point arithmetic may take the row above,
    # so each output pixel must equal one of the (at most 2 x 2) candidate source pixels.
    def candidates(n_out, n_in):
        centre = (np.arange(n_out) + 0.5) * n_in / n_out
        return [np.clip(np.floor(centre + d).astype(int), 0, n_in - 1) for d in (-1e-9, 1e-9)]

    picks = [mask[np.ix_(r, c)] for r in candidates(out_h, height) for c in candidates(out_w, width)]
    assert (np.min(picks, axis=0) <= resized).all() and (resized <= np.max(picks, axis=0)).all()


def test_read_sample_mask_of_a_normal_image_is_all_false(tmp_path):
    sample = Sample(_image(tmp_path / "n.png", size=(6, 9)), False, "good", None)
    assert read_sample_mask(sample).shape == (6, 9) and not read_sample_mask(sample, 4).any()


def test_image_size_reads_the_header_and_rejects_non_images(tmp_path):
    assert image_size(_image(tmp_path / "a.png", size=(7, 11))) == (7, 11)
    (tmp_path / "b.png").write_bytes(b"nope")
    with pytest.raises(ValueError, match="cannot read image .*b.png"):
        image_size(tmp_path / "b.png")


def test_read_mask_nearest_matches_opencv_flag(tmp_path):
    # The reference above for INTER_NEAREST_EXACT, checked once directly against OpenCV.
    mask = (np.arange(35).reshape(5, 7) % 3 == 0).astype(np.uint8) * 255
    write_image(tmp_path / "m.png", mask)
    expected = cv2.resize(mask, (4, 9), interpolation=cv2.INTER_NEAREST_EXACT) > 0
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png", (9, 4)), expected)
