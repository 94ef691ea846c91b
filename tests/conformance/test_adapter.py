"""The conformance adapter's comparison: widened, exact for integers, undefined elements skipped."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from kernel_harness import all_node_cases, as_numpy, undefined_elements

from conformance.backend import OnyxBackend, OnyxBackendTest, OnyxRep


def _run(name: str):
    case = all_node_cases()[name]
    inputs, expected = ([as_numpy(v) for v in vs] for vs in case.data_sets[0])
    outputs = OnyxBackend.prepare(case.model).run(inputs)  # as onnx's runner calls it
    return case, inputs, expected, outputs


def test_cast_to_int4_skips_undefined_and_catches_a_wrong_defined_value():
    case, inputs, expected, outputs = _run("test_cast_FLOAT_to_INT4")
    assert OnyxRep.last_run.outputs[0] is outputs[0]
    undefined = undefined_elements(case.model, inputs, 0, expected[0])
    assert undefined.any() and not undefined.all()
    # the official expected values, whatever ml_dtypes computed out of range, are accepted
    OnyxBackendTest.assert_similar_outputs(expected, outputs, case.rtol, case.atol)
    got = outputs[0].reshape(-1)  # plant a wrong value in place, into a defined element
    i = np.flatnonzero(~undefined.reshape(-1))[0]
    got[i] = ml_dtypes.int4(int(got[i].astype(np.int8)) ^ 1)
    with pytest.raises(AssertionError):
        OnyxBackendTest.assert_similar_outputs(expected, outputs, case.rtol, case.atol)


def test_float8_planted_one_step_off_fails():
    case, _, expected, outputs = _run("test_cast_FLOAT_to_FLOAT8E4M3FN")
    OnyxBackendTest.assert_similar_outputs(expected, outputs, case.rtol, case.atol)
    wide = outputs[0].astype(np.float64).reshape(-1)
    i = np.flatnonzero(np.isfinite(wide) & (np.abs(wide) > 0.1) & (np.abs(wide) < 10))[0]
    outputs[0].reshape(-1).view(np.uint8)[i] ^= 1
    with pytest.raises(AssertionError):
        OnyxBackendTest.assert_similar_outputs(expected, outputs, case.rtol, case.atol)


def test_outputs_not_from_the_last_run_are_compared_whole():
    _, _, expected, outputs = _run("test_cast_FLOAT_to_INT4")
    copies = [o.copy() for o in outputs]  # not the objects the last run returned: no mask
    want = expected[0].copy().reshape(-1)
    differ = copies[0].reshape(-1) != want  # out-of-range elements, in some ml_dtypes releases
    want[differ] = copies[0].reshape(-1)[differ]  # now they agree everywhere: passes
    OnyxBackendTest.assert_similar_outputs([want.reshape(copies[0].shape)], copies, 1e-3, 1e-7)
    want[0] = ml_dtypes.int4(int(want[0].astype(np.int8)) ^ 1)  # element 0 is out of range
    with pytest.raises(AssertionError):
        OnyxBackendTest.assert_similar_outputs([want.reshape(copies[0].shape)], copies, 1e-3, 1e-7)
