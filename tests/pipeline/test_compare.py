"""nsad compare: methods x seeds trained under one budget, a table in the papers' form, one heatmap figure."""

import csv
import json

import pytest

from nsad.cli import main
from nsad.data.folder import find_dataset, sample_data_path
from nsad.data.io import read_image
from nsad.pipeline import TrainConfig
from nsad.pipeline import compare as compare_module
from nsad.pipeline.compare import (
    DONE_FILE,
    MIN_TILE_PX,
    compare,
    ensure_trained,
    pick_heatmap_samples,
    run_folder,
    split_options,
)

METHODS = ("cutpaste-binary", "ssae")


OPTIONS = {"base_channels": 4, "stride_px": 32}  # a small SSAE, a 4 x 4 CutPaste patch grid


def small(out):
    return TrainConfig(data=sample_data_path(), out=out, epochs=1, image_size=64, batch_size=8, workers=0,
                       holdout=0.0, examples_per_epoch=8, progress=False)


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    compare(small(out), METHODS, [0, 1], out, options=OPTIONS, heatmap_images=3)
    return out


def test_every_method_and_seed_is_trained_and_evaluated(comparison):
    for method in METHODS:
        for seed in (0, 1):
            folder = run_folder(comparison, method, seed)
            assert (folder / "metrics.json").is_file() and (folder / DONE_FILE).is_file()
            meta = json.loads((folder / "run.json").read_text())
            assert meta["method"] == method and meta["training"]["seed"] == seed
            assert meta["training"]["epochs"] == 1 and meta["resize_hw"] == [64, 64]
    # each method got only the options it accepts
    assert json.loads((run_folder(comparison, "ssae", 0) / "run.json").read_text())["net"]["base_channels"] == 4
    assert json.loads((run_folder(comparison, "cutpaste-binary", 1) / "run.json").read_text())[
        "model_options"]["stride_px"] == 8


def test_table_gives_mean_standard_deviation_and_standard_error_over_seeds(comparison):
    rows = list(csv.DictReader(open(comparison / "comparison.csv")))
    assert [row["method"] for row in rows] == list(METHODS) and {row["seeds"] for row in rows} == {"2"}
    for row in rows:
        method = row["method"]
        for key in ("image_auroc", "pixel_auroc", "aupro"):
            per_seed = [json.loads((run_folder(comparison, method, seed) / "metrics.json").read_text())
                        ["metrics"][key] for seed in (0, 1)]
            mean, sem = sum(per_seed) / 2, abs(per_seed[0] - per_seed[1]) / 2  # sem of two values
            std = abs(per_seed[0] - per_seed[1]) / 2**0.5                     # sample std (ddof 1) of two values
            assert float(row[f"{key}_mean"]) == pytest.approx(mean, abs=1e-6)
            assert float(row[f"{key}_std"]) == pytest.approx(std, abs=1e-6)
            assert float(row[f"{key}_sem"]) == pytest.approx(sem, abs=1e-6)
    assert rows[0]["score_rule"] == "density" and rows[1]["score_rule"] == "area:4"
    table = (comparison / "comparison.md").read_text()
    assert "| method | image AUROC | pixel AUROC | AU-PRO | training (min/run) | image score |" in table
    assert "image size 64, 1 epochs" in table and "variant paper; seeds 0, 1" in table
    assert "Mean ± standard deviation over the seeds (ddof 1), the standard error in brackets (se)" in table
    for row in rows:
        cell = (f"{100 * float(row['image_auroc_mean']):.1f} ± {100 * float(row['image_auroc_std']):.1f} "
                f"(se {100 * float(row['image_auroc_sem']):.1f})")
        assert f"| {row['method']} | {cell} |" in table


def test_heatmap_figure_has_a_row_per_method(comparison):
    figure = read_image(comparison / "heatmaps.png")
    # grid: 18-px title band, then (ground truth + 2 methods) rows and 1 label + 3 image + 1 colour-bar
    # columns of 192-px tiles
    assert figure.shape == (18 + 3 * (MIN_TILE_PX + 4) + 4, 5 * (MIN_TILE_PX + 4) + 4, 3)


def test_a_finished_comparison_is_not_trained_again(comparison, monkeypatch):
    def fail(config):
        raise AssertionError(f"trained {config.out} again")

    monkeypatch.setattr(compare_module, "train", fail)
    result = compare(small(comparison), METHODS, [0, 1], comparison, options=OPTIONS, heatmap_images=0)
    rows = list(csv.DictReader(open(comparison / "comparison.csv")))
    assert float(rows[1]["aupro_mean"]) == pytest.approx(result.table["ssae"]["aupro"].mean, abs=1e-6)
    assert len(result.metrics["cutpaste-binary"]) == 2


def test_unfinished_runs_resume_or_restart(tmp_path, monkeypatch):
    calls = []

    def fake_train(config):
        calls.append(config.resume)
        config.out.mkdir(parents=True, exist_ok=True)
        return config.out

    monkeypatch.setattr(compare_module, "train", fake_train)
    config = TrainConfig(data=tmp_path, out=tmp_path / "run", method="fpi")
    (tmp_path / "run" / "logs").mkdir(parents=True)  # died before its first checkpoint: start again
    (tmp_path / "run" / "config.json").write_text("{}")
    ensure_trained(config)
    assert calls == [False] and not (tmp_path / "run" / "config.json").exists()
    assert json.loads((tmp_path / "run" / DONE_FILE).read_text())["resumed"] is False
    ensure_trained(config)  # finished: nothing to do
    assert calls == [False]
    (tmp_path / "run" / DONE_FILE).unlink()
    (tmp_path / "run" / "checkpoints").mkdir()
    (tmp_path / "run" / "checkpoints" / "last.ckpt").write_bytes(b"")
    ensure_trained(config)  # interrupted during training: resume
    assert calls == [False, True]
    settings = {k: str(v) if k in ("data", "out") else v for k, v in config.__dict__.items()}
    (tmp_path / "run" / "config.json").write_text(json.dumps({**settings, "epochs": 3, "preset": "default"}))
    ensure_trained(config)  # finished with the same settings: reused
    assert calls == [False, True]
    with pytest.raises(ValueError, match=r"holds a run trained with other settings \(image_size: 256 there, 96 now; "
                                         r"epochs: 3 there, 2 now\); choose another --out"):
        ensure_trained(TrainConfig(**{**config.__dict__, "image_size": 96, "epochs": 2}))
    with pytest.raises(ValueError, match=r"other settings \(standardize_input: None there, False now\)"):
        ensure_trained(TrainConfig(**{**config.__dict__, "standardize_input": False}))  # the preset's values too
    other = TrainConfig(data=tmp_path, out=tmp_path / "mine", method="fpi")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(FileExistsError, match=r"holds \['notes.txt'\], which nsad compare did not write"):
        ensure_trained(other)


def test_options_go_to_the_methods_that_take_them():
    base = TrainConfig(data=sample_data_path(), out=sample_data_path(), options={})
    split = split_options({"lam": 0.3, "stride_px": 8}, ["nsa-logistic", "ssae", "cutpaste-3way"])
    assert split == {"nsa-logistic": {}, "ssae": {"lam": 0.3}, "cutpaste-3way": {"stride_px": 8}}
    with pytest.raises(ValueError, match=r"option 'lam' is accepted by none of the methods \['fpi', 'pii'\]"):
        split_options({"lam": 0.3}, ["fpi", "pii"])
    with pytest.raises(ValueError, match=r"methods are repeated: \['fpi'\]"):
        compare(base, ["fpi", "fpi"], [0], "unused")
    with pytest.raises(ValueError, match=r"unknown method 'nsa'"):
        compare(base, ["nsa"], [0], "unused")
    with pytest.raises(ValueError, match=r"compare needs at least one method and one seed"):
        compare(base, ["fpi"], [], "unused")


def test_heatmap_images_cover_every_defect_type_and_a_normal_one():
    samples = find_dataset(sample_data_path()).test
    chosen = pick_heatmap_samples(samples, 4)
    assert [s.defect_type for s in chosen] == ["broken_large", "broken_small", "contamination", "good"]
    assert [s.defect_type for s in pick_heatmap_samples(samples, 2)] == ["broken_large", "good"]
    five = pick_heatmap_samples(samples, 5)
    assert [s.defect_type for s in five] == ["broken_large", "broken_small", "contamination", "broken_large", "good"]
    assert len(set(five)) == 5


def test_cli_passes_the_settings_on(monkeypatch, tmp_path, capsys):
    seen = {}

    def fake_compare(base, methods, seeds, out, options, heatmap_images, device):
        seen.update(base=base, methods=methods, seeds=seeds, out=out, options=options, images=heatmap_images)
        raise ValueError("stop here")

    monkeypatch.setattr("nsad.pipeline.compare.compare", fake_compare)
    argv = ["compare", "--data", str(tmp_path), "--methods", "nsa-logistic, ssae", "--seeds", "3,4", "--epochs", "2",
            "--image-size", "96", "--out", str(tmp_path / "o"), "--option", "objective=1", "--heatmap-images", "0"]
    assert main(argv) == 2 and "nsad compare: error: stop here" in capsys.readouterr().err
    assert seen["methods"] == ["nsa-logistic", "ssae"] and seen["seeds"] == [3, 4] and seen["images"] == 0
    assert seen["options"] == {"objective": 1} and seen["base"].options == {}
    assert (seen["base"].epochs, seen["base"].image_size, seen["base"].score_rule) == (2, 96, None)


def test_cli_rejects_bad_seeds(capsys):
    with pytest.raises(SystemExit):
        main(["compare", "--data", ".", "--methods", "fpi", "--seeds", "0,x", "--out", "o"])
    assert "seeds must be whole numbers separated by commas, got '0,x'" in capsys.readouterr().err


def test_report_of_a_comparison_has_its_table_and_heatmap_rows(comparison):
    from nsad.pipeline.report import write_report

    text = write_report(comparison).read_text(encoding="utf-8")
    for method in METHODS:
        assert f"<td>{method}</td>" in text
    assert text.count('<img src="data:image/png;base64,') == 1
    assert "http:" not in text and "https:" not in text  # ':' is not a base64 character
