"""Hypergradients of bilevel problems: implicit (CG, Neumann) and unrolled differentiation.

The inner problem is $w^*(\\lambda) = \\arg\\min_w g(w, \\lambda)$, the outer objective
$F(\\lambda) = f(w^*(\\lambda), \\lambda)$; losses are plain functions of lists of tensors.
See ``docs/algorithms/hypergrad.md`` for the accuracy of each estimator against its cost.
"""

from bilevel.hypergrad._implicit import implicit
from bilevel.hypergrad._solvers import CGInfo, cg, cg_info, neumann
from bilevel.hypergrad._unrolled import unrolled

__all__ = ["CGInfo", "cg", "cg_info", "implicit", "neumann", "unrolled"]
