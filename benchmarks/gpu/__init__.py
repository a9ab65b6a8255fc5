"""Device checks: scripts run by hand on a CUDA machine (CI has no GPU). Each prints JSON lines.

``python benchmarks/gpu/moo_check.py`` and ``python benchmarks/gpu/algorithms_check.py``.
"""
