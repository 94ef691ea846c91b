"""The official ONNX node test cases through ``onyx.to_torch``: each case's model converted to a
torch module, run on the case's inputs, compared with the expected outputs by the kernel
harness's rules (integers exactly, narrow types widened first). Known failures, each with its
reason, are in expected_failures.py (strict: a case that starts passing must leave the list)."""

from __future__ import annotations

import re

import pytest

torch = pytest.importorskip("torch")

import kernel_harness as kh

from onyx.pytorch import dtypes, to_torch
from pytorch.expected_failures import EXPECTED_FAILURES, RANDOM_OUTPUTS

NAMES = sorted(n for n in kh.all_node_cases() if not any(re.search(p, n) for p in RANDOM_OUTPUTS))


def _params():
    for name in NAMES:
        reason = EXPECTED_FAILURES.get(name)
        marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
        yield pytest.param(name, marks=marks, id=name)


def _to_torch_value(a):
    """A case's input as forward takes it: a tensor, a list of tensors (a sequence) or None."""
    if a is None:
        return None
    if isinstance(a, list):
        return [_to_torch_value(i) for i in a]
    return dtypes.from_numpy(kh.as_numpy(a), widen=False)


def _to_numpy_value(t):
    """A module's output as the case states it: an array, a list of arrays or None."""
    if t is None:
        return None
    if isinstance(t, list | tuple):
        return [_to_numpy_value(i) for i in t]
    return dtypes.to_numpy(t)


def run_case(name: str) -> None:
    """Convert one official case and compare the module's outputs with the expected ones."""
    case = kh.all_node_cases()[name]
    module = to_torch(case.model.SerializeToString())
    for inputs, expected in case.data_sets:
        args = [_to_torch_value(a) for a in inputs]
        got = [_to_numpy_value(t) for t in module(*args)]
        assert len(got) == len(expected), f"{name}: {len(got)} outputs, expected {len(expected)}"
        for i, (g, e) in enumerate(zip(got, expected)):
            undefined = kh.undefined_elements(case.model, inputs, i, e)
            kh.compare(name, g, e, case.rtol, case.atol, undefined)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(_params()))
def test_node_case_through_torch(name):
    run_case(name)


def test_pass_count_reaches_the_floor():
    """The list of known failures stays short: at least 1,742 of the 1,873 cases are expected to
    pass (raise this floor as converters land; what fails is listed with its reason)."""
    assert len(NAMES) - len(EXPECTED_FAILURES) >= 1742
    assert set(EXPECTED_FAILURES) <= set(NAMES), "an expected failure names no case"
