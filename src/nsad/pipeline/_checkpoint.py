"""Checkpoints that are never half written and never run code: Lightning's checkpoint I/O, made safe."""

from __future__ import annotations

import os
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lightning.pytorch.plugins.io import TorchCheckpointIO


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write each checkpoint atomically; read checkpoints with ``torch.load(weights_only=True)``.

    Saving goes to a temporary file beside the checkpoint, flushed to disk and renamed over it: an
    interrupted save leaves the previous checkpoint intact, so ``--resume`` always finds a complete
    file. Loading only accepts tensors and plain Python values (what nsad's checkpoints hold), so a
    checkpoint from elsewhere cannot execute code when it is resumed.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None) -> None:
        """Save ``checkpoint`` to ``path`` through a temporary file and a rename."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(handle)
        try:
            super().save_checkpoint(checkpoint, temporary, storage_options)
            with open(temporary, "rb+") as file:
                os.fsync(file.fileno())
            os.replace(temporary, path)
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)

    def load_checkpoint(self, path: str | os.PathLike, map_location: Callable | None = lambda storage, loc: storage,
                        weights_only: bool | None = None) -> dict[str, Any]:
        """Load a checkpoint without unpickling code (``weights_only`` is always True).

        Raises:
            ValueError: if the file needs more than weights-only loading (it holds pickled objects
                that would run code), or is not a checkpoint at all; the message names the file.
        """
        try:
            return super().load_checkpoint(path, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError:
            raise ValueError(f"checkpoint {path} holds more than tensors and plain values; nsad loads "
                             "checkpoints without running code, so it cannot resume from this one") from None
        except (RuntimeError, EOFError, OSError) as error:
            if isinstance(error, FileNotFoundError):
                raise
            raise ValueError(f"checkpoint {path} cannot be read ({' '.join(str(error).split())[:200]}); "
                             "it is not a complete torch checkpoint") from None
