import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import ndimage

import nsad.synth._median as median_module
import nsad.synth.labels as labels
from nsad.synth import SynthDataset, get_task
from nsad.synth._median import disk_half_widths, median_disk

BACKENDS = ["numba", "skimage"]


def scipy_median(values: np.ndarray, radius: int = 5) -> np.ndarray:
    return ndimage.median_filter(values, footprint=labels.disk(radius), mode="reflect")


def assert_exact(values: np.ndarray, radius: int, backend: str) -> None:
    result = median_disk(values, radius, backend=backend)
    expected = scipy_median(values, radius)
    assert result.dtype == expected.dtype and result.shape == expected.shape
    np.testing.assert_array_equal(result, expected)


def patch_like(rng: np.random.Generator, shape: tuple[int, int], high: int = 766) -> np.ndarray:
    """Zero with a blob of smooth-ish non-zero channel sums inside, like NSA's changed region."""
    height, width = shape
    yy, xx = np.mgrid[:height, :width]
    cy, cx = rng.uniform(0, height), rng.uniform(0, width)
    ry, rx = rng.uniform(1, height), rng.uniform(1, width)
    inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    level = rng.integers(1, high, size=shape) // rng.integers(1, 50) * rng.integers(1, 50)
    return np.where(inside & (rng.random(shape) < 0.9), np.minimum(level, high - 1), 0).astype(np.uint16)


def test_disk_half_widths_give_the_labels_disk():
    for radius in range(11):
        half_widths = disk_half_widths(radius)
        offsets = np.arange(-radius, radius + 1)
        rows = np.abs(offsets[None, :]) <= half_widths[:, None]
        np.testing.assert_array_equal(rows, labels.disk(radius))
    assert int((2 * disk_half_widths(5) + 1).sum()) == 81


def test_skip_box_counts_the_disk_pixels_outside_it():
    # count(box) + outside must bound the disk count: outside is exactly |disk \ box|.
    for radius in range(13):
        side, outside = median_module._skip_box(radius)
        footprint = labels.disk(radius)
        start = radius - side // 2
        box = np.zeros_like(footprint)
        box[start:start + side, start:start + side] = True
        assert side % 2 == 1 and outside == int((footprint & ~box).sum())
    assert median_module._skip_box(5) == (9, 4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_tiny_crops_every_shape_up_to_12(backend):
    # Crops smaller than the disk: the reflect border folds several times (scipy's 'reflect').
    rng = np.random.default_rng(0)
    for height in range(1, 13):
        for width in range(1, 13):
            dense = rng.integers(0, 766, (height, width)).astype(np.uint16)
            assert_exact(dense, 5, backend)
            assert_exact(np.where(rng.random((height, width)) < 0.6, dense, 0).astype(np.uint16), 5, backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(13, 40), (60, 60), (97, 131), (200, 64)])
def test_random_arrays_of_several_sizes(backend, shape):
    rng = np.random.default_rng(shape[0] * 1000 + shape[1])
    cases = [
        patch_like(rng, shape),                                                   # NSA-like: blob in zeros
        rng.integers(0, 766, shape).astype(np.uint16),                            # all 0..765, noisy
        np.where(rng.random(shape) < 0.5, rng.integers(1, 766, shape), 0).astype(np.uint16),  # half zero
        rng.integers(0, 65536, shape).astype(np.uint16),                          # full uint16 (coarse level)
        (patch_like(rng, shape, 766) * 85).astype(np.uint16),                     # sparse wide range
        rng.integers(0, 256, shape).astype(np.uint8),
    ]
    for values in cases:
        assert_exact(values, 5, backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_constant_arrays(backend):
    for value in (0, 1, 765, 65535):
        values = np.full((30, 25), value, np.uint16)
        np.testing.assert_array_equal(median_disk(values, backend=backend), values)
    ones = np.ones((40, 40), np.uint16)
    ones[10:30, 10:30] = 700                      # no zero at all: the background is the minimum, 1
    assert_exact(ones, 5, backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_background_skip_boundary_41_of_81(backend):
    # Exactly 41 non-zero disk values make a non-zero median, 40 do not. The disk's 4 tips come
    # first: with them, 41 values put only 37 in the 9 x 9 skip box, just over its bound (36).
    footprint = labels.disk(5)
    tips = [(0, 5), (5, 0), (5, 10), (10, 5)]
    order = tips + [tuple(p) for p in np.argwhere(footprint) if tuple(p) not in tips]
    order = np.array(order)
    for count in (40, 41):
        values = np.zeros((11, 11), np.uint16)
        ys, xs = order[:count].T
        values[ys, xs] = 300
        # a 21 x 21 canvas so the reflection does not add copies inside the centre's disk
        canvas = np.zeros((21, 21), np.uint16)
        canvas[5:16, 5:16] = values
        result = median_disk(canvas, backend=backend)
        assert result[10, 10] == (300 if count == 41 else 0)
        np.testing.assert_array_equal(result, scipy_median(canvas))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("radius", [0, 1, 2, 3, 7, 8])
def test_other_radii(backend, radius):
    rng = np.random.default_rng(radius)
    for shape in [(1, 1), (3, 8), (25, 31)]:
        assert_exact(patch_like(rng, shape), radius, backend)
        assert_exact(rng.integers(0, 766, shape).astype(np.uint16), radius, backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int16, np.uint32, np.bool_])
def test_other_dtypes_through_ranks(backend, dtype):
    rng = np.random.default_rng(1)
    raw = rng.normal(size=(37, 29)) * 100
    raw[rng.random(raw.shape) < 0.5] = 0
    if dtype == np.bool_:
        values = raw > 0
    elif np.issubdtype(dtype, np.unsignedinteger):
        values = np.abs(raw).astype(dtype) * 100_000
    else:
        values = raw.astype(dtype)
    assert_exact(values, 5, backend)


def test_signed_values_use_the_minimum_as_background():
    values = np.full((40, 40), -7, np.int32)
    values[12:30, 8:33] = np.arange(18 * 25).reshape(18, 25) - 200
    assert_exact(values, 5, "auto")


def test_more_distinct_values_than_codes_falls_back_to_scipy(monkeypatch):
    monkeypatch.setattr(median_module, "_MAX_CODES", 16)
    values = np.random.default_rng(2).normal(size=(20, 20)).astype(np.float32)
    assert_exact(values, 5, "auto")


def test_backends_agree_and_auto_uses_numba(monkeypatch):
    values = patch_like(np.random.default_rng(3), (50, 70))
    calls = []
    original = median_module._numba_kernel

    def spy():
        calls.append(1)
        return original()

    monkeypatch.setattr(median_module, "_numba_kernel", spy)
    auto = median_disk(values)
    assert calls, "backend='auto' did not use the numba kernel"
    np.testing.assert_array_equal(auto, median_disk(values, backend="skimage"))


def test_empty_array():
    assert median_disk(np.zeros((0, 5), np.uint16)).shape == (0, 5)


@pytest.mark.parametrize("values, radius, backend, error, match", [
    ([[1, 2], [3, 4]], 5, "auto", TypeError, "numpy array"),
    (np.zeros((4, 4), np.complex64), 5, "auto", TypeError, "complex64"),
    (np.zeros((4, 4, 3), np.uint16), 5, "auto", ValueError, r"2-D .* \(4, 4, 3\)"),
    (np.zeros((4, 4), np.uint16), -1, "auto", ValueError, "radius .* -1"),
    (np.zeros((4, 4), np.uint16), 2.5, "auto", ValueError, "radius .* 2.5"),
    (np.full((4, 4), np.nan, np.float32), 5, "auto", ValueError, "NaN"),
    (np.zeros((4, 4), np.uint16), 5, "numbaa", ValueError, r"unknown median backend 'numbaa'.*'numba'"),
], ids=["list", "complex", "3-D", "negative-radius", "float-radius", "nan", "backend"])
def test_rejections(values, radius, backend, error, match):
    with pytest.raises(error, match=match):
        median_disk(values, radius, backend=backend)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=hnp.arrays(np.uint16, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=24),
                         elements=st.one_of(st.just(0), st.integers(0, 765), st.integers(0, 65535))),
       radius=st.integers(0, 6), backend=st.sampled_from(["auto", "skimage"]))
def test_property_equals_scipy(values, radius, backend):
    assert_exact(values, radius, backend)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), height=st.integers(1, 80), width=st.integers(1, 80))
def test_property_nsa_like_blobs_equal_scipy(seed, height, width):
    assert_exact(patch_like(np.random.default_rng(seed), (height, width)), 5, "auto")


def test_real_nsa_label_inputs_equal_scipy(bottle_images, monkeypatch):
    # Record what nsa_label passes to the disk median while real bottle examples are made.
    inputs, original = [], labels.median_disk

    def spy(values):
        inputs.append(values.copy())
        return original(values)

    monkeypatch.setattr(labels, "median_disk", spy)
    crops = [np.ascontiguousarray(image[16:240, 16:240]) for image in bottle_images]
    dataset = SynthDataset(crops, get_task("nsa-logistic", "mvtec/bottle"), seed=0, length=24)
    for index in range(len(dataset)):
        dataset[index]
    assert len(inputs) >= 12, f"only {len(inputs)} of 24 examples reached the disk median"
    for values in inputs:
        assert values.dtype == np.uint16 and values.max() <= 765
        expected = scipy_median(values)
        np.testing.assert_array_equal(median_disk(values), expected)
        np.testing.assert_array_equal(median_disk(values, backend="skimage"), expected)
