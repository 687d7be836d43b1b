"""A user's own folder end to end: 2:1 grayscale images, an estimated preset, the whole frame, tiles."""

import dataclasses
import json

import numpy as np
import pytest

from nsad.cli import main
from nsad.data.io import read_image, write_image
from nsad.data.transforms import FrameConfig
from nsad.models import load_run
from nsad.pipeline import TrainConfig, predict, train
from nsad.pipeline.methods import METHODS
from nsad.pipeline.scoring import Scorer
from nsad.pipeline.train import HoldoutWarning, choose_transform, holdout_warning
from nsad.synth.presets import get_preset, resolve_preset

SHAPE = (100, 200)  # height, width: 2:1
TINY = dict(epochs=1, batch_size=8, workers=0, progress=False, image_size=128)


def _texture(rng: np.random.Generator) -> np.ndarray:
    import cv2

    noise = rng.integers(60, 200, SHAPE, dtype=np.uint8)
    return cv2.GaussianBlur(noise, (5, 5), 1.0)[:, :, None]


@pytest.fixture(scope="module")
def parts_folder(tmp_path_factory):
    """8 normal 2:1 gray parts, 1 normal and 1 defective test part with its mask (a dark bar at the right edge)."""
    root = tmp_path_factory.mktemp("parts")
    for folder in ("train/good", "test/good", "test/crack", "ground_truth/crack"):
        (root / folder).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index in range(8):
        write_image(root / "train" / "good" / f"{index:03d}.png", _texture(rng))
    write_image(root / "test" / "good" / "000.png", _texture(rng))
    defect, mask = _texture(rng), np.zeros(SHAPE, np.uint8)
    mask[30:36, 150:200] = 255  # reaches the right border, in the band the paper's centre crop never scores
    defect[mask > 0] = 10
    write_image(root / "test" / "crack" / "000.png", defect)
    write_image(root / "ground_truth" / "crack" / "000_mask.png", mask[:, :, None])
    return root


@pytest.fixture(scope="module")
def whole_run(tmp_path_factory, parts_folder):
    out = tmp_path_factory.mktemp("runs") / "whole"
    with pytest.warns(HoldoutWarning, match=r"only 2 held-out normal images: a false-positive rate below 1/2"):
        train(TrainConfig(data=parts_folder, out=out, holdout=0.25, seed=1, **TINY))
    return out


@pytest.fixture(scope="module")
def tiled_run(tmp_path_factory, parts_folder):
    out = tmp_path_factory.mktemp("runs") / "tiled"
    train(TrainConfig(data=parts_folder, out=out, holdout=0.0, tile=96, examples_per_epoch=16, seed=2, **TINY))
    return out


@pytest.mark.slow
def test_a_two_to_one_folder_trains_on_its_own_frame(whole_run):
    metadata = load_run(whole_run).metadata
    assert metadata.format_version == 3 and metadata.preset == "estimated/parts0"
    assert metadata.preset_values["kind"] == "texture" and metadata.in_channels == 1  # grayscale stays gray
    geometry = FrameConfig.from_dict(dict(metadata.geometry))
    assert geometry.frame_hw == (96, 192) and geometry.tile is None
    training = metadata.training
    assert training["preset_source"] == "estimated" and training["holdout_images"] == 2
    assert 0.0 <= training["holdout_fpr"] <= 0.5 and metadata.threshold is not None


@pytest.mark.slow
def test_maps_keep_the_aspect_ratio_and_score_the_border_band(whole_run, parts_folder):
    paths = [parts_folder / "test" / "crack" / "000.png", parts_folder / "test" / "good" / "000.png"]
    result = Scorer(whole_run, device="cpu").score(paths)
    assert result.maps.shape == (2, 96, 192)  # 2:1, as the images
    band = 192 // 16  # the outer band the paper's 224-of-256 crop leaves at zero
    assert result.maps[:, :, -band:].min() > 0 and result.maps[:, :band].min() > 0


@pytest.mark.slow
def test_predict_gives_maps_at_the_original_size(whole_run, parts_folder, tmp_path, capsys):
    rows = predict(whole_run, [parts_folder / "test" / "crack"], tmp_path / "p")
    assert np.load(tmp_path / "p" / rows[0]["map"]).shape == SHAPE
    assert rows[0]["decision"] in ("normal", "anomalous")
    assert "preset estimated/parts0 (recorded in the run)" in capsys.readouterr().err


@pytest.mark.slow
def test_tiles_train_at_native_resolution_and_stitch(tiled_run, parts_folder, tmp_path, capsys):
    metadata = load_run(tiled_run).metadata
    geometry = FrameConfig.from_dict(dict(metadata.geometry))
    assert (geometry.frame_hw, geometry.tile, geometry.tile_overlap) == (SHAPE, 96, 24)
    assert metadata.training["steps"] == 2 and metadata.training["examples_per_epoch"] == 16  # 16 in batches of 8
    maps = Scorer(tiled_run, device="cpu").score([parts_folder / "test" / "crack" / "000.png"]).maps
    assert maps.shape == (1, *SHAPE) and np.isfinite(maps).all() and maps.min() > 0
    rows = predict(tiled_run, [parts_folder / "test" / "crack"], tmp_path / "p")
    assert rows[0]["decision"] == ""
    assert "no threshold exists: the run was trained with --holdout 0" in capsys.readouterr().err


@pytest.mark.slow
def test_the_autoencoder_also_keeps_the_aspect_ratio(parts_folder, tmp_path):
    out = tmp_path / "ssae"
    train(TrainConfig(data=parts_folder, out=out, method="ssae", holdout=0.25, seed=3, examples_per_epoch=8,
                      options={"base_channels": 4}, **TINY))
    metadata = load_run(out).metadata
    assert FrameConfig.from_dict(dict(metadata.geometry)).frame_hw == (96, 192)
    scale = (96 * 192) ** 0.5 / 256  # Bauer's pixel sizes at 256 px, scaled with the frame's pixel count
    assert metadata.model_options == {"sigma_px": pytest.approx(4 * scale, abs=0.01),
                                      "min_area_px": round(64 * scale ** 2)}
    maps = Scorer(out, device="cpu").score([parts_folder / "test" / "crack" / "000.png"]).maps
    band = 192 // 16
    assert maps.shape == (1, 96, 192) and maps[:, :, -band:].min() > 0 and maps[:, :band].min() > 0


@pytest.mark.slow
def test_a_paper_only_method_says_why_it_squares_the_images(parts_folder, tmp_path, capsys):
    train(TrainConfig(data=parts_folder, out=tmp_path / "cp", method="cutpaste-binary", holdout=0.25,
                      examples_per_epoch=8, options={"stride_px": 32}, **TINY))
    assert ("geometry: the paper's protocol: square 128 x 128, trained on 128-px crops, scoring the whole image "
            "(cutpaste-binary has the paper's protocol only)") in capsys.readouterr().err


@pytest.mark.slow
def test_train_cli_takes_the_own_images_options(parts_folder, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--data", str(parts_folder), "--out", str(out), "--epochs", "1", "--batch-size", "8",
                 "--image-size", "128", "--workers", "0", "--no-progress", "--holdout", "0",
                 "--examples-per-epoch", "8", "--protocol", "whole", "--max-minutes", "5"])
    printed = capsys.readouterr().err
    assert code == 0
    assert "nsad train: preset estimated/parts0 (estimated from the training images)" in printed
    assert "kind texture" in printed and "channels 1" in printed
    assert "geometry: aspect kept, 192 x 96 px (width x height), trained on random 160 x 96 crops" in printed
    training = json.loads((out / "run.json").read_text())["training"]
    assert training["budget"]["planned_epochs"] == 1 and training["examples_per_epoch"] == 8


def test_holdout_warning_says_what_can_be_calibrated():
    assert holdout_warning(0, 0.01) is None and holdout_warning(100, 0.01) is None
    message = holdout_warning(16, 0.01)
    assert "only 16 held-out normal images" in message and "1/16 = 6.2%" in message
    assert "hold out at least 100 images" in message


def test_train_window_gives_square_training_crops(parts_folder, tmp_path):
    paths = sorted((parts_folder / "train" / "good").glob("*.png"))
    texture = resolve_preset(None, "parts", paths).preset
    method = METHODS["nsa-logistic"]
    config = TrainConfig(data=parts_folder, out=tmp_path, image_size=128)
    assert choose_transform(config, texture, paths, method).crop_hw == (96, 160)  # 7/8 of (96, 192), to 32 px
    given = dataclasses.replace(config, train_window=64)
    assert choose_transform(given, texture, paths, method).crop_hw == (64, 64)
    assert choose_transform(given, texture.replace(kind="object"), paths, method).crop_hw == (64, 64)
    with pytest.raises(ValueError, match="--train-window is the whole protocol's; preset mvtec/bottle uses"):
        choose_transform(given, get_preset("mvtec/bottle"), paths, method)
    with pytest.raises(ValueError, match="train_window and tile exclude each other"):
        dataclasses.replace(config, train_window=64, tile=96)
    with pytest.raises(ValueError, match=r"--train-window 32 gives 32 x 32-px training crops, too small .* choose a "
                                          r"larger --train-window"):  # 6% patches need 67 px
        train(TrainConfig(data=parts_folder, out=tmp_path / "r", train_window=32, **TINY))


def test_tiles_need_the_whole_image_protocol(parts_folder, tmp_path):
    with pytest.raises(ValueError, match="tile needs the whole-image protocol"):
        TrainConfig(data=parts_folder, out=tmp_path, protocol="paper", tile=64)
    with pytest.raises(ValueError, match="tile 256 px is larger than the images"):
        train(TrainConfig(data=parts_folder, out=tmp_path / "r", tile=256, **TINY))
    assert read_image(parts_folder / "train" / "good" / "000.png").shape == (*SHAPE, 1)
