import numpy as np
import pytest

from nsad.synth import PRESET_NAMES, estimate_background, get_preset, preset_from_folder
from nsad.synth.presets import estimate_preset, resolve_preset

MVTEC = ["bottle", "cable", "capsule", "hazelnut", "metal_nut", "pill", "screw", "toothbrush", "transistor",
         "zipper", "carpet", "grid", "leather", "tile", "wood"]


def test_the_table_presets_keep_the_papers_input():
    assert all(get_preset(name).intensity_jitter == 0.0 and not get_preset(name).standardize_input
               for name in PRESET_NAMES)  # the paper's protocol
    with pytest.raises(ValueError, match="intensity_jitter"):
        get_preset("texture").replace(intensity_jitter=0.9)


def test_every_mvtec_class_and_cxr_has_a_preset():
    assert set(PRESET_NAMES) == {f"mvtec/{name}" for name in MVTEC} | {"cxr", "default", "texture"}


@pytest.mark.parametrize("name, field, value", [
    ("bottle", "background", 200.0), ("bottle", "k", 1 / 12), ("capsule", "h_bounds", (0.06, 0.30)),
    ("screw", "n_max", 4), ("screw", "w_bounds", (0.06, 0.24)), ("toothbrush", "w_bounds", (0.06, 0.40)),
    ("hazelnut", "epochs", 560), ("cable", "background", None), ("carpet", "mode", "mixed"),
    ("carpet", "scale_bounds", (0.5, 2.0)), ("wood", "y0", 15.0), ("metal_nut", "t_object", 0.5),
    ("bottle", "rotation_deg", 5.0), ("pill", "rotation_deg", 0.0), ("grid", "kind", "texture"),
], ids=lambda v: str(v))
def test_table4_values(name, field, value):
    got = getattr(get_preset(f"mvtec/{name}"), field)
    assert got == pytest.approx(value) if isinstance(value, float) else got == value


def test_cxr_preset_from_the_authors_code():
    cxr = get_preset("cxr")
    assert (cxr.channels, cxr.normalization, cxr.t_overlap, cxr.y0, cxr.k, cxr.mode) == (1, "unit", 0.7, 4.0, 0.5,
                                                                                         "mixed")


def test_bad_presets_are_rejected():
    with pytest.raises(ValueError, match="give both background and t_brightness"):
        get_preset("default").replace(background=100.0)
    with pytest.raises(ValueError, match="h_bounds must satisfy 0 < low <= high"):
        get_preset("default").replace(h_bounds=(0.5, 0.1))
    with pytest.raises(ValueError, match=r"unknown preset 'cx'.*Did you mean 'cxr'"):
        get_preset("cx")


def test_estimate_background_from_borders():
    rng = np.random.default_rng(0)
    images = []
    for _ in range(3):
        image = np.clip(200 + rng.normal(0, 3, (64, 64, 3)), 0, 255).astype(np.uint8)
        image[16:48, 16:48] = 40
        images.append(image)
    background, spread = estimate_background(images)
    assert background == pytest.approx(200, abs=1) and spread < 6
    background16, _ = estimate_background([image.astype(np.uint16) * 257 for image in images])
    assert background16 == pytest.approx(background, abs=0.01)
    with pytest.raises(ValueError, match="at least one image"):
        estimate_background([])


def test_preset_from_the_bottle_folder(bottle_dir):
    preset = preset_from_folder(bottle_dir)
    assert preset.uses_object_mask and preset.background > 150 and preset.t_brightness >= 20


def _texture_folder(rng, count=6, shape=(80, 160)):
    """Gray noise blurred into blobs: a whole-field texture, no plain border."""
    import cv2

    return [cv2.GaussianBlur(rng.integers(0, 256, shape, dtype=np.uint8), (5, 5), 1.5)[:, :, None]
            for _ in range(count)]


def _object_folder(rng, count=6, shape=(96, 96)):
    """A dark, noisy disk on a plain white background, in colour."""
    images = []
    for _ in range(count):
        image = np.full((*shape, 3), 250, np.uint8)
        yy, xx = np.mgrid[:shape[0], :shape[1]]
        disk = (yy - shape[0] / 2) ** 2 + (xx - shape[1] / 2) ** 2 < (shape[0] / 3) ** 2
        image[disk] = rng.integers(40, 120, (int(disk.sum()), 3))
        images.append(image)
    return images


def test_estimate_preset_on_a_texture_folder():
    choice = estimate_preset(_texture_folder(np.random.default_rng(1)), name="estimated/noise")
    preset = choice.preset
    assert choice.source == "estimated" and preset.name == "estimated/noise"
    assert preset.kind == "texture" and not preset.uses_object_mask and preset.mode == "mixed"
    assert (preset.channels, preset.normalization) == (1, "unit")  # grayscale stays one channel
    assert any("border is not plain" in note for note in choice.notes)
    assert preset.standardize_input and preset.intensity_jitter == 0.0
    assert any("standardised" in note for note in choice.notes)


def test_estimate_preset_on_an_object_folder():
    choice = estimate_preset(_object_folder(np.random.default_rng(2)))
    preset = choice.preset
    assert preset.kind == "object" and preset.uses_object_mask
    assert preset.background == pytest.approx(250.0) and preset.t_brightness == 20.0
    assert (preset.channels, preset.normalization) == (3, "imagenet")
    assert any("kind object" in note for note in choice.notes)


def test_an_rgb_folder_of_equal_channels_is_grayscale():
    images = [np.repeat(image, 3, axis=2) for image in _texture_folder(np.random.default_rng(3), count=2)]
    assert estimate_preset(images).preset.channels == 1


def test_resolve_preset_rule(tmp_path):
    from nsad.data.io import write_image

    for index, image in enumerate(_texture_folder(np.random.default_rng(4), count=3)):
        write_image(tmp_path / f"{index}.png", image)
    paths = sorted(tmp_path.glob("*.png"))
    assert resolve_preset("mvtec/carpet", "bottle", paths).source == "given"
    bottle = resolve_preset(None, "bottle", paths)
    assert (bottle.source, bottle.preset.name) == ("category", "mvtec/bottle")
    estimated = resolve_preset(None, "parts", paths)
    assert estimated.source == "estimated" and estimated.preset.kind == "texture"
    lines = estimated.lines("train")
    assert lines[0] == "nsad train: preset estimated/parts (estimated from the training images)"
    assert len(lines) == 1 + len(estimated.notes)
    with pytest.raises(ValueError, match="no training images to estimate a preset from"):
        resolve_preset(None, "parts", [])
