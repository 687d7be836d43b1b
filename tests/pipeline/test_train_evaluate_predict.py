"""The main job end to end on real data at a small size: train, evaluate, predict, resume."""

import csv
import json

import numpy as np
import pytest
import torch

from nsad.cli import main
from nsad.data.io import read_image, write_image
from nsad.models import load_run
from nsad.pipeline import TrainConfig, evaluate_run, predict, train
from nsad.pipeline.train import CHECKPOINT
from nsad.viz import HeatmapScale, colour_bar
from run_checks import assert_metrics_match_sklearn

SMALL = dict(image_size=96, batch_size=32, workers=0, progress=False, checkpoint_every=1)


@pytest.fixture(scope="module")
def bottle_run(tmp_path_factory, bottle_dir):
    out = tmp_path_factory.mktemp("runs") / "bottle"
    train(TrainConfig(data=bottle_dir, out=out, epochs=1, seed=3, **SMALL))
    return out


def test_training_writes_a_complete_run(bottle_run):
    for name in ("model.safetensors", "run.json", "config.json", f"checkpoints/{CHECKPOINT}",
                 "logs/version_0/metrics.csv"):
        assert (bottle_run / name).is_file(), name
    run = load_run(bottle_run)
    meta = run.metadata
    assert meta.method == "nsa-logistic" and meta.preset == "mvtec/bottle"
    assert meta.resize_hw == (96, 96) and meta.crop_hw == (84, 84)
    assert meta.training["train_images"] == 188 and meta.training["holdout_images"] == 21
    assert meta.threshold is not None and 0 < meta.threshold < 1
    assert meta.training["steps"] == 6  # 188 examples in batches of 32
    assert meta.training["variant"] == "paper" and meta.net.decoder == "nsad"  # the default variant
    scale = HeatmapScale.from_dict(meta.heatmap_scale)  # fixed from the 21 held-out maps
    assert scale.low < scale.region_threshold < scale.high and "21 held-out" in scale.basis
    assert list(csv.DictReader(open(bottle_run / "logs" / "version_0" / "metrics.csv")))


def test_evaluate_gives_mvtec_metrics_per_defect_type(bottle_run, bottle_dir):
    report = evaluate_run(bottle_run)
    assert report["images"] == 83 and report["category"] == "bottle"
    assert set(report["by_defect_type"]) == {"broken_large", "broken_small", "contamination"}
    assert_metrics_match_sklearn(report, bottle_run)
    saved = json.loads((bottle_run / "metrics.json").read_text())
    assert saved["metrics"]["aupro"] == pytest.approx(report["metrics"]["aupro"])
    assert evaluate_run(bottle_run, data=bottle_dir, write=False)["metrics"] == report["metrics"]


def test_predict_full_resolution_images(bottle_run, tmp_path):
    from run_checks import BOTTLE_FULLRES

    folder = BOTTLE_FULLRES / "test" / "broken_large"
    if not folder.is_dir():
        pytest.skip(f"full-resolution bottle images not found at {folder}")
    rows = predict(bottle_run, [folder], tmp_path / "pred")
    assert len(rows) == 5
    anomaly_map = np.load(tmp_path / "pred" / rows[0]["map"])
    assert anomaly_map.shape == (900, 900) and anomaly_map.dtype == np.float32
    assert 0 <= anomaly_map.min() and anomaly_map.max() <= 1
    heatmap = read_image(tmp_path / "pred" / rows[0]["heatmap"])
    scale = HeatmapScale.from_dict(load_run(bottle_run).metadata.heatmap_scale)
    assert heatmap.shape[:2] == (900, 1800 + colour_bar(900, scale).shape[1])
    table = list(csv.DictReader(open(tmp_path / "pred" / "scores.csv")))
    assert [row["decision"] in ("normal", "anomalous") for row in table] == [True] * 5
    assert float(table[0]["score"]) == pytest.approx(rows[0]["score"])


def test_resume_continues_and_refuses_to_overwrite(bottle_dir, tmp_path):
    out = tmp_path / "run"
    config = TrainConfig(data=bottle_dir, out=out, epochs=1, holdout=0.0, examples_per_epoch=32, **SMALL)
    train(config)
    first = torch.load(out / "checkpoints" / CHECKPOINT, weights_only=False)
    with pytest.raises(FileExistsError, match="is not empty; choose a new --out or pass --resume"):
        train(config)
    train(TrainConfig(**{**config.__dict__, "epochs": 2, "resume": True}))
    second = torch.load(out / "checkpoints" / CHECKPOINT, weights_only=False)
    assert (first["epoch"], first["global_step"]) == (1, 1)
    assert (second["epoch"], second["global_step"]) == (2, 2)
    assert (out / "logs" / "version_0" / "metrics.csv").is_file() and (out / "logs" / "version_1").is_dir()
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        train(TrainConfig(**{**config.__dict__, "out": tmp_path / "new", "resume": True}))


def test_an_interrupted_run_keeps_its_progress(bottle_dir, tmp_path, monkeypatch):
    from nsad.pipeline import datasets

    out = tmp_path / "run"
    config = TrainConfig(data=bottle_dir, out=out, epochs=3, holdout=0.0, examples_per_epoch=32, **SMALL)
    original = datasets.SynthTrainingSet.__getitem__

    def fail_in_epoch_two(self, key):
        if key[0] == 1:
            raise RuntimeError("power cut")
        return original(self, key)

    monkeypatch.setattr(datasets.SynthTrainingSet, "__getitem__", fail_in_epoch_two)
    with pytest.raises(RuntimeError, match="power cut"):
        train(config)
    saved = torch.load(out / "checkpoints" / CHECKPOINT, weights_only=False)
    assert saved["global_step"] == 1
    monkeypatch.setattr(datasets.SynthTrainingSet, "__getitem__", original)
    train(TrainConfig(**{**config.__dict__, "resume": True}))
    assert load_run(out).metadata.training["steps"] == 3


def test_gray_16_bit_plain_folder_without_masks(tmp_path):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:80, :80]
    for split, count in (("train", 8), ("test/good", 2), ("test/scratch", 2)):
        (tmp_path / split).mkdir(parents=True)
        for i in range(count):
            phase = rng.uniform(0, 6)
            image = (30000 + 20000 * np.sin(xx / 7 + phase) * np.cos(yy / 9)).astype(np.uint16)
            if "scratch" in split:
                image[30:34, 10:70] = 65000
            write_image(tmp_path / split / f"{i:03d}.png", image[:, :, None])
    out = tmp_path / "run"
    train(TrainConfig(data=tmp_path, out=out, epochs=1, image_size=80, batch_size=8, workers=0, progress=False,
                      holdout=0.0))
    metadata = load_run(out).metadata
    assert metadata.preset == f"estimated/{tmp_path.name}"  # a plain folder, not MVTec AD: estimated
    assert (metadata.preset_values["kind"], metadata.net.in_channels) == ("texture", 1)  # no plain border; gray
    report = evaluate_run(out)
    assert report["pixel_metrics"] is False
    assert_metrics_match_sklearn(report, out)


def test_training_errors_name_the_problem(tmp_path, bottle_dir):
    with pytest.raises(FileNotFoundError, match="data folder not found"):
        train(TrainConfig(data=tmp_path / "missing", out=tmp_path / "o"))
    with pytest.raises(ValueError, match="unknown method 'nsa'"):
        TrainConfig(data=tmp_path, out=tmp_path / "o", method="nsa")
    with pytest.raises(ValueError, match="unknown score rule 'median'"):
        TrainConfig(data=tmp_path, out=tmp_path / "o", score_rule="median")
    with pytest.raises(ValueError, match="too small for preset 'mvtec/bottle'"):
        train(TrainConfig(data=bottle_dir, out=tmp_path / "o", image_size=48, workers=0, progress=False))
    assert not (tmp_path / "o").exists()


def test_cli_train_evaluate_predict(tmp_path, capsys, bottle_run):
    assert main(["evaluate", "--run", str(bottle_run), "--run", str(bottle_run)]) == 0
    printed = capsys.readouterr().out
    assert "| defect type | image_auroc |" in printed
    assert "mean ± standard deviation over 2 runs (ddof 1; se: standard error)" in printed
    assert "± 0.0 (se 0.0) |" in printed.split("standard deviation over 2 runs")[1]   # the same run twice
    sample = tmp_path / "one.png"
    write_image(sample, np.full((120, 100, 3), 128, np.uint8))
    assert main(["predict", "--run", str(bottle_run), str(sample), "--out", str(tmp_path / "p")]) == 0
    assert np.load(tmp_path / "p" / "one.npy").shape == (120, 100)
    assert main(["evaluate", "--run", str(tmp_path)]) == 2
    assert "not an nsad run" in capsys.readouterr().err


def test_demo_runs_on_the_bundled_sample(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "demo"), "--epochs", "1", "--examples-per-epoch", "8"]) == 0
    printed = capsys.readouterr().out
    assert "heatmaps:" in printed and (tmp_path / "demo" / "run" / "metrics.json").is_file()
    assert len(list((tmp_path / "demo" / "predictions").glob("*_heatmap.png"))) == 9


def test_time_budget_stops_training_early_and_still_writes_the_run(bottle_dir, tmp_path):
    out = tmp_path / "run"
    train(TrainConfig(data=bottle_dir, out=out, epochs=50, max_minutes=0.001, holdout=0.0, examples_per_epoch=32,
                      **SMALL))
    training = load_run(out).metadata.training
    assert training["epochs"] == 50 and training["epochs_run"] < 50
