import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nsad.synth import BLEND_BACKENDS, NSA, PatchPlacementWarning, get_preset, get_task, object_mask
from nsad.synth.nsa import sample_placement

BOTTLE = get_preset("mvtec/bottle")
DEFAULT = get_preset("default")


def smooth_image(height: int, width: int, channels: int, dtype, seed: int) -> np.ndarray:
    """A smooth random image (sum of a few cosines), so that blending changes it visibly."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width] / max(height, width)
    planes = []
    for _ in range(channels):
        fx, fy, phase = rng.uniform(1, 6, 3)
        planes.append(0.5 + 0.4 * np.cos(2 * np.pi * (fx * xx + fy * yy) + phase))
    top = np.iinfo(dtype).max
    return (np.stack(planes, axis=2) * top).astype(dtype)


def bottle_like(size: int = 128, seed: int = 0) -> np.ndarray:
    """A dark disk (the object) on a bright background, like MVTec's bottle seen from above."""
    image = smooth_image(size, size, 3, np.uint8, seed) // 3 + 40
    yy, xx = np.mgrid[:size, :size]
    image[(yy - size / 2) ** 2 + (xx - size / 2) ** 2 > (0.42 * size) ** 2] = 235
    return image


def grown(boxes, shape, margin):
    region = np.zeros(shape, bool)
    for b in boxes:
        region[max(0, b.y0 - margin):b.y1 + margin, max(0, b.x0 - margin):b.x1 + margin] = True
    return region


needs_16bit = pytest.mark.skipif("dst" not in BLEND_BACKENDS, reason="16-bit blending needs the dst backend")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), height=st.integers(70, 180), width=st.integers(70, 180),
       channels=st.sampled_from([1, 3]), dtype=st.sampled_from([np.uint8, np.uint16]),
       label=st.sampled_from(["binary", "continuous", "logistic"]), ellipses=st.sampled_from([0, 3]))
def test_nsa_properties(seed, height, width, channels, dtype, label, ellipses):
    if dtype == np.uint16 and "dst" not in BLEND_BACKENDS:
        return
    image = smooth_image(height, width, channels, dtype, seed)
    source = smooth_image(height, width, channels, dtype, seed + 1)
    task = NSA(DEFAULT, label=label, ellipses=ellipses)
    out = task(image, source, rng=np.random.default_rng(seed))
    again = task(image, source, rng=np.random.default_rng(seed))
    np.testing.assert_array_equal(out.image, again.image)
    np.testing.assert_array_equal(out.label, again.label)
    assert out.patches == again.patches
    assert out.image.shape == image.shape and out.image.dtype == image.dtype
    assert out.label.shape == (height, width) and out.label.dtype == np.float32
    changed = np.any(out.image != image, axis=2)
    assert not np.any(changed & ~grown([p.dst_box for p in out.patches], changed.shape, 0))
    assert not np.any((out.label != 0) & ~grown([p.dst_box for p in out.patches], changed.shape, 5))
    assert out.label.min() >= 0
    if label != "continuous":
        assert out.label.max() <= 1
    for p in out.patches:
        assert 0 <= p.dst_box.x0 < p.dst_box.x1 <= width and 0 <= p.dst_box.y0 < p.dst_box.y1 <= height
        assert DEFAULT.scale_bounds[0] - 0.5 <= p.scale <= DEFAULT.scale_bounds[1] + 2
        assert p.mode == "normal"


def test_object_constraints_eqs_8_11_12_hold_for_every_placement():
    image, source = bottle_like(seed=1), bottle_like(seed=2)
    source_object, dest_object = (object_mask(x, BOTTLE.background, BOTTLE.t_brightness) for x in (source, image))
    assert 0.3 < dest_object.mean() < 0.7
    rng = np.random.default_rng(0)
    placed = 0
    for _ in range(200):
        p = sample_placement(rng, BOTTLE, 128, 128, source_object, dest_object)
        if p is None:
            continue
        placed += 1
        assert dest_object[p.dst_box.slices()].mean() > BOTTLE.t_object
        # eq. 8 divides by the drawn w x h, which the clipped box can only undercut
        assert source_object[p.src_box.slices()].sum() / p.src_box.width / p.src_box.height > BOTTLE.t_object
    assert placed > 150


def test_background_only_images_give_up_with_a_warning():
    blank = np.full((100, 100, 3), 200, np.uint8)
    with pytest.warns(PatchPlacementWarning, match="no source patch held more than t_object=0.7"):
        out = NSA(BOTTLE)(blank, blank, rng=np.random.default_rng(0))
    assert out.patches == () and out.label.sum() == 0
    np.testing.assert_array_equal(out.image, blank)


def test_golden_patch_records_at_a_fixed_seed():
    image, source = bottle_like(seed=3), bottle_like(seed=4)
    out = get_task("cutpaste-nsa", BOTTLE)(image, source, rng=np.random.default_rng(2024))
    got = [(p.src_box.as_list(), p.dst_box.as_list(), round(p.scale, 4), p.mode) for p in out.patches]
    assert got == [tuple(r) for r in GOLDEN_RECORDS]
    assert int(out.image.astype(np.int64).sum()) == GOLDEN_IMAGE_SUM


# Pinned from this implementation (numpy's PCG64 draws); a change here changes every training set.
GOLDEN_RECORDS = [([49, 51, 100, 105], [45, 51, 81, 89], 0.7, "paste"),
                  ([20, 17, 65, 40], [27, 81, 58, 97], 0.7, "paste"),
                  ([50, 26, 70, 46], [66, 30, 87, 51], 1.0284, "paste")]
GOLDEN_IMAGE_SUM = 7428122


def test_blended_examples_use_the_preset_gradients_and_label_the_change():
    image, source = bottle_like(seed=5), bottle_like(seed=6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PatchPlacementWarning)
        outs = [get_task("nsa-logistic", BOTTLE)(image, source, rng=np.random.default_rng(s)) for s in range(10)]
    assert all(p.mode == "normal" for out in outs for p in out.patches)
    assert sum(len(out.patches) for out in outs) >= 10
    assert max(out.label.max() for out in outs) > 0.5
    mixed = get_task("nsa-logistic", get_preset("mvtec/carpet"))(smooth_image(96, 96, 3, np.uint8, 0),
                                                                 smooth_image(96, 96, 3, np.uint8, 1),
                                                                 rng=np.random.default_rng(0))
    assert {p.mode for p in mixed.patches} == {"mixed"}


def test_nsa_rejects_mismatched_and_small_images():
    image = smooth_image(100, 100, 3, np.uint8, 0)
    with pytest.raises(ValueError, match=r"source \(100, 90, 3\) uint8 must match image \(100, 100, 3\)"):
        NSA(DEFAULT)(image, image[:, :90], rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="too small for preset 'default'"):
        NSA(DEFAULT)(image[:40, :40], image[:40, :40], rng=np.random.default_rng(0))
    with pytest.raises(TypeError, match="must have dtype uint8 or uint16, got float32"):
        NSA(DEFAULT)(image.astype(np.float32), image, rng=np.random.default_rng(0))


@pytest.mark.parametrize("name, message", [
    ("nsa-logstic", r"unknown task 'nsa-logstic'.*Did you mean 'nsa-logistic'"),
    ("fpj", r"unknown task 'fpj'.*Did you mean 'fpi'"),
])
def test_unknown_task_names(name, message):
    with pytest.raises(ValueError, match=message):
        get_task(name)


def test_unknown_preset_names():
    with pytest.raises(ValueError, match=r"unknown preset 'mvtec/botle'.*Did you mean 'mvtec/bottle'"):
        get_task("nsa-logistic", "mvtec/botle")


def test_real_bottle_examples(bottle_images):
    task = get_task("nsa-logistic", BOTTLE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PatchPlacementWarning)
        outs = [task(bottle_images[i], bottle_images[i + 1], rng=np.random.default_rng(i)) for i in range(6)]
    assert all(out.patches for out in outs)
    for out in outs:
        assert 0 < (out.label > 0.05).mean() < 0.6
