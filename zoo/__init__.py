"""zoo: speech and audio-visual models, a generated multilingual corpus, features, tokenizers and metrics.

``zoo`` uses :mod:`bilevel` through its public API only, as any user would.
"""

__all__: list[str] = []
