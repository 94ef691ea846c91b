"""RNN, GRU and LSTM against the official node cases and onnxruntime, plus error paths."""

import ml_dtypes
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from kernel_harness import cases_for, check_case, run_model
from onnx import helper

from onyx.errors import KernelError
from onyx.runtime.kernels import lookup

OPS = {"RNN", "GRU", "LSTM"}


@pytest.mark.parametrize("name", cases_for(OPS))
def test_official_node_case(name):
    check_case(name)


GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}


def _model(op, n_inputs, n_outputs, opset=22, **attrs):
    names = ["X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"][:n_inputs]
    outs = ["Y", "Y_h", "Y_c"][:n_outputs]
    node = helper.make_node(op, names, outs, **attrs)
    f = onnx.TensorProto.FLOAT
    ins = [helper.make_tensor_value_info(n, onnx.TensorProto.INT32 if n == "sequence_lens" else f,
                                         None) for n in names]  # fmt: skip
    graph = helper.make_graph([node], "g", ins, [helper.make_tensor_value_info(o, f, None)
                                                 for o in outs])  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _inputs(op, nd, seq, batch, isz, hs, layout, rng, full=True):
    g = GATES[op]
    x = rng.standard_normal((batch, seq, isz) if layout else (seq, batch, isz))
    w = rng.standard_normal((nd, g * hs, isz)) * 0.5
    r = rng.standard_normal((nd, g * hs, hs)) * 0.5
    b = rng.standard_normal((nd, 2 * g * hs)) * 0.5
    lens = rng.integers(0, seq + 1, batch).astype(np.int32)
    lens[0] = seq
    h0 = rng.standard_normal((batch, nd, hs) if layout else (nd, batch, hs))
    ins = [x, w, r, b, lens, h0]
    if op == "LSTM":
        ins += [rng.standard_normal(h0.shape), rng.standard_normal((nd, 3 * hs))]
    return [a.astype(np.float32) if a.dtype != np.int32 else a for a in ins]


CONFIGS = [
    ("RNN", {"direction": "bidirectional", "activations": ["Relu", "Tanh"]}),
    ("RNN", {"direction": "reverse", "clip": 0.7}),
    ("RNN", {"activations": ["LeakyRelu"], "activation_alpha": [0.2]}),
    ("GRU", {"direction": "bidirectional"}),
    ("GRU", {"direction": "reverse", "linear_before_reset": 1}),
    (
        "GRU",
        {
            "activations": ["HardSigmoid", "Softsign"],
            "activation_alpha": [0.3],
            "activation_beta": [0.4],
        },
    ),
    ("LSTM", {"direction": "bidirectional"}),
    ("LSTM", {"direction": "reverse", "clip": 1.5}),
    ("LSTM", {"activations": ["Sigmoid", "Elu", "Softplus"]}),
]


@pytest.mark.parametrize("layout", [0, 1])
@pytest.mark.parametrize("op,attrs", CONFIGS)
def test_against_onnxruntime(op, attrs, layout):
    rng = np.random.default_rng(abs(hash((op, str(attrs), layout))) % 2**32)
    nd = 2 if attrs.get("direction") == "bidirectional" else 1
    ins = _inputs(op, nd, 5, 3, 4, 6, layout, rng)
    n_out = 3 if op == "LSTM" else 2
    model = _model(op, len(ins), n_out, layout=layout, hidden_size=6, **attrs)
    got = run_model(model, ins)
    # onnxruntime only runs layout 0: feed it the time-major equivalent and transpose back
    ref = _model(op, len(ins), n_out, hidden_size=6, **attrs)
    ref_ins = list(ins)
    if layout:
        ref_ins[0] = ins[0].transpose(1, 0, 2)
        for k in (5, 6)[: len(ins) - 5]:
            ref_ins[k] = ins[k].transpose(1, 0, 2)
    sess = ort.InferenceSession(ref.SerializeToString(), providers=["CPUExecutionProvider"])
    want = sess.run(None, {i.name: v for i, v in zip(ref.graph.input, ref_ins)})
    if layout:
        want = [want[0].transpose(2, 0, 1, 3)] + [v.transpose(1, 0, 2) for v in want[1:]]
    for g, e in zip(got, want):
        assert g.dtype == np.float32 and g.shape == e.shape
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16])
def test_low_precision(dtype):
    rng = np.random.default_rng(0)
    x, w, r, b = _inputs("LSTM", 1, 4, 2, 3, 5, 0, rng)[:4]
    k = lookup("", "LSTM", 22)()
    got = k(*(a.astype(dtype) for a in (x, w, r, b)))
    want = k(x, w, r, b)
    for g, e in zip(got, want):
        assert g.dtype == dtype
        np.testing.assert_allclose(g.astype(np.float32), e, rtol=5e-2, atol=5e-2)


def test_errors():
    rng = np.random.default_rng(1)
    x, w, r = _inputs("GRU", 1, 4, 2, 3, 5, 0, rng)[:3]
    with pytest.raises(KernelError, match="W must have shape"):
        lookup("", "GRU", 22)()(x, w[:, :, :2], r)
    with pytest.raises(KernelError, match="sequence_lens"):
        lookup("", "GRU", 22)()(x, w, r, None, np.array([9, 1], np.int32))
    with pytest.raises(KernelError, match="activation"):
        lookup("", "GRU", 22)(activations=["Nope", "Tanh"])
    with pytest.raises(KernelError, match="direction"):
        lookup("", "RNN", 22)(direction="sideways")
