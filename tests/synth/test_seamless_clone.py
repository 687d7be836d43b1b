"""seamless_clone's contract on the OpenCV backend (the other backends are tested in test_blend.py)."""

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


def _laplacian(a: np.ndarray) -> np.ndarray:
    return a[:-2, 1:-1] + a[2:, 1:-1] + a[1:-1, :-2] + a[1:-1, 2:] - 4 * a[1:-1, 1:-1]


def test_normal_clone_solves_poisson_with_the_source_laplacian():
    # Pérez et al. 2003, eq. 7 with guidance field grad(src): lap(out) = lap(src) inside the mask, out = dst on
    # the box's ring. Truncation to uint8 moves each value by [0, 1), so the Laplacians differ by at most 3.
    rng = np.random.default_rng(0)
    src = rng.integers(70, 180, (30, 40, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:64, :64]
    dst = np.repeat((90 + xx + yy // 2)[..., None], 3, axis=2).astype(np.uint8)
    mask = np.zeros((30, 40), np.uint8)
    mask[3:27, 5:35] = 255                       # box 24 x 30 px, top-left at (33 - 12, 30 - 15) = (21, 15)
    out = seamless_clone(src, dst, mask, (30, 33), "normal", backend="opencv").astype(np.int64)
    inner = _laplacian(out[25:41, 19:41]) - _laplacian(src[7:23, 9:31].astype(np.int64))  # 5 px inside the mask
    assert np.abs(inner).max() <= 3 and np.abs(inner).mean() < 1.1
    misplaced = _laplacian(out[26:42, 19:41]) - _laplacian(src[7:23, 9:31].astype(np.int64))
    assert np.abs(misplaced).mean() > 100         # the check sees a placement one row off
    changed = np.zeros((64, 64), bool)
    changed[22:44, 16:44] = True                   # the box without its ring
    np.testing.assert_array_equal(out[~changed], dst[~changed])


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
