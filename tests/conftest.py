"""Shared fixtures: the real MVTec AD bottle data beside the repository, skipped when absent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
BOTTLE_256 = SHARED_DATA / "mvtec_ad_256" / "bottle"
BOTTLE_FULLRES = SHARED_DATA / "mvtec_ad_fullres_xs" / "bottle"


@pytest.fixture(scope="session")
def bottle_dir() -> Path:
    if not BOTTLE_256.is_dir():
        pytest.skip(f"real MVTec AD bottle data not found at {BOTTLE_256}")
    return BOTTLE_256


@pytest.fixture(scope="session")
def bottle_images(bottle_dir: Path) -> list[np.ndarray]:
    from nsad.data.io import read_image

    return [read_image(path) for path in sorted((bottle_dir / "train" / "good").glob("*.png"))[:12]]
