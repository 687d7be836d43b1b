"""``deploy.json``: everything the deployment runtime needs beside ``model.onnx``, and nothing it has to guess.

Written by ``nsad export`` (:mod:`nsad.pipeline.export`), read by :class:`~nsad.deploy.Inferencer`.
The geometry keys are ``run.json``'s (the preset's ``kind``, ``resize_hw``, ``crop_hw``, its
``geometry`` as ``frame`` for the whole-image protocol, and the channels), turned into the test
transform by the same function the torch scorer uses (:func:`~nsad.data.transforms.test_transform_of`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nsad.data.transforms import FrameConfig, TransformConfig, test_transform_of

FORMAT = "nsad-deploy"
FORMAT_VERSION = 2
SUPPORTED_FORMAT_VERSIONS = (1, 2)
"""Version 2 added ``geometry["frame"]`` (whole frames and tiles); version 1 folders are the paper's protocol."""
SPEC_NAME = "deploy.json"
MODEL_NAME = "model.onnx"
DENSITY_NAME = "density.npz"
MODEL_KINDS = ("anomaly-net", "ssae", "cutpaste")
OUTPUTS = {"anomaly-net": ("map",), "ssae": ("map",), "cutpaste": ("embedding", "patch_embeddings")}
"""The graph's outputs per model kind: maps, or CutPaste's image and patch-grid embeddings."""


class DeployFormatError(ValueError):
    """A model folder or one of its files is not what ``nsad export`` wrote (raised with the file's path)."""


@dataclass(frozen=True)
class DeploySpec:
    """What ``deploy.json`` holds.

    Attributes:
        method: the training method (``nsa-logistic``, ``cutpaste-3way``, ``ssae``...).
        model: the model kind, one of :data:`MODEL_KINDS`.
        geometry: ``{"kind", "resize_hw", "crop_hw", "frame"}`` as ``run.json`` records them
            (``frame``: its ``geometry``, the whole-image protocol's frame and tiles, or None).
        channels: the network's input channels (1: images are converted to gray first).
        normalization: how the graph normalises its [0, 1] input (``imagenet`` or ``unit``); informative.
        input: the graph input's name, dtype, layout and shape (batch dimension dynamic).
        outputs: the graph's output names (:data:`OUTPUTS`).
        score_rule: the run's image score rule.
        threshold: the decision threshold on the image score, or None.
        threshold_calibration: how ``nsad train`` set it (held-out normal images, target FPR), or None.
        regions: defaults of the defect regions (``min_area`` pixels, ``connectivity``).
        cutpaste: CutPaste's patch grid and smoothing (``patch_px``, ``stride_px``, ``sigma_px``) and
            its densities' file, or None for other kinds.
        versions: nsad, torch, onnx, onnxscript and the opset that exported the model, the torch that trained it.
        source: the run folder exported and its training record (informative).
        label_kind: ``bounded`` (maps in (0, 1)) or ``continuous``, as ``run.json`` says.
        heatmap_scale: the run's heatmap colour scale (``run.json``'s), or None.
    """

    method: str
    model: str
    geometry: Mapping[str, Any]
    channels: int
    normalization: str
    input: Mapping[str, Any]
    outputs: tuple[str, ...]
    score_rule: str
    threshold: float | None
    threshold_calibration: Mapping[str, Any] | None = None
    regions: Mapping[str, Any] = field(default_factory=lambda: {"min_area": 1, "connectivity": 8})
    cutpaste: Mapping[str, Any] | None = None
    versions: Mapping[str, Any] = field(default_factory=dict)
    source: Mapping[str, Any] = field(default_factory=dict)
    label_kind: str = "continuous"
    heatmap_scale: Mapping[str, Any] | None = None
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.model not in MODEL_KINDS:
            raise ValueError(f"model must be one of {list(MODEL_KINDS)}, got {self.model!r}")
        object.__setattr__(self, "outputs", tuple(self.outputs))
        if self.outputs != OUTPUTS[self.model]:
            raise ValueError(f"a {self.model!r} model has outputs {list(OUTPUTS[self.model])}, "
                             f"got {list(self.outputs)}")
        if self.model == "cutpaste" and not self.cutpaste:
            raise ValueError("a cutpaste model needs its 'cutpaste' settings (patch_px, stride_px, sigma_px)")
        if self.format != FORMAT or self.format_version not in SUPPORTED_FORMAT_VERSIONS:
            raise ValueError(f"not an nsad deployment of format {FORMAT!r}, versions {list(SUPPORTED_FORMAT_VERSIONS)}"
                             f": format {self.format!r}, version {self.format_version!r}")
        self.transform  # noqa: B018  (checks the geometry)

    @property
    def transform(self) -> TransformConfig | FrameConfig:
        """The test transform (the torch scorer's, from the same keys)."""
        return test_transform_of(self.geometry.get("kind", "object"), self.geometry.get("resize_hw"),
                                 self.geometry.get("crop_hw"), self.channels, self.geometry.get("frame"))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeploySpec:
        """Build from :meth:`to_dict`'s output.

        Raises:
            ValueError: for unknown or missing keys or bad values.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"must be a JSON object, got {type(data).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        required = [n for n, f in fields.items() if f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING]
        missing = [n for n in required if n not in data]
        if unknown or missing:
            raise ValueError(f"unknown keys {unknown}, missing keys {missing}; accepted keys are {sorted(fields)}")
        return cls(**data)


def write_spec(folder: str | Path, spec: DeploySpec) -> Path:
    """Write ``folder/deploy.json``."""
    path = Path(folder) / SPEC_NAME
    path.write_text(json.dumps(spec.to_dict(), indent=2) + "\n", encoding="utf-8")
    return path


def read_spec(folder: str | Path) -> DeploySpec:
    """Read and check ``folder/deploy.json`` (and that ``model.onnx`` is beside it).

    Raises:
        FileNotFoundError: if the folder, ``deploy.json`` or ``model.onnx`` is missing.
        DeployFormatError: if ``deploy.json`` is not valid JSON or not a valid deployment description.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"model folder {str(folder)!r} does not exist or is not a folder")
    path = folder / SPEC_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{str(folder)!r} is not an exported nsad model: it has no {SPEC_NAME} "
                                f"(nsad export --run RUN --out {folder} writes {MODEL_NAME} and {SPEC_NAME})")
    if not (folder / MODEL_NAME).is_file():
        raise FileNotFoundError(f"model folder {str(folder)!r} has {SPEC_NAME} but no {MODEL_NAME}")
    try:
        return DeploySpec.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (UnicodeDecodeError, json.JSONDecodeError, TypeError, ValueError) as error:
        raise DeployFormatError(f"{str(path)!r}: {error}") from error
