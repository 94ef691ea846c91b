"""Runs the official ONNX node test cases through ``onyx.InferenceSession``.

Each kernel family's tests select the cases whose every node is one of its operators; the full
backend suite (tests/conformance) runs them all through onnx's own runner as well.
"""

from __future__ import annotations

import functools

import numpy as np
import onnx
import onnx.backend.test.case.node as node_cases
from onnx import numpy_helper

import onyx
from onyx.runtime.kernels import lookup


@functools.cache
def all_node_cases():
    """Every official node test case (name -> case), generated in-process from the onnx package."""
    return {case.name: case for case in node_cases.collect_testcases(None)}


def cases_for(op_types: set[str]) -> list:
    """Names of the node cases whose every node has an op type in ``op_types``."""
    return sorted(
        name
        for name, case in all_node_cases().items()
        if all(n.op_type in op_types for n in case.model.graph.node)
    )


def bind(op_type: str, opset: int = 28, domain: str = "", **attrs):
    """A kernel ready to call on inputs, bound as the session binds it (for direct unit tests)."""
    impl = lookup(domain, op_type, opset)
    assert impl is not None, f"no kernel for {op_type} at opset {opset}"
    return impl(**attrs) if isinstance(impl, type) else functools.partial(impl, **attrs)


def call(op_type: str, opset: int, *inputs, **attrs):
    """Run one kernel directly on ``inputs``."""
    return bind(op_type, opset, **attrs)(*inputs)


def _as_numpy(value):
    if isinstance(value, onnx.TensorProto):
        return numpy_helper.to_array(value)
    return value


def run_model(model: onnx.ModelProto, inputs: list) -> list:
    session = onyx.InferenceSession(model.SerializeToString())
    names = [v.name for v in session.model.graph.inputs]
    return session.run(None, {n: _as_numpy(v) for n, v in zip(names, inputs)})


def _compare(name: str, got, expected, rtol: float, atol: float) -> None:
    expected = _as_numpy(expected)
    if expected is None or isinstance(expected, list | dict):
        assert type(got) is type(expected), f"{name}: got {type(got)}, expected {type(expected)}"
        if isinstance(expected, list):
            assert len(got) == len(expected), (
                f"{name}: sequence length {len(got)} != {len(expected)}"
            )
            for g, e in zip(got, expected):
                _compare(name, g, e, rtol, atol)
        return
    assert isinstance(got, np.ndarray), f"{name}: output is {type(got)}, not an ndarray"
    assert got.dtype == expected.dtype, f"{name}: dtype {got.dtype} != expected {expected.dtype}"
    assert got.shape == expected.shape, f"{name}: shape {got.shape} != expected {expected.shape}"
    if expected.dtype == object:
        assert got.tolist() == expected.tolist()
    elif expected.dtype.kind in "fc":
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol)
    else:
        np.testing.assert_allclose(
            got.astype(np.float64), expected.astype(np.float64), rtol=rtol, atol=atol
        )


def check_case(name: str) -> None:
    """Run one official node case and compare with its expected outputs using its tolerances."""
    case = all_node_cases()[name]
    for inputs, expected in case.data_sets:
        got = run_model(case.model, inputs)
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            _compare(name, g, e, case.rtol, case.atol)
