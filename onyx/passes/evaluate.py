"""The one door from passes into the runtime: run a single node on constant inputs."""

from __future__ import annotations

import numpy as np

from onyx.ir import Function, Graph, Node

#: Operators whose result is not a function of their inputs alone: never evaluated.
NOT_FOLDABLE = frozenset({
    "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
    "Bernoulli", "Dropout",
})  # fmt: skip

_PLANS: dict = {}  # an empty plan that prepares nodes, by opsets and functions


def evaluate(node: Node, inputs: list[np.ndarray | None], opsets: dict[str, int],
             functions: dict[tuple[str, str, str], Function]) -> list[np.ndarray] | None:  # fmt: skip
    """The outputs of ``node`` on ``inputs`` (arrays), or None when it cannot run here."""
    if node.op_type in NOT_FOLDABLE or any(True for _ in node.subgraphs()):
        return None
    from onyx.runtime.plan import Context, Plan  # the runtime loads only when folding runs

    key = (tuple(sorted(opsets.items())), id(functions))
    try:
        plan = _PLANS.get(key)
        if plan is None or plan.context.functions is not functions:
            plan = Plan(Graph(), Context(opsets, functions, optimize=False))
            _PLANS.clear()  # one at a time: it holds the functions of the model being folded
            _PLANS[key] = plan
        fn, captured = plan._prepare(node)
        if captured:
            return None
        with np.errstate(all="ignore"):
            result = fn(*inputs)
    except Exception:  # noqa: BLE001 - a node that fails now fails at run time, with its name
        return None
    results = result if type(result) is tuple else (result,)
    if not all(isinstance(r, np.ndarray | np.generic) for r in results):
        return None
    return [np.asarray(r) for r in results]
