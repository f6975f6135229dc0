"""Command-line flags derived from dataclass fields: one source for each default and its help.

A field becomes a flag when its metadata has ``help`` (see `model.config.cli`); its type, its
default and its help text come from the field, so none is written twice. Conventions:

* ``snake_case`` -> ``--kebab-case`` (metadata ``flag`` overrides the name);
* a bool that defaults to True becomes ``--no-NAME``, one that defaults to False ``--NAME``;
* ``list[...]`` takes comma-separated values (metadata ``nargs="*"``: space-separated);
* metadata ``type`` converts the string, ``choices`` restricts it.

With ``suppress`` a flag that is not given leaves no attribute at all, so a caller can apply
only what was asked for on top of another base (``ModelConfig.tiny()`` or a checkpoint's).
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable
from typing import Any


def add_fields(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type,
               prefix: str = "", suppress: bool = False) -> None:
    """One flag per field of dataclass ``cls`` whose metadata has ``help``; each stores into
    ``prefix + field name``."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if "help" in f.metadata:
            parser.add_argument(flag_of(f), dest=prefix + f.name,
                                **_options(f, hints[f.name], suppress))


def flag_of(f: dataclasses.Field) -> str:
    """The flag a field is given on the command line."""
    if "flag" in f.metadata:
        return "--" + f.metadata["flag"]
    name = f.name.replace("_", "-")
    return f"--no-{name}" if f.default is True else f"--{name}"


def field_values(namespace: argparse.Namespace, cls: type, prefix: str = "") -> dict[str, Any]:
    """The parsed values of ``cls``'s fields (only those present, see ``suppress``)."""
    found = vars(namespace)
    return {f.name: found[prefix + f.name] for f in dataclasses.fields(cls)
            if prefix + f.name in found}


def _options(f: dataclasses.Field, hint: Any, suppress: bool) -> dict[str, Any]:
    default = _default(f)
    required = default is dataclasses.MISSING
    options: dict[str, Any] = {"help": f.metadata["help"].replace("%", "%%")}
    if hint is bool:
        options["action"] = "store_false" if default else "store_true"
    else:
        options.update(_value_options(f, hint))
        if not required and "default" not in options["help"] and "(none:" not in options["help"]:
            options["help"] += f" (default: {_shown(default)})"
    if required:
        options["required"] = True
    else:
        options["default"] = argparse.SUPPRESS if suppress else default
    return options


def _value_options(f: dataclasses.Field, hint: Any) -> dict[str, Any]:
    base = _without_none(hint)
    options: dict[str, Any] = {}
    if typing.get_origin(base) is list:
        (item,) = typing.get_args(base)
        if f.metadata.get("nargs"):
            options.update(nargs=f.metadata["nargs"], type=item)
        else:
            options.update(type=_comma_list(item), metavar="A,B,...")
    else:
        options.update(type=f.metadata.get("type", base), metavar=f.name.upper())
    if "choices" in f.metadata:
        options["choices"] = f.metadata["choices"]
    return options


def _default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def _without_none(hint: Any) -> Any:
    """``X | None`` -> ``X``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def _comma_list(item: type) -> Callable[[str], list]:
    def parse(text: str) -> list:
        return [item(part) for part in text.split(",") if part != ""]
    parse.__name__ = f"comma-separated {item.__name__}"
    return parse


def _shown(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)
