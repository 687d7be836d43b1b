"""Bad input through the real command line: one test per case a careful user tries.

Each case runs ``python -m nsad`` in a subprocess and checks the exit status, one line of message
naming the file, option or value and what is accepted, no traceback, and that every file that
existed before is byte-identical after (and no half-written folder is left). Cases refused while
parsing the arguments never load torch, so they cost a fraction of a second.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import torch
from cli_helpers import SRC, TINY_ARGS, assert_refused, nsad, snapshot

from nsad.data.io import write_image

NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")


def write_png(path, image):
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, image)
    return path


# --- arguments refused while parsing (no torch) -------------------------------------------------------------


@pytest.mark.parametrize("option, value, accepted", [
    ("--seed", "-1", "at least 0"), ("--epochs", "0", "at least 1"), ("--batch-size", "x", "whole number"),
    ("--holdout", "0.9", "[0, 0.5]"), ("--target-fpr", "nan", "[0, 1]"), ("--image-size", "4", "at least 8"),
])
def test_train_numbers_out_of_range(tmp_path, option, value, accepted):
    result = nsad("train", "--data", tmp_path, "--out", tmp_path / "run", option, value)
    assert_refused(result, "train", f"argument {option}", value, accepted)
    assert not (tmp_path / "run").exists()


def test_predict_threshold_not_a_number(tmp_path):
    result = nsad("predict", "--run", tmp_path, "--out", tmp_path / "p", tmp_path, "--threshold", "nan")
    assert_refused(result, "predict", "--threshold", "nan")


def test_unknown_option_names_it(tmp_path):
    result = nsad("train", "--data", tmp_path, "--out", tmp_path / "r", "--epohcs", "3")
    assert_refused(result, "train", "unrecognized arguments: --epohcs")


# --- nsad train: nothing half-written -------------------------------------------------------------------------


@NO_GPU
def test_train_on_gpu_without_one_leaves_nothing(tmp_path, sample_dir):
    result = nsad("train", "--data", sample_dir, "--out", tmp_path / "runs" / "a", "--accelerator", "gpu", *TINY_ARGS)
    assert_refused(result, "train", "--accelerator gpu", "no CUDA GPU", "--accelerator cpu")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("option, value, accepted", [
    ("--precision", "banana", "bf16-mixed"), ("--strategy", "banana", "ddp"), ("--devices", "banana", "int > 0"),
])
def test_train_lightning_settings_refused_before_the_run_folder(tmp_path, sample_dir, option, value, accepted):
    (tmp_path / "run").mkdir()  # an empty folder made by the user stays, empty
    result = nsad("train", "--data", sample_dir, "--out", tmp_path / "run", option, value, *TINY_ARGS)
    assert_refused(result, "train", f"{option} {value}", accepted)
    assert list((tmp_path / "run").iterdir()) == []


def test_train_image_size_too_small_names_the_option(tmp_path, sample_dir):
    result = nsad("train", "--data", sample_dir, "--out", tmp_path / "run", "--image-size", "32", *TINY_ARGS[2:])
    assert_refused(result, "train", "--image-size 32", "too small", "larger --image-size")
    assert not (tmp_path / "run").exists()


def test_train_names_an_image_too_small_to_estimate_a_preset_from(tmp_path, sample_dir):
    folder = tmp_path / "parts"
    shutil.copytree(sample_dir / "train" / "good", folder)
    write_png(folder / "tiny.png", np.full((8, 8, 3), 90, np.uint8))
    result = nsad("train", "--data", folder, "--out", tmp_path / "run", *TINY_ARGS)
    assert_refused(result, "train", str(folder / "tiny.png"), "8x8 px", "too small", "--preset")
    assert not (tmp_path / "run").exists()


def test_train_out_is_a_file(tmp_path, sample_dir):
    (tmp_path / "notes.txt").write_text("keep me")
    before = snapshot(tmp_path)
    assert_refused(nsad("train", "--data", sample_dir, "--out", tmp_path / "notes.txt"), "train",
                   "--out", "notes.txt", "is a file")
    assert not (tmp_path / "notes.txt" / "x").exists()
    assert snapshot(tmp_path) == before
    result = nsad("train", "--data", sample_dir, "--out", tmp_path / "notes.txt" / "run")
    assert_refused(result, "train", "notes.txt is a file")
    assert snapshot(tmp_path) == before


def test_train_into_a_folder_holding_a_run(tiny_run, sample_dir):
    before = snapshot(tiny_run)
    result = nsad("train", "--data", sample_dir, "--out", tiny_run, *TINY_ARGS)
    assert_refused(result, "train", str(tiny_run), "not empty", "--resume")
    assert snapshot(tiny_run) == before


def test_train_unknown_method_suggests_the_closest(tmp_path, sample_dir):
    result = nsad("train", "--data", sample_dir, "--out", tmp_path / "run", "--method", "nsa-logistik")
    assert_refused(result, "train", "unknown method 'nsa-logistik'", "nsa-logistic")
    assert not (tmp_path / "run").exists()


def test_train_option_for_a_method_without_options(tmp_path, sample_dir):
    result = nsad("train", "--data", sample_dir, "--out", tmp_path / "run", "--option", "stride_px=4")
    assert_refused(result, "train", "'nsa-logistic' takes no options", "stride_px")


# --- nsad train --resume: the same run or nothing -------------------------------------------------------------


@pytest.mark.parametrize("option, value, was, now", [
    ("--method", "fpi", "'nsa-logistic'", "'fpi'"), ("--image-size", "112", "96", "112"), ("--seed", "5", "0", "5"),
    ("--preset", "mvtec/bottle", "'", "'mvtec/bottle'"),  # was: the preset resolved for the sample folder
])
def test_resume_refuses_another_setting(tiny_run, sample_dir, option, value, was, now):
    before = snapshot(tiny_run)
    result = nsad("train", "--data", sample_dir, "--out", tiny_run, "--resume", option, value, "--workers", "0")
    line = assert_refused(result, "train", "--resume", f"{option} was {was}", f", now {now}")
    assert line.index(f"{option} was") < line.index(f", now {now}")
    assert snapshot(tiny_run) == before


def test_resume_refuses_other_data(tiny_run, data):
    before = snapshot(tiny_run)
    result = nsad("train", "--data", data, "--out", tiny_run, "--resume", "--workers", "0")
    assert_refused(result, "train", "--resume", "--data was", str(data))
    assert snapshot(tiny_run) == before


def test_resume_without_a_checkpoint(tmp_path, sample_dir):
    result = nsad("train", "--data", sample_dir, "--out", tmp_path / "run", "--resume")
    assert_refused(result, "train", "nothing to resume", "last.ckpt")
    assert not (tmp_path / "run").exists()


def test_resume_refuses_a_checkpoint_that_would_run_code(run_copy, sample_dir):
    checkpoint = run_copy / "checkpoints" / "last.ckpt"
    saved = torch.load(checkpoint, weights_only=True)
    saved["callbacks"]["evil"] = subprocess.Popen  # unpickling this would import and call code
    torch.save(saved, checkpoint)
    (run_copy / "run.json").unlink()  # an unfinished run, as a resume finds it
    before = snapshot(run_copy)
    result = nsad("train", "--data", sample_dir, "--out", run_copy, "--resume", "--epochs", "2", "--workers", "0",
                  "--no-progress")
    # progress lines come first; the message is the error line
    result.err = "\n".join(line for line in result.err_lines if ": error: " in line or "Traceback" in line)
    assert_refused(result, "train", str(checkpoint), "holds more than tensors", "without running code")
    assert snapshot(run_copy) == before


# --- nsad predict -----------------------------------------------------------------------------------------------


def test_predict_into_a_folder_with_results_keeps_them(tiny_run, sample_dir, tmp_path):
    out = tmp_path / "pred"
    out.mkdir()
    (out / "scores.csv").write_text("file,score\nold.png,0.5\n")
    (out / "old.npy").write_bytes(b"earlier map")
    before = snapshot(tmp_path, tiny_run)
    result = nsad("predict", "--run", tiny_run, sample_dir / "test" / "good", "--out", out)
    assert_refused(result, "predict", f"--out {out}", "already holds 2", "choose a new or empty --out")
    assert snapshot(tmp_path, tiny_run) == before


def test_predict_out_is_a_file(tiny_run, sample_dir, tmp_path):
    (tmp_path / "scores.csv").write_text("mine")
    before = snapshot(tmp_path)
    result = nsad("predict", "--run", tiny_run, sample_dir / "test" / "good", "--out", tmp_path / "scores.csv")
    assert_refused(result, "predict", "scores.csv is a file")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("device, fragments", [
    ("banana", ("--device 'banana'", "cpu, cuda, cuda:N")),
    pytest.param("cuda:0", ("--device cuda:0", "no CUDA GPU", "--device cpu"), marks=NO_GPU),
])
def test_predict_bad_device(tiny_run, sample_dir, tmp_path, device, fragments):
    result = nsad("predict", "--run", tiny_run, sample_dir / "test" / "good", "--out", tmp_path / "p",
                  "--device", device)
    assert_refused(result, "predict", *fragments)
    assert list(tmp_path.iterdir()) == []


def test_evaluate_bad_device(tiny_run):
    before = snapshot(tiny_run)
    assert_refused(nsad("evaluate", "--run", tiny_run, "--device", "banana"), "evaluate", "--device 'banana'")
    assert snapshot(tiny_run) == before


def test_predict_with_an_unfinished_run_says_how_to_finish_it(tmp_path, run_copy, sample_dir):
    (run_copy / "run.json").unlink()
    (run_copy / "model.safetensors").unlink()
    before = snapshot(run_copy)
    result = nsad("predict", "--run", run_copy, sample_dir / "test" / "good", "--out", tmp_path / "p")
    assert_refused(result, "predict", "unfinished nsad run",
                   f"nsad train --data {sample_dir} --out {run_copy} --resume")
    assert snapshot(run_copy) == before and not (tmp_path / "p").exists()


def test_predict_with_a_folder_that_is_no_run(tmp_path, sample_dir):
    result = nsad("predict", "--run", sample_dir, sample_dir / "test" / "good", "--out", tmp_path / "p")
    assert_refused(result, "predict", "is not an nsad run", "run.json")


@pytest.mark.parametrize("key, value, fragments", [
    ("crop_hw", [200, 200], ("run.json", "crop_hw [200, 200]")),
    ("score_rule", "median", ("run.json", "score_rule", "--score-rule")),
])
def test_predict_bad_run_json_names_the_file(tmp_path, run_copy, sample_dir, key, value, fragments):
    metadata = json.loads((run_copy / "run.json").read_text())
    metadata[key] = value
    (run_copy / "run.json").write_text(json.dumps(metadata))
    result = nsad("predict", "--run", run_copy, sample_dir / "test" / "good", "--out", tmp_path / "p")
    assert_refused(result, "predict", *fragments)


def test_predict_stops_at_a_corrupt_image_and_writes_nothing(tiny_run, sample_dir, tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    (folder / "a.png").write_bytes((sample_dir / "test" / "good" / "000.png").read_bytes())
    (folder / "b.png").write_bytes(b"\x89PNG truncated")
    before = snapshot(folder)
    result = nsad("predict", "--run", tiny_run, folder, "--out", tmp_path / "p")
    assert_refused(result, "predict", "b.png", "corrupt", "--skip-unreadable")
    assert not (tmp_path / "p").exists() and snapshot(folder) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_predict_skip_unreadable_scores_the_rest(tiny_run, sample_dir, tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    for name in ("a", "c"):
        (folder / f"{name}.png").write_bytes((sample_dir / "test" / "good" / "000.png").read_bytes())
    (folder / "b.png").write_bytes(b"")
    result = nsad("predict", "--run", tiny_run, folder, "--out", tmp_path / "p", "--skip-unreadable")
    assert result.status == 3 and "Traceback" not in result.err
    assert [line.split()[-1] for line in result.out.splitlines()] == [str(folder / "a.png"), str(folder / "c.png")]
    assert f"skipped {folder / 'b.png'}: cannot read image" in result.err
    unreadable = list(csv.DictReader(open(tmp_path / "p" / "unreadable.csv")))
    assert [row["file"] for row in unreadable] == [str(folder / "b.png")] and "empty" in unreadable[0]["reason"]
    assert len(list(csv.DictReader(open(tmp_path / "p" / "scores.csv")))) == 2


def test_predict_on_a_data_set_folder_skips_its_masks(tiny_run, sample_dir, tmp_path):
    result = nsad("predict", "--run", tiny_run, sample_dir, "--out", tmp_path / "p")
    assert result.status == 0, result.err
    assert "nsad predict: warning: skipped 6 ground-truth masks" in result.err
    files = [row["file"] for row in csv.DictReader(open(tmp_path / "p" / "scores.csv"))]
    assert len(files) == 16 + 9 and not any("_mask" in name for name in files)


def test_predict_hidden_files_are_not_images(tiny_run, sample_dir, tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    (folder / "a.png").write_bytes((sample_dir / "test" / "good" / "000.png").read_bytes())
    (folder / "._a.png").write_bytes(b"\x00\x05\x16\x07 macOS resource fork")
    (folder / ".thumb.png").write_bytes(b"junk")
    (folder / ".cache").mkdir()
    (folder / ".cache" / "x.png").write_bytes(b"junk")
    result = nsad("predict", "--run", tiny_run, folder, "--out", tmp_path / "p")
    assert result.status == 0, result.err
    assert len(result.out.splitlines()) == 1 and result.out.split()[-1] == str(folder / "a.png")


def test_predict_score_rule_other_than_the_calibrated_one(tiny_run, sample_dir, tmp_path):
    result = nsad("predict", "--run", tiny_run, sample_dir / "test" / "good", "--out", tmp_path / "p",
                  "--score-rule", "max")
    assert result.status == 0, result.err
    warning = [line for line in result.err_lines if "warning" in line]
    assert len(warning) == 1 and "calibrated for score rule 'mean', not 'max'" in warning[0]
    assert {row["decision"] for row in csv.DictReader(open(tmp_path / "p" / "scores.csv"))} == {""}
    with_threshold = nsad("predict", "--run", tiny_run, sample_dir / "test" / "good", "--out", tmp_path / "q",
                          "--score-rule", "max", "--threshold", "0.5")
    assert with_threshold.status == 0 and "warning" not in with_threshold.err


def test_predict_warns_once_about_a_tiny_image_and_a_translucent_one(tiny_run, sample_dir, tmp_path):
    folder = tmp_path / "parts"
    (folder).mkdir()
    (folder / "a.png").write_bytes((sample_dir / "test" / "good" / "000.png").read_bytes())
    write_png(folder / "tiny.png", np.full((8, 8, 3), 90, np.uint8))
    rgba = np.full((128, 128, 4), 120, np.uint8)
    rgba[..., 3] = 100
    cv2.imwrite(str(folder / "glass.png"), rgba)
    result = nsad("predict", "--run", tiny_run, folder, "--out", tmp_path / "p")
    assert result.status == 0, result.err
    warnings = [line for line in result.err_lines if ": warning: " in line]
    assert len(warnings) == 2, result.err
    assert any("tiny.png (8x8)" in line and "enlarged" in line for line in warnings)
    assert any("glass.png has transparent pixels" in line for line in warnings)
    assert "src/nsad" not in result.err and ".py" not in result.err  # no source paths


# --- nsad evaluate ----------------------------------------------------------------------------------------------


def test_evaluate_other_data_keeps_the_runs_metrics(run_copy, data):
    assert nsad("evaluate", "--run", run_copy).status == 0
    before = snapshot(run_copy)
    (data / "test" / "good" / "002.png").unlink()  # another test set
    result = nsad("evaluate", "--run", run_copy, "--data", data)
    assert result.status == 0, result.err
    assert f"wrote {run_copy / 'metrics-2.json'}" in result.err and "is kept" in result.err
    after = snapshot(run_copy)
    assert {k: v for k, v in after.items() if not k.endswith(("metrics-2.json", "report-2.html"))} == before
    assert str(run_copy / "report-2.html") in after  # its report beside it; report.html stays the run's own
    assert json.loads((run_copy / "metrics-2.json").read_text())["images"] == 8
    again = nsad("evaluate", "--run", run_copy)  # the same result again: no new file
    assert again.status == 0 and not (run_copy / "metrics-3.json").exists()


def test_report_on_other_data_keeps_the_runs_report(run_copy, data):
    assert nsad("report", "--run", run_copy).status == 0
    before = snapshot(run_copy)
    result = nsad("report", "--run", run_copy, "--data", data)
    assert result.status == 0, result.err
    after = snapshot(run_copy)
    assert {k: v for k, v in after.items() if not k.endswith("report-2.html")} == before  # report.html kept
    assert str(run_copy / "report-2.html") in after and str(run_copy / "report-2.html") in result.out + result.err


def test_evaluate_test_set_without_anomalies(tiny_run, data):
    for folder in (data / "test").iterdir():
        if folder.name != "good":
            for path in folder.iterdir():
                path.unlink()
            folder.rmdir()
    shutil.rmtree(data / "ground_truth")
    before = snapshot(tiny_run)
    result = nsad("evaluate", "--run", tiny_run, "--data", data)
    assert_refused(result, "evaluate", "no anomalous images", "test/<defect type>/")
    assert snapshot(tiny_run) == before


def test_evaluate_reads_benchmark_masks_with_levels_near_255_once_warned(run_copy, data):
    for mask in (data / "ground_truth").rglob("*_mask.png"):
        values = cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE)
        levels = np.where(values > 0, np.array([253, 254, 255], np.uint8)[np.arange(values.size) % 3].reshape(
            values.shape), 0).astype(np.uint8)
        cv2.imwrite(str(mask), levels)
    result = nsad("evaluate", "--run", run_copy, "--data", data)
    assert result.status == 0, result.err
    warnings = [line for line in result.err_lines if ": warning: " in line]
    assert len(warnings) == 1 and "253, 254, 255" in warnings[0], result.err


def test_evaluate_refuses_an_interpolated_mask(tiny_run, data):
    mask = data / "ground_truth" / "broken_large" / "000_mask.png"
    blurred = cv2.GaussianBlur(cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE), (9, 9), 3)
    cv2.imwrite(str(mask), blurred)
    result = nsad("evaluate", "--run", tiny_run, "--data", data)
    assert_refused(result, "evaluate", str(mask), "must be binary", "distinct values")


def test_evaluate_warns_about_an_all_zero_mask(run_copy, data):
    mask = data / "ground_truth" / "contamination" / "001_mask.png"
    write_image(mask, np.zeros((128, 128), np.uint8))
    result = nsad("evaluate", "--run", run_copy, "--data", data)
    assert result.status == 0, result.err
    assert any("all zero" in line and "001_mask.png" in line for line in result.err_lines), result.err


# --- nsad synth -------------------------------------------------------------------------------------------------


def test_synth_images_of_different_sizes_are_named(tmp_path, sample_dir):
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "000.png").write_bytes((sample_dir / "train" / "good" / "000.png").read_bytes())
    write_png(folder / "small.png", np.zeros((8, 8, 3), np.uint8))
    result = nsad("synth", "--data", folder, "--out", tmp_path / "s")
    assert_refused(result, "synth", str(folder / "small.png"), "8x8 px", str(folder / "000.png"), "one size")
    assert not (tmp_path / "s").exists()


def test_synth_into_a_folder_with_results_keeps_them(tmp_path, sample_dir):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "gallery.png").write_bytes(b"an earlier gallery")
    before = snapshot(tmp_path)
    result = nsad("synth", "--data", sample_dir, "--out", tmp_path / "s", "--count", "2")
    assert_refused(result, "synth", f"--out {tmp_path / 's'} already holds 1", "new or empty --out")
    assert snapshot(tmp_path) == before


# --- Ctrl-C -------------------------------------------------------------------------------------------------------


def test_ctrl_c_exits_130_and_leaves_no_half_run(tmp_path, sample_dir):
    out = tmp_path / "run"
    # as from a terminal: Ctrl-C delivered (a test process may have been left ignoring SIGINT, which children inherit)
    process = subprocess.Popen([sys.executable, "-m", "nsad", "train", "--data", str(sample_dir), "--out", str(out),
                                "--epochs", "50", *TINY_ARGS], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env={**os.environ, "PYTHONPATH": str(SRC)},
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 300
    while not (out / "config.json").is_file() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    out_text, err_text = process.communicate(timeout=300)
    assert process.returncode == 130, err_text
    assert "Traceback" not in err_text and err_text.strip().splitlines()[-1] == "nsad train: interrupted"
    # either stopped before its first step (nothing left) or resumable (a checkpoint)
    assert not out.exists() or (out / "checkpoints" / "last.ckpt").is_file()
