"""evaluate, per-defect-type rows, mean ± standard error over seeds, and table formatting."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nsad.metrics import (
    MeanSem,
    UndefinedMetricWarning,
    aupro,
    category_table,
    evaluate,
    evaluate_by_defect_type,
    format_mean_sem,
    format_table,
    image_auroc,
    image_f1_max,
    mean_sem,
    pixel_auroc,
    pixel_f1_max,
    summarize_seeds,
)


def make_set(seed: int = 0):
    """Six normal images and three defect types with two images each, blob masks."""
    rng = np.random.default_rng(seed)
    types = ["good"] * 6 + ["crack"] * 2 + ["scratch"] * 2 + ["stain"] * 2
    masks = np.zeros((len(types), 16, 16), np.uint8)
    for index in range(6, len(types)):
        row, col = rng.integers(0, 12, 2)
        masks[index, row:row + 4, col:col + 3] = 255
    maps = (rng.random(masks.shape) + 0.6 * (masks > 0) * rng.random()).astype(np.float32)
    scores = maps.reshape(len(types), -1).mean(axis=1) + 0.05 * rng.random(len(types))
    return scores, types, maps, masks


def test_evaluate_equals_the_single_metrics():
    scores, types, maps, masks = make_set()
    labels = np.array([t != "good" for t in types], np.int64)
    result = evaluate(scores, labels, maps, masks, fpr_limit=0.2)
    assert list(result) == ["image_auroc", "image_f1_max", "pixel_auroc", "pixel_f1_max", "aupro"]
    assert result["image_auroc"] == image_auroc(scores, labels)
    assert result["image_f1_max"] == image_f1_max(scores, labels).f1
    assert result["pixel_auroc"] == pixel_auroc(maps, masks)
    assert result["pixel_f1_max"] == pixel_f1_max(maps, masks).f1
    assert result["aupro"] == aupro(maps, masks, fpr_limit=0.2)
    assert list(evaluate(scores, labels)) == ["image_auroc", "image_f1_max"]


def test_evaluate_by_defect_type_compares_each_type_with_all_normal_images():
    scores, types, maps, masks = make_set(1)
    table = evaluate_by_defect_type(scores, types, maps, masks)
    assert list(table) == ["crack", "scratch", "stain", "all"]
    kinds = np.array(types)
    for name in ["crack", "scratch", "stain"]:
        keep = (kinds == "good") | (kinds == name)
        labels = (kinds[keep] != "good").astype(int)
        assert table[name]["image_auroc"] == image_auroc(scores[keep], labels)
        assert table[name]["pixel_auroc"] == pixel_auroc(maps[keep], masks[keep])
        assert table[name]["aupro"] == aupro(maps[keep], masks[keep])
    assert table["all"] == evaluate(scores, kinds != "good", maps, masks)


def test_evaluate_by_defect_type_hand_values_image_only_custom_normal_name():
    # dent: scores .9 and .15 against normals .1 and .2: pairs won 2 + 1 of 4 -> .75.
    table = evaluate_by_defect_type([0.1, 0.2, 0.9, 0.15, 0.05], ["ok", "ok", "dent", "dent", "hole"],
                                    normal_type="ok")
    assert table["dent"]["image_auroc"] == 0.75
    assert table["hole"]["image_auroc"] == 0.0
    assert table["all"]["image_auroc"] == pytest.approx(0.5)  # (2 + 1 + 0) / 6


def test_evaluate_by_defect_type_without_normal_images_gives_nan_rows_with_warnings():
    scores, types, maps, masks = make_set()
    anomalous = [index for index, name in enumerate(types) if name != "good"]
    with pytest.warns(UndefinedMetricWarning) as records:
        table = evaluate_by_defect_type(scores[anomalous], [types[i] for i in anomalous], maps[anomalous],
                                        masks[anomalous])
    messages = [str(record.message) for record in records]
    assert messages.count("image AUROC is undefined with 2 anomalous and 0 normal images: both classes are "
                          "needed; returning NaN") == 3  # one per defect type, then 6 and 0 for "all"
    assert all(record.filename == __file__ for record in records)  # points at the caller's line
    assert np.isnan(table["crack"]["image_auroc"]) and not np.isnan(table["crack"]["pixel_auroc"])


def test_evaluate_by_defect_type_rejects_bad_input():
    scores, types, maps, masks = make_set()
    with pytest.raises(ValueError, match="defect_types has 3 names but scores has 12 values"):
        evaluate_by_defect_type(scores, types[:3])
    with pytest.raises(TypeError, match="defect_types must be a sequence of strings"):
        evaluate_by_defect_type(scores, "good")
    with pytest.raises(ValueError, match="pixel metrics need both anomaly_maps and masks; masks is None"):
        evaluate_by_defect_type(scores, types, maps)
    dirty = masks.copy()
    dirty[2, 0, 0] = 255
    with pytest.raises(ValueError, match=r"1 images of normal type 'good' have anomalous mask pixels "
                                         r"\(first: image 2\)"):
        evaluate_by_defect_type(scores, types, maps, dirty)
    with pytest.raises(ValueError, match="a defect type is named 'all'"):
        evaluate_by_defect_type(scores, ["all" if t == "crack" else t for t in types])
    with pytest.raises(ValueError, match="anomaly_maps hold 11 images but defect_types names 12"):
        evaluate_by_defect_type(scores, types, maps[1:], masks[1:])


def test_evaluate_rejects_half_pixel_input_and_image_count_mismatch():
    scores, types, maps, masks = make_set()
    labels = [t != "good" for t in types]
    with pytest.raises(ValueError, match="pixel metrics need both anomaly_maps and masks; "
                                         "anomaly_maps is None"):
        evaluate(scores, labels, masks=masks)
    with pytest.raises(ValueError, match="anomaly_maps hold 11 images but scores hold 12"):
        evaluate(scores, labels, maps[1:], masks[1:])
    with pytest.raises(ValueError, match=r"fpr_limit must be in \(0, 1\], got 2"):
        evaluate(scores, labels, fpr_limit=2)


def test_mean_sem_values():
    # mean .98; sample std of (.97, .98, .99) = .01; sem = .01 / sqrt(3).
    result = mean_sem([0.97, 0.98, 0.99])
    assert result.mean == pytest.approx(0.98, abs=1e-15) and result.n == 3
    assert result.sem == pytest.approx(0.01 / math.sqrt(3), abs=1e-15)
    assert result.std == pytest.approx(0.01, abs=1e-15)
    single = mean_sem([0.5])
    assert single.mean == 0.5 and math.isnan(single.sem) and math.isnan(single.std) and single.n == 1
    with pytest.raises(ValueError, match=r"values must be a non-empty 1-D sequence, got shape \(0,\)"):
        mean_sem([])


@pytest.mark.parametrize("mean, sem, expected", [(0.977, 0.0031, "97.7 ± 0.3"),
                                                (0.5, float("nan"), "50.0 ± n/a"),
                                                (float("nan"), 0.1, "nan"), (0.9125, 0.0, "91.2 ± 0.0")],
                         ids=["typical", "one-seed", "nan", "zero-sem"])
def test_format_mean_sem(mean, sem, expected):
    assert format_mean_sem(mean, sem) == expected


def test_summarize_seeds_and_category_table_mean_row():
    runs = {"bottle": [{"image_auroc": 0.9, "aupro": 0.8}, {"image_auroc": 1.0, "aupro": 0.9}],
            "cable": [{"image_auroc": 0.7, "aupro": 0.6}, {"image_auroc": 0.8, "aupro": 0.5}]}
    assert summarize_seeds(runs["bottle"])["image_auroc"] == mean_sem([0.9, 1.0])
    table = category_table(runs)
    assert list(table) == ["bottle", "cable", "mean"]
    # Overall row: per seed the category mean (.8 then .9 for image AUROC), then mean ± sem of those.
    assert table["mean"]["image_auroc"] == mean_sem([0.8, 0.9])
    assert table["mean"]["aupro"] == mean_sem([0.7, 0.7])
    text = format_table(table)
    assert text.splitlines() == [
        "| category | image_auroc | aupro |",
        "|---|---|---|",
        "| bottle | 95.0 ± 5.0 | 85.0 ± 5.0 |",
        "| cable | 75.0 ± 5.0 | 55.0 ± 5.0 |",
        "| mean | 85.0 ± 5.0 | 70.0 ± 0.0 |",
    ]


def test_format_table_with_plain_floats():
    text = format_table({"bottle": {"image_auroc": 0.977, "aupro": float("nan")}}, row_header="class")
    assert text.splitlines()[-1] == "| bottle | 97.7 | nan |"
    assert text.splitlines()[0] == "| class | image_auroc | aupro |"


def test_seed_aggregation_rejects_inconsistent_runs():
    with pytest.raises(ValueError, match="runs is empty"):
        summarize_seeds([])
    with pytest.raises(ValueError, match=r"run 1 has metrics \['aupro'\] but run 0 has \['image_auroc'\]"):
        summarize_seeds([{"image_auroc": 0.9}, {"aupro": 0.8}])
    with pytest.raises(ValueError, match=r"every category needs the same number of seeds, "
                                         r"got \{'a': 1, 'b': 2\}"):
        category_table({"a": [{"x": 1.0}], "b": [{"x": 1.0}, {"x": 0.5}]})
    with pytest.raises(ValueError, match="category 'b' has metrics"):
        category_table({"a": [{"x": 1.0}], "b": [{"y": 1.0}]})
    with pytest.raises(ValueError, match="a category is named 'mean'"):
        category_table({"mean": [{"x": 1.0}]})
    with pytest.raises(ValueError, match="results is empty"):
        category_table({})
    with pytest.raises(ValueError, match="table is empty"):
        format_table({})


def test_standard_deviation_matches_pandas_std_and_formats_beside_the_error():
    # pandas' Series.std (what the NSA authors' notebook uses) is the sample deviation, ddof = 1.
    values = [0.977, 0.981, 0.969, 0.975, 0.985]
    result = mean_sem(values)
    expected = math.sqrt(sum((v - sum(values) / 5) ** 2 for v in values) / 4)
    assert result.std == pytest.approx(expected, rel=1e-12)
    assert result.sem == pytest.approx(expected / math.sqrt(5), rel=1e-12)
    assert result.format(spread="std") == f"97.7 ± {100 * expected:.1f}"
    assert result.format(spread="std+sem") == f"97.7 ± {100 * expected:.1f} (se {100 * expected / math.sqrt(5):.1f})"
    assert mean_sem([0.5]).format(spread="std+sem") == "50.0 ± n/a"
    assert "97.7 ± 0.6 (se 0.3)" in format_table({"all": {"image_auroc": result}}, spread="std+sem")
    with pytest.raises(ValueError, match="unknown spread 'var'"):
        result.format(spread="var")


def test_mean_sem_format_method():
    assert MeanSem(mean=0.929, sem=0.004, n=5).format() == "92.9 ± 0.4"
    assert MeanSem(mean=0.929, sem=0.004, n=5).format(scale=1.0, digits=3) == "0.929 ± 0.004"
