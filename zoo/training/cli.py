"""Command lines generated from typed configuration dataclasses.

Every field of a config dataclass becomes one ``--field-name`` option whose type, choices and default come
from the field, and whose help text comes from the field's ``metadata["help"]`` or, failing that, from the
class docstring's ``Attributes:`` entry (``name: text``). Every default is printed in ``--help``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import types
import typing
from typing import Any

__all__ = ["dataclass_arguments", "dataclass_from_args", "default_threads", "field_help"]


def default_threads() -> int:
    """Torch intra-op threads when ``--threads`` is not given: ``$OMP_NUM_THREADS`` if set, else 1."""
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    if not value:
        return 1
    try:
        n = int(value)
    except ValueError:
        raise ValueError(f"OMP_NUM_THREADS must be a positive integer, got {value!r}") from None
    if n < 1:
        raise ValueError(f"OMP_NUM_THREADS must be a positive integer, got {value!r}")
    return n


def field_help(cls: type) -> dict[str, str]:
    """``{field: text}`` from the ``Attributes:`` section of ``cls``'s docstring (``a, b: text`` names
    several fields; indented lines continue an entry)."""
    doc = cls.__doc__ or ""
    out: dict[str, str] = {}
    if "Attributes:" not in doc:
        return out
    names: list[str] = []
    for line in doc.split("Attributes:", 1)[1].splitlines():
        m = re.match(r"^\s{4,8}([A-Za-z_][\w, ]*):\s+(.*)$", line)
        if m and all(n.strip().isidentifier() for n in m.group(1).split(",")):
            names = [n.strip() for n in m.group(1).split(",")]
            for n in names:
                out[n] = m.group(2).strip()
        elif line.strip() and names:
            for n in names:
                out[n] += " " + line.strip()
        elif not line.strip() and out:
            names = []
    return out


def _unwrap(tp: Any) -> tuple[Any, bool]:
    """``(X, optional)`` for ``X | None``."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else tp), True
    return tp, False


def dataclass_arguments(
    parser: argparse.ArgumentParser | Any,
    cls: type,
    defaults: Any = None,
    *,
    skip: tuple[str, ...] = (),
    choices: dict[str, tuple[Any, ...]] | None = None,
) -> None:
    """Add one option per field of dataclass ``cls`` to ``parser``.

    Args:
        defaults: an instance of ``cls`` whose values are the defaults (e.g. a preset); default ``cls()``.
        skip: fields not to expose.
        choices: allowed values per field (``metadata["choices"]`` also works).
    """
    inst = defaults if defaults is not None else cls()
    hints = typing.get_type_hints(cls)
    docs = field_help(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.init:
            continue
        tp, optional = _unwrap(hints[f.name])
        default = getattr(inst, f.name)
        text = (f.metadata.get("help") or docs.get(f.name) or f.name.replace("_", " ")).rstrip(".")
        kw: dict[str, Any] = {"dest": f.name, "default": default}
        allowed = (choices or {}).get(f.name) or f.metadata.get("choices")
        if allowed:
            kw["choices"] = list(allowed)
        origin = typing.get_origin(tp)
        if tp is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif origin in (tuple, list):
            args = [a for a in typing.get_args(tp) if a is not Ellipsis]
            kw["type"] = args[0] if args else str
            fixed = origin is tuple and Ellipsis not in typing.get_args(tp)
            kw["nargs"] = len(args) if fixed else "+"
            if "metavar" in f.metadata:
                kw["metavar"] = f.metadata["metavar"]
        elif tp in (int, float, str):
            kw["type"] = tp
        else:
            kw["type"] = str
        if default is None:
            shown = "none"
        elif isinstance(default, (tuple, list)):
            shown = " ".join(map(str, default))
        else:
            shown = str(default)
        suffix = " (default: {})".format(shown.replace("%", "%%"))
        if optional and default is not None and "'none'" not in text:
            suffix += "; 'none' for none"
        if optional:
            base = kw.get("type", str)
            kw["type"] = lambda s, base=base: None if s.lower() == "none" else base(s)
        parser.add_argument("--" + f.name.replace("_", "-"), help=text + suffix, **kw)


def dataclass_from_args(cls: type, args: argparse.Namespace, **overrides: Any) -> Any:
    """An instance of ``cls`` from the parsed options (tuples restored), with ``overrides`` on top."""
    hints = typing.get_type_hints(cls)
    kw: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if not f.init or not hasattr(args, f.name):
            continue
        v = getattr(args, f.name)
        tp, _ = _unwrap(hints[f.name])
        if typing.get_origin(tp) is tuple and isinstance(v, list):
            v = tuple(v)
        kw[f.name] = v
    kw.update(overrides)
    return cls(**kw)
