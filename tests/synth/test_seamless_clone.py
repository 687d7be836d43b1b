"""seamless_clone's contract on the OpenCV backend (the other backends are tested in test_blend.py)."""

import cv2
import numpy as np
import pytest

from nsad.synth import seamless_clone


def test_constant_source_into_constant_destination_changes_nothing():
    # Zero source gradients and a constant boundary: the Poisson solution is the constant.
    dst = np.full((40, 40, 3), 120, np.uint8)
    src = np.full((10, 12, 3), 30, np.uint8)
    mask = np.zeros((10, 12), np.uint8)
    mask[1:-1, 1:-1] = 255
    out = seamless_clone(src, dst, mask, (20, 20), backend="opencv")
    assert np.abs(out.astype(int) - 120).max() <= 1


@pytest.mark.parametrize("mode, flag", [("normal", cv2.NORMAL_CLONE), ("mixed", cv2.MIXED_CLONE)])
def test_opencv_backend_is_cv2_seamless_clone(mode, flag):
    rng = np.random.default_rng(0)
    src = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    dst = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    mask = np.zeros((30, 40), np.uint8)
    mask[3:27, 5:35] = 255
    expected = cv2.seamlessClone(src, dst, mask.copy(), (30, 33), flag)
    np.testing.assert_array_equal(seamless_clone(src, dst, mask, (30, 33), mode, backend="opencv"), expected)


def test_gray_images_blend_like_one_channel_of_three():
    rng = np.random.default_rng(1)
    src, dst = rng.integers(0, 256, (20, 20, 1), dtype=np.uint8), rng.integers(0, 256, (50, 50, 1), dtype=np.uint8)
    mask = np.zeros((20, 20), np.uint8)
    mask[2:18, 2:18] = 1
    gray = seamless_clone(src[:, :, 0], dst[:, :, 0], mask, (25, 25), backend="opencv")
    rgb = seamless_clone(np.repeat(src, 3, 2), np.repeat(dst, 3, 2), mask, (25, 25), backend="opencv")
    assert gray.shape == (50, 50)
    np.testing.assert_array_equal(gray, rgb[:, :, 0])


def test_seamless_clone_errors():
    image = np.zeros((20, 20, 3), np.uint8)
    mask = np.zeros((20, 20), np.uint8)
    with pytest.raises(ValueError, match="mask has no non-zero pixel"):
        seamless_clone(image, image, mask, (10, 10))
    mask[2:18, 2:18] = 1
    with pytest.raises(ValueError, match=r"the mask's 16x16 box centred at \(3, 10\) does not fit inside dst"):
        seamless_clone(image, image, mask, (3, 10))
    with pytest.raises(ValueError, match="unknown blend mode 'mix'"):
        seamless_clone(image, image, mask, (10, 10), mode="mix")
    with pytest.raises(ValueError, match="unknown blending backend 'cuda'"):
        seamless_clone(image, image, mask, (10, 10), backend="cuda")
    with pytest.raises(ValueError, match=r"mask \(10, 10\) must have the size of src"):
        seamless_clone(image, image, mask[:10, :10], (10, 10))
    with pytest.raises(ValueError, match="the opencv blending backend needs uint8 images"):
        seamless_clone(image.astype(np.uint16), image.astype(np.uint16), mask, (10, 10), backend="opencv")
