"""Normal images in, synthetic anomalous training examples with pixel labels out.

Tasks by name (:data:`TASKS`, :func:`get_task`), per-class presets (:func:`get_preset`), Poisson
blending with OpenCV's semantics (:func:`seamless_clone`) and a dataset that makes every example
reproducible from (seed, epoch, index) (:class:`SynthDataset`).
"""

from nsad.synth._blend import BLEND_BACKENDS, seamless_clone
from nsad.synth._types import Box, PatchRecord, Synth
from nsad.synth.dataset import SynthDataset
from nsad.synth.nsa import NSA, PatchPlacementWarning
from nsad.synth.objects import object_mask
from nsad.synth.presets import PRESET_NAMES, Preset, estimate_background, get_preset, preset_from_folder
from nsad.synth.registry import TASKS, Task, get_task

__all__ = ["BLEND_BACKENDS", "NSA", "PRESET_NAMES", "TASKS", "Box", "PatchPlacementWarning", "PatchRecord",
           "Preset", "Synth", "SynthDataset", "Task", "estimate_background", "get_preset", "get_task",
           "object_mask", "preset_from_folder", "seamless_clone"]
