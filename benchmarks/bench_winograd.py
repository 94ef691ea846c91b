"""Winograd F(2x2, 3x3) against im2col-and-GEMM, per 3x3 layer: the measurement behind
``conv.winograd_pays``.

For 3x3 stride-1 layers of resnet50, densenet121, inception v1 and squeezenet, times onyx's
Winograd path (compiled input and output transforms around 16 GEMMs) beside the path a Conv
takes otherwise (im2col and one GEMM, in bands for shallow layers; for densenet's narrowing
layers, one GEMM per kernel offset without im2col), alternately, and their largest difference relative to the
output's magnitude. Needs numba (`pip install -e ".[fast]"`).

Run: python benchmarks/bench_winograd.py
"""

from __future__ import annotations

import functools

import numpy as np
from bench_numpy_layouts import best_of  # this folder is on sys.path when run as a script

from onyx.runtime import compiled
from onyx.runtime.epilogue import Epilogue
from onyx.runtime.kernels import conv as C
from onyx.runtime.memory import keep_freed_memory

LAYERS = [  # (model, inputs C, outputs M, height = width)
    ("resnet50", 64, 64, 56), ("resnet50", 128, 128, 28), ("resnet50", 256, 256, 14),
    ("resnet50", 512, 512, 7), ("densenet121", 128, 32, 56), ("densenet121", 128, 32, 28),
    ("densenet121", 128, 32, 14), ("inception_v1", 96, 128, 28), ("inception_v1", 128, 192, 28),
    ("inception_v1", 112, 224, 14), ("inception_v1", 160, 320, 7), ("squeezenet", 16, 64, 55),
    ("squeezenet", 32, 128, 27), ("squeezenet", 64, 256, 13),
]  # fmt: skip


def main() -> None:
    if compiled.kernels() is None:
        raise SystemExit('Winograd needs the compiled kernels: pip install -e ".[fast]"')
    keep_freed_memory()  # as a session runs
    old_bufsize = np.setbufsize(1024)
    rng = np.random.default_rng(0)
    print(f"{'layer':<32}{'other ms':>10}{'winograd ms':>13}{'ratio':>8}{'rel. diff':>11}  taken")
    for model, c, m, hw in LAYERS:
        x = rng.standard_normal((1, c, hw, hw)).astype(np.float32)
        w = (rng.standard_normal((m, c, 3, 3)) / np.sqrt(9 * c)).astype(np.float32)
        op = C.Conv(pads=[1, 1, 1, 1])
        plan = op.geom.plan(x.shape, w.shape)
        w_gemm, _ = C.prepare_weight(w, 1, np.float32)
        u = C.winograd_weight(w, np.float32)
        if C._blocked_pays(w.shape):
            bias_only = Epilogue()
            bias_only.prepare((1, m, hw, hw), np.float32)
            other = functools.partial(C.conv_blocked, x, w_gemm[0], plan, bias_only)
        elif C.shifted_eligible(plan, 1, w.shape):
            other = functools.partial(C.conv_shifted, x, C.shifted_weight(w_gemm, plan[0]), plan)
        else:
            other = functools.partial(C.conv_forward, x, w_gemm, plan, 1)
        winograd = functools.partial(C.conv_winograd, x, u, plan)
        diff = np.abs(winograd() - other()).max() / np.abs(other()).max()
        times = best_of({"other": other, "winograd": winograd}, 40)
        a, b = times["other"] / 1e3, times["winograd"] / 1e3
        taken = "yes" if C.winograd_pays(plan, 1, w.shape, np.float32) else "no"
        name = f"{model} {c}->{m} {hw}x{hw}"
        print(f"{name:<32}{a:>10.3f}{b:>13.3f}{b / a:>7.2f}x{diff:>11.1e}  {taken}")
    np.setbufsize(old_bufsize)


if __name__ == "__main__":
    main()
