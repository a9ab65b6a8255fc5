"""Argument checks used across the zoo: `bilevel`'s public validators, so that errors read the same."""

from __future__ import annotations

from bilevel.checks import check_choice, check_int, check_real

__all__ = ["check_choice", "check_int", "check_real"]
