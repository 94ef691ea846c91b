"""The machine numba compiles onyx's kernels for: the host's own, with 512-bit vectors wanted.

LLVM tunes its code for most of Intel's AVX-512 CPUs (Skylake-SP onwards) to prefer 256-bit
vectors: its vectorizers then emit 256-bit operations, and the 512-bit ones that onyx's
kernels write out (the GEMM tiles, ``lane_sums``, the Swish) are split in two. Where that is
the tuning, the GEMM ran at 104 GFLOP/s on one core of a Xeon with two 512-bit FMA units
against 134 with wide vectors (OpenBLAS: 158), and light_resnet50 took 110 ms against 81
(onnxruntime: 55). The kernels were tuned on AMD's Zen 5, whose tuning has no such preference.

So before its first kernel compiles, onyx gives numba the host's features plus
``-prefer-256-bit``, the LLVM feature that tuning sets. numba has one code generator per
process, made at its first compilation: other numba code of the process compiles for it too,
and where some compiled before onyx loaded its kernels, they compile for the target made then
(the ``onyx`` logger says so). NUMBA_CPU_NAME or NUMBA_CPU_FEATURES, where set, decide alone.
"""

from __future__ import annotations

import logging

from numba.core import codegen, config, registry

log = logging.getLogger("onyx")

NARROW_TUNING = "prefer-256-bit"  # LLVM's X86 feature for that tuning


def prefer_wide_vectors() -> None:
    """Make numba's code generator, if not made yet, with ``-prefer-256-bit`` on an AVX-512
    host (unless the environment chose the CPU or its features)."""
    if config.CPU_NAME is not None or config.CPU_FEATURES is not None:
        return
    features = codegen.get_host_cpu_features()
    if "+avx512f" not in features.split(","):
        return
    if "_toplevel_target_context" in vars(registry.cpu_target):  # made already
        made = getattr(registry.cpu_target.target_context.codegen(), "_tm_features", "")
        if f"-{NARROW_TUNING}" not in made:
            log.info("onyx: numba compiled code before onyx's kernels; they keep its target "
                     "(possibly 256-bit vectors on AVX-512)")  # fmt: skip
        return
    config.CPU_FEATURES = f"{features},-{NARROW_TUNING}"
    try:
        registry.cpu_target.target_context.codegen()  # made now, with those features
    finally:
        config.CPU_FEATURES = None
