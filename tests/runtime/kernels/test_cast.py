"""Cast and CastLike: the official node cases plus the edges they miss."""

import ml_dtypes
import numpy as np
import onnx
import pytest
from kernel_harness import (
    all_node_cases,
    cases_for,
    check_case,
    compare,
    run_model,
    undefined_elements,
)
from onnx import TensorProto, helper

from onyx.errors import KernelError
from onyx.runtime.kernels import lookup

OPS = {"Cast", "CastLike"}


@pytest.mark.parametrize("name", cases_for(OPS))
def test_official_node_case(name):
    check_case(name)


def cast(x, to, opset=25, **attrs):
    return lookup("", "Cast", opset)(to=to, **attrs)(np.asarray(x))


def test_double_to_narrow_floats_rounds_once():
    x = np.array([1 + 2**-8 + 2**-30, 1 + 2**-4 + 2**-40])
    assert cast(x[:1], 16).astype(np.float64).tolist() == [1.0078125]  # not 1.0 (double rounding)
    assert cast(x[1:], 17).astype(np.float64).tolist() == [1.125]


def test_float8_saturate_and_not():
    x = np.array([1e6, -1e6, np.inf, -np.inf, np.nan, 300.0], np.float32)
    sat = cast(x, 17).astype(np.float32)
    assert sat[:4].tolist() == [448, -448, 448, -448] and np.isnan(sat[4]) and sat[5] == 288
    nosat = cast(x, 17, saturate=0).astype(np.float32)
    assert np.isnan(nosat[:5]).all() and nosat[5] == 288
    e5 = cast(x, 19, saturate=0).astype(np.float32)
    assert e5[:4].tolist() == [np.inf, -np.inf, np.inf, -np.inf]
    assert cast(np.array([-0.0], np.float32), 18).view(np.uint8).tolist() == [0]  # fnuz: no -0


@pytest.mark.parametrize(
    "mode, expected", [("up", [2, 2, 1, 4]), ("down", [1, 1, 0.5, 2]), ("nearest", [1, 2, 1, 4])]
)
def test_float8e8m0_round_modes(mode, expected):
    y = cast(np.array([1.1, 1.5, 0.75, 3.0], np.float32), 24, round_mode=mode)
    assert y.dtype == ml_dtypes.float8_e8m0fnu
    assert y.astype(np.float32).tolist() == expected


def test_float8e8m0_saturation():
    x = np.array([0.0, np.inf, np.nan, 1e-45], np.float32)
    sat = cast(x, 24).view(np.uint8).tolist()
    assert sat == [0, 254, 255, 0]
    assert cast(x, 24, saturate=0, round_mode="nearest").view(np.uint8).tolist() == [255] * 4


def test_numbers_to_strings():
    y = cast(np.array([0.5, np.nan, np.inf, -np.inf, 0.2961402], np.float32), 8)
    assert y.dtype == object and y.tolist() == ["0.5", "NaN", "INF", "-INF", "0.2961402"]
    assert cast(np.array([True, False]), 8).tolist() == ["1", "0"]
    assert cast(np.array([-7, 300], np.int16), 8).tolist() == ["-7", "300"]


def test_strings_to_numbers():
    s = np.array(["0.5", "INF", "+inf", "-INF", "NaN", "1E8", " 2.5e-1"], dtype=object)
    y = cast(s, 1)
    assert y.dtype == np.float32 and np.isnan(y[4])
    assert y[[0, 1, 2, 3, 5, 6]].tolist() == [0.5, np.inf, np.inf, -np.inf, 1e8, 0.25]
    assert cast(np.array(["100.5", "-3", "7"], object), 6).tolist() == [100, -3, 7]
    assert cast(np.array(["-3", "300"], object), 2).tolist() == [253, 44]  # low bits kept
    assert cast(np.array(["true", "0", "2"], object), 9).tolist() == [True, False, True]
    assert cast(np.array(["1e6"], np.str_), 17).astype(np.float32).tolist() == [448]


def test_bad_string_raises():
    with pytest.raises(KernelError, match="hello"):
        cast(np.array(["hello"], object), 1)


def test_out_of_range_integers_wrap():
    assert cast(np.array([200, -200], np.int16), 3).tolist() == [-56, 56]
    assert cast(np.array([200, -9, 7], np.int32), 22).astype(np.int8).tolist() == [-8, 7, 7]
    assert cast(np.array([-1], np.int8), 13).tolist() == [2**64 - 1]


def test_sub_byte_round_trip_and_bool():
    x = np.array([-2, -1, 0, 1], ml_dtypes.int2)
    assert cast(x, 25).astype(np.int8).tolist() == [2, 3, 0, 1]
    assert cast(x, 9).tolist() == [True, True, False, True]
    assert cast(np.array([0.0, -0.0, np.nan, 2], np.float32), 9).tolist() == [0, 0, 1, 1]


def test_cast1_takes_a_type_name():
    y = lookup("", "Cast", 1)(to="FLOAT16")(np.array([1.5], np.float64))
    assert y.dtype == np.float16


@pytest.mark.parametrize("to", [0, 99, "NOPE"])
def test_bad_target_type(to):
    with pytest.raises(KernelError):
        lookup("", "Cast", 25)(to=to)


def test_bad_round_mode():
    with pytest.raises(KernelError, match="round_mode"):
        lookup("", "Cast", 25)(to=24, round_mode="sideways")


def test_castlike_to_string_and_float8():
    castlike = lookup("", "CastLike", 25)
    assert castlike()(np.array([1.5], np.float32), np.array(["x"], object)).tolist() == ["1.5"]
    y = castlike(saturate=0)(np.array([1e6], np.float32), np.zeros(1, ml_dtypes.float8_e4m3fn))
    assert y.dtype == ml_dtypes.float8_e4m3fn and np.isnan(y.astype(np.float32)[0])


def test_same_type_is_returned_as_is():
    x = np.arange(3, dtype=np.float32)
    assert cast(x, 1) is x


# --- floats out of an integer target's range: undefined by the standard, onyx wraps -------
def test_out_of_range_floats_wrap_into_sub_byte_ints():
    # onyx's rule (cast.py): truncate toward zero, keep the low bits; NaN/inf -> 0. Expected
    # values written out by hand: no ml_dtypes conversion of out-of-range values is involved.
    x = np.array([-9.0, -9.5, 8.0, 15.9, 16.0, 17.0, -300.5, 300.0, np.nan, np.inf, -np.inf])
    for src in (np.float32, np.float16, np.float64):
        v = x.astype(src)
        assert cast(v, 22).astype(np.int8).tolist() == [7, 7, -8, -1, 0, 1, 4, -4, 0, 0, 0]
        assert cast(v, 21).astype(np.int8).tolist() == [7, 7, 8, 15, 0, 1, 4, 12, 0, 0, 0]
        assert cast(v, 26).astype(np.int8).tolist() == [-1, -1, 0, -1, 0, 1, 0, 0, 0, 0, 0]
        assert cast(v, 25).astype(np.int8).tolist() == [3, 3, 0, 3, 0, 1, 0, 0, 0, 0, 0]


def test_sub_byte_wrap_agrees_with_int8():
    # the same rule as float -> int8 (low 8 bits of the truncated value), narrowed to 4/2 bits
    x = np.random.default_rng(0).uniform(-1000, 1000, 500).astype(np.float32)
    low8 = cast(x, 3).astype(np.int64)  # int8
    for to, bits, signed in ((22, 4, True), (21, 4, False), (26, 2, True), (25, 2, False)):
        low = low8 & ((1 << bits) - 1)
        want = np.where(low >= 1 << (bits - 1), low - (1 << bits), low) if signed else low
        assert cast(x, to).astype(np.int64).tolist() == want.tolist()


def _cast_model(to: int, n: int) -> onnx.ModelProto:
    node = helper.make_node("Cast", ["x"], ["y"], to=to)
    graph = helper.make_graph(
        [node],
        "cast",
        [helper.make_tensor_value_info("x", TensorProto.DOUBLE, [n])],
        [helper.make_tensor_value_info("y", to, [n])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 25)])


@pytest.mark.parametrize(
    "to, values, undefined",
    [
        (TensorProto.INT4, [-9.5, -8.7, 7.9, 8.0, np.nan, np.inf, 0.5], [1, 0, 0, 1, 1, 1, 0]),
        (TensorProto.UINT2, [-0.5, -1.0, 3.9, 4.0], [0, 1, 0, 1]),
        (TensorProto.INT8, [-128.9, -129.0, 127.9, 128.0], [0, 1, 0, 1]),
        (TensorProto.INT64, [2.0**63, -(2.0**63), 2.0**62], [1, 0, 0]),
    ],
)
def test_harness_skips_exactly_the_undefined_elements(to, values, undefined):
    x = np.array(values)
    model = _cast_model(to, len(x))
    expected = np.zeros(len(x), helper.tensor_dtype_to_np_dtype(to))
    assert undefined_elements(model, [x], 0, expected).astype(int).tolist() == undefined


def test_harness_leaves_other_cases_whole():
    model = _cast_model(TensorProto.FLOAT, 2)  # float -> float: defined everywhere
    assert undefined_elements(model, [np.array([1e300, 2.0])], 0, np.zeros(2, np.float32)) is None
    case = all_node_cases()["test_cast_INT4_to_FLOAT"]  # integer source: wraps, defined
    inputs, expected = case.data_sets[0]
    assert undefined_elements(case.model, inputs, 0, expected[0]) is None


def _official_output(name: str):
    case = all_node_cases()[name]
    inputs, expected = case.data_sets[0]
    got = run_model(case.model, inputs)[0]
    return case, got, undefined_elements(case.model, inputs, 0, expected[0])


def test_harness_catches_a_wrong_int4():
    case, got, undefined = _official_output("test_cast_FLOAT_to_INT4")
    assert undefined is not None and undefined.any() and not undefined.all()
    compare(case.name, got, got.copy(), case.rtol, case.atol, undefined)
    i = np.flatnonzero(~undefined.reshape(-1))[3]  # a defined element
    wrong = got.copy().reshape(-1)
    wrong[i] = ml_dtypes.int4(1 if int(wrong[i].astype(np.int8)) != 1 else 2)
    with pytest.raises(AssertionError):
        compare(case.name, got, wrong.reshape(got.shape), case.rtol, case.atol, undefined)
    j = np.flatnonzero(undefined.reshape(-1))[0]  # an undefined element is not compared
    other = got.copy().reshape(-1)
    other[j] = ml_dtypes.int4(int(other[j].astype(np.int8)) ^ 1)
    compare(case.name, got, other.reshape(got.shape), case.rtol, case.atol, undefined)


@pytest.mark.parametrize(
    "name", ["test_cast_FLOAT_to_FLOAT8E4M3FN", "test_cast_FLOAT_to_FLOAT8E5M2"]
)
def test_harness_catches_a_wrong_float8(name):
    case, got, undefined = _official_output(name)
    assert undefined is None
    compare(name, got, got.copy(), case.rtol, case.atol)
    wide = got.astype(np.float64).reshape(-1)
    i = np.flatnonzero(np.isfinite(wide) & (np.abs(wide) > 0.1) & (np.abs(wide) < 10))[0]
    wrong = got.copy().reshape(-1)
    wrong.view(np.uint8)[i] ^= 1  # one step in the last mantissa bit
    assert wrong[i].astype(np.float64) != wide[i]
    with pytest.raises(AssertionError):
        compare(name, got, wrong.reshape(got.shape), case.rtol, case.atol)


def test_harness_compares_integers_exactly():
    a = np.array([2**53, 7], np.int64)
    with pytest.raises(AssertionError):
        compare("int64", a, a + np.array([1, 0]), 1e-3, 1e-7)  # float64 allclose would pass
    with pytest.raises(AssertionError):
        compare("uint8", np.array([200], np.uint8), np.array([201], np.uint8), 1e-2, 0)
