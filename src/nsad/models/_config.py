"""JSON round trips for the frozen config dataclasses of the models (stored in ``run.json``)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, TypeVar

ConfigT = TypeVar("ConfigT", bound="JsonConfig")


def finite_floats(value: Any, length: int) -> tuple[float, ...] | None:
    """``value`` as ``length`` floats when it is a sequence of that many finite real numbers, else None."""
    if isinstance(value, str) or not isinstance(value, Sequence) or len(value) != length:
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value):
        return None
    return tuple(float(v) for v in value)


class JsonConfig:
    """Mixin for frozen dataclasses: ``to_dict`` (tuples as lists) and a strict ``from_dict``."""

    config_name: ClassVar[str] = "config"
    """How error messages name the config, e.g. ``network``."""

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[ConfigT], data: Mapping[str, Any]) -> ConfigT:
        """Build a config from :meth:`to_dict`'s output.

        Raises:
            ValueError: if ``data`` has keys that are not fields, or a field's value is invalid.
        """
        fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - fields)
        if unknown:
            raise ValueError(f"unknown {cls.config_name} config keys {unknown}; accepted keys are {sorted(fields)}")
        return cls(**dict(data))
