"""Results of the synthetic-anomaly engine: boxes, per-patch records and examples."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Box:
    """A pixel box ``[x0, x1) x [y0, y1)``: x is the column, y the row, ends exclusive."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    def slices(self) -> tuple[slice, slice]:
        """Row and column slices of the box, for ``array[box.slices()]``."""
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    def as_list(self) -> list[int]:
        return [self.x0, self.y0, self.x1, self.y1]


@dataclass(frozen=True)
class PatchRecord:
    """What one patch did: where it came from, where it went, how it was scaled and blended.

    Attributes:
        src_box: the box cut from the source image.
        dst_box: the box it covers in the result (after resizing).
        scale: the resize factor ``s`` (eq. 9); 1 where the method does not resize.
        mode: how it was put in: ``normal`` or ``mixed`` (Poisson blending), ``paste``,
            ``interpolate`` (FPI) or ``elastic`` (Bauer's deformation).
        params: method-specific values, e.g. FPI's ``alpha`` or CutPaste's ``angle_deg``.
    """

    src_box: Box
    dst_box: Box
    scale: float
    mode: str
    params: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"src_box": self.src_box.as_list(), "dst_box": self.dst_box.as_list(), "scale": self.scale,
                "mode": self.mode, **self.params}


@dataclass(frozen=True)
class Synth:
    """A synthetic training example.

    Attributes:
        image: (H, W, C) the anomalous image, same dtype and shape as the destination image.
        label: (H, W) float32 pixel label: in [0, 1] for bounded labels, 8-bit intensity levels
            (>= 0) for continuous labels; all zeros if no patch could be placed.
        patches: one record per patch that was put in, in order.
    """

    image: np.ndarray
    label: np.ndarray
    patches: tuple[PatchRecord, ...]
