"""The MAML family on ``torch.func``: MAML, first-order MAML, Reptile, iMAML, ANIL and Meta-SGD.

Everything works on any ``nn.Module`` through ``torch.func.functional_call``; nothing is
monkeypatched and the model is never modified. See ``docs/algorithms/meta.md``.
"""

from bilevel.meta._adapt import LearningRate, LossFn, Params, adapt, learnable_lrs
from bilevel.meta._batched import adapt_batched
from bilevel.meta._imaml import IMAMLResult, imaml_grad
from bilevel.meta._imaml_batched import imaml_grad_batched
from bilevel.meta._proximal import imaml_adapt_batched
from bilevel.meta._reptile import reptile_grad

__all__ = [
    "IMAMLResult",
    "LearningRate",
    "LossFn",
    "Params",
    "adapt",
    "adapt_batched",
    "imaml_adapt_batched",
    "imaml_grad",
    "imaml_grad_batched",
    "learnable_lrs",
    "reptile_grad",
]
