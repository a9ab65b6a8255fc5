"""``python -m zoo.recipes RECIPE [options]``: run a recipe from the command line."""

from __future__ import annotations

import sys
from collections.abc import Callable

from zoo.recipes.cav_mae import main as cav_mae_main
from zoo.recipes.cli import main as bl_just_main
from zoo.recipes.equilibrium import main as equilibrium_main
from zoo.recipes.granite import main as granite_main
from zoo.recipes.joint_stt_tts import main as joint_stt_tts_main
from zoo.recipes.objective_soups import main as objective_soups_main
from zoo.recipes.srs import main as srs_main

#: The recipes and their entry points (``--help`` after the name shows each one's options).
RECIPES: dict[str, Callable[[list[str]], int]] = {
    "bl_just": bl_just_main,
    "equilibrium": equilibrium_main,
    "granite": granite_main,
    "srs": srs_main,
    "objective_soups": objective_soups_main,
    "joint_stt_tts": joint_stt_tts_main,
    "cav_mae": cav_mae_main,
}

USAGE = f"usage: python -m zoo.recipes {{{','.join(RECIPES)}}} [options]  (--help after the name)"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    if argv[0] not in RECIPES:
        print(f"unknown recipe {argv[0]!r}; the recipes are: {', '.join(RECIPES)}", file=sys.stderr)
        print(USAGE, file=sys.stderr)
        return 2
    return RECIPES[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
