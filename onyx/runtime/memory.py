"""Memory: the session's allocation limit, checked by kernels whose output size comes from input
values, and the process-wide setting that keeps freed memory for reuse (the "arena")."""

from __future__ import annotations

import contextvars
import ctypes
import ctypes.util
import functools
import math
import os
import threading

import numpy as np

from onyx.errors import AllocationError


def default_limit() -> int:
    """Physical memory of the machine (an op asking for more cannot succeed anyway)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 16 << 30


LIMIT: contextvars.ContextVar[int] = contextvars.ContextVar(
    "onyx_allocation_limit", default=default_limit()
)


MAX_RANK = 64  # numpy's NPY_MAXDIMS


def check_allocation(shape, dtype) -> None:
    """Raise AllocationError if an array of ``shape`` and ``dtype`` would exceed the limit."""
    if len(shape) > MAX_RANK:  # a shape read from a big tensor: refuse before looking at it
        raise AllocationError(f"cannot allocate a tensor of rank {len(shape)} (numpy's limit is "
                              f"{MAX_RANK})")  # fmt: skip
    dims = [int(d) for d in shape]
    if any(d < 0 for d in dims):
        raise AllocationError(f"cannot allocate a tensor of negative shape {dims}")
    itemsize = np.dtype(dtype).itemsize if np.dtype(dtype) != object else 8
    nbytes = math.prod(dims) * itemsize
    limit = LIMIT.get()
    if nbytes > limit:
        raise AllocationError(
            f"a tensor of shape {dims} ({nbytes:,} bytes) exceeds the session's allocation limit "
            f"of {limit:,} bytes"
        )


# glibc malloc serves big blocks with mmap and hands them back to the OS on free, and trims the
# heap's top likewise: every new intermediate tensor then costs page faults and zeroing by the
# kernel (tests/runtime/test_session.py counts them). onnxruntime keeps its tensors in an arena
# of its own; numpy allocates with malloc, so the arena here is malloc told to keep what it has.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
_MMAP_THRESHOLD = 32 << 20  # glibc's ceiling for this setting on 64-bit
_TRIM_THRESHOLD = 512 << 20


@functools.cache
def keep_freed_memory() -> bool:
    """Make malloc keep freed memory for reuse (once per process); False where that is not
    possible (not glibc)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
        if not hasattr(libc, "gnu_get_libc_version"):  # only glibc has both
            return False
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
    )


# A kernel's temporaries (a zero-bordered copy of its input) are written and read once per
# call. In a fresh array each call they land in memory that left the caches since
# (malloc hands back other blocks, and a model's steps between two calls pass more than L3 holds):
# the patches of densenet121's 3x3 layers at 28x28, made as rows, took 145 us in the model, 27 us
# in a buffer used again. So they go in buffers of this thread's, one per named use, kept and
# reused.
REUSE_SCRATCH = True  # (a switch for benchmarks/bench_switch.py: False, a new array each call)
_SCRATCH = threading.local()

# Buffers that onyx's GEMM reads by whole vectors (packed weights, packed panels, blocks of
# planes) start on a cache line: malloc gives 16-byte alignment, and each 64-byte vector load
# from a misaligned panel spans two lines. The GEMM alone ran at 124-128 GFLOP/s from such
# panels against 141-151 from aligned ones, one core of a Xeon (Zen 5 minds less).
ALIGNMENT = 64


def aligned_empty(shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
    """An uninitialized C-contiguous array starting on an ``ALIGNMENT``-byte boundary."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    buffer = np.empty(nbytes + ALIGNMENT, np.uint8)
    skip = -buffer.ctypes.data % ALIGNMENT
    return buffer[skip : skip + nbytes].view(dtype).reshape(shape)


def aligned_zeros(shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
    """``aligned_empty``, zeroed."""
    array = aligned_empty(shape, dtype)
    array.fill(0)
    return array


def scratch(use: str, shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
    """An uninitialized array of ``shape`` and ``dtype`` in this thread's buffer for ``use`` (a
    name unique to the kernel that calls it): the same memory comes back at the next call for
    ``use`` in this thread, so the array must not outlive the kernel's call. The buffer grows to
    the largest size asked for, starts on a cache line (``aligned_empty``) and is kept while the
    thread lives."""
    dtype = np.dtype(dtype)
    if not REUSE_SCRATCH:
        return np.empty(shape, dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    buffers = getattr(_SCRATCH, "buffers", None)
    if buffers is None:
        buffers = _SCRATCH.buffers = {}
    buffer = buffers.get(use)
    if buffer is None or buffer.nbytes < nbytes:
        buffer = buffers[use] = aligned_empty((nbytes,), np.uint8)
    return buffer[:nbytes].view(dtype).reshape(shape)
