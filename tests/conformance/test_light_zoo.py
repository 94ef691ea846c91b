"""The light model zoo shipped with onnx's backend test data: onyx matches the stored outputs.

The stored outputs were made from inputs filled with arange(n) / n (the official runner's
non-random dummy data); tolerances are the official defaults for model tests.
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
