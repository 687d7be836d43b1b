import numpy as np
import pytest

from nsad.synth import PRESET_NAMES, estimate_background, get_preset, preset_from_folder

MVTEC = ["bottle", "cable", "capsule", "hazelnut", "metal_nut", "pill", "screw", "toothbrush", "transistor",
         "zipper", "carpet", "grid", "leather", "tile", "wood"]


def test_every_mvtec_class_and_cxr_has_a_preset():
    assert set(PRESET_NAMES) == {f"mvtec/{name}" for name in MVTEC} | {"cxr", "default"}


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
