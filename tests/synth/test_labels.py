import numpy as np
import pytest
from scipy import ndimage

from nsad.synth._types import Box
from nsad.synth.labels import disk, nsa_label
from nsad.synth.objects import object_mask


def constant_change(levels: float, dtype=np.uint8, size: int = 64, square=(20, 44)):
    scale = 1 if dtype == np.uint8 else 257
    original = np.full((size, size, 3), 100 * scale, dtype)
    image = original.copy()
    image[square[0]:square[1], square[0]:square[1]] += np.array(levels * scale).astype(dtype)
    return image, original, [Box(square[0], square[0], square[1], square[1])]


@pytest.mark.parametrize("levels, y0, k, expected", [
    (24, 24, 1 / 12, 0.5),                      # at the midpoint: 1 / (1 + e^0)
    (36, 24, 1 / 12, 1 / (1 + np.exp(-1))),     # one slope unit above
    (4, 4, 0.5, 0.5),
    (10, 24, 1 / 12, 1 / (1 + np.exp(14 / 12))),
], ids=["midpoint", "above", "capsule-midpoint", "below"])
def test_logistic_label_eq14_inside_a_constant_change(levels, y0, k, expected):
    image, original, boxes = constant_change(levels)
    label = nsa_label(image, original, boxes, "logistic", y0=y0, k=k)
    assert label[32, 32] == pytest.approx(expected, rel=1e-5)
    assert label.dtype == np.float32 and label.shape == (64, 64)


def test_binary_and_continuous_labels_eq13():
    image, original, boxes = constant_change(30)
    binary = nsa_label(image, original, boxes, "binary")
    continuous = nsa_label(image, original, boxes, "continuous")
    assert binary[32, 32] == 1 and binary[5, 5] == 0
    assert continuous[32, 32] == pytest.approx(30.0)
    # A 5x5 median removes the square's corner pixel (9 of 25 neighbours set) but keeps edges.
    assert binary[20, 20] == 0 and binary[20, 32] == 1


def test_changes_of_one_level_or_less_are_not_labelled():
    image, original, boxes = constant_change(1)
    assert nsa_label(image, original, boxes, "binary").sum() == 0


def test_changes_outside_the_boxes_are_not_labelled():
    image, original, _ = constant_change(50)
    label = nsa_label(image, original, [Box(0, 0, 10, 10)], "binary")
    assert label.sum() == 0


@pytest.mark.parametrize("kind", ["binary", "continuous", "logistic"])
def test_crop_computation_equals_whole_image_filtering(kind):
    # The label is computed on a crop around the boxes; it must equal filtering the whole image.
    rng = np.random.default_rng(0)
    original = rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)
    image = original.copy()
    boxes = [Box(3, 50, 40, 88), Box(70, 2, 118, 30)]
    for b in boxes:
        image[b.slices()] = rng.integers(0, 256, (b.height, b.width, 3), dtype=np.uint8)
    inside = np.zeros((90, 120), bool)
    for b in boxes:
        inside[b.slices()] = True
    diff = np.abs(image.astype(float) - original.astype(float)).mean(axis=2)
    changed = (diff > 1) & inside
    binary = ndimage.median_filter(changed.astype(np.uint8), size=5, mode="reflect").astype(float)
    continuous = ndimage.median_filter(np.where(changed, diff, 0.0), footprint=disk(5), mode="reflect")
    expected = {"binary": binary, "continuous": continuous,
                "logistic": binary / (1 + np.exp(-(continuous - 15) / 6))}[kind]
    np.testing.assert_allclose(nsa_label(image, original, boxes, kind, y0=15, k=1 / 6), expected, atol=1e-4)


@pytest.mark.parametrize("kind", ["binary", "continuous", "logistic"])
def test_sixteen_bit_labels_equal_eight_bit_labels(kind):
    image8, original8, boxes = constant_change(40)
    image16, original16, _ = constant_change(40, np.uint16)
    np.testing.assert_allclose(nsa_label(image16, original16, boxes, kind),
                               nsa_label(image8, original8, boxes, kind), atol=1e-5)


def test_disk_footprint_radius_5():
    footprint = disk(5)
    assert footprint.shape == (11, 11) and footprint.sum() == 81 and footprint[5, 0] and not footprint[0, 0]


def test_unknown_label_kind_is_rejected():
    image, original, boxes = constant_change(10)
    with pytest.raises(ValueError, match="unknown label kind 'logistc'.*Did you mean 'logistic'"):
        nsa_label(image, original, boxes, "logistc")


def test_object_mask_eq8_keeps_pixels_far_from_the_background():
    image = np.full((80, 80, 3), 200, np.uint8)
    yy, xx = np.mgrid[:80, :80]
    disk_mask = (yy - 40) ** 2 + (xx - 40) ** 2 <= 20**2
    image[disk_mask] = 90
    image[5, 5] = 0                                  # a grain of dust: removed by the 7x7 median
    mask = object_mask(image, background=200, t_brightness=60)
    assert not mask[5, 5]
    assert (mask != disk_mask).sum() < 0.02 * disk_mask.sum()
    image16 = image.astype(np.uint16) * 257
    np.testing.assert_array_equal(object_mask(image16, 200, 60), mask)
