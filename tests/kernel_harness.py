"""Runs the official ONNX node test cases against onyx kernels.

Temporary driver used while the InferenceSession is being built: it walks a test model's nodes in
order and calls the registered kernels directly, with attributes parsed by the `onnx` package (an
oracle in tests only). It will be switched to drive ``onyx.InferenceSession``.
"""

from __future__ import annotations

import functools

import numpy as np
import onnx
import onnx.backend.test.case.node as node_cases
from onnx import helper, numpy_helper

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


def _attribute(attr: onnx.AttributeProto):
    value = helper.get_attribute_value(attr)
    if attr.type == onnx.AttributeProto.TENSOR:
        return numpy_helper.to_array(value)
    if attr.type == onnx.AttributeProto.STRING:
        return value.decode()
    if attr.type == onnx.AttributeProto.STRINGS:
        return [v.decode() for v in value]
    if attr.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
        raise NotImplementedError("subgraph attributes need the InferenceSession")
    if attr.type == onnx.AttributeProto.TENSORS:
        return [numpy_helper.to_array(v) for v in value]
    return value


def _as_numpy(value):
    if isinstance(value, onnx.TensorProto):
        return numpy_helper.to_array(value)
    return value


def run_model(model: onnx.ModelProto, inputs: list) -> list:
    opsets = {o.domain or "": o.version for o in model.opset_import}
    env = {i.name: _as_numpy(v) for i, v in zip(model.graph.input, inputs)}
    for init in model.graph.initializer:
        env[init.name] = numpy_helper.to_array(init)
    for node in model.graph.node:
        impl = lookup(node.domain, node.op_type, opsets.get(node.domain or "", 1))
        if impl is None:
            raise NotImplementedError(f"no kernel for {node.op_type} at opset {opsets}")
        attrs = {a.name: _attribute(a) for a in node.attribute}
        args = [env[name] if name else None for name in node.input]
        fn = impl(**attrs) if isinstance(impl, type) else functools.partial(impl, **attrs)
        result = fn(*args)
        results = result if isinstance(result, tuple) else (result,)
        for name, value in zip(node.output, results):
            if name:
                env[name] = value
    return [env[o.name] for o in model.graph.output]


def check_case(name: str) -> None:
    """Run one official node case and compare with its expected outputs using its tolerances."""
    case = all_node_cases()[name]
    for inputs, expected in case.data_sets:
        got = run_model(case.model, inputs)
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            e = _as_numpy(e)
            assert isinstance(g, np.ndarray), f"{name}: output is {type(g)}, not an ndarray"
            assert g.dtype == e.dtype, f"{name}: dtype {g.dtype} != expected {e.dtype}"
            assert g.shape == e.shape, f"{name}: shape {g.shape} != expected {e.shape}"
            if e.dtype == object:
                assert g.tolist() == e.tolist()
            elif e.dtype.kind in "fc":
                np.testing.assert_allclose(g, e, rtol=case.rtol, atol=case.atol)
            else:
                np.testing.assert_allclose(
                    g.astype(np.float64), e.astype(np.float64), rtol=case.rtol, atol=case.atol
                )
