"""The run folder's life: made whole or not at all, resumed only as the run it is, written by one process.

- **Creation** (:func:`create_run_folder`): ``config.json`` is written into a hidden folder beside
  ``out`` and the folder is renamed into place, so ``out`` either does not exist or holds the run's
  settings. If training then fails before its first step, :meth:`RunFolder.discard` removes what
  was made (an empty ``out`` the user had made is left empty), so a retry finds nothing in its way.
- **Resume** (:func:`check_resume`): the settings that define the run (method, data, preset,
  sizes, options, seed...) must equal the ones in ``config.json``; only how it is carried out
  (devices, precision, workers, checkpoints, time budget, epochs) may change.
- **Several processes** (``ddp``, one process per device or node): only global rank 0 checks
  and creates the folder and writes into it; the others wait until it exists
  (:func:`wait_for_run_folder`). Lightning's launcher starts the other ranks after rank 0 has
  made the folder; launchers that start all ranks at once (torchrun, SLURM) are covered by the wait.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nsad._options import flag_of
from nsad.config import TrainConfig

CONFIG_FILE = "config.json"

RUNTIME_SETTINGS = frozenset({
    "out", "resume", "accelerator", "devices", "strategy", "num_nodes", "precision", "workers",
    "checkpoint_every", "max_minutes", "progress", "epochs", "data", "category", "verbose",
})
"""``config.json`` keys a resume may change: how the run is carried out, not what it is. ``epochs`` may
grow (train longer); ``data`` and ``category`` may be spelled differently as long as they name the same
folder (``data_folder``, compared) with the same images (``train_images``, ``holdout_images``, compared)."""

DERIVED_SETTINGS = frozenset({"data_folder", "preset_values"})
"""Keys nsad added to ``config.json`` later; a run written before them is not compared on them."""

LEGACY_SETTINGS = {"variant": "paper"}
"""Settings added to ``config.json`` later, with the value a run written before them had."""

OPTION_NAMES = {"data_folder": "--data", "train_images": "--data (training images)",
                "holdout_images": "--holdout (held-out images)", "preset_values": "the preset's values"}
"""How the ``config.json`` keys that are no ``TrainConfig`` field are named in messages."""

RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK")
"""Environment variables multi-process launchers (Lightning, torchrun) set; any non-zero one is a non-zero rank."""

WAIT_SECONDS = 600.0


def is_rank_zero() -> bool:
    """Whether this process is global rank 0 (or the only process), from the launchers' environment variables.

    Read before any process group exists: Lightning's launcher sets ``LOCAL_RANK`` and ``NODE_RANK``
    for the processes it starts, torchrun ``RANK``, SLURM ``SLURM_PROCID`` (when it runs several tasks).
    """
    for name in RANK_VARIABLES:
        if os.environ.get(name, "0").strip() not in ("", "0"):
            return False
    if int(os.environ.get("SLURM_NTASKS", "1") or 1) > 1 and os.environ.get("SLURM_PROCID", "0") != "0":
        return False
    return True


def option_name(setting: str) -> str:
    """The command-line option of a ``TrainConfig`` field (``image_size`` -> ``--image-size``), or a key's name."""
    return flag_of(TrainConfig, setting) or OPTION_NAMES.get(setting, "--" + setting.replace("_", "-"))


def _difference(key: str, was: Any, now: Any) -> str:
    if key == "preset_values" and isinstance(was, dict) and isinstance(now, dict):  # name the ones that changed
        changed = [f"{name} was {was.get(name)!r}, now {now.get(name)!r}" for name in sorted({*was, *now})
                   if was.get(name) != now.get(name)]
        return f"{option_name(key)}: {', '.join(changed)}"
    return f"{option_name(key)} was {was!r}, now {now!r}"


def check_out_folder(out: Path, resume: bool, checkpoint: Path) -> None:
    """Refuse an ``out`` that cannot become a new run folder, or a ``resume`` without a checkpoint.

    Raises:
        FileExistsError: if ``out`` is a file, or a non-empty folder and ``resume`` is not set.
        NotADirectoryError: if a parent of ``out`` is a file.
        FileNotFoundError: if ``resume`` is set and ``checkpoint`` does not exist.
    """
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} is a file; give a folder for the run (a new or an empty one)")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(f"--out {out}: {parent} is a file, so no folder can be made inside it")
            break
    never_started = (out / CONFIG_FILE).is_file() and not checkpoint.is_file() and not (out / "run.json").is_file()
    if never_started:  # left by an nsad before runs were created atomically
        raise FileExistsError(f"run folder {out} holds a run that stopped before its first step ({CONFIG_FILE}, "
                              "no checkpoint): nothing to resume; remove the folder and train again")
    if resume:
        if not checkpoint.is_file():
            raise FileNotFoundError(f"nothing to resume in {out}: {checkpoint} does not exist")
    elif out.is_dir() and any(out.iterdir()):
        raise FileExistsError(f"run folder {out} is not empty; choose a new --out or pass --resume")


@dataclass
class RunFolder:
    """A run folder this process has just created; :meth:`discard` undoes it."""

    path: Path
    existed_empty: bool
    made_parents: tuple[Path, ...]

    def discard(self) -> None:
        """Remove the folder and the parents made for it (an empty folder that was there stays, empty)."""
        shutil.rmtree(self.path, ignore_errors=True)
        if self.existed_empty:
            self.path.mkdir(exist_ok=True)
        for parent in self.made_parents:  # innermost first
            try:
                parent.rmdir()
            except OSError:
                break


def create_run_folder(out: Path, settings: Mapping[str, Any]) -> RunFolder:
    """Create ``out`` holding ``config.json`` in one rename (an empty ``out`` is replaced).

    Raises:
        FileExistsError: if another process has filled ``out`` meanwhile.
    """
    made = []
    for parent in out.parents:
        if parent.is_dir():
            break
        made.append(parent)
    out.parent.mkdir(parents=True, exist_ok=True)
    existed_empty = out.is_dir()
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".new", dir=out.parent))
    try:
        write_config(staging, settings)
        os.replace(staging, out)
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise FileExistsError(f"run folder {out} could not be created ({error.strerror}); "
                              "choose a new --out or pass --resume") from error
    return RunFolder(out, existed_empty, tuple(made))


def write_config(folder: Path, settings: Mapping[str, Any]) -> None:
    """Write ``settings`` as ``folder/config.json`` atomically."""
    from nsad.models.runfile import write_atomic

    write_atomic(folder / CONFIG_FILE, (json.dumps(settings, indent=1) + "\n").encode())


def read_config(folder: Path) -> dict[str, Any]:
    """The settings in ``folder/config.json``.

    Raises:
        ValueError: if the file is missing or not a JSON object (naming the file).
    """
    path = folder / CONFIG_FILE
    try:
        settings = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"cannot resume {folder}: it has a checkpoint but no {CONFIG_FILE} with the run's "
                         "settings, so the checkpoint's run cannot be checked; train into a new --out") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot resume {folder}: {path} is not valid JSON ({error})") from None
    if not isinstance(settings, dict):
        raise ValueError(f"cannot resume {folder}: {path} is not a JSON object")
    return settings


def check_resume(folder: Path, settings: Mapping[str, Any]) -> None:
    """Refuse to resume the run in ``folder`` with settings that make it another run.

    Every key of ``settings`` outside :data:`RUNTIME_SETTINGS` must equal the value in the run's
    ``config.json``; keys the file lacks (settings newer than the run) must hold their default,
    which callers pass as None.

    Raises:
        ValueError: one line naming each differing option with the run's value and this call's.
    """
    saved = {**LEGACY_SETTINGS, **read_config(folder)}
    wanted = json.loads(json.dumps(dict(settings)))
    differ = [_difference(key, saved.get(key), value) for key, value in wanted.items()
              if key not in RUNTIME_SETTINGS and saved.get(key) != value
              and not (key not in saved and (key in DERIVED_SETTINGS or value in (None, False, {}, [])))]
    if differ:
        raise ValueError(f"--resume: the run in {folder} was trained with other settings ({'; '.join(differ)}); "
                         "resume with the run's settings or train a new run into another --out")


def wait_for_run_folder(out: Path, seconds: float = WAIT_SECONDS) -> None:
    """Wait (a non-zero rank) until rank 0 has created ``out/config.json``.

    Raises:
        TimeoutError: if it has not appeared after ``seconds``.
    """
    deadline = time.monotonic() + seconds
    while not (out / CONFIG_FILE).is_file():
        if time.monotonic() > deadline:
            raise TimeoutError(f"rank 0 did not create the run folder {out} within {seconds:.0f} s; "
                               "do all processes see the same file system?")
        time.sleep(0.2)
