"""zoo: speech and audio-visual models, a generated multilingual corpus, features, tokenizers and metrics.

``zoo`` uses `bilevel` through its public API only, as any user would. Both ship in one distribution
(``bilevel``), so ``zoo.__version__`` is ``bilevel.__version__``.
"""

from bilevel import __version__
from zoo.decoding import ctc_greedy, ctc_prefix_beam_search
from zoo.models import DOTA, SAR, ConformerCTC, SARStreamer, build_model

__all__: list[str] = [
    "DOTA",
    "SAR",
    "ConformerCTC",
    "SARStreamer",
    "__version__",
    "build_model",
    "ctc_greedy",
    "ctc_prefix_beam_search",
]
