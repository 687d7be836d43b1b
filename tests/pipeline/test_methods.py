"""CutPaste (two-stage) and Bauer's SSAE as methods of nsad train: data, training, scoring, thresholds.

Runs train for one short epoch on the bottle sample that ships with nsad (16 training images at
128 px) at 64 px: enough to check the plumbing, not the accuracy.
"""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from nsad._options import key_values
from nsad.cli import main
from nsad.data.folder import find_dataset, sample_data_path
from nsad.data.io import read_image, write_image
from nsad.data.transforms import TransformConfig, apply_test_transform, to_tensor_normalized
from nsad.metrics import threshold_at_fpr
from nsad.models import load_run
from nsad.models.cutpaste import embed_patches, patch_anomaly_map
from nsad.models.density import GaussianDensity
from nsad.pipeline import Scorer, TrainConfig, evaluate_run, predict, train
from nsad.pipeline.datasets import load_training_images
from nsad.pipeline.methods import DENSITY_NAME, CutPasteTrainingSet, ElasticTrainingSet, SSAEOptions
from nsad.pipeline.train import split_holdout
from nsad.postprocess import calibrate_threshold, defect_area_scores, image_scores, parse_score_rule
from run_checks import assert_metrics_match_sklearn

TINY = dict(image_size=64, batch_size=8, workers=0, progress=False, holdout=0.125, epochs=1, examples_per_epoch=8)
CUTPASTE_OPTIONS = {"stride_px": 32}  # 8 px at 64: a 4 x 4 patch grid on the 56-px input
SSAE_OPTIONS = {"base_channels": 4}


@pytest.fixture(scope="module")
def sample():
    return sample_data_path()


def sample_images(size):
    transform = TransformConfig.for_size("object", size)
    return load_training_images(list(find_dataset(sample_data_path()).train)[:3], transform), transform


@pytest.fixture(scope="module")
def cutpaste_run(tmp_path_factory, sample):
    out = tmp_path_factory.mktemp("runs") / "cutpaste"
    return train(TrainConfig(data=sample, out=out, method="cutpaste-3way", seed=1, options=CUTPASTE_OPTIONS, **TINY))


@pytest.fixture(scope="module")
def ssae_run(tmp_path_factory, sample):
    out = tmp_path_factory.mktemp("runs") / "ssae"
    return train(TrainConfig(data=sample, out=out, method="ssae", seed=2, options=SSAE_OPTIONS, **TINY))


# ---- training data ----


def test_cutpaste_items_hold_one_view_per_class_reproducibly():
    images, transform = sample_images(64)
    dataset = CutPasteTrainingSet(images, ("normal", "cutpaste", "scar"), transform, "imagenet", 3, seed=5)
    item = dataset[(0, 4)]
    assert item["image"].shape == (3, 3, 56, 56) and item["target"].tolist() == [0, 1, 2]
    assert torch.equal(dataset[(0, 4)]["image"], item["image"])  # (seed, epoch, index) decides everything
    assert not torch.equal(dataset[(1, 4)]["image"], item["image"])
    normal, pasted, scar = dataset.example(0, 4)
    assert normal.shape == (56, 56, 3) and not np.array_equal(pasted, normal) and not np.array_equal(scar, normal)
    binary = CutPasteTrainingSet(images, ("normal", "scar"), transform, "imagenet", 3, seed=5)
    assert binary[(0, 0)]["target"].tolist() == [0, 1]
    with pytest.raises(ValueError, match="unknown CutPaste class 'blur'"):
        CutPasteTrainingSet(images, ("normal", "blur"), transform, "imagenet", 3, seed=5)


def test_elastic_items_are_bauers_inputs_in_unit_range():
    images, transform = sample_images(96)
    dataset = ElasticTrainingSet(images, SSAEOptions().elastic(), transform, 3, seed=0)
    item = dataset[(2, 1)]
    assert item["image"].shape == item["target"].shape == (3, 84, 84)
    assert item["region"].shape == item["change"].shape == (1, 84, 84)
    for key in ("image", "target", "change"):
        assert 0.0 <= float(item[key].min()) and float(item[key].max()) <= 1.0, key
    # the change mask is |X̂ - X| (channel mean) and lies inside the region M; outside M, X̂ = X
    torch.testing.assert_close(item["change"][0], (item["image"] - item["target"]).abs().mean(0), atol=1e-6, rtol=0)
    outside = item["region"][0] == 0
    assert bool(outside.any()) and float(item["region"].sum()) > 0
    assert torch.equal(item["image"][:, outside], item["target"][:, outside])
    assert torch.equal(dataset[(2, 1)]["image"], item["image"])


# ---- score rules ----


def test_defect_area_score_reference_values():
    # a 3-pixel blob at 0.9 and a lone pixel at 1.0, apart, on zeros
    anomaly_map = np.zeros((6, 6), np.float32)
    anomaly_map[1, 1:4] = 0.9
    anomaly_map[4, 4] = 1.0
    maps = anomaly_map[None]
    assert defect_area_scores(maps, 1)[0] == pytest.approx(1.0)  # nothing may remain: the maximum
    assert defect_area_scores(maps, 2)[0] == pytest.approx(0.9)  # above 0.9 only the lone pixel remains
    assert defect_area_scores(maps, 4)[0] == 0.0  # no component ever reaches 4 pixels
    np.testing.assert_array_equal(image_scores(maps, "area:2"), defect_area_scores(maps, 2))
    assert image_scores(maps, "area:1")[0] == image_scores(maps, "max")[0]
    assert parse_score_rule("area:64") == ("area", 64.0) and parse_score_rule("density") == ("density", 0.0)


@pytest.mark.parametrize("rule", ["area", "area:0", "area:2.5", "density:1"], ids=["bare", "zero", "fraction", "arg"])
def test_bad_score_rules_are_rejected(rule):
    with pytest.raises(ValueError, match="score rule"):
        parse_score_rule(rule)


def test_density_is_not_a_function_of_maps():
    with pytest.raises(ValueError, match="score rule 'density' is a model's own image-level score"):
        image_scores(np.zeros((1, 4, 4)), "density")


# ---- CutPaste runs ----


def test_cutpaste_run_holds_the_classifier_and_both_densities(cutpaste_run):
    run = load_run(cutpaste_run)
    meta = run.metadata
    assert meta.model == "cutpaste" and meta.method == "cutpaste-3way" and meta.score_rule == "density"
    assert meta.net.num_classes == 3 and meta.training["task"] == "cutpaste"
    assert meta.model_options == {"layer": "encoder", "patch_px": 32, "stride_px": 8, "sigma_px": 1.0,
                                  "density_file": DENSITY_NAME}
    assert meta.threshold is not None and meta.label_kind == "continuous"
    tensors = load_file(cutpaste_run / DENSITY_NAME)
    assert tensors["image.mean"].shape == (512,) and tensors["patch.precision"].shape == (512, 512)
    assert meta.training["steps"] == 4  # 8 items per epoch, 8 // 3 = 2 items (6 examples) per step


def test_cutpaste_scores_are_mahalanobis_distances_of_the_embeddings(cutpaste_run, sample):
    paths = [s.path for s in find_dataset(sample).test][:3]
    scorer = Scorer(cutpaste_run, device="cpu")
    result = scorer.score(paths)
    # the same numbers computed directly: embed the test crop, fit nothing, score with the saved densities
    tensors = load_file(cutpaste_run / DENSITY_NAME)
    image_density, patch_density = (GaussianDensity.from_state_dict(
        {k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith(prefix)}) for prefix in ("image.", "patch."))
    batch = torch.stack([scorer_input(scorer, p) for p in paths])
    net = scorer.run.net
    with torch.no_grad():
        expected = image_density.score(net.embed(batch))
        patches = embed_patches(net.embed, batch, 32, 8)
        maps = patch_anomaly_map(patch_density.score(patches), (56, 56), 32, 8, 1.0)
    np.testing.assert_allclose(result.scores, expected.numpy(), rtol=1e-5)
    np.testing.assert_allclose(result.maps[:, 4:60, 4:60], maps, rtol=1e-4, atol=1e-4)
    assert result.maps.shape == (3, 64, 64) and (result.maps[:, :4] == 0).all()  # zero outside the crop
    # the patch model's own image score (Fig. 1: max-pooled) is one score rule away
    np.testing.assert_allclose(Scorer(cutpaste_run, device="cpu", score_rule="max").score(paths).scores,
                               maps.reshape(3, -1).max(1), rtol=1e-4)


def scorer_input(scorer, path):
    image = apply_test_transform(read_image(path), scorer.transform)
    return torch.from_numpy(to_tensor_normalized(image, "imagenet", 3))


def test_cutpaste_run_evaluates_and_predicts(cutpaste_run, sample, tmp_path):
    report = evaluate_run(cutpaste_run)
    assert report["method"] == "cutpaste-3way" and report["score_rule"] == "density" and report["images"] == 9
    assert_metrics_match_sklearn(report, cutpaste_run)
    assert json.loads((cutpaste_run / "metrics.json").read_text())["metrics"]["aupro"] == pytest.approx(
        report["metrics"]["aupro"])
    rows = predict(cutpaste_run, [sample / "test" / "broken_large"], tmp_path / "pred")
    assert len(rows) == 2 and rows[0]["decision"] in ("normal", "anomalous")
    assert np.load(tmp_path / "pred" / rows[0]["map"]).shape == (128, 128)


# ---- SSAE runs ----


def test_ssae_run_uses_unit_inputs_and_bauers_rules(ssae_run, sample):
    run = load_run(ssae_run)
    meta = run.metadata
    assert meta.model == "ssae" and meta.net.base_channels == 4 and meta.training["task"] == "elastic"
    assert meta.mean == (0.0, 0.0, 0.0) and meta.std == (1.0, 1.0, 1.0)  # [0, 1] images, no ImageNet statistics
    assert meta.score_rule == "area:4"  # 64 px at 256 is 4 px at 64
    assert meta.model_options == {"sigma_px": 1.0, "min_area_px": 4}
    # Bauer's protocol: the lowest threshold that leaves no 4-pixel blob in any held-out normal map
    _, holdout = split_holdout(list(find_dataset(sample).train), 0.125, 2)
    maps = Scorer(ssae_run, device="cpu").network_maps(holdout)
    bauer = calibrate_threshold(maps, 4).threshold
    assert meta.threshold == threshold_at_fpr(defect_area_scores(maps, 4), 0.0) == float(np.nextafter(
        np.float64(bauer), np.inf))
    assert bool(Scorer(ssae_run, device="cpu").score(holdout).scores.max() < meta.threshold)


def test_ssae_run_evaluates_and_predicts(ssae_run, tmp_path):
    report = evaluate_run(ssae_run, write=False)
    assert report["score_rule"] == "area:4"
    assert_metrics_match_sklearn(report, ssae_run)
    image = np.full((50, 70, 3), 90, np.uint8)
    write_image(tmp_path / "flat.png", image)
    rows = predict(ssae_run, [tmp_path / "flat.png"], tmp_path / "pred", score_rule="max")
    assert np.load(tmp_path / "pred" / "flat.npy").shape == (50, 70) and rows[0]["score"] >= 0
    with pytest.raises(ValueError, match="score rule 'density' needs a model with image-level scores"):
        Scorer(ssae_run, device="cpu", score_rule="density")


def test_ssae_objective_1_through_the_command_line(sample, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--data", str(sample), "--method", "ssae", "--out", str(out), "--epochs", "1",
            "--image-size", "64", "--batch-size", "8", "--workers", "0", "--holdout", "0", "--no-progress",
            "--option", "objective=1", "--option", "base_channels=4", "--option", "min_area_px=128"]
    assert main(argv) == 0
    run = load_run(out)
    assert run.metadata.score_rule == "area:8" and run.metadata.threshold is None
    checkpoint = torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["hyper_parameters"]["objective"] == 1 and checkpoint["hyper_parameters"]["lam"] == 0.5


# ---- options and errors ----


def test_option_values_are_read_as_json():
    assert key_values(["objective=1", "lam=0.25", "brightness=[0.8, 1.2]", "layer=head", "x="]) == {
        "objective": 1, "lam": 0.25, "brightness": [0.8, 1.2], "layer": "head", "x": ""}
    assert key_values(None) == {}
    with pytest.raises(ValueError, match="--option takes KEY=VALUE, got 'objective'"):
        key_values(["objective"])
    with pytest.raises(ValueError, match="--option lam is given twice"):
        key_values(["lam=0.1", "lam=0.2"])


@pytest.mark.parametrize("method, options, match", [
    ("ssae", {"objectiv": 1}, r"method 'ssae' has no option 'objectiv'; its options are \[.*\]\. Did you mean "
                              r"'objective'\?"),
    ("ssae", {"objective": 4}, r"objective must be one of \[1, 2, 3\], got 4"),
    ("ssae", {"lam": 1.5}, r"lam must be in \[0.0, 1.0\], got 1.5"),
    ("ssae", {"brightness": [1.2, 0.8]}, r"brightness must be a \(low, high\) pair with low <= high"),
    ("cutpaste-3way", {"layer": "pool"}, r"unknown embedding layer 'pool'"),
    ("cutpaste-binary", {"stride_px": 0}, r"stride_px must be a positive number, got 0"),
    ("cutpaste-binary", {"momentum": "high"}, r"momentum must be a number in \[0.0, 1.0\], got 'high'"),
    ("ssae", {"error": 2}, r"error must be one of \['squared', 'norm'\], got 2"),
    ("nsa-logistic", {"lam": 0.5}, r"method 'nsa-logistic' takes no options, got \['lam'\]"),
    ("cutpaste", {}, r"unknown method 'cutpaste'; choose one of .*Did you mean"),
], ids=["unknown", "objective", "lam", "brightness", "layer", "stride", "momentum", "error", "segmentation", "method"])
def test_bad_options_fail_before_training(tmp_path, method, options, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(data=tmp_path, out=tmp_path / "o", method=method, options=options)


def test_patches_that_do_not_fit_fail_before_training(sample, tmp_path):
    config = TrainConfig(data=sample, out=tmp_path / "o", method="cutpaste-scar", options={"patch_px": 300}, **TINY)
    with pytest.raises(ValueError, match=r"CutPaste patches of 75 px .* do not fit the 56-px input"):
        train(config)
    assert not (tmp_path / "o").exists()


def test_every_method_is_one_entry_that_scores_and_exports_its_runs():
    from nsad.config import METHOD_HELP
    from nsad.pipeline.export import GRAPHS
    from nsad.pipeline.methods import METHODS, SCORING_MODELS, method_help
    from nsad.pipeline.train import ALL_METHODS, SEGMENTATION_METHODS, VARIANT_METHODS

    assert METHOD_HELP == method_help()  # the command line's copy of the registry's help
    assert ALL_METHODS == tuple(METHODS)
    assert {m.model for m in METHODS.values()} == set(SCORING_MODELS) == set(GRAPHS)  # a scorer and a graph each
    assert SEGMENTATION_METHODS == {"nsa-logistic": "nsa-logistic", "nsa-binary": "nsa-binary",
                                    "nsa-continuous": "nsa-continuous", "cutpaste-e2e": "cutpaste-nsa",
                                    "fpi": "fpi", "pii": "pii"}
    assert VARIANT_METHODS == ("nsa-logistic", "nsa-binary", "nsa-continuous", "cutpaste-e2e")
    assert [name for name, m in METHODS.items() if "whole" in m.protocols] == [*SEGMENTATION_METHODS, "ssae"]
