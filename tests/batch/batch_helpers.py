"""Small models and datasets for the batch tests, and the plain onnxruntime loop they must match."""

from __future__ import annotations

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

import onyx
from onyx.build import GraphBuilder

W = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)


def mlp_model(path) -> str:
    """x: float[N, 2, 3] -> y = relu(x.reshape(N, 6) @ W): float[N, 4], and s = sum(x): float[N]."""
    b = GraphBuilder(opset=18)
    x = b.input("x", "float", ["N", 2, 3])
    flat = b.op.Reshape(x, np.array([-1, 6], np.int64))
    b.output(b.op.Relu(b.op.MatMul(flat, W)), "y", "float", ["N", 4])
    b.output(b.op.ReduceSum(flat, np.array([1], np.int64), keepdims=0), "s", "float", ["N"])
    onyx.save(b.model(), str(path))
    return str(path)


def cnn_model(path, channels: int = 1) -> str:
    """img: float[N, C, 8, 8] -> logits: float[N, 5] (conv, relu, global pool, gemm)."""
    rng = np.random.default_rng(1)
    b = GraphBuilder(opset=18)
    x = b.input("img", "float", ["N", channels, 8, 8])
    w = rng.standard_normal((4, channels, 3, 3)).astype(np.float32)
    h = b.op.Relu(b.op.Conv(x, w, rng.standard_normal(4).astype(np.float32), pads=[1, 1, 1, 1]))
    h = b.op.Flatten(b.op.GlobalAveragePool(h))
    y = b.op.Gemm(h, rng.standard_normal((4, 5)).astype(np.float32))
    b.output(y, "logits", "float", ["N", 5])
    onyx.save(b.model(), str(path))
    return str(path)


def samples(n: int, seed: int = 2) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 2, 3)).astype(np.float32)


def write_parquet(path, xs: np.ndarray, **extra) -> str:
    table = pa.table({"id": np.arange(len(xs)), "x": [v.tolist() for v in xs], **extra})
    pq.write_table(table, str(path), row_group_size=300)
    return str(path)


def ort_loop(model: str, feeds: dict[str, np.ndarray], batch_size: int) -> list[np.ndarray]:
    """The reference: a plain loop over onnxruntime.InferenceSession, batch by batch."""
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    n = len(next(iter(feeds.values())))
    parts = [
        session.run(None, {k: v[i : i + batch_size] for k, v in feeds.items()})
        for i in range(0, n, batch_size)
    ]
    return [np.concatenate(p) for p in zip(*parts)]


def column(table, name: str, fill=np.nan) -> np.ndarray:
    """A list column as a float64 array (null rows filled), to compare with a reference."""
    values = table.column(name).to_pylist()
    shape = next(np.shape(v) for v in values if v is not None)
    return np.array([np.full(shape, fill) if v is None else v for v in values], np.float64)
