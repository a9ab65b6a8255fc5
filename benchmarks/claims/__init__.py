"""Claim modules: each ``benchmarks/claims/<topic>.py`` registers its claims with ``@claim``.

Modules are imported by `load_all()`; import peers and heavy dependencies inside claim
functions so that listing claims stays cheap.
"""

from __future__ import annotations

import importlib
import pkgutil


def load_all() -> list[str]:
    """Import every claim module in this package; return their names."""
    names = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
            names.append(info.name)
    return names
