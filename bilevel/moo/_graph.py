"""Find the trainable leaves a loss reaches (the task-specific parameters
[`bilevel.moo.backward()`][bilevel.moo.backward]
infers when ``task_params`` is not given, as torchjd's ``mtl_backward`` does)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor


def reached_leaves(roots: Sequence[Tensor], exclude: Sequence[Tensor]) -> list[Tensor]:
    """Leaf tensors that require grad and that some of ``roots`` depends on, minus ``exclude``.

    Walks the autograd graph from the roots' ``grad_fn`` (each node once); the leaves are the variables of
    its ``AccumulateGrad`` nodes. The order is the order of discovery, so it is the same on every rank
    that builds the same graph (which ``torch.distributed`` averaging relies on).
    """
    skip = {id(p) for p in exclude}
    found: dict[int, Tensor] = {}
    seen: set[int] = set()
    stack = [r.grad_fn for r in reversed(roots) if r.grad_fn is not None]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        leaf = getattr(node, "variable", None)
        if isinstance(leaf, Tensor):
            if id(leaf) not in skip and id(leaf) not in found:
                found[id(leaf)] = leaf
            continue
        stack.extend(nxt for nxt, _ in reversed(node.next_functions) if nxt is not None)
    return list(found.values())
