"""Cast and CastLike: the official node cases plus the edges they miss."""

import ml_dtypes
import numpy as np
import pytest
from kernel_harness import cases_for, check_case

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
