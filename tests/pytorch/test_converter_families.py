"""Converter families the official node cases cover thinly (rnn, vision, quant, signal, sequence,
ml, random): small models of our own through ``onyx.to_torch``, compared with onyx's runtime."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from onnx import TensorProto, helper, numpy_helper

import onyx
from onyx.pytorch import dtypes, to_torch

F32 = TensorProto.FLOAT
ML = ("ai.onnx.ml", 3)


def _model(nodes, inputs, outputs, inits=(), opset=21, ml=None):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    opsets = [helper.make_opsetid("", opset)] + ([helper.make_opsetid(*ml)] if ml else [])
    return helper.make_model(graph, opset_imports=opsets).SerializeToString()


def _vi(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def _both(model: bytes, *feeds):
    """(torch module's outputs, onyx runtime's outputs) as numpy, for the same feeds."""
    module = to_torch(model)
    with torch.no_grad():
        got = module(*[dtypes.from_numpy(f, widen=False) for f in feeds])
    session = onyx.InferenceSession(model)
    names = [i.name for i in session.get_inputs()]
    want = session.run(None, dict(zip(names, feeds)))
    return [dtypes.to_numpy(g) if isinstance(g, torch.Tensor) else g for g in got], want


def _same(got, want, tol=1e-5):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        if w.dtype.kind in "fc":
            np.testing.assert_allclose(g.astype(np.float64), w.astype(np.float64), rtol=tol,
                                       atol=tol)  # fmt: skip
        else:
            np.testing.assert_array_equal(g, w)


rng = np.random.default_rng(0)


# --- rnn -----------------------------------------------------------------------------------
def test_lstm_symbolic_length_and_trainable_weights():
    hs, isz = 3, 2
    w = rng.standard_normal((2, 4 * hs, isz)).astype(np.float32)
    r = rng.standard_normal((2, 4 * hs, hs)).astype(np.float32)
    node = helper.make_node("LSTM", ["x", "w", "r"], ["y", "yh", "yc"], hidden_size=hs,
                            direction="bidirectional")  # fmt: skip
    model = _model([node], [_vi("x", F32, ["T", 2, isz])],
                   [_vi("y", F32, None), _vi("yh", F32, None), _vi("yc", F32, None)],
                   [numpy_helper.from_array(w, "w"), numpy_helper.from_array(r, "r")])  # fmt: skip
    for steps in (1, 5):  # one module serves every sequence length
        x = rng.standard_normal((steps, 2, isz)).astype(np.float32)
        got, want = _both(model, x)
        _same(got, want)
    module = to_torch(model)
    y, _, _ = module(torch.randn(4, 2, isz))
    y.sum().backward()
    grads = {n: p.grad for n, p in module.named_parameters()}
    assert set(grads) == {"w", "r"} and all(g is not None and g.abs().sum() > 0
                                             for g in grads.values())  # fmt: skip


# --- vision --------------------------------------------------------------------------------
@pytest.mark.parametrize("mode,ctm", [("linear", "half_pixel"), ("cubic", "align_corners"),
                                      ("nearest", "asymmetric")])  # fmt: skip
def test_resize_matches_runtime_and_passes_gradients(mode, ctm):
    scales = numpy_helper.from_array(np.array([1, 1, 1.5, 0.6], np.float32), "scales")
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode=mode,
                            coordinate_transformation_mode=ctm)  # fmt: skip
    model = _model([node], [_vi("x", F32, [1, 2, 4, 5])], [_vi("y", F32, None)], [scales])
    x = rng.standard_normal((1, 2, 4, 5)).astype(np.float32)
    got, want = _both(model, x)
    _same(got, want)
    xt = torch.tensor(x, requires_grad=True)
    to_torch(model)(xt)[0].sum().backward()
    assert xt.grad is not None and xt.grad.abs().sum() > 0


def test_resize_with_symbolic_input_runs_at_run_time():
    sizes = numpy_helper.from_array(np.array([1, 1, 7, 3], np.int64), "sizes")
    node = helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode="linear")
    model = _model([node], [_vi("x", F32, [1, 1, "H", "W"])], [_vi("y", F32, None)], [sizes])
    for h, w in ((4, 5), (2, 9)):
        got, want = _both(model, rng.standard_normal((1, 1, h, w)).astype(np.float32))
        _same(got, want)


def test_max_roi_pool_matches_runtime():
    node = helper.make_node("MaxRoiPool", ["x", "rois"], ["y"], pooled_shape=[2, 3],
                            spatial_scale=0.5)  # fmt: skip
    model = _model([node], [_vi("x", F32, [2, 3, 8, 8]), _vi("rois", F32, [3, 5])],
                   [_vi("y", F32, None)])  # fmt: skip
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    rois = np.array([[0, 0, 0, 10, 10], [1, 2, 4, 14, 12], [0, 6, 6, 6, 6]], np.float32)
    _same(*_both(model, x, rois))


# --- sequence ------------------------------------------------------------------------------
def test_sequence_built_in_the_graph_is_a_python_list():
    nodes = [
        helper.make_node("SequenceConstruct", ["a", "b"], ["s"]),
        helper.make_node("SequenceInsert", ["s", "a"], ["s2"]),
        helper.make_node("SequenceErase", ["s2", "zero"], ["s3"]),
        helper.make_node("ConcatFromSequence", ["s3"], ["cat"], axis=0),
        helper.make_node("SequenceLength", ["s3"], ["n"]),
        helper.make_node("SequenceAt", ["s3", "minus1"], ["last"]),
    ]
    inits = [numpy_helper.from_array(np.array(0, np.int64), "zero"),
             numpy_helper.from_array(np.array(-1, np.int64), "minus1")]  # fmt: skip
    model = _model(nodes, [_vi("a", F32, [2, 3]), _vi("b", F32, [1, 3])],
                   [_vi("cat", F32, None), _vi("n", TensorProto.INT64, None),
                    _vi("last", F32, None)], inits)  # fmt: skip
    a = rng.standard_normal((2, 3)).astype(np.float32)
    b = rng.standard_normal((1, 3)).astype(np.float32)
    got, want = _both(model, a, b)
    _same(got, want)
    assert "Sequence" not in to_torch(model).code  # list operations leave nothing behind


def test_sequence_graph_input_is_a_list_at_run_time():
    seq_type = helper.make_tensor_sequence_value_info("s", F32, None)
    nodes = [helper.make_node("SequenceLength", ["s"], ["n"]),
             helper.make_node("SequenceAt", ["s", "one"], ["x"])]  # fmt: skip
    model = _model(nodes, [seq_type], [_vi("n", TensorProto.INT64, None), _vi("x", F32, None)],
                   [numpy_helper.from_array(np.array(1, np.int64), "one")])  # fmt: skip
    items = [torch.randn(2), torch.randn(3), torch.randn(1)]
    n, x = to_torch(model)(items)
    assert int(n) == 3 and torch.equal(x, items[1])


# --- ml ------------------------------------------------------------------------------------
def _ml_case(op, attrs, x, n_out=1, out_types=(F32,)):
    outs = [f"y{i}" for i in range(n_out)]
    node = helper.make_node(op, ["x"], outs, domain="ai.onnx.ml", **attrs)
    elem = helper.np_dtype_to_tensor_dtype(x.dtype)
    model = _model([node], [_vi("x", elem, list(x.shape))],
                   [_vi(o, t, None) for o, t in zip(outs, out_types)], ml=ML)  # fmt: skip
    _same(*_both(model, x))


X = rng.standard_normal((4, 3)).astype(np.float32)


@pytest.mark.parametrize("op,attrs,n_out,types", [
    ("LinearRegressor", {"coefficients": [0.5, -1.0, 2.0, 1.0, 1.0, 1.0], "intercepts": [1.0, 2.0], "targets": 2},
     1, (F32,)),
    ("LinearClassifier", {"coefficients": [0.5, -1.0, 2.0, 1.0, 1.0, 1.0, 0.0, 3.0, -2.0],
                              "intercepts": [1.0, 2.0, 0.0], "classlabels_ints": [7, 8, 9],
                              "post_transform": "SOFTMAX"}, 2, (TensorProto.INT64, F32)),
    ("LinearClassifier", {"coefficients": [0.5, -1.0, 2.0], "intercepts": [0.1],
                              "classlabels_ints": [0, 1], "post_transform": "LOGISTIC"},
     2, (TensorProto.INT64, F32)),
    ("Normalizer", {"norm": "L2"}, 1, (F32,)),
    ("Scaler", {"offset": [0.5, 0.0, 1.0], "scale": [2.0, 3.0, 4.0]}, 1, (F32,)),
    ("TreeEnsembleRegressor", {
        "nodes_treeids": [0, 0, 0, 1, 1, 1], "nodes_nodeids": [0, 1, 2, 0, 1, 2],
        "nodes_featureids": [0, 0, 0, 2, 0, 0], "nodes_values": [0.1, 0.0, 0.0, -0.3, 0.0, 0.0],
        "nodes_modes": ["BRANCH_LEQ", "LEAF", "LEAF", "BRANCH_GT", "LEAF", "LEAF"],
        "nodes_truenodeids": [1, 0, 0, 1, 0, 0], "nodes_falsenodeids": [2, 0, 0, 2, 0, 0],
        "target_treeids": [0, 0, 1, 1], "target_nodeids": [1, 2, 1, 2], "target_ids": [0, 0, 0, 0],
        "target_weights": [1.0, -2.0, 0.5, 4.0], "n_targets": 1, "aggregate_function": "AVERAGE"},
     1, (F32,)),
])  # fmt: skip
def test_ml_float_models_match_runtime(op, attrs, n_out, types):
    _ml_case(op, attrs, X, n_out, types)


def test_ml_integer_encoders_match_runtime():
    x = np.array([[1, 5, 3], [2, 2, 9]], np.int64)
    _ml_case("OneHotEncoder", {"cats_int64s": [2, 3, 5]}, x)
    _ml_case("LabelEncoder", {"keys_int64s": [1, 2, 9], "values_floats": [0.5, 1.5, 2.5],
                                  "default_float": -1.0}, x)  # fmt: skip


# --- random --------------------------------------------------------------------------------
def test_seeded_random_is_repeatable_and_unseeded_is_not_folded():
    seeded = helper.make_node("RandomNormal", [], ["a"], shape=[3, 4], seed=3.0)
    free = helper.make_node("RandomUniform", [], ["b"], shape=[50], low=2.0, high=3.0)
    model = _model([seeded, free], [], [_vi("a", F32, None), _vi("b", F32, None)])
    module = to_torch(model)
    a1, b1 = module()
    a2, b2 = module()
    assert a1.shape == (3, 4) and torch.equal(a1, a2)
    assert not torch.equal(b1, b2) and bool(((b1 >= 2) & (b1 <= 3)).all())
