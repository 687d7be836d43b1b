"""The fast Poisson blending backends against cv2.seamlessClone: "dst" (numpy) and "torch" (batched).

Agreement bar (issue 5): over >= 200 random cases, mean absolute difference <= 0.01 levels over
the blended boxes and at most 1 level anywhere.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from nsad.synth._blend import BLEND_BACKENDS, DEFAULT_BACKEND, seamless_clone
from nsad.synth._blend_dst import blend_into, dst_clone, opencv_mask_box
from nsad.synth._blend_torch import poisson_blend_batch, torch_clone

_FLAGS = {"normal": cv2.NORMAL_CLONE, "mixed": cv2.MIXED_CLONE}


def _cv2_clone(src: np.ndarray, dst: np.ndarray, mask: np.ndarray, center: tuple[int, int],
               mode: str) -> np.ndarray:
    """cv2.seamlessClone itself, gray images as three equal channels."""
    channels = src.shape[2]
    if channels == 1:
        src, dst = np.repeat(src, 3, axis=2), np.repeat(dst, 3, axis=2)
    out = cv2.seamlessClone(src, dst, mask.copy(), center, _FLAGS[mode])
    return out[:, :, :channels]


def _image(rng: np.random.Generator, shape: tuple[int, int, int]) -> np.ndarray:
    """Smooth random structure plus noise of a random strength (0 to strong texture)."""
    h, w, c = shape
    cell = int(rng.integers(4, 33))
    coarse = rng.uniform(0, 255, (h // cell + 2, w // cell + 2, c)).astype(np.float32)
    image = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC).reshape(h, w, c)
    image += rng.normal(0, rng.choice([0.0, 3.0, 12.0, 40.0]), image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def _mask_tile(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A full h x w rectangle, or a union of 1-3 ellipses stretched to fill the h x w box."""
    tile = np.zeros((h, w), np.uint8)
    if rng.random() < 0.4:
        tile[:] = 255
        return tile
    for _ in range(int(rng.integers(1, 4))):
        center = (int(rng.integers(w // 4, w - w // 4 + 1)), int(rng.integers(h // 4, h - h // 4 + 1)))
        axes = (int(rng.integers(max(w // 5, 2), w // 2 + 1)), int(rng.integers(max(h // 5, 2), h // 2 + 1)))
        cv2.ellipse(tile, center, axes, float(rng.uniform(0, 180)), 0, 360, 255, -1)
    ys, xs = np.nonzero(tile)
    tight = tile[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    return cv2.resize(tight, (w, h), interpolation=cv2.INTER_NEAREST)


def _random_case(seed: int) -> tuple:
    """One case: 224-256 px images, a 20-90 px mask, often at the source or destination border."""
    rng = np.random.default_rng(seed)
    channels = (1, 3)[seed % 2]
    mode = ("normal", "mixed")[(seed // 2) % 2]
    height, width = (int(v) for v in rng.integers(224, 257, 2))
    src, dst = _image(rng, (height, width, channels)), _image(rng, (height, width, channels))
    h, w = (int(v) for v in rng.integers(20, 91, 2))
    where = rng.integers(0, 4, 2)                    # 0: first row/column, 1: last, else anywhere
    y = 0 if where[0] == 0 else height - h if where[0] == 1 else int(rng.integers(0, height - h + 1))
    x = 0 if where[1] == 0 else width - w if where[1] == 1 else int(rng.integers(0, width - w + 1))
    mask = np.zeros((height, width), np.uint8)
    mask[y:y + h, x:x + w] = _mask_tile(rng, h, w)
    _, _, bw, bh = opencv_mask_box(mask)
    where = rng.integers(0, 4, 2)
    top = 0 if where[0] == 0 else height - bh if where[0] == 1 else int(rng.integers(0, height - bh + 1))
    left = 0 if where[1] == 0 else width - bw if where[1] == 1 else int(rng.integers(0, width - bw + 1))
    center = (left + bw // 2, top + bh // 2)
    return src, dst, mask, center, mode


def test_dst_agrees_with_opencv_on_random_cases():
    total, pixels, worst, cases = 0, 0, 0, 240
    for seed in range(cases):
        src, dst, mask, center, mode = _random_case(seed)
        expected = _cv2_clone(src, dst, mask, center, mode).astype(np.int32)
        diff = np.abs(dst_clone(src, dst, mask, center, mode).astype(np.int32) - expected)
        _, _, w, h = opencv_mask_box(mask)
        total, pixels, worst = total + diff.sum(), pixels + w * h * src.shape[2], max(worst, diff.max())
    assert worst <= 1
    assert total / pixels <= 0.01                    # measured: about 1e-3 (float noise near integers)


def test_torch_agrees_with_dst_in_one_padded_batch():
    # Patches of different sizes, padded to one size, two per image pair, both channel counts.
    for channels, mode in [(3, "normal"), (1, "mixed"), (3, "mixed")]:
        cases = [_random_case(4 * i + (channels == 3) + 2 * (mode == "mixed")) for i in range(12)]
        side = min(min(c[1].shape[:2]) for c in cases)
        images, srcs, masks, boxes, expected = [], [], [], [], []
        rows = cols = 92
        for src, dst, mask, _, _ in cases:
            x, y, w, h = opencv_mask_box(mask)
            dst = dst[:side, :side]
            left, top = min(x, side - w), min(y, side - h)          # keep the box inside the cropped image
            patch, crop = np.zeros((rows, cols, channels), np.uint8), np.zeros((rows, cols), bool)
            patch[:h, :w], crop[:h, :w] = src[y:y + h, x:x + w], mask[y:y + h, x:x + w] != 0
            out = dst.copy()
            blend_into(out, src[y:y + h, x:x + w], mask[y:y + h, x:x + w], (left, top), mode)
            images.append(dst), srcs.append(patch), masks.append(crop), boxes.append((left, top, w, h))
            expected.append(out)
        result = poisson_blend_batch(torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2),
                                     torch.from_numpy(np.stack(srcs)).permute(0, 3, 1, 2),
                                     torch.from_numpy(np.stack(masks)), torch.tensor(boxes), mode)
        diff = np.abs(result.permute(0, 2, 3, 1).numpy().astype(int) - np.stack(expected))
        assert diff.max() <= 1, (channels, mode)
        assert diff.mean() <= 1e-3


@pytest.mark.parametrize("seed", [3, 6, 9])
def test_torch_backend_through_seamless_clone(seed):
    src, dst, mask, center, mode = _random_case(seed)
    expected = seamless_clone(src, dst, mask, center, mode, backend="dst").astype(int)
    assert np.abs(seamless_clone(src, dst, mask, center, mode, backend="torch") - expected).max() <= 1


# Golden cases: 16 x 16 gray ramps, produced (and equal to cv2.seamlessClone, 3 equal channels) by
#   i, j = np.mgrid[0:16, 0:16]; src = 100 + 8 i - 5 j; dst = 60 + 3 j + 2 i + 20 ((i // 4 + j // 4) % 2)
#   mask[2:12, 3:13] = 255; center (8, 8) -> box rows/cols 3..12, interior 4..11.
_GOLDEN = {
    "normal": [[80, 83, 86, 88, 110, 112, 115, 119], [83, 86, 90, 91, 109, 111, 114, 120],
               [85, 90, 96, 97, 103, 107, 112, 120], [87, 94, 104, 104, 106, 109, 114, 123],
               [109, 113, 113, 111, 109, 107, 101, 106], [111, 115, 119, 116, 111, 109, 105, 109],
               [112, 117, 122, 125, 110, 112, 110, 113], [114, 118, 121, 125, 108, 111, 112, 115]],
    "mixed": [[80, 83, 86, 89, 111, 114, 117, 120], [82, 86, 89, 91, 112, 114, 117, 121],
              [85, 89, 93, 94, 114, 114, 116, 122], [87, 92, 98, 105, 113, 118, 119, 124],
              [109, 113, 117, 114, 98, 98, 100, 106], [111, 115, 120, 118, 103, 103, 103, 109],
              [112, 117, 121, 122, 107, 108, 109, 112], [114, 118, 121, 124, 107, 109, 111, 114]],
}


def _golden_inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    i, j = np.mgrid[0:16, 0:16]
    src = (100 + 8 * i - 5 * j).astype(np.uint8)[..., None]
    dst = (60 + 3 * j + 2 * i + 20 * ((i // 4 + j // 4) % 2)).astype(np.uint8)[..., None]
    mask = np.zeros((16, 16), np.uint8)
    mask[2:12, 3:13] = 255
    return src, dst, mask


@pytest.mark.parametrize("backend", ["dst", "torch", "opencv"])
@pytest.mark.parametrize("mode", ["normal", "mixed"])
def test_golden_cases(mode, backend):
    src, dst, mask = _golden_inputs()
    out = seamless_clone(src, dst, mask, (8, 8), mode, backend=backend)
    np.testing.assert_array_equal(out[4:12, 4:12, 0], np.array(_GOLDEN[mode]))
    changed = np.zeros((16, 16), bool)
    changed[4:12, 4:12] = True
    np.testing.assert_array_equal(out[~changed], dst[~changed])      # the box's ring and beyond stay


@pytest.mark.parametrize("mode", ["normal", "mixed"])
def test_uint16_is_257_times_uint8(mode):
    src, dst, mask, center, _ = _random_case(11)
    out8 = dst_clone(src, dst, mask, center, mode).astype(np.int64)
    out16 = dst_clone(src.astype(np.uint16) * 257, dst.astype(np.uint16) * 257, mask, center, mode)
    assert out16.dtype == np.uint16
    excess = out16.astype(np.int64) - 257 * out8     # trunc(257 u) - 257 trunc(u) lies in [0, 257)
    assert excess.min() >= -2 and excess.max() <= 257 + 2
    assert np.abs(out16 / 257.0 - out8).mean() < 0.6
    torch16 = seamless_clone(src.astype(np.uint16) * 257, dst.astype(np.uint16) * 257, mask, center, mode,
                             backend="torch")
    assert np.abs(torch16.astype(np.int64) - out16).max() <= 1


def test_uint16_saturates_instead_of_wrapping():
    # A bright source ramp pushed into a bright destination: u exceeds 65535 and must clip.
    i = np.mgrid[0:40, 0:40][0]
    src = np.repeat((i * 1500).astype(np.uint16)[..., None], 3, axis=2)
    dst = np.full((40, 40, 3), 64000, np.uint16)
    mask = np.zeros((40, 40), np.uint8)
    mask[5:35, 5:35] = 255
    out = dst_clone(src, dst, mask, (20, 20), "normal")
    assert out.max() == 65535 and out.min() > 30000
    ref = torch_clone(src, dst, mask, (20, 20), "normal")
    assert np.abs(ref.astype(int) - out).max() <= 1


def test_constant_images_give_the_exact_constant():
    # The exact solution is the constant; OpenCV's float noise truncates about half of the box
    # one level down (documented in _blend_dst), this solver returns the constant.
    src, dst = np.full((30, 30, 3), 100, np.uint8), np.full((60, 60, 3), 100, np.uint8)
    mask = np.full((30, 30), 255, np.uint8)
    np.testing.assert_array_equal(dst_clone(src, dst, mask, (30, 30), "normal"), dst)
    assert (_cv2_clone(src, dst, mask, (30, 30), "normal") == 99).any()


def test_blend_into_writes_only_the_box_interior_and_matches_dst_clone():
    src, dst, mask, center, mode = _random_case(5)
    x, y, w, h = opencv_mask_box(mask)
    out, left, top = dst.copy(), center[0] - w // 2, center[1] - h // 2
    blend_into(out, src[y:y + h, x:x + w], mask[y:y + h, x:x + w] != 0, (left, top), mode)
    np.testing.assert_array_equal(out, dst_clone(src, dst, mask, center, mode))
    inside = np.zeros(dst.shape[:2], bool)
    inside[top + 1:top + h - 1, left + 1:left + w - 1] = True
    np.testing.assert_array_equal(out[~inside], dst[~inside])


def test_inputs_are_not_modified():
    src, dst, mask, center, mode = _random_case(7)
    copies = [a.copy() for a in (src, dst, mask)]
    for backend in ("dst", "torch"):
        BLEND_BACKENDS[backend](src, dst, mask, center, mode)
    for original, copy in zip((src, dst, mask), copies, strict=True):
        np.testing.assert_array_equal(original, copy)


def test_mask_on_the_image_border_only_changes_nothing():
    # OpenCV zeroes the mask's outer pixel ring first: nothing is left to blend.
    rng = np.random.default_rng(0)
    src, dst = rng.integers(0, 256, (2, 30, 30, 3), dtype=np.uint8)
    mask = np.zeros((30, 30), np.uint8)
    mask[0, :] = 255
    assert opencv_mask_box(mask) == (0, 0, 0, 0)
    np.testing.assert_array_equal(dst_clone(src, dst, mask, (15, 15), "normal"), dst)
    np.testing.assert_array_equal(_cv2_clone(src, dst, mask, (15, 15), "normal"), dst)


@pytest.mark.parametrize("size", [1, 2, 5])
def test_tiny_masks_leave_the_destination(size):
    # Below 3 px there is no interior; below 7 px the 3 px erosion leaves no source gradient.
    src, dst = np.full((20, 20, 3), 200, np.uint8), np.full((20, 20, 3), 50, np.uint8)
    mask = np.zeros((20, 20), np.uint8)
    mask[5:5 + size, 5:5 + size] = 255
    np.testing.assert_array_equal(dst_clone(src, dst, mask, (10, 10), "normal"), dst)


def test_default_backend_is_dst():
    assert DEFAULT_BACKEND == "dst"
    src, dst, mask = _golden_inputs()
    np.testing.assert_array_equal(seamless_clone(src, dst, mask, (8, 8))[4:12, 4:12, 0], _GOLDEN["normal"])


def test_blend_into_errors():
    out = np.zeros((20, 20, 3), np.uint8)
    src, mask = np.zeros((10, 10, 3), np.uint8), np.ones((10, 10), bool)
    with pytest.raises(ValueError, match="unknown blend mode 'mix'"):
        blend_into(out, src, mask, (0, 0), "mix")
    with pytest.raises(ValueError, match="must share a uint8 or uint16 dtype, got uint8 and uint16"):
        blend_into(out, src.astype(np.uint16), mask, (0, 0))
    with pytest.raises(ValueError, match="out and src_crop must share a uint8 or uint16 dtype, got float32"):
        blend_into(out.astype(np.float32), src.astype(np.float32), mask, (0, 0))
    with pytest.raises(ValueError, match=r"out \(20, 20, 3\) and src_crop \(10, 10, 1\) must both be"):
        blend_into(out, src[:, :, :1], mask, (0, 0))
    with pytest.raises(ValueError, match=r"mask_crop \(9, 10\) must have src_crop's size \(10, 10\)"):
        blend_into(out, src, mask[:9], (0, 0))
    with pytest.raises(ValueError, match=r"a 10x10 box at top_left \(11, 0\) does not lie inside out \(20x"):
        blend_into(out, src, mask, (11, 0))
    with pytest.raises(ValueError, match=r"a 10x10 box at top_left \(0, -1\) does not lie inside"):
        blend_into(out, src, mask, (0, -1))


def test_poisson_blend_batch_errors():
    images = torch.zeros((2, 3, 20, 20), dtype=torch.uint8)
    src, masks = torch.zeros((2, 3, 8, 8), dtype=torch.uint8), torch.ones((2, 8, 8), dtype=torch.bool)
    boxes = torch.tensor([[0, 0, 8, 8], [4, 4, 8, 8]])
    with pytest.raises(ValueError, match="unknown blend mode 'mix'"):
        poisson_blend_batch(images, src, masks, boxes, "mix")
    with pytest.raises(TypeError, match="images must be uint8, uint16 or floating point, got torch.int32"):
        poisson_blend_batch(images.int(), src, masks, boxes)
    with pytest.raises(ValueError, match=r"images \(2, 3, 20, 20\) and src \(2, 1, 8, 8\) must be"):
        poisson_blend_batch(images, src[:, :1], masks, boxes)
    with pytest.raises(ValueError, match=r"masks \(2, 7, 8\) must be \(B, P, Q\) = \(2, 8, 8\)"):
        poisson_blend_batch(images, src, masks[:, :7], boxes)
    with pytest.raises(ValueError, match=r"boxes \(1, 4\) must be \(B, 4\)"):
        poisson_blend_batch(images, src, masks, boxes[:1])
    with pytest.raises(ValueError, match="index must not repeat an image"):
        poisson_blend_batch(images, src, masks, boxes, index=torch.tensor([1, 1]))
    with pytest.raises(ValueError, match=r"index must lie in \[0, 1\], got 0..2"):
        poisson_blend_batch(images, src, masks, boxes, index=torch.tensor([0, 2]))
    with pytest.raises(ValueError, match=r"without index, images \(1\) and src \(2\) must hold as many"):
        poisson_blend_batch(images[:1], src, masks, boxes)
    with pytest.raises(ValueError, match=r"box 1 \(x, y, w, h\) = \(13, 4, 8, 8\) must have 1 <= w <= 8"):
        poisson_blend_batch(images, src, masks, torch.tensor([[0, 0, 8, 8], [13, 4, 8, 8]]))
    with pytest.raises(ValueError, match=r"box 0 \(x, y, w, h\) = \(0, 0, 9, 8\)"):
        poisson_blend_batch(images, src, masks, torch.tensor([[0, 0, 9, 8], [4, 4, 8, 8]]))


def test_poisson_blend_batch_index_inplace_and_float():
    rng = np.random.default_rng(3)
    images = torch.from_numpy(rng.integers(0, 256, (4, 3, 40, 40), dtype=np.uint8))
    src = torch.from_numpy(rng.integers(0, 256, (2, 3, 20, 24), dtype=np.uint8))
    masks, index = torch.ones((2, 20, 24), dtype=torch.bool), torch.tensor([3, 1])
    boxes = torch.tensor([[3, 5, 24, 20], [10, 12, 20, 18]])
    out = poisson_blend_batch(images, src, masks, boxes, "normal", index=index)
    assert torch.equal(out[[0, 2]], images[[0, 2]])                          # untouched images
    assert not torch.equal(out[3], images[3]) and not torch.equal(out[1], images[1])
    for b, i in enumerate(index.tolist()):                                   # each patch as a single call
        x, y, w, h = boxes[b].tolist()
        single = images[i].permute(1, 2, 0).numpy().copy()
        patch = src[b, :, :h, :w].permute(1, 2, 0).numpy()
        blend_into(single, patch, masks[b, :h, :w].numpy(), (x, y), "normal")
        assert np.abs(out[i].permute(1, 2, 0).numpy().astype(int) - single).max() <= 1
    same = images.clone()
    assert poisson_blend_batch(same, src, masks, boxes, "normal", index=index, inplace=True) is same
    assert torch.equal(same, out)
    scaled = poisson_blend_batch(images.float() / 255, src.float() / 255, masks, boxes, "normal", index=index)
    assert scaled.dtype == torch.float32 and 0 <= scaled.min() and scaled.max() <= 1
    assert (scaled * 255 - out.float()).abs().max() <= 1 + 1e-3            # truncation only


def test_torch_solve_ignores_low_precision_settings():
    # bf16 autocast or TF32/bf16 matmuls would cost levels: the solver switches them off locally.
    src, dst, mask = _golden_inputs()
    previous = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("medium")
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = torch_clone(src, dst, mask, (8, 8), "normal")
        assert torch.get_float32_matmul_precision() == "medium"
    finally:
        torch.set_float32_matmul_precision(previous)
    np.testing.assert_array_equal(out[4:12, 4:12, 0], _GOLDEN["normal"])


def test_dst_agrees_with_opencv_on_real_bottle_images(bottle_images):
    rng = np.random.default_rng(0)
    worst, total, pixels = 0, 0, 0
    for k in range(24):
        src, dst = (bottle_images[i] for i in rng.choice(len(bottle_images), 2, replace=False))
        h, w = (int(v) for v in rng.integers(20, 91, 2))
        mask = np.zeros(src.shape[:2], np.uint8)
        y, x = int(rng.integers(0, 256 - h)), int(rng.integers(0, 256 - w))
        mask[y:y + h, x:x + w] = _mask_tile(rng, h, w)
        bx, by, bw, bh = opencv_mask_box(mask)
        center = (int(rng.integers(bw // 2, 256 - bw + bw // 2)),
                  int(rng.integers(bh // 2, 256 - bh + bh // 2)))
        mode = ("normal", "mixed")[k % 2]
        ours = dst_clone(src, dst, mask, center, mode).astype(int)
        diff = np.abs(ours - _cv2_clone(src, dst, mask, center, mode))
        worst, total, pixels = max(worst, diff.max()), total + diff.sum(), pixels + bw * bh * 3
    assert worst <= 1 and total / pixels <= 0.01


def test_poisson_blend_batch_any_memory_layout():
    rng = np.random.default_rng(4)
    images = torch.from_numpy(rng.integers(0, 256, (3, 3, 32, 36), dtype=np.uint16) * 200)
    src = torch.from_numpy(rng.integers(0, 256, (3, 3, 16, 18), dtype=np.uint16) * 200)
    masks = torch.ones((3, 16, 18), dtype=torch.bool)
    boxes = torch.tensor([[0, 0, 18, 16], [18, 16, 18, 16], [5, 9, 12, 14]])
    expected = poisson_blend_batch(images, src, masks, boxes, "mixed")
    last = poisson_blend_batch(images.to(memory_format=torch.channels_last), src, masks, boxes, "mixed")
    assert torch.equal(last, expected)
    bigger = torch.zeros((5, 3, 40, 40), dtype=torch.uint16)
    bigger[1:4, :, 4:36, 2:38] = images
    view = bigger[1:4, :, 4:36, 2:38]                                # not contiguous, written in place
    poisson_blend_batch(view, src, masks, boxes, "mixed", inplace=True)
    assert torch.equal(view, expected) and int(bigger[0].sum()) == 0 and int(bigger[4].sum()) == 0
    assert int(bigger[1:4, :, :4].sum()) == 0 and int(bigger[1:4, :, :, 38:].sum()) == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_poisson_blend_batch_on_cuda_matches_cpu():
    rng = np.random.default_rng(8)
    images = torch.from_numpy(rng.integers(0, 256, (16, 3, 64, 64), dtype=np.uint8))
    src = torch.from_numpy(rng.integers(0, 256, (16, 3, 40, 40), dtype=np.uint8))
    masks = torch.from_numpy(rng.random((16, 40, 40)) < 0.95)
    boxes = torch.tensor([[int(v) for v in rng.integers(0, 20, 2)] + [int(v) for v in rng.integers(10, 41, 2)]
                          for _ in range(16)])
    for mode in ("normal", "mixed"):
        on_cpu = poisson_blend_batch(images, src, masks, boxes, mode)
        on_gpu = poisson_blend_batch(images.cuda(), src.cuda(), masks.cuda(), boxes, mode).cpu()
        assert (on_gpu.int() - on_cpu.int()).abs().max() <= 1
