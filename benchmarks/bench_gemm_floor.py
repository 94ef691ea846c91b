"""The floor under onyx's convolutions: the time of their GEMMs alone, next to onnxruntime.

onyx runs a convolution as im2col and one GEMM through numpy's BLAS. This script records every
Conv of a model as onyx runs it, times each one's GEMM alone (same shapes, cache-hot, nothing
else), and sums them: no im2col, bias, activation or other operator, so no convolution design
on numpy's GEMM can take less. It prints that floor beside onyx's and onnxruntime's time for the
whole model (each in a process of its own, as in bench_models.py), as ratios to onnxruntime,
and the GEMMs' throughput in GFLOP/s.

Run: python benchmarks/bench_gemm_floor.py [--models ...]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from bench_models import feeds_for, measure, model_path

import onyx
from onyx.runtime.kernels import conv

CNNS = ["light_resnet50", "light_inception_v1", "light_densenet121", "light_squeezenet"]


def gemm_shapes(name: str) -> list[tuple[int, int, int, int]]:
    """(groups, M/groups, K, N) of the GEMM of every Conv in one run of the model."""
    shapes = []
    original = conv.Conv.__call__

    def record(self, x, w, b=None, **kwargs):
        group = self.geom.group
        out = self.geom.plan(x.shape, w.shape)[5]
        shapes.append((group, w.shape[0] // group, math.prod(w.shape[1:]), math.prod(out)))
        return original(self, x, w, b, **kwargs)

    conv.Conv.__call__ = record
    try:
        session = onyx.InferenceSession(model_path(name))
        session.run(None, feeds_for(session))
    finally:
        conv.Conv.__call__ = original
    return shapes


def best_time(fn, repeat: int = 5, rounds: int = 5) -> float:
    fn()
    best = math.inf
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeat):
            fn()
        best = min(best, (time.perf_counter() - start) / repeat)
    return best


def gemm_floor(name: str) -> tuple[float, float]:
    """(seconds, floating-point operations) of the model's convolution GEMMs, each alone."""
    rng = np.random.default_rng(0)
    total = flops = 0.0
    for g, m, k, n in gemm_shapes(name):
        w = rng.random((g, m, k), np.float32)
        cols = rng.random((g, k, n), np.float32)
        y = np.empty((g, m, n), np.float32)
        total += best_time(lambda w=w, cols=cols, y=y: np.matmul(w, cols, out=y))
        flops += 2.0 * g * m * k * n
    return total, flops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="*", default=CNNS)
    args = parser.parse_args()
    print(f"{'model':<22}{'onnxruntime ms':>15}{'onyx ms':>10}{'GEMMs alone ms':>16}"
          f"{'GFLOP/s':>9}{'onyx/ort':>10}{'GEMMs/ort':>11}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            t_ort, _, error = measure("onnxruntime", name, 10, tmp)
            t_onyx, _, error2 = measure("onyx", name, 10, tmp)
            if t_ort is None or t_onyx is None:
                raise SystemExit(f"{name}: a runtime failed: {error or error2}")
            floor, flops = gemm_floor(name)
            print(f"{name:<22}{t_ort * 1e3:>15.1f}{t_onyx * 1e3:>10.1f}{floor * 1e3:>16.1f}"
                  f"{flops / floor / 1e9:>9.0f}{t_onyx / t_ort:>9.2f}x"
                  f"{floor / t_ort:>10.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
