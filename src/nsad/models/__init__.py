"""Image -> anomaly map: the NSA paper's network, losses, Lightning module and run files.

The baselines have the same shape in their own packages: :mod:`nsad.models.cutpaste` (network,
Lightning module, Gaussian density, patch embeddings) and :mod:`nsad.models.ssae` (network,
objectives, heatmap, Lightning module).

Importing this package imports torch (``nsad`` itself and ``nsad.metrics`` do not).
"""

from nsad.models.loss import bce_loss, mse_loss, segmentation_loss
from nsad.models.module import NSAModule
from nsad.models.net import LABEL_KINDS, AnomalyNet, NetConfig, count_parameters, logits_to_anomaly_map
from nsad.models.runfile import (
    METADATA_NAME,
    WEIGHTS_NAME,
    LoadedRun,
    RunFormatError,
    RunMetadata,
    load_run,
    read_metadata,
    save_run,
)

__all__ = [
    "LABEL_KINDS",
    "METADATA_NAME",
    "WEIGHTS_NAME",
    "AnomalyNet",
    "LoadedRun",
    "NSAModule",
    "NetConfig",
    "RunFormatError",
    "RunMetadata",
    "bce_loss",
    "count_parameters",
    "load_run",
    "logits_to_anomaly_map",
    "mse_loss",
    "read_metadata",
    "save_run",
    "segmentation_loss",
]
