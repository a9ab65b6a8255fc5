"""Multi-objective optimization: gradient aggregators, a multi-objective backward, layer selection and
Objective Soups recipes.

```python
from bilevel.moo import MGDA, CAGrad, PCGrad, MoDo
d = MGDA()(G); w = MGDA().weights(G)
```
"""

from bilevel.moo._base import Aggregator
from bilevel.moo._simplex import min_norm_weights, project_simplex
from bilevel.moo.backward import BackwardResult, backward
from bilevel.moo.cagrad import CAGrad, cagrad_weights
from bilevel.moo.layer_selection import (
    LayerSelection,
    SelectionPlan,
    group_by_module,
    layer_scores,
    select_layers,
)
from bilevel.moo.mgda import MGDA, mgda_weights
from bilevel.moo.modo import MoDo, modo_step
from bilevel.moo.pcgrad import PCGrad, pcgrad_weights
from bilevel.moo.recipes import Product, Recipe, bilevel_recipe, flat_recipe, multilevel_recipe

__all__ = [
    "MGDA",
    "Aggregator",
    "BackwardResult",
    "CAGrad",
    "LayerSelection",
    "MoDo",
    "PCGrad",
    "Product",
    "Recipe",
    "SelectionPlan",
    "backward",
    "bilevel_recipe",
    "cagrad_weights",
    "flat_recipe",
    "group_by_module",
    "layer_scores",
    "mgda_weights",
    "min_norm_weights",
    "modo_step",
    "multilevel_recipe",
    "pcgrad_weights",
    "project_simplex",
    "select_layers",
]
