"""Deployment runtime: an exported nsad model scored with numpy, OpenCV and ONNX Runtime only (no torch).

``nsad export --run RUN --out DIR`` writes ``DIR/model.onnx`` and ``DIR/deploy.json``
(:mod:`nsad.pipeline.export`); :class:`Inferencer` scores images with them using the same pre- and
post-processing functions as the torch :class:`~nsad.pipeline.scoring.Scorer`;
:mod:`nsad.deploy.service` serves it over HTTP (``nsad serve``).
"""

from nsad.deploy.inferencer import Inferencer
from nsad.deploy.spec import DeployFormatError, DeploySpec, read_spec

__all__ = ["DeployFormatError", "DeploySpec", "Inferencer", "read_spec"]
