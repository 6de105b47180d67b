"""Frozen dataclass configs exposed as command-line options.

Every paper package describes a setting as one frozen dataclass whose fields carry their help
text in `field(metadata={"help": ...})` and whose `__post_init__` rejects bad values with a
`ConfigError`. `add_dataclass_arguments` turns such a class into argparse options, so `--help`
documents every field, and `dataclass_from_args` builds the validated config from a profile
(the defaults) plus whatever the user changed on the command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any


class ConfigError(ValueError):
    """A config value is invalid; the message says which, what was expected and why."""


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _base_type(annotation: Any) -> tuple[Any, bool]:
    """The scalar type of a field and whether it is a sequence (tuple[...] / list[...])."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _base_type(args[0])
    if origin in (tuple, list):
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        return (args[0] if args else str), True
    if origin is typing.Literal:
        return type(typing.get_args(annotation)[0]), False
    return annotation, False


def add_dataclass_arguments(
    parser: argparse.ArgumentParser, cls: type, defaults: Any | None = None
) -> argparse.ArgumentParser:
    """Add one `--field-name` option per field of dataclass `cls`.

    Options default to `argparse.SUPPRESS` so that `dataclass_from_args` can tell what the
    user set; the help text shows the default from `defaults` (a profile) or the class.
    """
    hints = typing.get_type_hints(cls)
    group = parser.add_argument_group(f"{cls.__name__} options")
    for f in dataclasses.fields(cls):
        if not f.init or f.metadata.get("cli", True) is False:
            continue
        default = getattr(defaults, f.name) if defaults is not None else _field_default(f)
        typ, is_seq = _base_type(hints[f.name])
        help_text = f.metadata.get("help", "")
        help_text = f"{help_text} (default: {default})" if help_text else f"default: {default}"
        kwargs: dict[str, Any] = {"default": argparse.SUPPRESS, "help": help_text, "dest": f.name}
        choices = (
            typing.get_args(hints[f.name])
            if typing.get_origin(hints[f.name]) is typing.Literal
            else None
        )
        if typ is bool and not is_seq:
            group.add_argument(_option(f.name), action=argparse.BooleanOptionalAction, **kwargs)
            continue
        if choices:
            kwargs["choices"] = choices
        if is_seq:
            kwargs["nargs"] = "+"
        group.add_argument(_option(f.name), type=typ if typ in (int, float, str) else str, **kwargs)
    return parser


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def dataclass_from_args(cls: type, args: argparse.Namespace, base: Any | None = None) -> Any:
    """Build `cls` from `base` (or the class defaults) with the options the user gave."""
    hints = typing.get_type_hints(cls)
    given = {}
    for f in dataclasses.fields(cls):
        if f.name in vars(args):
            value = getattr(args, f.name)
            _, is_seq = _base_type(hints[f.name])
            given[f.name] = tuple(value) if is_seq and isinstance(value, list) else value
    try:
        return dataclasses.replace(base, **given) if base is not None else cls(**given)
    except TypeError as exc:
        raise ConfigError(f"invalid {cls.__name__}: {exc}") from exc


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a dataclass config (tuples become lists)."""
    return dataclasses.asdict(cfg)
