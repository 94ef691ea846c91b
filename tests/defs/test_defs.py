"""onyx.defs agrees with the installed onnx's schemas, and the data file is up to date."""

from __future__ import annotations

import gzip
import importlib
import pathlib
import sys

import numpy as np
import onnx
import onnx.defs
import pytest
from onnx import helper, numpy_helper

import onyx
from onyx import defs

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import gen_defs

_OPTION = {0: "single", 1: "optional", 2: "variadic"}


def _onnx_schemas():
    return [s for s in onnx.defs.get_all_schemas_with_history() if s.domain in defs.DOMAINS]


def _default(a):
    if a.default_value.type == 0:
        return None
    v = helper.get_attribute_value(a.default_value)
    if a.default_value.type == onnx.AttributeProto.TENSOR:
        return numpy_helper.to_array(v)
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, list):
        return [x.decode() if isinstance(x, bytes) else x for x in v]
    return v


def test_every_schema_agrees_with_onnx():
    theirs = _onnx_schemas()
    assert len(list(defs.schemas())) == len(theirs)
    problems = []
    for s in theirs:
        mine = defs.get_schema(s.name, s.since_version, s.domain)
        where = f"{s.domain}::{s.name}-{s.since_version}"
        facts = [
            (mine.since_version, s.since_version),
            (mine.deprecated, s.deprecated),
            ((mine.min_input, mine.max_input), (s.min_input, s.max_input)),
            ((mine.min_output, mine.max_output), (s.min_output, s.max_output)),
            (set(mine.attributes), set(s.attributes)),
            (
                {k: sorted(v) for k, v in mine.type_constraints.items()},
                {c.type_param_str: sorted(c.allowed_type_strs) for c in s.type_constraints},
            ),
        ]
        for mine_params, their_params in ((mine.inputs, s.inputs), (mine.outputs, s.outputs)):
            facts.append((
                [(p.name, p.type_str, p.option, p.is_homogeneous, p.min_arity) for p in mine_params],
                [(p.name, p.type_str, _OPTION[int(p.option.value)], p.is_homogeneous, p.min_arity)
                 for p in their_params],
            ))  # fmt: skip
        for name, a in s.attributes.items():
            ad = mine.attributes[name]
            facts.append(((ad.type.value, ad.required), (int(a.type.value), a.required)))
            theirs_default = _default(a)
            if isinstance(theirs_default, np.ndarray):
                d = ad.default
                got = np.asarray(d["values"], onyx.dtypes.to_numpy(d["dtype"])).reshape(d["dims"])
                facts.append((got.tolist(), theirs_default.tolist()))
            else:
                facts.append((ad.default, theirs_default))
        for got, expected in facts:
            if got != expected:
                problems.append(f"{where}: {got!r} != {expected!r}")
    assert not problems, "\n".join(problems[:20])


def test_lookup_picks_newest_version_not_above_opset():
    assert defs.get_schema("Reshape", 4).since_version == 1
    assert defs.get_schema("Reshape", 5).since_version == 5
    assert defs.get_schema("Reshape", 13, "ai.onnx").since_version == 13
    assert defs.get_schema("LabelEncoder", 5, "ai.onnx.ml").since_version == 4
    assert defs.has_schema("Gelu", 20) and not defs.has_schema("Gelu", 19)
    assert defs.has_schema("Gelu") and not defs.has_schema("NoSuchOp")
    with pytest.raises(onyx.UnsupportedError, match="introduced in version 20"):
        defs.get_schema("Gelu", 19)
    with pytest.raises(onyx.UnsupportedError, match="no operator"):
        defs.get_schema("NoSuchOp", 21)
    assert defs.attribute_defaults("LeakyRelu", 16)["alpha"] == pytest.approx(0.01)
    assert defs.opset_range("") == (1, onnx.defs.onnx_opset_version())
    conv = defs.get_schema("Conv", 22)
    assert conv.inputs[2].is_optional and conv.attributes["auto_pad"].default == "NOTSET"
    assert defs.get_schema("Concat", 13).inputs[0].is_variadic


def test_data_is_loaded_lazily_and_regenerates_byte_for_byte():
    module = importlib.import_module("onyx.defs.schemas")
    path = pathlib.Path(module.DATA)
    assert path.name == "schemas.json.gz"
    with gzip.open(path, "rb") as f:
        committed = f.read()
    rendered = gen_defs.render()
    assert rendered == committed, "onyx/defs/schemas.json.gz is stale: run tools/gen_defs.py"
    assert gen_defs.compress(rendered) == path.read_bytes()
