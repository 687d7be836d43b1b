"""Settings written once: a config dataclass's fields carry their command-line help, type and flag.

A field declared with :func:`option` is documented, parsed and defaulted from one place:
:func:`add_options` adds it to an ``argparse`` parser (``--field-name``, its help with the
field's default, its parser), :func:`values_from_args` reads it back by field name, and
:func:`field_docs` writes the class's ``Attributes`` section from the same help. The parsers
(:func:`integer`, :func:`number`, :func:`yes_no`, :func:`key_values`) refuse bad values while the
command line is read, before torch is loaded, naming what is accepted.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

OPTION = "option"
"""The key of a field's :class:`Option` in its ``dataclasses.field`` metadata."""


def integer(minimum: int) -> Callable[[str], int]:
    """An ``argparse`` type: a whole number of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number of at least {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a whole number of at least {minimum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def number(low: float, high: float = math.inf, *, low_open: bool = False) -> Callable[[str], float]:
    """An ``argparse`` type: a finite number in ``[low, high]`` (``(low, high]`` with ``low_open``)."""
    if math.isfinite(high):
        bounds = f"in {'(' if low_open else '['}{low:g}, {high:g}]"
    elif math.isfinite(low):
        bounds = f"{'above' if low_open else 'at least'} {low:g}"
    else:
        bounds = "(finite)"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number {bounds}, got {text!r}") from None
        if not math.isfinite(value) or value < low or value > high or (low_open and value == low):
            raise argparse.ArgumentTypeError(f"expected a number {bounds}, got {text}")
        return value

    parse.__name__ = f"number {bounds}"
    return parse


def yes_no(text: str) -> bool:
    """An ``argparse`` type: ``yes`` or ``no``."""
    if text not in ("yes", "no"):
        raise argparse.ArgumentTypeError(f"give yes or no, got {text!r}")
    return text == "yes"


def key_values(items: Sequence[str] | None) -> dict[str, Any]:
    """``["KEY=VALUE", ...]`` -> dict; values are read as JSON when they parse (1, 0.5, [0.8, 1.2], null).

    Raises:
        ValueError: for an item without ``=`` or a repeated key.

    Example:
        >>> key_values(["objective=1", "layer=head", "brightness=[0.8, 1.2]"])
        {'objective': 1, 'layer': 'head', 'brightness': [0.8, 1.2]}
    """
    options: dict[str, Any] = {}
    for item in items or ():
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--option takes KEY=VALUE, got {item!r}")
        if key in options:
            raise ValueError(f"--option {key} is given twice")
        try:
            options[key] = json.loads(text)
        except json.JSONDecodeError:
            options[key] = text
    return options


@dataclasses.dataclass(frozen=True)
class Option:
    """How a config field appears on the command line.

    Attributes:
        help: what the setting does; the command's help and the class's docstring.
        parse: the ``argparse`` type of its value (None: the text as it is).
        metavar: the value's name in the usage line.
        choices: the accepted values, checked while parsing.
        default_text: what the default means, shown instead of its value (for None defaults
            resolved later, e.g. "the preset's").
        default_note: shown after the default's value, e.g. "the paper's".
        flag: the option's flag; default ``--`` and the field's name with dashes.
        action: ``store_true``, ``store_false``, ``store_const`` (with ``const``) or ``append``.
        const: the value ``store_const`` stores.
        convert: applied to the parsed value before it goes into the config (e.g. ``append``'s
            list to a dict).
        shared: False for a setting only ``nsad train`` takes (``compare`` has its own
            ``--methods``, ``--seeds`` and ``--out``).
        doc: the docstring's text where the flag's help does not describe the field (``--no-progress``).
    """

    help: str
    parse: Callable[[str], Any] | None = None
    metavar: str | None = None
    choices: Sequence[str] | None = None
    default_text: str | None = None
    default_note: str | None = None
    flag: str | None = None
    action: str | None = None
    const: Any = None
    convert: Callable[[Any], Any] | None = None
    shared: bool = True
    doc: str | None = None


def option(default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING, **spec: Any) -> Any:
    """A dataclass field with its command-line :class:`Option` (``spec``) in its metadata."""
    return dataclasses.field(default=default, default_factory=default_factory, metadata={OPTION: Option(**spec)})


def _options(cls: type) -> Iterable[tuple[dataclasses.Field, Option]]:
    for f in dataclasses.fields(cls):
        if OPTION in f.metadata:
            yield f, f.metadata[OPTION]


def _default_text(f: dataclasses.Field, spec: Option) -> str | None:
    if spec.default_text is not None:
        return spec.default_text
    if spec.action is not None or f.default in (dataclasses.MISSING, None):
        return None
    return f"{f.default}, {spec.default_note}" if spec.default_note else str(f.default)


def add_options(parser: argparse.ArgumentParser, cls: type, *, shared_only: bool = False,
                help_overrides: dict[str, str] | None = None) -> None:
    """Add ``cls``'s option fields to ``parser``, each with the field's name as its destination.

    Args:
        parser: the command's parser.
        cls: a dataclass whose fields are declared with :func:`option`.
        shared_only: only the fields with ``Option.shared`` (``compare`` adds its own others).
        help_overrides: field name -> help text for this command instead of the field's.
    """
    for f, spec in _options(cls):
        if shared_only and not spec.shared:
            continue
        text = (help_overrides or {}).get(f.name, spec.help)
        shown = _default_text(f, spec)
        kwargs: dict[str, Any] = {"dest": f.name, "help": f"{text} (default: {shown})" if shown else text}
        if spec.action is not None:
            kwargs["action"] = spec.action
            if spec.action == "store_const":
                kwargs["const"] = spec.const
        if spec.action not in ("store_true", "store_false", "store_const"):
            kwargs.update({key: value for key, value in (("type", spec.parse), ("metavar", spec.metavar),
                                                          ("choices", spec.choices)) if value is not None})
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            kwargs["required"] = True
        elif f.default is not dataclasses.MISSING:
            kwargs["default"] = f.default
        parser.add_argument(spec.flag or "--" + f.name.replace("_", "-"), **kwargs)


def flag_of(cls: type, name: str) -> str | None:
    """The command-line flag of ``cls``'s option field ``name`` (``--no-progress`` for ``progress``), or None."""
    for f, spec in _options(cls):
        if f.name == name:
            return spec.flag or "--" + name.replace("_", "-")
    return None


def values_from_args(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """``cls``'s option fields that ``args`` holds, by field name, each through its ``convert``."""
    values = {}
    for f, spec in _options(cls):
        if hasattr(args, f.name):
            value = getattr(args, f.name)
            values[f.name] = spec.convert(value) if spec.convert is not None else value
    return values


def field_docs(cls: type) -> str:
    """An ``Attributes:`` docstring section from the option fields' help."""
    lines = ["Attributes:"]
    for f, spec in _options(cls):
        if spec.default_text is not None:
            shown = spec.default_text
        elif f.default is not dataclasses.MISSING:
            shown = f"{f.default!r}, {spec.default_note}" if spec.default_note else repr(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            shown = repr(f.default_factory())
        else:
            lines.append(f"    {f.name}: {spec.doc or spec.help} (required).")
            continue
        lines.append(f"    {f.name}: {spec.doc or spec.help} (default: {shown}).")
    return "\n".join(lines)
