"""Bauer's threshold protocol (Bauer 2022, Sec. 4.2) in nsad.postprocess."""


import numpy as np
import pytest
import scipy.ndimage
import torch

from nsad.postprocess import DefectThreshold, calibrate_threshold, largest_component_area, segment_defects

pytestmark = pytest.mark.filterwarnings("ignore:You defined a `validation_step` but have no `val_dataloader`")

TINY = dict(base_channels=4, sdc_blocks=1, sdc_kernel_size=3)


def _constructed_map():
    # 12x12 zeros with: a 3x3 block of 5 (9 px), a 2x2 block of 7 (4 px), one pixel of 9.
    m = np.zeros((12, 12))
    m[0:3, 0:3] = 5
    m[5:7, 5:7] = 7
    m[10, 10] = 9
    return m


@pytest.mark.parametrize("min_area, threshold", [(1, 9.0), (2, 7.0), (4, 7.0), (5, 5.0), (9, 5.0), (10, 0.0)])
def test_calibrate_threshold_constructed(min_area, threshold):
    # {> 0}: components of 9, 4, 1 px; {> 5}: 4, 1 px; {> 7}: 1 px; {> 9}: nothing.
    rule = calibrate_threshold(_constructed_map(), min_area=min_area)
    assert rule == DefectThreshold(threshold=threshold, min_area=min_area, connectivity=8)
    assert not segment_defects(_constructed_map(), rule).any()  # normal images: no defect


@pytest.mark.parametrize("connectivity, threshold", [(8, 3.0), (4, 0.0)])
def test_calibrate_threshold_connectivity(connectivity, threshold):
    m = np.zeros((6, 6))
    m[1, 1] = m[2, 2] = 3  # diagonal neighbours: one 2-px component with 8-connectivity, two 1-px with 4
    assert calibrate_threshold(m, min_area=2, connectivity=connectivity).threshold == threshold


def test_calibrate_threshold_uses_the_worst_validation_map():
    quiet, loud = np.zeros((8, 8)), np.zeros((8, 8))
    quiet[0:2, 0:2] = 3.0  # 4 px, high
    loud[4:7, 4:7] = 2.0  # 9 px, lower
    # min_area 5: the loud map's 9 px must go (t >= 2), the quiet map's 4 px may stay.
    assert calibrate_threshold([quiet, loud], min_area=5).threshold == 2.0
    # min_area 4: the quiet map's 4 px must go too (t >= 3).
    assert calibrate_threshold(torch.tensor(np.stack([quiet, loud])), min_area=4).threshold == 3.0
    assert calibrate_threshold([quiet, loud], min_area=10).threshold == 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_calibrate_threshold_equals_linear_scan(seed):
    rng = np.random.default_rng(seed)
    maps = scipy.ndimage.gaussian_filter(rng.random((3, 16, 16)), (0, 1.5, 1.5))
    maps = np.round(maps, 3)  # ties
    min_area = int(rng.integers(2, 30))
    scan = next(t for t in np.unique(maps) if all(largest_component_area(m > t) < min_area for m in maps))
    assert calibrate_threshold(maps, min_area).threshold == scan


def test_segment_defects_removes_small_components():
    rule = DefectThreshold(threshold=4.0, min_area=4)
    segmentation = segment_defects(_constructed_map(), rule)
    expected = np.zeros((12, 12), bool)
    expected[0:3, 0:3] = True
    expected[5:7, 5:7] = True  # 4 px >= min_area: kept; the single pixel is dropped
    np.testing.assert_array_equal(segmentation, expected)
    batch = segment_defects(np.stack([_constructed_map(), np.zeros((12, 12))]), rule)
    assert batch.shape == (2, 12, 12) and batch[0].sum() == 13 and not batch[1].any()


def test_threshold_rejections():
    with pytest.raises(ValueError, match="min_area must be a positive int .*, got 0"):
        calibrate_threshold(np.zeros((4, 4)), min_area=0)
    with pytest.raises(ValueError, match="connectivity must be 4 or 8, got 6"):
        calibrate_threshold(np.zeros((4, 4)), min_area=2, connectivity=6)
    with pytest.raises(ValueError, match="validation_maps must be finite"):
        calibrate_threshold(np.full((4, 4), np.nan), min_area=2)
    with pytest.raises(ValueError, match=r"validation_maps must have shape \(N, H, W\)"):
        calibrate_threshold(np.zeros(4), min_area=2)
    with pytest.raises(TypeError, match="rule must be a DefectThreshold"):
        segment_defects(np.zeros((4, 4)), (0.5, 3))
    with pytest.raises(ValueError, match="threshold must be finite"):
        DefectThreshold(threshold=float("inf"), min_area=3)


