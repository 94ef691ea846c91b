"""Control flow, sequences and optionals: the official node cases that use them, end to end."""

from __future__ import annotations

import numpy as np
import pytest
from kernel_harness import all_node_cases, check_case

import onyx
from onyx.runtime.kernels import KERNELS

CONTROL = {
    "If", "Loop", "Scan", "SequenceMap", "SequenceConstruct", "SequenceEmpty", "SequenceAt",
    "SequenceInsert", "SequenceErase", "SequenceLength", "SplitToSequence", "ConcatFromSequence",
    "Optional", "OptionalHasElement", "OptionalGetElement",
}  # fmt: skip
SUPPORTED = {op for _, op in KERNELS}


def _all_ops(graph):
    for node in graph.node:
        yield node.op_type
        for attr in node.attribute:
            if attr.g.node:
                yield from _all_ops(attr.g)
            for g in attr.graphs:
                yield from _all_ops(g)


CASES = sorted(
    name
    for name, case in all_node_cases().items()
    if CONTROL & set(_all_ops(case.model.graph)) and set(_all_ops(case.model.graph)) <= SUPPORTED
)


def test_every_control_case_is_selected():
    assert len(CASES) >= 55


@pytest.mark.parametrize("name", CASES)
def test_official_node_case(name):
    check_case(name)


def _loop_model(body_op: str, w: str):
    from onyx.text import parse_model

    return parse_model(
        f"""
        <ir_version: 10, opset_import: ["" : 21]>
        g (int64 n, float x) => (float y) {{
            w = Constant <value = {w}> ()
            y = Loop (n, , x) <body = b (int64 i, bool c, float v) => (bool c_out, float v_out) {{
                c_out = Identity (c)
                v_out = {body_op} (v, w)
            }}>
        }}
        """
    )


def test_loop_reads_outer_scope_values():
    session = onyx.InferenceSession(_loop_model("Add", "float {2.0}"))
    (y,) = session.run(None, {"n": np.array(3, np.int64), "x": np.array(1.0, np.float32)})
    assert y == 7.0


def test_failure_inside_a_subgraph_names_the_path():
    session = onyx.InferenceSession(_loop_model("Reshape", "int64[1] {5}"))
    with pytest.raises(onyx.ExecutionError, match=r"Reshape.*Loop.*body"):
        session.run(None, {"n": np.array(2, np.int64), "x": np.array(1.0, np.float32)})
