"""The target numba compiles onyx's kernels for (_jit_target): wide vectors on AVX-512 hosts,
the environment's choice where it made one. Each case runs in a fresh process, since numba
makes its code generator once per process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("numba")

from numba.core import codegen

WIDE_HOST = "+avx512f" in codegen.get_host_cpu_features().split(",")

REPORT = """
import json, logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
{before}
import onyx.runtime._jit_exp
from numba.core import registry
print(json.dumps(registry.cpu_target.target_context.codegen()._tm_features))
"""


def _features(before: str = "", **env: str) -> tuple[str, str]:
    """The code generator's features in a fresh process that runs ``before`` and then loads
    onyx's kernels, and what it logged."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_CPU_")}
    done = subprocess.run([sys.executable, "-c", REPORT.format(before=before)],
                          env={**clean, **env}, capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), done.stderr


def test_kernels_compile_for_wide_vectors_on_avx512_hosts_only():
    features, _ = _features()
    host = codegen.get_host_cpu_features()
    if WIDE_HOST:
        assert features == f"{host},-prefer-256-bit"
    else:
        assert features == host


def test_the_environment_choosing_the_features_is_left_to_decide():
    chosen = codegen.get_host_cpu_features()
    features, _ = _features(NUMBA_CPU_FEATURES=chosen)
    assert features == chosen


@pytest.mark.skipif(not WIDE_HOST, reason="the preference is only set on AVX-512 hosts")
def test_numba_having_compiled_first_keeps_its_target_and_says_so():
    first = "import numba\nnumba.njit(lambda x: x + 1)(1)"
    features, log = _features(before=first)
    assert "prefer-256-bit" not in features
    assert "numba compiled code before onyx's kernels" in log
