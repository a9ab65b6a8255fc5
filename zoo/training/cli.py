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
import sys
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

__all__ = [
    "dataclass_arguments",
    "dataclass_from_args",
    "default_threads",
    "field_help",
    "parse_recipe",
    "preset_in",
    "recipe_parser",
]


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


def recipe_parser(
    prog: str,
    cls: type,
    presets: Mapping[str, Any],
    preset: str = "quick",
    *,
    description: str | None = None,
) -> argparse.ArgumentParser:
    """A recipe's command line: ``--preset``, ``--threads``, ``--quiet``, then one option per field of the
    run config ``cls`` with the defaults of ``presets[preset]`` (add recipe-specific options after)."""
    ap = argparse.ArgumentParser(
        prog=prog,
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"Defaults shown are those of --preset {preset}; "
        "give --preset before --help to see another's.",
    )
    ap.add_argument("--preset", choices=sorted(presets), default="quick", help="the scale (default: quick)")
    ap.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: $OMP_NUM_THREADS or 1)"
    )
    ap.add_argument("--quiet", action="store_true", help="no progress bars (default: off)")
    dataclass_arguments(ap, cls, presets[preset])
    return ap


def preset_in(argv: Sequence[str], presets: Mapping[str, Any], default: str = "quick") -> str:
    """The ``--preset`` named in ``argv`` (``default`` when absent or unknown: the full parser then
    rejects an unknown one with the list of choices)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--preset", default=default)
    ns, _ = pre.parse_known_args(list(argv))
    return ns.preset if ns.preset in presets else default


def parse_recipe(
    parser: Callable[[str], argparse.ArgumentParser],
    cls: type,
    presets: Mapping[str, Any],
    argv: Sequence[str] | None = None,
) -> tuple[Any, argparse.Namespace]:
    """Parse ``argv`` (default ``sys.argv[1:]``) with ``parser(preset)``, whose defaults are those of the
    preset it names; return the run config ``cls`` built from it and the namespace. Sets torch's threads
    (``--threads``, else `default_threads()`) and a non-interactive matplotlib backend."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    args_list = list(sys.argv[1:] if argv is None else argv)
    args = parser(preset_in(args_list, presets)).parse_args(args_list)
    threads = getattr(args, "threads", None)
    torch.set_num_threads(threads if threads is not None else default_threads())
    return dataclass_from_args(cls, args), args
