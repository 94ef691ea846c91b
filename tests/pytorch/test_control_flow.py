"""Subgraphs through ``onyx.to_torch``: If, Loop, Scan as driver modules around converted bodies
(outer values captured, gradients flowing through), compared with onyx's runtime; and the
attention and loss converters on models of our own."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from onnx import TensorProto, helper, numpy_helper

import onyx
from onyx.errors import UnsupportedError
from onyx.pytorch import dtypes, to_torch

F32, I64, BOOL = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL
rng = np.random.default_rng(0)


def _vi(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def _model(nodes, inputs, outputs, inits=(), opset=21) -> bytes:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return model.SerializeToString()


def _check(model: bytes, *feeds, tol=1e-5):
    """The torch module's outputs equal the runtime's for ``feeds``; returns the module."""
    module = to_torch(model)
    with torch.no_grad():
        got = [dtypes.to_numpy(t) for t in module(*[dtypes.from_numpy(f) for f in feeds])]
    session = onyx.InferenceSession(model)
    names = [i.name for i in session.get_inputs()]
    want = session.run(None, dict(zip(names, feeds)))
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_allclose(g.astype(np.float64), w.astype(np.float64), rtol=tol, atol=tol)
    return module


def _loop_model() -> bytes:
    """acc = x; repeat n times: acc = acc * w + i (w an initializer the body captures); each
    step's acc is also a scan output."""
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Mul", ["acc_in", "w"], ["scaled"]),
            helper.make_node("Cast", ["i"], ["fi"], to=F32),
            helper.make_node("Add", ["scaled", "fi"], ["acc_out"]),
            helper.make_node("Identity", ["acc_out"], ["each"]),
        ],
        "body",
        [_vi("i", I64, []), _vi("cond_in", BOOL, []), _vi("acc_in", F32, [3])],
        [_vi("cond_out", BOOL, []), _vi("acc_out", F32, [3]), _vi("each", F32, [3])],
    )
    w = numpy_helper.from_array(np.array([0.5, 2.0, -1.0], np.float32), "w")
    loop = helper.make_node("Loop", ["n", "", "x"], ["final", "steps"], body=body)
    return _model([loop], [_vi("n", I64, []), _vi("x", F32, [3])],
                  [_vi("final", F32, [3]), _vi("steps", F32, ["t", 3])], [w])  # fmt: skip


def test_loop_with_run_time_trip_count_matches_runtime_and_trains():
    model = _loop_model()
    x = rng.standard_normal(3).astype(np.float32)
    module = _check(model, np.array(4, np.int64), x)
    _check(model, np.array(0, np.int64), x)  # zero trips: the state passes, scans are empty
    # the captured initializer is a parameter of the converted module: gradients reach it
    w = dict(module.named_parameters())[module.onnx_names["w"]]
    final, _ = module(torch.tensor(3), torch.from_numpy(x))
    final.sum().backward()
    assert w.grad is not None and torch.count_nonzero(w.grad) > 0


def _if_model(cond_const: bool | None) -> bytes:
    then_g = helper.make_graph([helper.make_node("Add", ["x", "y"], ["t"])], "then", [],
                               [_vi("t", F32, [2])])  # fmt: skip
    else_g = helper.make_graph([helper.make_node("Sub", ["x", "y"], ["e"])], "else", [],
                               [_vi("e", F32, [2])])  # fmt: skip
    nodes, inputs = [], [_vi("x", F32, [2]), _vi("y", F32, [2])]
    if cond_const is None:
        inputs.append(_vi("c", BOOL, []))
    else:
        nodes.append(helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(
            np.array(cond_const))))  # fmt: skip
    nodes.append(helper.make_node("If", ["c"], ["z"], then_branch=then_g, else_branch=else_g))
    return _model(nodes, inputs, [_vi("z", F32, [2])])


def test_if_with_run_time_condition_takes_either_branch():
    x, y = np.array([1.0, 2.0], np.float32), np.array([0.5, 4.0], np.float32)
    _check(_if_model(None), x, y, np.array(True))
    _check(_if_model(None), x, y, np.array(False))


def test_if_with_known_condition_converts_only_the_branch_taken():
    module = to_torch(_if_model(False))
    assert not any("onnx_if" in name for name, _ in module.named_modules())
    (z,) = module(torch.tensor([1.0, 2.0]), torch.tensor([0.5, 4.0]))
    assert z.tolist() == [0.5, -2.0]


def test_scan_reverse_running_sum_matches_runtime():
    body = helper.make_graph(
        [helper.make_node("Add", ["s_in", "xi"], ["s_out"]),
         helper.make_node("Identity", ["s_out"], ["y"])],
        "body", [_vi("s_in", F32, [2]), _vi("xi", F32, [2])],
        [_vi("s_out", F32, [2]), _vi("y", F32, [2])],
    )  # fmt: skip
    scan = helper.make_node("Scan", ["s0", "xs"], ["s", "ys"], body=body, num_scan_inputs=1,
                            scan_input_directions=[1], scan_output_axes=[1])  # fmt: skip
    model = _model([scan], [_vi("s0", F32, [2]), _vi("xs", F32, [5, 2])],
                   [_vi("s", F32, [2]), _vi("ys", F32, [2, 5])])  # fmt: skip
    _check(model, np.zeros(2, np.float32), rng.standard_normal((5, 2)).astype(np.float32))


def test_attention_gqa_causal_with_past_matches_runtime():
    b, hq, hkv, s, past, d = 2, 4, 2, 3, 2, 8
    node = helper.make_node("Attention", ["q", "k", "v", "", "pk", "pv"],
                            ["y", "present_k", "present_v"], is_causal=1)  # fmt: skip
    shapes = {"q": (b, hq, s, d), "k": (b, hkv, s, d), "v": (b, hkv, s, d),
              "pk": (b, hkv, past, d), "pv": (b, hkv, past, d)}  # fmt: skip
    model = _model([node], [_vi(n, F32, list(sh)) for n, sh in shapes.items()],
                   [_vi("y", F32, None), _vi("present_k", F32, None),
                    _vi("present_v", F32, None)], opset=23)  # fmt: skip
    feeds = [rng.standard_normal(sh).astype(np.float32) for sh in shapes.values()]
    _check(model, *feeds)


def test_softmax_cross_entropy_loss_matches_runtime_and_differentiates():
    node = helper.make_node("SoftmaxCrossEntropyLoss", ["scores", "labels", "w"],
                            ["loss", "logp"], ignore_index=1)  # fmt: skip
    w = numpy_helper.from_array(np.array([1.0, 2.0, 0.5], np.float32), "w")
    model = _model([node], [_vi("scores", F32, [4, 3, 2]), _vi("labels", I64, [4, 2])],
                   [_vi("loss", F32, []), _vi("logp", F32, [4, 3, 2])], [w])  # fmt: skip
    scores = rng.standard_normal((4, 3, 2)).astype(np.float32)
    labels = np.array([[0, 1], [2, 2], [1, 0], [0, 2]], np.int64)
    module = _check(model, scores, labels)
    x = torch.from_numpy(scores).requires_grad_()
    loss, _ = module(x, torch.from_numpy(labels))
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_a_type_torch_lacks_is_named_before_a_missing_converter():
    node = helper.make_node("StringNormalizer", ["s"], ["t"], case_change_action="LOWER")
    model = _model([node], [_vi("s", TensorProto.STRING, [2])],
                   [_vi("t", TensorProto.STRING, None)])  # fmt: skip
    with pytest.raises(UnsupportedError, match="which torch lacks") as info:
        to_torch(model)
    assert "no converter" not in str(info.value)
