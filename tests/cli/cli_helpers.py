"""The bad-input suite's helpers: the real command line in a subprocess, its refusals, file snapshots.

A module of its own (not ``conftest``) so that test modules import it by a name no other folder uses.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
TINY = dict(image_size=96, batch_size=8, examples_per_epoch=8, holdout=0.125, workers=0, progress=False,
            checkpoint_every=1)
"""The smallest run that trains every part: 14 + 2 held-out bundled bottle images at 96 px, one step per epoch."""
TINY_ARGS = ["--image-size", "96", "--batch-size", "8", "--holdout", "0.125", "--workers", "0", "--no-progress"]


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
