"""The session's allocation limit, checked by kernels whose output size comes from input values."""

from __future__ import annotations

import contextvars
import math
import os

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


def check_allocation(shape, dtype) -> None:
    """Raise AllocationError if an array of ``shape`` and ``dtype`` would exceed the limit."""
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
