import json

import cv2
import numpy as np
import pytest

from nsad.cli import main
from nsad.data.io import read_image, write_image


@pytest.fixture
def small_folder(tmp_path, bottle_images):
    folder = tmp_path / "good"
    folder.mkdir()
    for i, image in enumerate(bottle_images[:4]):
        write_image(folder / f"{i:03d}.png", image)
    return folder


@pytest.mark.parametrize("task, label_dtype", [("nsa-logistic", np.uint8), ("nsa-continuous", np.uint16),
                                               ("pii", np.uint8)])
def test_synth_writes_examples_labels_metadata_and_gallery(tmp_path, small_folder, task, label_dtype):
    out = tmp_path / "out"
    code = main(["synth", "--data", str(small_folder), "--task", task, "--preset", "mvtec/bottle",
                 "--count", "5", "--seed", "0", "--out", str(out)])
    assert code == 0
    lines = [json.loads(line) for line in (out / "examples.jsonl").read_text().splitlines()]
    assert [line["index"] for line in lines] == list(range(5))
    for line in lines:
        assert line["destination"] != line["source"]
        assert set(line) >= {"index", "source", "destination", "patches"}
        for patch in line["patches"]:
            assert set(patch) >= {"src_box", "dst_box", "scale", "mode"} and len(patch["dst_box"]) == 4
        image = read_image(out / line["image"])
        assert image.shape == (256, 256, 3)
        label = cv2.imread(str(out / line["label"]), cv2.IMREAD_UNCHANGED)
        assert label.dtype == label_dtype and label.shape == (256, 256)
        if line["patches"]:
            assert label.max() > 0
    assert read_image(out / "gallery.png").shape[1] > 4 * 256


def test_synth_same_seed_same_files(tmp_path, small_folder):
    for name in ("a", "b"):
        main(["synth", "--data", str(small_folder), "--count", "2", "--out", str(tmp_path / name)])
    assert (tmp_path / "a" / "0001_image.png").read_bytes() == (tmp_path / "b" / "0001_image.png").read_bytes()


def test_synth_reads_an_mvtec_category(tmp_path, bottle_dir):
    assert main(["synth", "--data", str(bottle_dir), "--count", "1", "--out", str(tmp_path / "o")]) == 0
    assert json.loads((tmp_path / "o" / "examples.jsonl").read_text())["destination"] == "000.png"


def test_synth_errors_are_one_line_naming_the_problem(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["synth", "--data", str(empty), "--out", str(tmp_path / "o")]) == 2
    assert f"no images in {empty}" in capsys.readouterr().err
    (empty / "broken.png").write_bytes(b"not a png")
    assert main(["synth", "--data", str(empty), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "cannot read image" in err and "broken.png" in err
    assert main(["synth", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "image folder not found" in capsys.readouterr().err
    write_image(empty / "broken.png", np.zeros((30, 30, 3), np.uint8))
    assert main(["synth", "--data", str(empty), "--preset", "mvtec/bottle", "--out", str(tmp_path / "o")]) == 2
    assert "a 30x30 image is too small for preset 'mvtec/bottle'" in capsys.readouterr().err
    assert main(["synth", "--data", str(empty), "--preset", "bottel", "--out", str(tmp_path / "o")]) == 2
    assert "unknown preset 'bottel'" in capsys.readouterr().err


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["synth", "--help"])
    text = capsys.readouterr().out
    for option in ("--data", "--task", "--preset", "--count", "--seed", "--out", "--backend", "--ellipses"):
        assert option in text
