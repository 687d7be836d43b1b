import warnings

import cv2
import numpy as np
import pytest

from nsad.data.io import list_images, normal_image_paths, read_image, write_image


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("channels", [1, 3])
def test_round_trip_keeps_depth_and_channels(tmp_path, dtype, channels):
    image = np.random.default_rng(0).integers(0, np.iinfo(dtype).max, (17, 23, channels), dtype=dtype)
    write_image(tmp_path / "x.png", image)
    back = read_image(tmp_path / "x.png")
    assert back.dtype == dtype and back.shape == (17, 23, channels)
    np.testing.assert_array_equal(back, image)


def test_rgb_order_is_kept(tmp_path):
    bgr = np.zeros((4, 4, 3), np.uint8)
    bgr[..., 2] = 255  # red in OpenCV's BGR order
    cv2.imwrite(str(tmp_path / "red.png"), bgr)
    assert tuple(read_image(tmp_path / "red.png")[0, 0]) == (255, 0, 0)


def test_alpha_is_dropped_with_a_warning_only_when_transparent(tmp_path):
    rgba = np.full((4, 4, 4), 255, np.uint8)
    cv2.imwrite(str(tmp_path / "opaque.png"), rgba)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_image(tmp_path / "opaque.png").shape == (4, 4, 3)
    rgba[0, 0, 3] = 0
    cv2.imwrite(str(tmp_path / "clear.png"), rgba)
    with pytest.warns(UserWarning, match="clear.png has transparent pixels"):
        assert read_image(tmp_path / "clear.png").shape == (4, 4, 3)


def test_bad_files_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="image file not found: .*nope.png"):
        read_image(tmp_path / "nope.png")
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(ValueError, match="cannot read image .*corrupt.png"):
        read_image(tmp_path / "corrupt.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ValueError, match="cannot read image .*empty.png"):
        read_image(tmp_path / "empty.png")
    cv2.imwrite(str(tmp_path / "float.tiff"), np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="float.tiff has float32 pixels; accepted are 8-bit and 16-bit"):
        read_image(tmp_path / "float.tiff")


def test_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="image folder not found"):
        list_images(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match=f"no images in {tmp_path}"):
        list_images(tmp_path)
    write_image(tmp_path / "b.png", np.zeros((4, 4, 1), np.uint8))
    write_image(tmp_path / "a.PNG", np.zeros((4, 4, 1), np.uint8))
    (tmp_path / "._a.PNG").write_bytes(b"\x00\x05\x16\x07 macOS AppleDouble")  # hidden files are not images
    (tmp_path / ".thumb.png").write_bytes(b"junk")
    assert [p.name for p in list_images(tmp_path)] == ["a.PNG", "b.png"]


def test_mvtec_category_uses_train_good(bottle_dir):
    paths = normal_image_paths(bottle_dir)
    assert len(paths) == 209 and all(p.parent.name == "good" for p in paths)
