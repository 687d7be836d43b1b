import doctest
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

import nsad.synth.elastic as elastic_module
from nsad.synth import Box, PatchPlacementWarning, Synth, SynthDataset, get_task
from nsad.synth.elastic import (
    ElasticDraw,
    ElasticPatch,
    ElasticSynth,
    apply_elastic,
    deform_patch,
    modified_region,
    sample_displacement,
    sample_elastic,
    sample_elastic_box,
    scaled_deformation,
)


def noise_image(height, width, channels, dtype, seed):
    top = np.iinfo(dtype).max
    return np.random.default_rng(seed).integers(0, top, (height, width, channels), dtype=dtype, endpoint=True)


def flat_draw(box, value=0.0, brightness=1.0):
    """A draw with a full region and a constant displacement ``value`` along x."""
    shape = (box.height, box.width)
    dx, dy = np.full(shape, value, np.float32), np.zeros(shape, np.float32)
    return ElasticDraw(box, np.ones(shape, bool), dx, dy, brightness)


# ----------------------------------------------------------------------------------------------
# properties


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), height=st.integers(48, 300), width=st.integers(48, 300),
       channels=st.sampled_from([1, 3]), dtype=st.sampled_from([np.uint8, np.uint16]),
       brightness=st.sampled_from([None, (0.7, 1.3)]))
def test_elastic_properties(seed, height, width, channels, dtype, brightness):
    image = noise_image(height, width, channels, dtype, seed)
    before = image.copy()
    task = ElasticPatch(brightness=brightness)
    out = task(image, image, rng=np.random.default_rng(seed))
    again = task(image, image, rng=np.random.default_rng(seed))
    np.testing.assert_array_equal(out.image, again.image)                  # same seed, same example
    np.testing.assert_array_equal(out.label, again.label)
    np.testing.assert_array_equal(out.region, again.region)
    assert out.patches == again.patches
    np.testing.assert_array_equal(image, before)
    assert isinstance(out, ElasticSynth)
    assert out.image.shape == image.shape and out.image.dtype == image.dtype
    assert out.label.shape == (height, width) and out.label.dtype == np.float32
    (record,) = out.patches
    box = record.dst_box
    assert record.mode == "elastic" and record.src_box == box and record.scale == 1.0
    assert 0 <= box.x0 < box.x1 <= width and 0 <= box.y0 < box.y1 <= height
    assert box.height >= 2 and box.width >= 2
    assert round(0.1 * height) - 1 <= box.height <= round(0.4 * height) + 1
    assert round(0.1 * width) - 1 <= box.width <= round(0.4 * width) + 1
    in_box = np.zeros((height, width), bool)
    in_box[box.slices()] = True
    assert out.region.any() and not (out.region & ~in_box).any()          # M lies in the box
    changed = (out.image != image).any(axis=2)
    assert not (changed & ~out.region).any()                              # only M changes
    assert not out.label[~out.region].any()
    assert 0.0 <= out.label.min() and out.label.max() <= 1.0 and out.label.max() > 0
    top = float(np.iinfo(dtype).max)
    expected = np.abs(out.image.astype(np.float64) - image.astype(np.float64)).mean(axis=2) / top
    np.testing.assert_allclose(out.label, expected, atol=1e-6)            # label = mean_c |X̂ - X| / max
    np.testing.assert_array_equal(modified_region(out), out.region)
    if brightness is None:
        assert record.params["brightness"] == 1.0
    else:
        assert 0.7 <= record.params["brightness"] <= 1.3


# ----------------------------------------------------------------------------------------------
# sampler statistics


def test_box_sides_are_uniform_fractions_of_the_image():
    rng = np.random.default_rng(0)
    boxes = [sample_elastic_box(rng, 1024, 800) for _ in range(2000)]
    heights = np.array([b.height / 1024 for b in boxes])
    widths = np.array([b.width / 800 for b in boxes])
    for fractions in (heights, widths):
        assert fractions.min() >= 0.1 - 1e-3 and fractions.max() <= 0.4 + 1e-3
        assert stats.kstest(fractions, stats.uniform(0.1, 0.3).cdf).pvalue > 1e-3
    free_x = np.array([b.x0 / (800 - b.width) for b in boxes])
    assert stats.kstest(free_x, "uniform").pvalue > 1e-3


def test_brightness_factor_is_uniform_on_its_range():
    rng = np.random.default_rng(1)
    factors = np.array([sample_elastic(rng, 64, 64, brightness=(0.6, 1.4)).brightness for _ in range(2000)])
    assert stats.kstest(factors, stats.uniform(0.6, 0.8).cdf).pvalue > 1e-3
    assert sample_elastic(rng, 64, 64).brightness == 1.0


@pytest.mark.parametrize("side", [256, 512])
def test_displacement_amplitude_matches_simard_and_scales_with_the_image(side):
    # U(-1, 1) has variance 1/3; a normalised 2-D Gaussian keeps sum(g^2) ~ 1 / (4 pi sigma^2) of it
    sigma, alpha = scaled_deformation(side, side)
    assert (sigma, alpha) == (4.0 * side / 256, 34.0 * (side / 256) ** 2)
    dx, dy = sample_displacement(np.random.default_rng(2), side, side, sigma, alpha)
    expected = alpha * np.sqrt(1 / 3) / (2 * sigma * np.sqrt(np.pi))        # 1.38 px at 256, 2.77 px at 512
    for field in (dx, dy):
        assert field.dtype == np.float32 and field.shape == (side, side)
        assert abs(float(field.std()) / expected - 1) < 0.1
        assert abs(float(field.mean())) < 0.2 * expected


def test_displacement_is_smooth():
    dx, _ = sample_displacement(np.random.default_rng(3), 200, 200, 4.0, 34.0)
    neighbours = np.corrcoef(dx[:, :-1].ravel(), dx[:, 1:].ravel())[0, 1]
    far = np.corrcoef(dx[:, :-40].ravel(), dx[:, 40:].ravel())[0, 1]
    assert neighbours > 0.9 and abs(far) < 0.1      # correlated over ~sigma, not over 10 sigma


# ----------------------------------------------------------------------------------------------
# reference values


def test_deform_patch_reference_values():
    patch = np.arange(5 * 6, dtype=np.uint8).reshape(5, 6, 1)
    zero = np.zeros((5, 6), np.float32)
    np.testing.assert_array_equal(deform_patch(patch, zero, zero), patch)
    shifted = deform_patch(patch, zero + 1.0, zero)                    # sample one pixel to the right
    np.testing.assert_array_equal(shifted[:, :-1], patch[:, 1:])
    np.testing.assert_array_equal(shifted[:, -1], patch[:, -1])        # reflected border: x = 6 -> 5
    down = deform_patch(np.repeat(patch, 3, axis=2), zero, zero + 2.0)
    np.testing.assert_array_equal(down[:-2], np.repeat(patch, 3, axis=2)[2:])


def test_apply_elastic_brightness_on_a_constant_image():
    image = np.full((40, 40, 3), 100, np.uint8)
    box = Box(5, 10, 25, 20)
    out = apply_elastic(image, flat_draw(box, value=0.7, brightness=1.5))
    expected, label, region = image.copy(), np.zeros((40, 40), np.float32), np.zeros((40, 40), bool)
    expected[10:20, 5:25] = 150                                         # a flat patch deforms to itself
    label[10:20, 5:25] = 50 / 255
    region[10:20, 5:25] = True
    np.testing.assert_array_equal(out.image, expected)
    np.testing.assert_allclose(out.label, label, rtol=1e-6)
    np.testing.assert_array_equal(out.region, region)
    assert out.patches[0].params["brightness"] == 1.5


def test_apply_elastic_clips_16_bit_brightness():
    image = np.full((32, 32, 1), 50000, np.uint16)
    out = apply_elastic(image, flat_draw(Box(0, 0, 8, 8), brightness=1.5))
    assert (out.image[:8, :8] == 65535).all() and (out.image[8:] == 50000).all()
    np.testing.assert_allclose(out.label[:8, :8], 15535 / 65535, rtol=1e-6)


def test_apply_elastic_changes_only_the_shape():
    image = noise_image(32, 32, 3, np.uint8, 4)
    box = Box(4, 4, 12, 12)
    draw = flat_draw(box, value=1.0)
    shape = np.zeros((8, 8), bool)
    shape[2:6, 3:7] = True
    draw = ElasticDraw(box, shape, draw.dx, draw.dy)
    out = apply_elastic(image, draw)
    expected = image.copy()
    expected[6:10, 7:11] = image[6:10, 8:12]                  # shifted by one pixel inside the shape
    np.testing.assert_array_equal(out.image, expected)
    assert out.region.sum() == 16 and out.region[6:10, 7:11].all()


def test_modified_region_of_other_tasks_is_the_positive_label():
    label = np.zeros((4, 4), np.float32)
    label[1, 2] = 0.3
    synth = Synth(np.zeros((4, 4, 1), np.uint8), label, ())
    np.testing.assert_array_equal(modified_region(synth), label > 0)


def test_flat_image_is_redrawn_then_warns():
    image = np.full((64, 64, 3), 90, np.uint8)
    with pytest.warns(PatchPlacementWarning, match="changed no pixel in 3 draws"):
        out = ElasticPatch(max_tries=3)(image, image, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(out.image, image)
    assert not out.label.any() and out.region.any()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        brighter = ElasticPatch(brightness=(1.2, 1.2))(image, image, rng=np.random.default_rng(5))
    np.testing.assert_allclose(brighter.label[brighter.region], 18 / 255, rtol=1e-6)


def test_docstring_examples():
    assert doctest.testmod(elastic_module, raise_on_error=False).failed == 0


# ----------------------------------------------------------------------------------------------
# task, dataset and real images


def test_task_is_registered_and_ignores_the_source():
    image, other = noise_image(64, 64, 3, np.uint8, 6), noise_image(64, 64, 3, np.uint8, 7)
    task = get_task("elastic", "mvtec/bottle")
    assert isinstance(task, ElasticPatch) and task.label_kind == "bounded"
    a = task(image, image, rng=np.random.default_rng(0))
    b = task(image, other, rng=np.random.default_rng(0), source_object=np.ones((64, 64), bool))
    np.testing.assert_array_equal(a.image, b.image)


def test_bottle_smoke(bottle_images):
    dataset = SynthDataset(bottle_images[:4], ElasticPatch(brightness=(0.8, 1.2)), seed=0, length=8)
    for index in range(8):
        out = dataset[index]
        assert isinstance(out, ElasticSynth) and out.image.dtype == np.uint8
        assert out.region.any() and out.label.max() > 0
        assert not out.label[~out.region].any()
        box = out.patches[0].dst_box
        assert 25 <= box.height <= 103 and 25 <= box.width <= 103     # 0.1-0.4 of 256 px


# ----------------------------------------------------------------------------------------------
# errors


def test_rejects_small_or_mismatched_images():
    small = noise_image(40, 20, 3, np.uint8, 0)
    with pytest.raises(ValueError, match=r"a 20x40 image is too small for ElasticPatch"):
        ElasticPatch()(small, small, rng=np.random.default_rng(0))
    image = noise_image(64, 64, 3, np.uint8, 0)
    with pytest.raises(ValueError, match=r"source \(64, 64, 3\) uint16 must match image \(64, 64, 3\) uint8"):
        ElasticPatch()(image, image.astype(np.uint16), rng=np.random.default_rng(0))
    with pytest.raises(TypeError, match="source must be a numpy array, got list"):
        ElasticPatch()(image, [[0]], rng=np.random.default_rng(0))


@pytest.mark.parametrize("options, message", [
    ({"size_frac": (0.5, 0.2)}, r"size_frac must be a \(low, high\) pair with low <= high, got \(0.5, 0.2\)"),
    ({"size_frac": (0.1, 1.5)}, r"size_frac must be in \[1e-06, 1.0\], got 1.5"),
    ({"size_frac": "0.1"}, r"size_frac must be a \(low, high\) pair, got '0.1'"),
    ({"sigma_px": 0.0}, r"sigma_px must be in \[0.001, 1000.0\], got 0.0"),
    ({"alpha_px": -1.0}, r"alpha_px must be in \[0.0, 10000.0\], got -1.0"),
    ({"ellipses": 0}, r"ellipses must be a whole number >= 1, got 0"),
    ({"max_tries": 1.5}, r"max_tries must be a whole number >= 1, got 1.5"),
    ({"brightness": (1.2, 0.8)}, r"brightness must be a \(low, high\) pair with low <= high"),
    ({"brightness": 1.2}, r"brightness must be a \(low, high\) pair or None, got 1.2"),
], ids=["size-order", "size-range", "size-string", "sigma", "alpha", "ellipses", "tries", "bright-order",
        "bright-scalar"])
def test_rejects_bad_options(options, message):
    with pytest.raises(ValueError, match=message):
        ElasticPatch(**options)


def test_apply_elastic_rejects_bad_draws():
    image = np.zeros((20, 20, 3), np.uint8)
    with pytest.raises(ValueError, match=r"box Box\(x0=15, y0=0, x1=25, y1=5\) must be a non-empty box"):
        apply_elastic(image, flat_draw(Box(15, 0, 25, 5)))
    draw = flat_draw(Box(0, 0, 5, 5))
    with pytest.raises(ValueError, match=r"dx must have the box's shape \(5, 5\), got \(4, 5\)"):
        apply_elastic(image, ElasticDraw(draw.box, draw.shape, draw.dx[:4], draw.dy))
