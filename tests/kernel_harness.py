"""Runs the official ONNX node test cases through ``onyx.InferenceSession``.

Each kernel family's tests select the cases whose every node is one of its operators; the full
backend suite (tests/conformance) runs them all through onnx's own runner as well.
"""

from __future__ import annotations

import functools

import ml_dtypes
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


def as_numpy(value):
    if isinstance(value, onnx.TensorProto):
        return numpy_helper.to_array(value)
    return value


def run_model(model: onnx.ModelProto, inputs: list) -> list:
    session = onyx.InferenceSession(model.SerializeToString())
    names = [v.name for v in session.model.graph.inputs]
    return session.run(None, {n: as_numpy(v) for n, v in zip(names, inputs)})


#: ml_dtypes' sub-byte integers; every other ml_dtypes type is a float.
SUB_BYTE_INTS = frozenset(
    np.dtype(t) for t in (ml_dtypes.int2, ml_dtypes.uint2, ml_dtypes.int4, ml_dtypes.uint4)
)


def _is_float(dtype: np.dtype) -> bool:
    # ml_dtypes floats have kind "V", except float8_e5m2, which says "f"
    return dtype.kind == "f" or (dtype.kind == "V" and dtype not in SUB_BYTE_INTS)


def widen(a: np.ndarray) -> np.ndarray:
    """``a`` in a numpy type that holds each of its values exactly: int64/uint64/float64/complex128.

    Narrow types (int4/uint4/int2/uint2, float8 kinds, float4/float6, bfloat16, float16) compare
    wrongly or not at all in their own type, so every comparison goes through this first.
    """
    a = np.asarray(a)
    if a.dtype in SUB_BYTE_INTS or a.dtype.kind == "i":
        return a.astype(np.int64)
    if a.dtype.kind == "u":
        return a.astype(np.uint64)
    if a.dtype.kind == "c":
        return a.astype(np.complex128)
    if _is_float(a.dtype):
        return a.astype(np.float64)
    return a  # bool, strings


def undefined_elements(
    model: onnx.ModelProto, inputs: list, index: int, expected
) -> np.ndarray | None:
    """Where output ``index`` of ``model`` has a value the standard leaves undefined (None: nowhere).

    The one rule so far: a single Cast or CastLike from a float input to an integer output is
    undefined wherever the input, truncated toward zero, is NaN, infinite or outside the target's
    range ("fixed point: undefined if OOR" in the Cast documentation). The official cases put such
    values into the float -> int4/uint4/int2/uint2 cases and take their expected outputs from the
    installed ml_dtypes, which changed its answer between releases (0.6 wraps, 0.7 gives 0); onyx's
    own rule is tested in tests/runtime/kernels/test_cast.py.
    """
    graph = model.graph
    expected = as_numpy(expected)
    if len(graph.node) != 1 or not isinstance(expected, np.ndarray):
        return None
    node = graph.node[0]
    if node.op_type not in ("Cast", "CastLike") or node.domain not in ("", "ai.onnx"):
        return None
    if node.input[0] != graph.input[0].name or node.output[0] != graph.output[index].name:
        return None
    x = np.asarray(as_numpy(inputs[0]))
    to = expected.dtype
    if not _is_float(x.dtype) or not (to in SUB_BYTE_INTS or to.kind in "iu"):
        return None
    if x.shape != expected.shape:
        return None
    info = ml_dtypes.iinfo(to)
    with np.errstate(invalid="ignore"):
        t = np.trunc(widen(x))
        # hi + 1 is a power of two, so exact in float64 (int64's max itself is not)
        return ~(np.isfinite(t) & (t >= float(info.min)) & (t < float(info.max + 1)))


def compare(name: str, got, expected, rtol: float, atol: float, undefined=None) -> None:
    """Assert that ``got`` equals ``expected``: integers exactly, floats within rtol/atol.

    Both are widened first (see ``widen``). ``undefined`` (a boolean array shaped like
    ``expected``) marks elements whose value the standard leaves open; they are not compared.
    """
    expected = as_numpy(expected)
    if expected is None or isinstance(expected, list | dict):
        assert type(got) is type(expected), f"{name}: got {type(got)}, expected {type(expected)}"
        if isinstance(expected, list):
            assert len(got) == len(expected), (
                f"{name}: sequence length {len(got)} != {len(expected)}"
            )
            for g, e in zip(got, expected):
                compare(name, g, e, rtol, atol)
        elif isinstance(expected, dict):
            assert got.keys() == expected.keys(), f"{name}: keys {got.keys()} != {expected.keys()}"
            for k in expected:
                compare(f"{name}[{k!r}]", got[k], expected[k], rtol, atol)
        return
    assert isinstance(got, np.ndarray), f"{name}: output is {type(got)}, not an ndarray"
    assert got.dtype == expected.dtype, f"{name}: dtype {got.dtype} != expected {expected.dtype}"
    assert got.shape == expected.shape, f"{name}: shape {got.shape} != expected {expected.shape}"
    if expected.dtype == object:
        assert got.tolist() == expected.tolist(), f"{name}: {got.tolist()} != {expected.tolist()}"
        return
    g, e = widen(got), widen(expected)
    if undefined is not None:
        assert undefined.shape == expected.shape, f"{name}: undefined mask shape"
        assert not undefined.all() or expected.size == 0, f"{name}: no element is defined"
        g, e = g[~undefined], e[~undefined]
    if e.dtype.kind in "fc":
        np.testing.assert_allclose(g, e, rtol=rtol, atol=atol, err_msg=name)
    else:
        np.testing.assert_array_equal(g, e, err_msg=name, strict=True)


def check_case(name: str) -> None:
    """Run one official node case and compare with its expected outputs using its tolerances."""
    case = all_node_cases()[name]
    for inputs, expected in case.data_sets:
        got = run_model(case.model, inputs)
        assert len(got) == len(expected)
        for i, (g, e) in enumerate(zip(got, expected)):
            undefined = undefined_elements(case.model, inputs, i, e)
            compare(name, g, e, case.rtol, case.atol, undefined)
