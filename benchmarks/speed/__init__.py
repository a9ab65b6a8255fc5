"""Per-step speed benchmarks, run with ``pytest benchmarks/speed --benchmark-only`` (``make speed``)."""
