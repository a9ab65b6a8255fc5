"""``python -m zoo.recipes RECIPE [options]``: run a recipe (``bl_just``) from the command line."""

from __future__ import annotations

import sys

RECIPES = ("bl_just",)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in RECIPES:
        print(f"usage: python -m zoo.recipes {{{','.join(RECIPES)}}} [options]  (--help after the name)")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    from zoo.recipes.cli import main as bl_just_main

    return bl_just_main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
