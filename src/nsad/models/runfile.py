"""A trained run on disk: ``model.safetensors`` (weights) beside ``run.json`` (how to rebuild and score).

``run.json`` holds a :class:`RunMetadata`: the kind of model (:data:`MODEL_KINDS`: the NSA paper's
encoder-decoder, CutPaste's classifier or Bauer's autoencoder), the network's configuration, options
its scoring needs, the method and preset it was trained with, the preprocessing that test images
need (resize, crop, normalisation), the scoring rule, an optional decision threshold and the
versions that wrote it. Both files are written
atomically (temporary file in the same folder, fsync, ``os.replace``), weights first, so a folder
with a ``run.json`` always has complete weights beside it. :func:`load_run` checks everything and
names the file and the problem when something is wrong.

Format versions: version 1 (nsad before the other model kinds) holds AnomalyNet runs only and has
no ``model``, ``model_options`` or ``heatmap_scale`` keys; version 2 adds them (``heatmap_scale`` is
optional: version 2 files written before it existed read as None); version 3 adds ``geometry`` (the
whole-image protocol, :class:`nsad.data.transforms.FrameConfig`). All are read; runs of the paper's
protocol are written as version 2, whole-image runs as version 3.
A model kind may keep more files in the run folder (CutPaste's density estimator); the code that
scores that kind reads them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

import nsad
from nsad._checks import check_choice
from nsad.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from nsad.models._config import finite_floats
from nsad.models.cutpaste import CutPasteConfig, CutPasteNet
from nsad.models.net import LABEL_KINDS, AnomalyNet, NetConfig
from nsad.models.ssae import SSAEConfig, SSAENet
from nsad.viz.scale import HeatmapScale

FORMAT = "nsad-run"
FORMAT_VERSION = 2
SUPPORTED_FORMAT_VERSIONS: tuple[int, ...] = (1, 2, 3)
METADATA_NAME = "run.json"
WEIGHTS_NAME = "model.safetensors"

MODEL_KINDS: dict[str, tuple[type, type[nn.Module]]] = {
    "anomaly-net": (NetConfig, AnomalyNet),
    "cutpaste": (CutPasteConfig, CutPasteNet),
    "ssae": (SSAEConfig, SSAENet),
}
"""Model kind -> (config class, network class). ``anomaly-net`` is the NSA paper's encoder-decoder
(every segmentation method), ``cutpaste`` CutPaste's classifier, ``ssae`` Bauer's autoencoder."""
DEFAULT_MODEL = "anomaly-net"
VERSION_2_KEYS: tuple[str, ...] = ("model", "model_options", "heatmap_scale")
"""Keys that format version 1 does not have."""
VERSION_3_KEYS: tuple[str, ...] = ("geometry",)
"""Keys that format versions 1 and 2 do not have."""


class RunFormatError(ValueError):
    """A run folder or one of its files is not what nsad wrote (raised with the file's path)."""


def _pair(name: str, value: Any, allow_none: bool = True) -> tuple[int, int] | None:
    if value is None and allow_none:
        return None
    if (
        isinstance(value, str)
        or not isinstance(value, Sequence)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        raise ValueError(
            f"{name} must be (height, width) with positive ints{' or None' if allow_none else ''}, "
            f"got {value!r}"
        )
    return (int(value[0]), int(value[1]))


def _floats(name: str, value: Any, length: int) -> tuple[float, ...]:
    floats = finite_floats(value, length)
    if floats is None:
        raise ValueError(f"{name} must hold {length} finite numbers (one per input channel), got {value!r}")
    return floats


@dataclass(frozen=True)
class RunMetadata:
    """What ``run.json`` records: everything needed to rebuild the network and score new images.

    Attributes:
        method: the method the model was trained with, e.g. ``nsa-logistic`` or ``cutpaste-3way``.
        net: the architecture: a :class:`NetConfig` (its ``label_kind`` decides the final
            activation), :class:`CutPasteConfig` or :class:`SSAEConfig`, as ``model`` says.
        preset: the preset's name, e.g. ``mvtec/bottle``.
        preset_values: the preset's values as used (a JSON object), so later changes to the preset
            table do not change what the run means.
        resize_hw: (height, width) test images are resized to before cropping, or None for none.
        crop_hw: (height, width) of the centre crop the network sees at test time, or None.
        mean: per-channel mean subtracted after scaling intensities to [0, 1].
        std: per-channel standard deviation divided by after that.
        score_rule: how a map becomes an image score, e.g. ``mean`` (the paper's), ``max``,
            ``topk:0.01``; interpreted by the scoring code.
        threshold: image-score threshold for a normal/anomalous decision, or None.
        training: free-form record of the training run (epochs, seed, batch size, precision...);
            informative only, never needed to score.
        model: the model kind, a key of :data:`MODEL_KINDS` (version 1 files: always ``anomaly-net``).
        model_options: what scoring this kind needs besides the weights (a JSON object, e.g.
            CutPaste's patch size and stride); empty for ``anomaly-net``.
        heatmap_scale: the run's colour scale and region threshold for heatmaps (a
            :class:`nsad.viz.HeatmapScale` as a JSON object), fixed by ``nsad train`` from the
            held-out normal maps; None for runs without holdout or written before it existed
            (drawn with :func:`nsad.viz.fallback_scale`). Display only, never needed to score.
        geometry: the whole-image protocol's frame, crops and tiles
            (:meth:`nsad.data.transforms.FrameConfig.to_dict`; format version 3), or empty for the
            paper's protocol, which ``resize_hw`` and ``crop_hw`` describe.
        nsad_version: version of nsad that wrote the run.
        torch_version: version of torch that wrote the run.
        format: always ``nsad-run``; marks the file as an nsad run.
        format_version: version of this schema.
    """

    method: str
    net: NetConfig | CutPasteConfig | SSAEConfig
    preset: str
    preset_values: Mapping[str, Any]
    resize_hw: tuple[int, int] | None
    crop_hw: tuple[int, int] | None
    mean: tuple[float, ...]
    std: tuple[float, ...]
    score_rule: str = "mean"
    threshold: float | None = None
    training: Mapping[str, Any] = field(default_factory=dict)
    model: str = DEFAULT_MODEL
    model_options: Mapping[str, Any] = field(default_factory=dict)
    heatmap_scale: Mapping[str, Any] | None = None
    geometry: Mapping[str, Any] = field(default_factory=dict)
    nsad_version: str = nsad.__version__
    torch_version: str = torch.__version__
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        for name in ("method", "preset", "score_rule", "nsad_version", "torch_version", "model"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty string, got {value!r}")
        check_choice("model", self.model, MODEL_KINDS)
        config_type = MODEL_KINDS[self.model][0]
        if not isinstance(self.net, config_type):
            raise TypeError(f"net must be a {config_type.__name__} for model {self.model!r}, "
                            f"got {type(self.net).__name__}")
        if self.model == DEFAULT_MODEL:
            check_choice("label_kind", self.net.label_kind, LABEL_KINDS)
        for name in ("preset_values", "training", "model_options", "geometry"):
            if not isinstance(getattr(self, name), Mapping):
                raise TypeError(f"{name} must be a mapping, got {type(getattr(self, name)).__name__}")
        if self.heatmap_scale is not None:
            object.__setattr__(self, "heatmap_scale", HeatmapScale.from_dict(self.heatmap_scale).to_dict())
        object.__setattr__(self, "resize_hw", _pair("resize_hw", self.resize_hw))
        object.__setattr__(self, "crop_hw", _pair("crop_hw", self.crop_hw))
        channels = self.net.in_channels
        object.__setattr__(self, "mean", _floats("mean", self.mean, channels))
        object.__setattr__(self, "std", _floats("std", self.std, channels))
        if min(self.std) <= 0:
            raise ValueError(f"std must be positive, got {self.std!r}")
        if self.threshold is not None:
            if (
                isinstance(self.threshold, bool)
                or not isinstance(self.threshold, (int, float))
                or not math.isfinite(self.threshold)
            ):
                raise ValueError(f"threshold must be a finite number or None, got {self.threshold!r}")
            object.__setattr__(self, "threshold", float(self.threshold))
        if self.format != FORMAT:
            raise ValueError(f"format must be {FORMAT!r}, got {self.format!r}")
        if self.format_version not in SUPPORTED_FORMAT_VERSIONS:
            raise ValueError(
                f"format_version {self.format_version!r} is not supported by nsad {nsad.__version__}; "
                f"it reads versions {list(SUPPORTED_FORMAT_VERSIONS)} (a newer nsad may read it)"
            )
        if self.format_version == 1 and (self.model != DEFAULT_MODEL or self.model_options):
            raise ValueError(f"format_version 1 holds {DEFAULT_MODEL} runs without model_options; "
                             f"a {self.model!r} run needs format_version {FORMAT_VERSION}")
        if self.format_version < 3 and self.geometry:
            raise ValueError("a geometry (the whole-image protocol) needs format_version 3")

    @property
    def label_kind(self) -> str:
        """``bounded`` (maps in (0, 1): AnomalyNet's sigmoid) or ``continuous`` (maps >= 0 on no fixed scale).

        CutPaste's maps (Mahalanobis distances) and Bauer's (smoothed reconstruction errors, small
        fractions of the intensity range) are ``continuous``.
        """
        return self.net.label_kind if self.model == DEFAULT_MODEL else "continuous"

    @property
    def in_channels(self) -> int:
        """Number of image channels the network takes."""
        return self.net.in_channels

    @property
    def normalization(self) -> str:
        """How test images are normalised for the network, read from ``mean`` and ``std``.

        ``imagenet`` for ImageNet's RGB statistics (:data:`~nsad.data.transforms.IMAGENET_MEAN`,
        :data:`~nsad.data.transforms.IMAGENET_STD`), ``unit`` for mean 0 and standard deviation 1
        per channel (the [0, 1] intensities as they are): the two that ``nsad train`` writes.

        Raises:
            ValueError: for other statistics (the message gives them and the accepted ones).
        """
        channels = self.net.in_channels
        if self.mean == (0.0,) * channels and self.std == (1.0,) * channels:
            return "unit"
        if channels == 3 and all(
            math.isclose(value, float(reference), rel_tol=0, abs_tol=1e-7)
            for value, reference in zip((*self.mean, *self.std), (*IMAGENET_MEAN, *IMAGENET_STD), strict=True)
        ):
            return "imagenet"
        raise ValueError(
            f"mean {list(self.mean)} and std {list(self.std)} are neither ImageNet's statistics "
            f"({IMAGENET_MEAN.tolist()}, {IMAGENET_STD.tolist()}) nor 0 and 1 per channel"
        )

    def replace(self, **changes: Any) -> RunMetadata:
        """Return a copy with ``changes`` applied (validated like a new instance)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict: tuples as lists, the network config as a nested object."""
        data: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if (self.format_version == 1 and f.name in VERSION_2_KEYS
                    or self.format_version < 3 and f.name in VERSION_3_KEYS):
                continue
            if f.name == "heatmap_scale" and self.heatmap_scale is None:  # optional: left out when absent
                continue
            value = getattr(self, f.name)
            if f.name == "net":
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            data[f.name] = value
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunMetadata:
        """Build metadata from :meth:`to_dict`'s output (a parsed ``run.json``).

        Version 1 data (no ``model`` key) is read as an ``anomaly-net`` run.

        Raises:
            ValueError: for a format that is not ``nsad-run``, an unsupported ``format_version``,
                unknown or missing keys (``model`` and ``model_options`` are unknown in version 1),
                an unknown model kind, or invalid values.
            TypeError: if ``data`` or ``net`` is not a mapping.
        """
        if not isinstance(data, Mapping):
            raise TypeError(f"run metadata must be a JSON object, got {type(data).__name__}")
        if data.get("format") != FORMAT:
            raise ValueError(f"not an nsad run: 'format' is {data.get('format')!r}, expected {FORMAT!r}")
        version = data.get("format_version")
        if version not in SUPPORTED_FORMAT_VERSIONS:
            raise ValueError(
                f"format_version {version!r} is not supported by nsad {nsad.__version__}; it reads "
                f"versions {list(SUPPORTED_FORMAT_VERSIONS)} (a newer nsad may read it)"
            )
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if version == 1:
            fields = {name: f for name, f in fields.items() if name not in VERSION_2_KEYS}
        if version < 3:
            fields = {name: f for name, f in fields.items() if name not in VERSION_3_KEYS}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ValueError(f"unknown keys {unknown} in run metadata; accepted keys are {sorted(fields)}")
        required = [
            name
            for name, f in fields.items()
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        missing = [name for name in required if name not in data]
        if missing:
            raise ValueError(f"run metadata lacks required keys {missing}")
        values = dict(data)
        if not isinstance(values["net"], Mapping):
            raise TypeError(f"net must be a JSON object, got {type(values['net']).__name__}")
        model = values.get("model", DEFAULT_MODEL)
        check_choice("model", model, MODEL_KINDS)
        values["net"] = MODEL_KINDS[model][0].from_dict(values["net"])
        return cls(**values)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open directories; the replace is still atomic there
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically: a temporary file in the same folder, fsync, rename.

    Readers see either the old file or the complete new one, never a partial write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def save_run(folder: str | Path, net: nn.Module, metadata: RunMetadata) -> Path:
    """Save ``net``'s weights as safetensors and ``metadata`` as JSON into ``folder``.

    Args:
        folder: the run folder; created if needed; existing run files are replaced.
        net: the trained network (any device, any memory format), of ``metadata.model``'s class.
        metadata: the run's metadata; its ``net`` must equal ``net.config``.

    Returns:
        The folder.

    Raises:
        ValueError: if ``net`` is not the network class of ``metadata.model`` or ``metadata.net``
            differs from ``net.config``.
    """
    network_type = MODEL_KINDS[metadata.model][1]
    if not isinstance(net, network_type):
        raise ValueError(
            f"a {metadata.model!r} run holds a {network_type.__name__}, got {type(net).__name__}"
        )
    if metadata.net != net.config:
        raise ValueError(f"metadata.net {metadata.net} does not describe the network to save ({net.config})")
    folder = Path(folder)
    tensors = {name: tensor.detach().to("cpu").contiguous() for name, tensor in net.state_dict().items()}
    header = {"format": FORMAT, "format_version": str(metadata.format_version)}
    write_atomic(folder / WEIGHTS_NAME, save_safetensors(tensors, metadata=header))
    text = json.dumps(metadata.to_dict(), indent=2, sort_keys=False, allow_nan=False) + "\n"
    write_atomic(folder / METADATA_NAME, text.encode("utf-8"))
    return folder


def read_metadata(folder: str | Path) -> RunMetadata:
    """Read and check ``folder/run.json``.

    Raises:
        FileNotFoundError: if ``folder`` or its ``run.json`` does not exist.
        RunFormatError: if ``run.json`` is not valid JSON or not valid nsad run metadata.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"run folder {str(folder)!r} does not exist or is not a folder")
    path = folder / METADATA_NAME
    if not path.is_file() and ((folder / "checkpoints").is_dir() or (folder / "config.json").is_file()):
        try:
            data = json.loads((folder / "config.json").read_text())["data"]
        except (OSError, ValueError, KeyError, TypeError):
            data = "DATA"
        raise FileNotFoundError(
            f"{str(folder)!r} is an unfinished nsad run: its training stopped before writing {METADATA_NAME}; "
            f"finish it with: nsad train --data {data} --out {folder} --resume"
        )
    if not path.is_file():
        raise FileNotFoundError(
            f"{str(folder)!r} is not an nsad run: it has no {METADATA_NAME} "
            f"(an nsad run holds {METADATA_NAME} and {WEIGHTS_NAME}, written by 'nsad train')"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RunFormatError(f"{str(path)!r} is not valid JSON: {error}") from error
    try:
        return RunMetadata.from_dict(data)
    except (TypeError, ValueError) as error:
        raise RunFormatError(f"{str(path)!r}: {error}") from error


@dataclass(frozen=True)
class LoadedRun:
    """A run read back by :func:`load_run`: the network (eval mode) and its metadata."""

    net: nn.Module
    metadata: RunMetadata
    folder: Path

    @property
    def normalization(self) -> str:
        """How test images are normalised for the network: ``run.json``'s (:attr:`RunMetadata.normalization`).

        Raises:
            RunFormatError: naming ``run.json`` when its ``mean`` and ``std`` are neither ImageNet's nor 0 and 1.
        """
        try:
            return self.metadata.normalization
        except ValueError as error:
            raise RunFormatError(f"{str(self.folder / METADATA_NAME)!r}: {error}") from error


def load_run(folder: str | Path, device: str | torch.device = "cpu") -> LoadedRun:
    """Load a run written by :func:`save_run`, checking the metadata against the weights.

    Args:
        folder: the run folder holding ``run.json`` and ``model.safetensors``.
        device: where to put the network.

    Returns:
        The network of ``metadata.model``'s class in eval mode on ``device``, its metadata and the folder.

    Raises:
        FileNotFoundError: if the folder, ``run.json`` or ``model.safetensors`` is missing.
        RunFormatError: if ``run.json`` is invalid, ``model.safetensors`` is corrupt, or the
            weights do not fit the network the metadata describes (missing, unexpected or
            mis-shaped tensors, all listed).
    """
    metadata = read_metadata(folder)
    path = Path(folder) / WEIGHTS_NAME
    if not path.is_file():
        raise FileNotFoundError(f"run {str(folder)!r} has {METADATA_NAME} but no weights file {str(path)!r}")
    try:
        tensors = load_safetensors(path.read_bytes())
    except (SafetensorError, ValueError, RuntimeError) as error:
        raise RunFormatError(f"{str(path)!r} is not a readable safetensors file: {error}") from error

    net = MODEL_KINDS[metadata.model][1](metadata.net)
    expected = net.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    mismatched = sorted(
        f"{name}: file {tuple(tensors[name].shape)} vs network {tuple(expected[name].shape)}"
        for name in set(expected) & set(tensors)
        if tensors[name].shape != expected[name].shape
    )
    if missing or unexpected or mismatched:
        problems = []
        for label, items in (
            ("missing tensors", missing),
            ("unexpected tensors", unexpected),
            ("shape mismatches", mismatched),
        ):
            if items:
                shown = ", ".join(items[:5]) + (f", ... ({len(items)} in all)" if len(items) > 5 else "")
                problems.append(f"{label}: {shown}")
        raise RunFormatError(
            f"{str(path)!r} does not match the network described in {METADATA_NAME} "
            f"({metadata.net}): " + "; ".join(problems)
        )
    net.load_state_dict(tensors, strict=True)
    return LoadedRun(net=net.to(device).eval(), metadata=metadata, folder=Path(folder))
