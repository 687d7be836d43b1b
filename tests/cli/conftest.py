"""A tiny trained run shared by the bad-input suite (helpers in :mod:`cli_helpers`)."""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path

import pytest
from cli_helpers import SRC, TINY, TINY_ARGS, Result, assert_refused, nsad, snapshot  # noqa: F401


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    from nsad.data.folder import sample_data_path

    return sample_data_path()


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, sample_dir) -> Path:
    """One tiny nsa-logistic run on the bundled sample, trained once per test session (shared by xdist workers)."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # this session's, shared by its workers
    out = shared / "nsad-cli-tiny-run"
    with open(shared / "nsad-cli-tiny-run.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / "run.json").is_file():
            from nsad.pipeline import TrainConfig, train

            shutil.rmtree(out, ignore_errors=True)
            train(TrainConfig(data=sample_dir, out=out, epochs=1, **TINY))
    return out


@pytest.fixture
def data(tmp_path, sample_dir) -> Path:
    """A copy of the bundled sample (MVTec AD layout) that a test may change."""
    return Path(shutil.copytree(sample_dir, tmp_path / "data", ignore=shutil.ignore_patterns("*.txt", "*.md")))


@pytest.fixture
def run_copy(tmp_path, tiny_run) -> Path:
    """A copy of the tiny run that a test may change."""
    return Path(shutil.copytree(tiny_run, tmp_path / "run"))
