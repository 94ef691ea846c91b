"""The light model zoo shipped with onnx's backend test data: onyx matches the stored outputs,
and onnxruntime's with random weights.

The stored outputs were made from inputs filled with arange(n) / n (the official runner's
non-random dummy data); tolerances are the official defaults for model tests. The zoo's weights
are constants, which leaves those outputs uniform; the same models with seeded random weights
are compared with onnxruntime on their logits.
"""

from __future__ import annotations

import glob
import math
import os

import numpy as np
import onnx
import pytest

import onyx

LIGHT = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
MODELS = sorted(
    os.path.basename(p)[len("light_") : -len(".onnx")] for p in glob.glob(f"{LIGHT}/light_*.onnx")
)


def dummy_input(value: onyx.ir.Value) -> np.ndarray:
    shape = [d if isinstance(d, int) else 1 for d in value.type.shape.dims]
    n = math.prod(shape)
    return (np.arange(n).reshape(shape) / n).astype(np.float32)


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_light_model_matches_reference_outputs(name):
    assert len(MODELS) == 9
    session = onyx.InferenceSession(os.path.join(LIGHT, f"light_{name}.onnx"))
    graph = session.model.graph
    feeds = {v.name: dummy_input(v) for v in graph.inputs if v.name not in graph.initializers}
    (got,) = session.run(None, feeds)
    expected = onyx.load_tensor(os.path.join(LIGHT, f"light_{name}_output_0.pb")).numpy()
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-7)


def _with_random_weights(name: str) -> bytes:
    """The light model with seeded random weights in place of its constant ones, and its
    logits (the input of a final Softmax) as the output: the zoo's weights are constants, so
    its stored outputs come out uniform and would not show a wrong convolution."""
    model = onnx.load(os.path.join(LIGHT, f"light_{name}.onnx"))
    graph = model.graph
    rng = np.random.default_rng(0)
    shapes = {n.output[0]: onnx.numpy_helper.to_array(n.attribute[0].t) for n in graph.node
              if n.op_type == "Constant"}  # fmt: skip
    shapes.update({i.name: onnx.numpy_helper.to_array(i) for i in graph.initializer})
    kept = []
    for node in graph.node:
        if node.op_type != "ConstantOfShape" or node.input[0] not in shapes:
            kept.append(node)
            continue
        shape = [int(v) for v in shapes[node.input[0]]]
        if len(shape) == 1:  # biases and BatchNormalization parameters (variances stay positive)
            data = 1 + 0.1 * rng.standard_normal(shape)
        else:  # weights, scaled to keep activations in range through the depth
            data = rng.standard_normal(shape) * math.sqrt(2 / math.prod(shape[1:]))
        graph.initializer.append(
            onnx.numpy_helper.from_array(data.astype(np.float32), node.output[0])
        )
    del graph.node[:]
    graph.node.extend(kept)
    last = graph.node[-1]
    if last.op_type == "Softmax":
        graph.output[0].name = last.input[0]
        graph.node.pop()
    return model.SerializeToString()


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_light_model_with_random_weights_matches_onnxruntime(name):
    import onnxruntime as ort

    data = _with_random_weights(name)
    session = onyx.InferenceSession(data)
    graph = session.model.graph
    rng = np.random.default_rng(1)
    feeds = {
        v.name: rng.standard_normal(
            [d if isinstance(d, int) else 1 for d in v.type.shape.dims]
        ).astype(np.float32)
        for v in graph.inputs
        if v.name not in graph.initializers
    }
    (got,) = session.run(None, feeds)
    options = ort.SessionOptions()
    options.log_severity_level = 3  # (it warns about every shape constant left unused)
    (expected,) = ort.InferenceSession(data, options).run(None, feeds)
    assert expected.std() > 1e-3 * np.abs(expected).max()  # not uniform: the check means something
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4 * np.abs(expected).max())
