"""Build onyx/samples/mlp.onnx: a small MLP (16 -> 32 -> 10, softmax) with fixed-seed weights.

python tools/make_sample.py
"""

from __future__ import annotations

import os

import numpy as np

import onyx
from onyx.build import GraphBuilder

OUT = os.path.join(os.path.dirname(__file__), "..", "onyx", "samples", "mlp.onnx")


def mlp() -> onyx.ir.Model:
    rng = np.random.default_rng(2024)
    b = GraphBuilder(opset=21, name="mlp")
    x = b.input("x", "float", ["N", 16])
    h = x
    for i, (n_in, n_out) in enumerate([(16, 32), (32, 32), (32, 10)]):
        w = b.initializer(
            f"fc{i}.weight", (rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(np.float32)
        )
        bias = b.initializer(f"fc{i}.bias", np.zeros(n_out, np.float32) + 0.01 * i)
        h = b.op.Add(b.op.MatMul(h, w), bias)
        if i < 2:
            h = b.op.Relu(h)
    b.output(b.op.Softmax(h, axis=-1), "probs", "float", ["N", 10])
    return b.model(producer_name="onyx.tools.make_sample", producer_version=onyx.__version__,
                   doc_string="A small MLP for trying the onyx command.",
                   metadata_props={"seed": "2024", "layers": "16-32-32-10"})  # fmt: skip


if __name__ == "__main__":
    onyx.save(mlp(), OUT, external_data=False)
    print(f"wrote {os.path.normpath(OUT)} ({os.path.getsize(OUT)} bytes)")
