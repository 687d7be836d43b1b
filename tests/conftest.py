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
# Bauer's autoencoder (``ssae``), each trained for one short epoch on the bundled bottle sample.

# The paper protocol: nsad export handles its square geometry only so far.
DEPLOY_TINY = dict(protocol="paper", batch_size=8, workers=0, progress=False, holdout=0.125, epochs=1,
                   examples_per_epoch=8, seed=1)
DEPLOY_RUNS = {
    "nsa-logistic": dict(image_size=80),  # NSA's smallest patches need a 67-px input
    "cutpaste-3way": dict(image_size=64, options={"stride_px": 32}),  # a 4 x 4 patch grid on the 56-px input
    "ssae": dict(image_size=64, options={"base_channels": 4}),
}


@pytest.fixture(scope="session")
def deploy_root(tmp_path_factory):
    return tmp_path_factory.mktemp("deploy")


@pytest.fixture(scope="session")
def trained(deploy_root):
    """method -> a lazily trained tiny run folder."""
    from nsad.data.folder import sample_data_path
    from nsad.pipeline import TrainConfig, train

    cache: dict = {}

    def get(method: str):
        if method not in cache:
            cache[method] = train(TrainConfig(data=sample_data_path(), out=deploy_root / method, method=method,
                                              **{**DEPLOY_TINY, **DEPLOY_RUNS[method]}))
        return cache[method]

    return get


@pytest.fixture(scope="session")
def exported(deploy_root, trained):
    """method -> a lazily exported model folder of its tiny run (through the command line)."""
    from nsad.cli import main

    cache: dict = {}

    def get(method: str):
        if method not in cache:
            out = deploy_root / f"{method}-model"
            assert main(["export", "--run", str(trained(method)), "--out", str(out)]) == 0
            cache[method] = out
        return cache[method]

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
