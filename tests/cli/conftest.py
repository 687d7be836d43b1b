"""The real command line in a subprocess, a tiny trained run shared by all tests, and file snapshots."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
TINY = dict(image_size=80, batch_size=8, examples_per_epoch=8, holdout=0.125, workers=0, progress=False,
            checkpoint_every=1)
"""The smallest run that trains every part: 14 + 2 held-out bundled bottle images at 80 px, one step per epoch."""
TINY_ARGS = ["--image-size", "80", "--batch-size", "8", "--holdout", "0.125", "--workers", "0", "--no-progress"]


@dataclass
class Result:
    status: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


def nsad(*args: object, cwd: Path | None = None, timeout: float = 600, env: dict | None = None) -> Result:
    """Run ``python -m nsad ARGS`` with this checkout's sources."""
    environment = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
                   "PYTHONWARNINGS": "default", **(env or {})}
    done = subprocess.run([sys.executable, "-m", "nsad", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=environment)
    return Result(done.returncode, done.stdout, done.stderr)


def assert_refused(result: Result, command: str, *fragments: str, status: int = 2) -> str:
    """One line on stderr, ``nsad COMMAND: error: ...`` naming every fragment; no traceback; the exit status."""
    assert "Traceback" not in result.err + result.out, result.err
    assert result.status == status, (result.status, result.err)
    assert len(result.err_lines) == 1, result.err
    line = result.err_lines[0]
    assert line.startswith(f"nsad {command}: error: "), line
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    return line


def snapshot(*roots: Path) -> dict[str, str]:
    """Every file and folder below ``roots``: path -> sha256 of its bytes (``dir`` for folders)."""
    found = {}
    for root in roots:
        if root.is_file():
            found[str(root)] = hashlib.sha256(root.read_bytes()).hexdigest()
            continue
        for path in sorted(root.rglob("*")) if root.exists() else ():
            found[str(path)] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return found


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    from nsad.data.folder import sample_data_path

    return sample_data_path()


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, sample_dir) -> Path:
    """One tiny nsa-logistic run on the bundled sample, trained once per test session (shared by xdist workers)."""
    shared = tmp_path_factory.getbasetemp().parent
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
