"""bilevel: model-agnostic bilevel, meta-learning and multi-objective optimizers for PyTorch.

Public names are re-exported here; submodules (``bilevel.meta``, ``bilevel.moo``, ``bilevel.sampling``,
``bilevel.hypergrad``, ``bilevel.theory``) are imported on demand.
"""

from bilevel import schedules
from bilevel.schedules import Constant, LinearRamp

__version__ = "0.1.0"

__all__ = [
    "Constant",
    "LinearRamp",
    "__version__",
    "schedules",
]
