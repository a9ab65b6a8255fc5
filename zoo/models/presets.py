"""The one preset lookup of the zoo's models: a named frozen config with overrides applied."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, TypeVar

__all__ = ["preset_config"]

C = TypeVar("C")


def preset_config(presets: dict[str, C], preset: str, **overrides: Any) -> C:
    """``presets[preset]`` with ``overrides`` applied (``dataclasses.replace``); a ``ValueError`` lists the
    presets when ``preset`` is unknown and names the field when an override is not one."""
    if preset not in presets:
        raise ValueError(f"preset must be one of {sorted(presets)}, got {preset!r}")
    try:
        return replace(presets[preset], **overrides)  # type: ignore[type-var]
    except TypeError as e:
        raise ValueError(f"bad override for preset {preset!r}: {e}") from None
