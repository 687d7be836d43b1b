"""The synthetic tasks by name: ``get_task("nsa-logistic", "mvtec/bottle")``.

Every task is a frozen dataclass called as ``task(image, source, rng=..., image_object=None,
source_object=None) -> Synth`` with a ``label_kind`` of ``bounded`` (labels in [0, 1], trained with
BCE) or ``continuous`` (8-bit intensity levels, unbounded; the training set divides them by 255
and the network learns them with MSE).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from nsad._checks import check_choice
from nsad.synth._types import Synth
from nsad.synth.presets import Preset, get_preset


class Task(Protocol):
    """What every synthetic task provides."""

    label_kind: str

    def __call__(self, image: np.ndarray, source: np.ndarray, *, rng: np.random.Generator,
                 image_object: np.ndarray | None = None, source_object: np.ndarray | None = None) -> Synth:
        """Make one synthetic example from ``image`` (and ``source``) with the generator ``rng``."""
        ...


def _nsa(label: str, paste: bool = False) -> Callable[..., Task]:
    def build(preset: Preset, **options: Any) -> Task:
        from nsad.synth.nsa import NSA

        return NSA(preset, label=label, paste=paste, **options)
    return build


def _fpi(poisson: bool) -> Callable[..., Task]:
    def build(preset: Preset, **options: Any) -> Task:
        from nsad.synth.fpi import FPI

        return FPI(preset, poisson=poisson, **options)
    return build


def _cutpaste(preset: Preset, **options: Any) -> Task:
    from nsad.synth.cutpaste import CutPaste

    return CutPaste(**options)


def _cutpaste_scar(preset: Preset, **options: Any) -> Task:
    from nsad.synth.cutpaste import CutPasteScar

    return CutPasteScar(**options)


def _elastic(preset: Preset, **options: Any) -> Task:
    from nsad.synth.elastic import ElasticPatch

    return ElasticPatch(**options)


TASKS: dict[str, Callable[..., Task]] = {
    "nsa-logistic": _nsa("logistic"),
    "nsa-binary": _nsa("binary"),
    "nsa-continuous": _nsa("continuous"),
    "cutpaste": _cutpaste,
    "cutpaste-scar": _cutpaste_scar,
    "cutpaste-nsa": _nsa("binary", paste=True),
    "fpi": _fpi(poisson=False),
    "pii": _fpi(poisson=True),
    "elastic": _elastic,
}
"""Task name -> factory ``(preset, **options) -> Task``. CutPaste, its scar variant and the elastic
patches have their own samplers and ignore the preset."""


def get_task(name: str, preset: Preset | str = "default", **options: Any) -> Task:
    """Build the task registered as ``name`` with ``preset`` (a :class:`Preset` or a preset name).

    Raises:
        ValueError: for an unknown task or preset name (the message lists the choices) or option.
    """
    check_choice("task", name, TASKS)
    if isinstance(preset, str):
        preset = get_preset(preset)
    try:
        return TASKS[name](preset, **options)
    except TypeError as error:
        raise ValueError(f"task {name!r} does not accept the options {sorted(options)}: {error}") from None
