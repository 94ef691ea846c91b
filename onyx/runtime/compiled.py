"""Compiled kernels for the loops numpy can only run pass by pass (optional: needs numba).

onyx's CNN runs are GEMM-bound; over the GEMMs, numpy spends its time in passes over memory:
im2col copies, and a Conv's epilogue (bias, residual, ReLU, a BatchNormalization) one pass per
step. Compiled, an epilogue is one pass, a shift-and-add one pass, and a 3x3 convolution can
run as Winograd F(2x2, 3x3) (2.25x fewer multiplications), whose input and output transforms
numpy could only do in some twenty passes each. numba compiles each kernel at its first call
(a few seconds); its on-disk cache keeps that to once per machine.

The kernels are single-threaded (see _jit.py for why). Figures: benchmarks/bench_models.py runs
onyx with and without them, bench_conv_paths.py times every convolution path per layer.

``kernels(size)`` gives the compiled functions, or None where numba is missing or unusable,
where ``ONYX_COMPILED=0`` is set, or for work too small to pay. Callers keep their numpy path
for that case, and for what these kernels do not cover (other dtypes, layouts, ranks). Both paths compute the same values,
to rounding for Winograd (a different order of additions, like any GEMM's).
"""

from __future__ import annotations

import logging
import os
from types import ModuleType

import numpy as np

log = logging.getLogger("onyx")

# opcodes of an elementwise program: y = op(y, operand); SWISH: y = y * sigmoid(y) (float32)
ADD, SUB, MUL, DIV, MAX, MIN, SWISH = range(7)
OPCODES = {np.add: ADD, np.subtract: SUB, np.multiply: MUL, np.divide: DIV,
           np.maximum: MAX, np.minimum: MIN}  # fmt: skip
DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

enabled = os.environ.get("ONYX_COMPILED", "1") != "0"  # tests switch it to compare both paths
# Work on fewer elements stays on numpy until numba is loaded (a process running only small
# models should not pay its import, 0.4-0.6 s with the cache); once loaded (a session on
# numba's threads loads it at build), small work takes the compiled kernels too: numpy's
# several passes (a LayerNormalization's half a dozen) cost more in calls there than one
# compiled call.
MIN_SIZE = 1 << 14
_kernels: ModuleType | None = None
_failed = False


def kernels(size: int) -> ModuleType | None:
    """The compiled kernels for work producing ``size`` elements, or None: numba missing or
    broken, kernels switched off, or the work too small (below ``MIN_SIZE``) for loading them
    to pay."""
    if _kernels is not None and enabled:
        return _kernels
    if not enabled or _failed or size < MIN_SIZE:
        return None
    return _load()


def _load() -> ModuleType | None:
    global _kernels, _failed
    try:
        from onyx.runtime import _jit  # imports numba (the kernels compile at first call)
    # numba absent or refusing this numpy (ImportError), llvmlite broken (OSError), no writable
    # place for its cache (RuntimeError)
    except (ImportError, OSError, RuntimeError) as e:
        _failed = True
        log.info("onyx: compiled kernels unavailable (%s: %s); using numpy", type(e).__name__, e)
        return None
    _kernels = _jit
    return _kernels
