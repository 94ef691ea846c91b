"""dtypes: codes, names and numpy types agree with onnx; sub-byte packing matches onnx's."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from onyx import dtypes
from onyx.dtypes import DataType
from onyx.errors import UnknownDataTypeError


def test_codes_and_numpy_types_match_onnx():
    for t in DataType:
        assert t == getattr(onnx.TensorProto, t.name), t
        if t not in (DataType.UNDEFINED, DataType.STRING):
            assert dtypes.to_numpy(t) == helper.tensor_dtype_to_np_dtype(int(t)), t
            assert dtypes.from_numpy(dtypes.to_numpy(t)) == t
        assert dtypes.data_type(t.short_name) is t


def test_unknown_codes_name_the_place():
    with pytest.raises(UnknownDataTypeError, match="99.*tensor 'w'"):
        dtypes.data_type(99, where="tensor 'w'")
    with pytest.raises(UnknownDataTypeError):
        dtypes.data_type("float128")
    with pytest.raises(UnknownDataTypeError):
        dtypes.from_numpy(np.dtype("V3"))


@pytest.mark.parametrize("t", sorted(dtypes.SUB_BYTE), ids=lambda t: t.name)
@pytest.mark.parametrize("count", [1, 2, 3, 4, 5, 7, 8, 13])
def test_sub_byte_packing_matches_onnx(t, count):
    codes = (np.arange(count) * 7 + 3) % (1 << t.bits)
    array = codes.astype(np.uint8).view(dtypes.to_numpy(t))
    if t in (DataType.INT4, DataType.INT2):  # canonical (sign-extended) values
        array = dtypes.unpack(dtypes.pack(array, t), t, count)
    raw = dtypes.pack(array, t)
    assert len(raw) == dtypes.packed_size(t, count)
    assert raw == numpy_helper.from_array(array).raw_data
    back = dtypes.unpack(raw, t, count)
    np.testing.assert_array_equal(back.astype(np.float64), array.astype(np.float64))


def test_ml_dtypes_is_imported_only_where_a_narrow_type_is_asked_for():
    """`import onyx` and a float32 session never import ml_dtypes (half a second of start-up
    every command and batch worker would pay); a bfloat16 array brings it in."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np, onyx\n"
        "from onyx import helper\n"
        "from onyx.dtypes import DataType, from_numpy, to_numpy\n"
        "g = helper.make_graph([helper.make_node('Relu', ['x'], ['y'])], 'g',"
        " [helper.make_tensor_value_info('x', DataType.FLOAT, [2])],"
        " [helper.make_tensor_value_info('y', DataType.FLOAT, [2])])\n"
        "s = onyx.InferenceSession(helper.make_model(g))\n"
        "s.run(None, {'x': np.ones(2, np.float32)})\n"
        "assert 'ml_dtypes' not in sys.modules, 'imported early'\n"
        "assert to_numpy(DataType.BFLOAT16).name == 'bfloat16'\n"
        "import ml_dtypes\n"
        "assert from_numpy(np.dtype(ml_dtypes.float8_e5m2)) == DataType.FLOAT8E5M2\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
