"""Defect regions, connected components, smoothing and image headers: against SciPy and OpenCV."""

import numpy as np
import pytest
import scipy.ndimage

from nsad.data.io import read_image, read_image_bytes
from nsad.deploy._upload import header_size, sniff_format
from nsad.postprocess import Region, defect_regions, gaussian_smooth, label_components, largest_component_area


@pytest.mark.parametrize("connectivity", [4, 8])
def test_components_are_scipys(connectivity):
    rng = np.random.default_rng(connectivity)
    structure = scipy.ndimage.generate_binary_structure(2, 1 if connectivity == 4 else 2)
    for _ in range(20):
        mask = rng.random((rng.integers(1, 40), rng.integers(1, 40))) > rng.uniform(0.3, 0.8)
        count, labels, stats = label_components(mask, connectivity)
        reference, expected = scipy.ndimage.label(mask, structure=structure)
        assert count == expected
        # the same partition of the pixels (labels may be numbered differently)
        pairs = {(a, b) for a, b in zip(labels.ravel(), reference.ravel(), strict=True)}
        assert len(pairs) == count + (1 if (~mask).any() else 0)
        areas = sorted(np.bincount(reference.ravel())[1:].tolist())
        assert sorted(stats[1:, 4].tolist()) == areas
        assert largest_component_area(mask, connectivity) == (max(areas) if areas else 0)


def test_defect_regions_reference_values():
    anomaly_map = np.zeros((6, 8), np.float32)
    anomaly_map[1:3, 1:4] = [[0.5, 0.7, 0.5], [0.6, 0.9, 0.5]]  # 6 pixels, peak 0.9
    anomaly_map[4, 6] = 0.8  # one pixel
    anomaly_map[5, 0] = 0.49  # below the level
    regions = defect_regions(anomaly_map, 0.5)
    assert regions == [Region((1, 1, 4, 3), 6, pytest.approx(0.9), pytest.approx(3.7 / 6)),
                       Region((6, 4, 7, 5), 1, pytest.approx(0.8), pytest.approx(0.8))]
    assert defect_regions(anomaly_map, 0.5, min_area=2) == regions[:1]
    assert defect_regions(anomaly_map, 1.0) == []
    assert regions[0].to_dict() == {"bbox": [1, 1, 4, 3], "area": 6, "peak": regions[0].peak, "mean": regions[0].mean}
    diagonal = np.eye(3, dtype=np.float32)
    assert len(defect_regions(diagonal, 0.5, connectivity=8)) == 1
    assert len(defect_regions(diagonal, 0.5, connectivity=4)) == 3
    with pytest.raises(ValueError, match="min_area"):
        defect_regions(anomaly_map, 0.5, min_area=0)
    with pytest.raises(ValueError, match="finite"):
        defect_regions(anomaly_map, float("nan"))


@pytest.mark.parametrize("sigma", [0.6, 1.0, 2.5, 7.0])
def test_gaussian_smooth_is_scipys(sigma):
    maps = np.random.default_rng(0).random((2, 13, 17))
    expected = np.stack([scipy.ndimage.gaussian_filter(m, sigma, mode="nearest") for m in maps])
    np.testing.assert_allclose(gaussian_smooth(maps, sigma), expected, atol=1e-12)
    assert gaussian_smooth(maps, 0) is maps


@pytest.mark.parametrize("suffix, fmt", [(".png", "png"), (".jpg", "jpeg"), (".bmp", "bmp"), (".tif", "tiff"),
                                         (".webp", "webp")])
@pytest.mark.parametrize("channels, dtype", [(3, np.uint8), (1, np.uint8), (1, np.uint16)])
def test_headers_give_the_size_before_decoding(suffix, fmt, channels, dtype, tmp_path):
    import cv2

    if dtype == np.uint16 and fmt not in ("png", "tiff"):
        pytest.skip(f"{fmt} holds 8-bit images")
    image = np.random.default_rng(0).integers(0, 200, (37, 53, channels)).astype(dtype)
    ok, encoded = cv2.imencode(suffix, image)
    data = encoded.tobytes()
    assert ok and sniff_format(data) == fmt and header_size(data, fmt) == (53, 37)
    (tmp_path / f"a{suffix}").write_bytes(data)
    np.testing.assert_array_equal(read_image_bytes(data), read_image(tmp_path / f"a{suffix}"))
    assert header_size(data[:12], fmt) is None  # truncated before the size
    assert sniff_format(b"GIF89a" + data[6:]) is None
