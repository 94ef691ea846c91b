"""Each way onyx can compute a 2-D convolution, per layer: the measurement behind Conv's choice
of path (``conv._blocked_pays``, ``shifted_eligible``, ``winograd_pays``).

Paths, all float32, timed alternately on one layer:
- im2col: the whole im2col matrix and one GEMM (``conv_forward``);
- banded: im2col a band of output rows at a time, each band's GEMM and epilogue cache-hot
  (``conv_blocked``);
- shifted: one GEMM of the kernel offsets' stacked weights with the flattened padded image,
  then a shift-and-add (``conv_shifted``, stride 1);
- winograd: F(2x2, 3x3), 16 GEMMs between compiled transforms (``conv_winograd``; needs numba).

Layers: 3x3 stride-1 ones of resnet50, densenet121 (128 -> 32, narrowing), inception v1 and
squeezenet. For each: the time of every path relative to im2col, the path Conv takes (marked
*), and the largest difference of the Winograd result from im2col's, relative to its magnitude.
With numba installed (`pip install -e ".[fast]"`) im2col and the shift-and-add run compiled, as
in a session; `ONYX_COMPILED=0` times the numpy paths (Winograd then is left out).

Run: python benchmarks/bench_conv_paths.py
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
    ("densenet121", 128, 32, 14), ("densenet121", 128, 32, 7), ("densenet121", 128, 32, 4),
    ("inception_v1", 96, 128, 28), ("inception_v1", 128, 192, 28), ("inception_v1", 112, 224, 14),
    ("inception_v1", 160, 320, 7), ("squeezenet", 16, 64, 55), ("squeezenet", 32, 128, 27),
    ("squeezenet", 64, 256, 13),
]  # fmt: skip
PATHS = ("im2col", "banded", "shifted", "winograd")


def paths(x, w):
    """{name: call} of every path that computes this layer, and the name Conv takes."""
    plan = C.Conv(pads=[1, 1, 1, 1]).geom.plan(x.shape, w.shape)
    w_gemm, _ = C.prepare_weight(w, 1, np.float32)
    bias_only = Epilogue()
    bias_only.prepare((1, w.shape[0], *plan[5]), np.float32)
    calls = {
        "im2col": functools.partial(C.conv_forward, x, w_gemm, plan, 1),
        "banded": functools.partial(C.conv_blocked, x, w_gemm[0], plan, bias_only),
        "shifted": functools.partial(C.conv_shifted, x, C.shifted_weight(w_gemm, plan[0]), plan),
    }
    if compiled.kernels(compiled.MIN_SIZE) is not None:
        weights = C.WinogradWeights(w, np.float32)
        calls["winograd"] = functools.partial(C.conv_winograd, x, weights, plan, bias_only)
    # as Conv.__call__ chooses
    if C.winograd_pays(plan, 1, w.shape, np.float32):
        taken = "winograd"
    elif C._blocked_pays(w.shape):
        taken = "banded"
    else:
        taken = "shifted" if C.shifted_eligible(plan, 1, w.shape) else "im2col"
    return calls, taken


def main() -> None:
    keep_freed_memory()  # as a session runs
    old_bufsize = np.setbufsize(1024)
    rng = np.random.default_rng(0)
    mode = "compiled" if compiled.kernels(compiled.MIN_SIZE) is not None else "numpy only"
    print(f"kernels: {mode}; times relative to im2col, * = the path Conv takes")
    print(
        f"{'layer':<30}{'im2col ms':>10}" + "".join(f"{p:>11}" for p in PATHS[1:]) + "  wino diff"
    )
    for model, c, m, hw in LAYERS:
        x = rng.standard_normal((1, c, hw, hw)).astype(np.float32)
        w = (rng.standard_normal((m, c, 3, 3)) / np.sqrt(9 * c)).astype(np.float32)
        calls, taken = paths(x, w)
        reference = calls["im2col"]()
        diff = "-"
        if "winograd" in calls:
            error = np.abs(calls["winograd"]() - reference).max() / np.abs(reference).max()
            diff = f"{error:.1e}"
        for name, call in calls.items():
            np.testing.assert_allclose(call(), reference, rtol=1e-4, atol=1e-4, err_msg=name)
        times = best_of(calls, 40)
        base = times["im2col"]
        cells = [
            f"{times[p] / base:.2f}x" + ("*" if p == taken else " ") if p in times else "-"
            for p in PATHS[1:]
        ]
        first = f"{base / 1e3:.3f}" + ("*" if taken == "im2col" else " ")
        name = f"{model} {c}->{m} {hw}x{hw}"
        print(f"{name:<30}{first:>10}" + "".join(f"{cell:>11}" for cell in cells) + f"  {diff}")
    np.setbufsize(old_bufsize)


if __name__ == "__main__":
    main()
