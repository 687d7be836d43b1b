"""Shared fixtures: the real MVTec AD bottle data beside the repository, skipped when absent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from run_checks import BOTTLE_256, BOTTLE_FULLRES, SHARED_DATA  # noqa: F401


@pytest.fixture(scope="session")
def bottle_dir() -> Path:
    if not BOTTLE_256.is_dir():
        pytest.skip(f"real MVTec AD bottle data not found at {BOTTLE_256}")
    return BOTTLE_256


@pytest.fixture(scope="session")
def bottle_images(bottle_dir: Path) -> list[np.ndarray]:
    from nsad.data.io import read_image

    return [read_image(path) for path in sorted((bottle_dir / "train" / "good").glob("*.png"))[:12]]


# ---- Deployment (tests/deploy): tiny trained runs and their exports, made once per session ----
# One run per model kind an export graph exists for: the NSA paper's encoder-decoder
# (``nsa-logistic``, the graph of every segmentation method), CutPaste (``cutpaste-3way``) and
# Bauer's autoencoder (``ssae``), each trained for one short epoch on the bundled bottle sample
# with the paper's protocol; and two NSA runs of the whole-image protocol on a non-square copy of
# the sample (96 x 128 px): the whole frame, and native-resolution 96-px tiles.

DEPLOY_TINY = dict(batch_size=8, workers=0, progress=False, holdout=0.125, epochs=1, examples_per_epoch=8, seed=1)
DEPLOY_RUNS = {
    "nsa-logistic": dict(method="nsa-logistic", protocol="paper", image_size=80),  # smallest patches: 67-px input
    "cutpaste-3way": dict(method="cutpaste-3way", protocol="paper", image_size=64,
                          options={"stride_px": 32}),  # a 4 x 4 patch grid on the 56-px input
    "ssae": dict(method="ssae", protocol="paper", image_size=64, options={"base_channels": 4}),
    # frame 96 x 160, crops 96 x 128; scored by the max (a one-step model's standardised maps have near-equal means)
    "nsa-whole": dict(method="nsa-logistic", image_size=128, data="wide", score_rule="max"),
    "nsa-tiles": dict(method="nsa-logistic", tile=96, data="wide"),  # native 96 x 128: two tiles, overlap 24
}
"""Deployment test run -> its training settings (``data="wide"``: the non-square sample)."""


def wide_sample(root: Path) -> Path:
    """The bundled sample with every image and mask cut to its middle 96 of 128 rows (96 x 128 px)."""
    from nsad.data.folder import sample_data_path
    from nsad.data.io import read_image, write_image

    source = sample_data_path()
    for path in sorted(source.rglob("*.png")):
        target = root / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_image(target, read_image(path)[16:112])
    return root


@pytest.fixture(scope="session")
def deploy_root(tmp_path_factory):
    return tmp_path_factory.mktemp("deploy")


@pytest.fixture(scope="session")
def deploy_data(deploy_root):
    """Deployment test run -> its data folder (the bundled sample, or its non-square copy)."""
    from nsad.data.folder import sample_data_path

    wide = wide_sample(deploy_root / "wide-sample")
    return lambda name: wide if DEPLOY_RUNS[name].get("data") == "wide" else sample_data_path()


@pytest.fixture(scope="session")
def trained(deploy_root, deploy_data):
    """Deployment test run name (a key of :data:`DEPLOY_RUNS`) -> a lazily trained tiny run folder."""
    from nsad.pipeline import TrainConfig, train

    cache: dict = {}

    def get(name: str):
        if name not in cache:
            settings = {k: v for k, v in DEPLOY_RUNS[name].items() if k != "data"}
            cache[name] = train(TrainConfig(data=deploy_data(name), out=deploy_root / name, **DEPLOY_TINY, **settings))
        return cache[name]

    return get


@pytest.fixture(scope="session")
def exported(deploy_root, trained):
    """Deployment test run name -> a lazily exported model folder of its tiny run (through the command line)."""
    from nsad.cli import main

    cache: dict = {}

    def get(name: str):
        if name not in cache:
            out = deploy_root / f"{name}-model"
            assert main(["export", "--run", str(trained(name)), "--out", str(out)]) == 0
            cache[name] = out
        return cache[name]

    return get


@pytest.fixture(scope="session")
def sample_run(tmp_path_factory) -> Path:
    """A tiny NSA run on the bundled bottle sample (96 px, 2 epochs, 3 of 16 images held out), evaluated
    with its HTML report: shared by the report, heatmap and browser tests."""
    from nsad.data.folder import sample_data_path
    from nsad.pipeline import TrainConfig, evaluate_run, train

    out = tmp_path_factory.mktemp("sample") / "run"
    train(TrainConfig(data=sample_data_path(), out=out, preset="mvtec/bottle", epochs=2, image_size=96, batch_size=8,
                      holdout=0.2, workers=0, progress=False, checkpoint_every=1))
    evaluate_run(out, report=True)
    return out
