"""One thread pool for a session's work: kernels split their loops over it, BLAS runs inside.

A session runs with a pool of ``intra_op_num_threads`` threads (default: the machine's
physical cores). Where numba's threading layer allows (``native``), the pool is a
``NativePool``: its hot kernels (GEMMs, convolutions, epilogues, norms, pooling, Gelu, Swish,
softmax) split over numba's threads, which spin between parts (_jit_par.py), and the rest runs
on the calling thread. Otherwise it is a ``Pool`` of Python threads: the thread calling ``run``
and ``size - 1`` workers, woken through the OS for each split; then the default is no pool at
all (BLAS's threads run the GEMMs, the calling thread the rest). Kernels that can split
their work (a GEMM by rows or columns, a convolution by bands of output rows, an epilogue by
rows, pooling by channels) ask ``current()`` for the pool and hand it the parts; each part
writes its own block of the result, so the result does not depend on which thread ran which
part, and the parts depend on the pool's size only: runs with the same thread count give the
same bits.

While a pooled run is in progress, BLAS runs one thread per call (held through threadpoolctl,
process-wide, counted so that overlapping runs in several Python threads restore it only when
the last ends): its GEMMs are parts of the pool's work like any other, so the pool's threads
and BLAS's never compete for the cores (OpenBLAS's idle threads spin for a while after each
call, which slowed everything between GEMMs when both pools were live; see docs/runtime.md,
"Threads"). Without threadpoolctl BLAS cannot be held, and GEMMs are not split: BLAS's own
threads run them, the pool the rest.

Pools are shared by size across sessions: two sessions of 2 threads running at once in two
Python threads share one worker, and each calling thread works through its own parts, so
neither waits on the other's (no deadlock) and the process never runs more than
``size - 1`` workers beside its calling threads.
"""

from __future__ import annotations

import contextvars
import functools
import itertools
import logging
import operator
import os
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from onyx.runtime import compiled, memory

log = logging.getLogger("onyx")
_CURRENT: contextvars.ContextVar[Pool | None] = contextvars.ContextVar("onyx_pool", default=None)
_INSIDE = threading.local()  # set in a thread while it runs a part: nested splits run serially
# Parts below this many multiply-adds (or elements, for memory-bound work) are not worth a
# thread's wake-up (about 10-50 us on a loaded machine).
MIN_FLOPS = 1 << 21
MIN_ELEMENTS = 1 << 16
# numba's threads spin between regions: a region starts in a few us, so smaller parts pay
# there (benchmarks/bench_threads.py, part 5, 2 threads: a 128x64x192 GEMM 33 -> 20 us split
# in two, 128x64x64 even, 64x64x64 slower; a softmax of 8K elements 7.6 -> 5.6 us)
NATIVE_MIN_FLOPS = 1 << 19
NATIVE_MIN_ELEMENTS = 1 << 12
# Products of up to this many rows (a classifier's head, a decoder's step, a short batch) go
# through BLAS's GEMV row by row, each thread on its band of the weight's columns; twice as
# many rows where the weight is read transposed (Gemm's transB), which BLAS's GEMM packs
# slowest; none where the weight is packed for onyx's own GEMM (below), whose tiles of 4 rows
# read the packed weight faster than the GEMV reads it, even for one row (repeated in the
# tile). BLAS's GEMM packs its whole share of the weight first, and called from two threads at
# once on few rows it stalls (benchmarks/bench_few_rows.py).
GEMV_ROWS = 4
# With AVX2 (no ``_jit_gemm.WIDE``), an A read down its columns (an NCHW image's pixels by
# channels) is copied into rows before onyx's GEMM where B has at least this many panels: read
# in place, each step of K loads a line of A's besides the panel's, once per panel. One core of
# a Zen 3, scratch timings of packed_product alone, the copy's time included: 0.59-0.93x the
# time from 16 panels up (0.59 at 49x2048 by 2048x512), 1.0x at 8, 1.2-3.3x at 1-4 (numpy's
# transposing copy runs at ~5 GB/s there).
COPY_ROWS_PANELS = 16
# That copy, of an NCHW image's planes, by _jit_par.transpose_bands (8 x 8 blocks in registers,
# on the pool's threads) rather than numpy's transposing copy (5-12 GB/s on one thread here):
# 1,024 channels of 14x14 in 41 against 152 us, 256 of 56x56 116 against 616 (2 threads,
# scratch timings); a switch for bench_switch.py.
NATIVE_TRANSPOSE = True
# Products by a weight of at least this depth (K) run onyx's own GEMM on the weight packed once
# (_jit_gemm.py); shallower ones leave its tiles short next to their stores. (Cache-hot, one
# product at a time, K = 64 ran at 0.8x OpenBLAS's speed in trials while writing it, K = 24 at
# 0.5x; in models, where the weight comes from memory, K = 64 pays: the 2-layer BERT and GPT-2
# of hidden 64 0.94x their time with 128 here, MobileNetV2 and EfficientNet-B0 0.98x,
# benchmarks/bench_switch.py threads.PACKED_DEPTH=128.)
PACKED_DEPTH = 64
# Products whose right operand is made at run time (a convolution's im2col columns) run onyx's
# own GEMM from this depth, packing that operand as they go (_jit_par.activation_gemm and the
# convolution kernels beside it); shallower, BLAS's.
ACTIVATION_DEPTH = 128
# Stacked products (attention's heads) run onyx's own GEMM, packing each b[i] as they go, from
# this depth of b; shallower, BLAS's per-matrix calls. (Heads of 16, the 2-layer BERT and GPT-2:
# 0.97-0.99x their time at 16 against 32, alternating runs of bench_switch.py, 3,000 each, four
# times; scratch timings of 4-8 heads of 128 by 2-8 deep were even or went either way.)
STACK_DEPTH = 16


@functools.cache
def physical_cores() -> int:
    """The physical cores this process may run on (hyperthreads not counted; 1 at least),
    looked up once."""
    try:
        allowed = os.sched_getaffinity(0)
    except (AttributeError, OSError):
        allowed = set(range(os.cpu_count() or 1))
    cores: set[tuple[str, str]] = set()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = package = None
            for line in f:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key == "processor":
                    cpu = int(value)
                elif key == "physical id":
                    package = value
                elif key == "core id" and cpu in allowed:
                    cores.add((package or "0", value))
    except (OSError, ValueError):
        cores = set()
    return max(1, min(len(cores), len(allowed)) if cores else len(allowed))


class _Batch:
    """The parts of one split: threads take the next part until none is left."""

    __slots__ = ("done", "error", "fn", "left", "lock", "next", "parts")

    def __init__(self, fn: Callable, parts: Sequence[tuple]):
        self.fn, self.parts = fn, parts
        self.next = itertools.count()  # (next() on it is atomic under the GIL)
        self.left = len(parts)
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.error: BaseException | None = None

    def work(self) -> None:
        _INSIDE.active = True
        try:
            while (i := next(self.next)) < len(self.parts):
                try:
                    if self.error is None:
                        self.fn(*self.parts[i])
                except BaseException as e:  # noqa: BLE001 - handed to the caller
                    self.error = e
                with self.lock:
                    self.left -= 1
                    if self.left == 0:
                        self.done.set()
        finally:
            _INSIDE.active = False


class Pool:
    """``size`` threads: the caller of ``run`` and ``size - 1`` workers, started at first use.

    ``native``: None, or the ``Native`` kernels whose splits run on numba's threads instead
    (``NativePool``)."""

    native: Native | None = None

    def __init__(self, size: int):
        self.size = max(1, int(size))
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        self._lock = threading.Lock()

    def _start(self) -> None:
        with self._lock:
            while len(self._workers) < self.size - 1:
                worker = threading.Thread(target=self._serve, name=f"onyx-pool-{self.size}",
                                          daemon=True)  # fmt: skip
                worker.start()
                self._workers.append(worker)

    def _serve(self) -> None:
        # as in a run: inf and NaN results are values, and numpy's ufunc buffer is the session's
        np.seterr(all="ignore")
        np.setbufsize(1024)
        while True:
            batch = self._queue.get()
            if batch is None:
                return
            batch.work()

    def run(self, fn: Callable, parts: Sequence[tuple]) -> None:
        """Call ``fn(*part)`` for each part, across the pool; re-raise the first failure."""
        if self.size == 1 or len(parts) < 2 or getattr(_INSIDE, "active", False):
            for part in parts:
                fn(*part)
            return
        if len(self._workers) < self.size - 1:
            self._start()
        batch = _Batch(fn, parts)
        for _ in range(min(self.size, len(parts)) - 1):
            self._queue.put(batch)
        batch.work()  # the caller takes parts too: it never waits while parts are left
        batch.done.wait()
        if batch.error is not None:
            raise batch.error


class NativePool(Pool):
    """A pool whose hot kernels (GEMMs, convolutions, epilogues) split over numba's threads
    (``native``), which spin between parts. The other kernels' parts run one after another on
    the calling thread: Python workers woken beside numba's spinning threads would share a core
    with one of them."""

    def __init__(self, size: int, native: Native, prepack_weights: bool = True):
        super().__init__(size)
        self.native = native
        self.prepack_weights = prepack_weights  # (the session's option: see PackedWeight)

    def run(self, fn: Callable, parts: Sequence[tuple]) -> None:
        for part in parts:
            fn(*part)


_POOLS: dict[int, Pool] = {}
_POOLS_LOCK = threading.Lock()


def _after_fork() -> None:
    """In a forked child the workers are gone: pools start new ones at their next use. numba's
    threads are not used in the child of a process that had started them (its OpenMP layer may
    hang there): that child's sessions use the Python pool. A child of a process that had not
    (onyx.batch's forkserver) starts its own."""
    global _POOLS_LOCK
    _POOLS_LOCK = threading.Lock()
    if _NATIVE.kernels is not None:
        _NATIVE.refused = "in a process forked from one that had started numba's threads"
        _NATIVE.kernels = None
    _NATIVE.lock = threading.Lock()
    for found in _POOLS.values():
        found._queue, found._workers, found._lock = queue.SimpleQueue(), [], threading.Lock()
    _BLAS.lock, _BLAS.active, _BLAS.saved = threading.Lock(), 0, []


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def pool(size: int) -> Pool:
    """The process's pool of ``size`` threads (one per size, shared by sessions)."""
    with _POOLS_LOCK:
        found = _POOLS.get(size)
        if found is None:
            found = _POOLS[size] = Pool(size)
        return found


def current() -> Pool | None:
    """The pool of the run in progress in this thread (None outside runs, or in a part)."""
    found = _CURRENT.get()
    if found is None or getattr(_INSIDE, "active", False):
        return None
    return found


def bands(count: int, parts: int) -> list[tuple[int, int]]:
    """``count`` items as up to ``parts`` contiguous (start, stop) ranges of near-equal size."""
    parts = max(1, min(parts, count))
    step, extra = divmod(count, parts)
    out, start = [], 0
    for i in range(parts):
        stop = start + step + (i < extra)
        out.append((start, stop))
        start = stop
    return out


# --- BLAS held to one thread while pooled runs are in progress ---------------------------------
class _Blas:
    """Counts the pooled runs in progress; the first holds BLAS to one thread, the last restores
    what it found."""

    def __init__(self):
        self.lock = threading.Lock()
        self.active = 0
        self.saved: list[tuple[Callable, int]] = []
        # (get, set) of each BLAS library's thread count; None until looked up
        self.libraries: list[tuple[Callable, Callable]] | None = None

    def _find(self) -> list[tuple[Callable, Callable]]:
        if self.libraries is None:
            self.libraries = _blas_libraries()
        return self.libraries

    def controllable(self) -> bool:
        return bool(self._find())

    def enter(self) -> None:
        with self.lock:
            if self.active == 0:
                self.saved = [(setter, getter()) for getter, setter in self._find()]
                for setter, threads in self.saved:
                    if threads != 1:
                        setter(1)
            self.active += 1

    def exit(self) -> None:
        with self.lock:
            self.active -= 1
            if self.active == 0:
                for setter, threads in self.saved:
                    if threads != 1:
                        setter(threads)
                self.saved = []


def _blas_libraries() -> list[tuple[Callable, Callable]]:
    """(get, set) of the thread count of each BLAS library loaded, through threadpoolctl; []
    where it is missing or a library keeps a count per thread (OpenMP builds: a limit set here
    would not hold in the pool's workers).

    For OpenBLAS the library's own two functions are called (0.3 us for a set and a reset):
    threadpoolctl's methods took 10-30 us, and leave the count alone when called from another
    Python thread than the first that set it."""
    try:
        import threadpoolctl

        found = threadpoolctl.ThreadpoolController().select(user_api="blas").lib_controllers
    except Exception:  # noqa: BLE001 - not installed, or a library it cannot inspect
        return []
    libraries = []
    for lib in found:
        if getattr(lib, "threading_layer", None) == "openmp":
            return []
        symbol = getattr(lib, "_get_symbol", None)
        if getattr(lib, "internal_api", None) == "openblas" and symbol is not None:
            getter = symbol("openblas_get_num_threads")
            setter = symbol("openblas_set_num_threads")
            if getter is not None and setter is not None:
                libraries.append((getter, setter))
                continue
        libraries.append((lambda lib=lib: lib.num_threads, lib.set_num_threads))
    return libraries


_BLAS = _Blas()


# --- numba's threads -----------------------------------------------------------------------
class Native:
    """numba's threads as a pool's (the kernels of _jit_par.py) and the CBLAS routines they
    call, by dtype: GEMMs as (function, its 1, its 0), GEMVs (where found) as the function."""

    def __init__(self, kernels: Any, gemms: dict[np.dtype, tuple[Any, Any, Any]],
                 gemvs: dict[np.dtype, Any] | None = None):  # fmt: skip
        self.kernels = kernels
        self.gemms = gemms
        self.gemvs = gemvs or {}

    def enter(self, size: int) -> int:
        """Set numba's thread count for this thread's parallel regions; the count it had."""
        import numba

        before = numba.get_num_threads()
        wanted = max(1, min(size, numba.config.NUMBA_NUM_THREADS))
        if wanted != before:  # (each set costs a few us: most runs find it set)
            numba.set_num_threads(wanted)
        return before

    def exit(self, before: int) -> None:
        import numba

        if numba.get_num_threads() != before:
            numba.set_num_threads(before)

    def matmul(self, a: np.ndarray, b: np.ndarray, out: np.ndarray, parts: int,
               finish: Finish | None = None, by_rows: bool | None = None) -> bool:  # fmt: skip
        """out = a @ b (2-D) over numba's threads, split along the larger of M and N (each part
        packs the whole of the operand it does not split) or as ``by_rows`` says, each part
        then ``finish``ed; False where BLAS cannot take these operands as they are laid
        out."""
        found = self.gemms.get(a.dtype)
        if found is None or not (b.dtype == out.dtype == a.dtype) or out.strides[1] != out.itemsize:
            return False
        ta, tb = _cblas_layout(a), _cblas_layout(b)
        if ta is None or tb is None or out.strides[0] < out.shape[1] * out.itemsize:
            return False
        gemm, one, zero = found
        kind = out.dtype.type
        bias = _NO_BIAS[out.dtype] if finish is None or finish.bias is None else finish.bias
        lo, hi = (-np.inf, np.inf) if finish is None else (finish.lo, finish.hi)
        gemv = self.gemvs.get(a.dtype)
        if a.shape[0] <= few_rows(b) and gemv is not None:
            self.kernels.gemv(gemv, a, b, out, *tb, parts, finish is not None, bias, kind(lo),
                              kind(hi), one, zero)  # fmt: skip
            return True
        rows = a.shape[0] >= b.shape[1] if by_rows is None else by_rows
        self.kernels.gemm(gemm, a, b, out, *ta, *tb, parts, rows,
                          finish is not None, bias, kind(lo), kind(hi), one, zero)  # fmt: skip
        return True

    def packed_matmul(self, a: np.ndarray, panels: np.ndarray, out: np.ndarray, parts: int,
                      finish: Finish | None = None, by_rows: bool | None = None,
                      swish: bool = False) -> None:  # fmt: skip
        """out = a @ B for float32 ``a`` (M, K; or a convolution's patches where they lie:
        _jit_gemm._term_of) and B packed into ``panels`` (``packed_weight``), over numba's
        threads by bands of rows or of B's columns (along the larger of M and N, or as
        ``by_rows`` says), each part finished (a residual laid out as ``out``); then, where
        ``swish``, a Swish (in the store: for an ``out`` of rows of unit stride, whose stores
        vectorize)."""
        m, n = out.shape
        bias = _NO_BIAS[out.dtype] if finish is None or finish.bias is None else finish.bias
        lo, hi = (-np.inf, np.inf) if finish is None else (finish.lo, finish.hi)
        lo, hi = np.float32(lo), np.float32(hi)
        residual = None if finish is None else finish.residual
        if m <= self.kernels.FEW:  # (tiles of 4 rows by 4 panels: _jit_gemm.few_rows_product)
            if residual is None:
                self.kernels.few_rows_gemm(a, panels, out, n, bias, lo, hi, parts)
            else:  # (its store takes no residual: the finish after, in the same order)
                self.kernels.few_rows_gemm(a, panels, out, n, _NO_BIAS[out.dtype],
                                           np.float32(-np.inf), np.float32(np.inf), parts)  # fmt: skip
                finish.apply(out)
            if swish:
                _swish(out)
            return
        rows = m >= n if by_rows is None else by_rows
        if (
            not self.kernels.WIDE
            and type(a) is np.ndarray
            and a.strides[1] != a.itemsize
            and panels.shape[0] >= COPY_ROWS_PANELS
        ):
            rows_of_a = memory.scratch("gemm.rows", a.shape)
            if NATIVE_TRANSPOSE and a.T.flags.c_contiguous and a.dtype == np.float32:
                self.kernels.transpose_bands(a.T, rows_of_a, min(parts, -(-a.shape[0] // 16)))
            else:
                np.copyto(rows_of_a, a)
            a = rows_of_a
        self.kernels.packed_gemm(a, panels, out, n, bias, lo, hi, parts, rows, swish, residual)

    def planes_matmul(self, tiles: np.ndarray, b: np.ndarray, out: np.ndarray, parts: int,
                      finish: Finish | None = None, swish: bool = False) -> None:  # fmt: skip
        """out = W @ b for W (M, K) packed into ``tiles`` (``row_tiles``), float32 ``b`` (K, P)
        and ``out`` (M, P), both of rows of unit stride, over numba's threads (a convolution's
        planes: ``_jit_gemm.planes_product``; ``b`` may be a convolution's patches where they
        lie, (x, pixels, terms): ``_jit_gemm._copy_plane_row``); with ``finish``, its bias by
        row (M,), its residual (M, P) and bounds; then, where ``swish``, a Swish."""
        bias = _NO_BIAS[out.dtype] if finish is None or finish.bias is None else finish.bias
        lo, hi = (-np.inf, np.inf) if finish is None else (finish.lo, finish.hi)
        residual = None if finish is None else finish.residual
        depth = b[2].shape[0] if type(b) is tuple else b.shape[0]
        spans = self.kernels.span_blocks(depth)
        blocks = memory.scratch("gemm.blocks", (parts, spans, depth, self.kernels.BLOCK))
        self.kernels.planes_gemm(tiles, b, out, out.shape[0], bias, np.float32(lo),
                                 np.float32(hi), parts, blocks, swish, residual)  # fmt: skip

    def activation_matmul(self, a: np.ndarray, b: np.ndarray, out: np.ndarray, parts: int) -> None:
        """out = a @ b for float32 ``a`` (M, K), ``b`` (K, N) made at run time (an activation,
        any strides) and ``out`` of unit column stride, by onyx's own GEMM over numba's
        threads: each band of ``b``'s 16-column panels packed, then multiplied by every row of
        ``a`` the same way, so that equal rows of ``a`` give equal rows of ``out`` (BLAS's
        kernels round rows by their place in a tile: OpenBLAS 0.3.31 on AVX-512)."""
        m, k = a.shape
        n = b.shape[1]
        count = -(-n // 16)
        parts = min(count, parts) if m * k * n >= NATIVE_MIN_FLOPS else 1
        panels = memory.scratch("gemm.activation_panels", (count, k, 16))
        lo, hi = np.float32(-np.inf), np.float32(np.inf)
        self.kernels.activation_gemm(a, b, panels, out, _NO_BIAS[out.dtype], lo, hi, parts)

    def packed_stack(self, a: np.ndarray, b: np.ndarray, out: np.ndarray, parts: int) -> bool:
        """out[i] = a[i] @ b[i] for float32 stacks, b at least STACK_DEPTH deep, by onyx's own
        GEMM over numba's threads, each b[i] packed as it goes (any strides: head views; out's
        rows of unit stride); False where the operands are not such."""
        if not (a.ndim == b.ndim == 3 and b.shape[0] == a.shape[0] and b.shape[1] >= STACK_DEPTH
                and a.dtype == b.dtype == out.dtype == np.float32
                and out.strides[2] == out.itemsize):  # fmt: skip
            return False
        parts = min(parts, a.shape[0])
        k, n = b.shape[1], b.shape[2]
        panels = memory.scratch("gemm.stack_panels", (parts, -(-n // 16), k, 16))
        self.kernels.packed_stack(a, b, out, panels, parts)
        return True

    def stacked_matmul(self, a: np.ndarray, b: np.ndarray, out: np.ndarray, parts: int) -> bool:
        """out[i] = a[i] @ (b[i] or b) for 3-D ``a`` and C-contiguous ``out``, by bands of the
        stack, each matrix read as laid out (a head transpose's views as they are); False
        where BLAS cannot take them so."""
        found = self.gemms.get(a.dtype)
        stacked = b.ndim == 3
        if (
            found is None
            or not (b.dtype == out.dtype == a.dtype)
            or a.ndim != 3
            or not out.flags.c_contiguous
            or (stacked and b.shape[0] != a.shape[0])
            or a.shape[0] == 0
        ):
            return False
        ta = _cblas_layout(a[0])
        tb = _cblas_layout(b[0] if stacked else b)
        if ta is None or tb is None or a.strides[0] % a.itemsize or (
            stacked and b.strides[0] % b.itemsize
        ):
            return False
        gemm, one, zero = found
        self.kernels.gemm_stack(gemm, a, b, out, *ta, *tb, stacked, parts, one, zero)
        return True


def packed_weight(b: np.ndarray) -> np.ndarray:
    """B (K, N) as float32 panels of 16 columns, (ceil(N/16), K, 16), the last zero-padded: the
    layout _jit_gemm.packed_product reads."""
    k, n = b.shape
    count = -(-n // 16)
    panels = memory.aligned_zeros((count, k, 16))
    for p in range(count):
        columns = b[:, p * 16 : (p + 1) * 16]
        panels[p, :, : columns.shape[1]] = columns
    return panels


def row_tiles(w: np.ndarray) -> np.ndarray:
    """W (M, K) as float32 tiles of R rows, (ceil(M/R), K, R), the rows past M zero: the layout
    _jit_gemm.planes_product reads (R: its ``ROWS``, 6 with AVX-512, 4 without)."""
    from onyx.runtime._jit_gemm import ROWS  # (packed only where numba runs onyx's GEMM)

    m, k = w.shape
    count = -(-m // ROWS)
    tiles = np.zeros((count, k, ROWS), np.float32)
    for t in range(count):
        rows = w[t * ROWS : (t + 1) * ROWS]
        tiles[t, :, : rows.shape[0]] = rows.T
    return tiles


class PackedWeight:
    """A product's weight packed for onyx's own GEMM (by ``pack``: ``packed_weight`` for a
    right operand, ``row_tiles`` for a left one), kept while the same array comes back. Only
    read-only arrays are packed: the session's initializers are (a model's weights come back
    run after run, unchanged); a feed or an activation is writeable, and a copy of it could go
    stale."""

    __slots__ = ("entry", "pack")

    def __init__(self, pack: Callable[[np.ndarray], np.ndarray] = packed_weight):
        # (owner, layout, panels, the array packed): swapped whole, thread-safe
        self.entry: tuple | None = None
        self.pack = pack

    def get(self, b: np.ndarray) -> np.ndarray | None:
        """The panels of ``b`` (2-D, as the product reads it: a transposed view too); None
        where ``b`` is writeable. The same array is known by itself; a view made afresh at each
        call by its base and layout: at once where it spans the whole of the same base with
        the same shape, strides and dtype (so it starts where the base does: a convolution's
        weight reshaped at each call), else by its ``__array_interface__`` (1.5 us)."""
        if b.flags.writeable:
            return None
        entry, base = self.entry, b.base
        if entry is not None and (
            entry[3] is b
            or (
                base is entry[0]
                and type(base) is np.ndarray
                and b.size == base.size
                and b.shape == entry[1][1]
                and b.strides == entry[1][2]
                and b.dtype == entry[1][3]
            )
        ):
            return entry[2]
        owner = b if base is None else base
        layout = (b.__array_interface__["data"][0], b.shape, b.strides, b.dtype)
        if entry is None or entry[0] is not owner or entry[1] != layout:
            entry = (owner, layout, self.pack(b), b)
        else:
            entry = (*entry[:3], b)
        self.entry = entry
        return entry[2]


def swish_in_place(x: np.ndarray) -> bool:
    """Put ``x`` through the Swish kernel's compiled pass in place, on the current pool of
    numba's threads; False (x untouched) where it cannot: no such pool, or x not C-contiguous
    float32."""
    found = current()
    if (
        found is None
        or found.native is None
        or x.dtype != np.float32
        or not x.flags.c_contiguous
        or compiled.kernels(x.size) is None
    ):
        return False
    parts = max(1, min(found.size, x.size // NATIVE_MIN_ELEMENTS))
    found.native.kernels.swish_in_place_bands(x.reshape(-1), parts)
    return True


def _swish(x: np.ndarray) -> None:
    """``x`` through the Swish kernel, in place (kernels.math's values)."""
    if not swish_in_place(x):
        from onyx.runtime.kernels.math import swish  # (it imports this module)

        x[...] = swish(x)


def few_rows(b: np.ndarray) -> int:
    """The most rows of a product by ``b`` (2-D) that go through BLAS's GEMV (``GEMV_ROWS``)."""
    return 2 * GEMV_ROWS if b.strides[0] == b.itemsize and b.shape[1] > 1 else GEMV_ROWS


def _cblas_layout(x: np.ndarray) -> tuple[int, int] | None:
    """(CBLAS's transpose flag, leading dimension) that read the 2-D ``x`` as it is laid out in
    memory (rows or columns of unit stride, a whole number of elements apart, none overlapping);
    None where BLAS cannot."""
    size = x.itemsize
    rows, cols = x.shape
    row, col = x.strides
    if (col == size or cols == 1) and row % size == 0 and row >= max(1, cols) * size:
        return 111, row // size  # CblasNoTrans
    if (row == size or rows == 1) and col % size == 0 and col >= max(1, rows) * size:
        return 112, col // size  # CblasTrans: x's transpose is laid out by rows
    return None


class _NativeLoader:
    """``native()``'s state: the kernels once loaded, or why they were refused."""

    def __init__(self):
        self.lock = threading.Lock()
        self.kernels: Native | None = None
        self.refused: str | None = None


_NATIVE = _NativeLoader()


def native() -> Native | None:
    """numba's threads for the pools, or None where they cannot serve: numba missing or the
    compiled kernels off (at this call), no CBLAS GEMM found in the BLAS numpy loaded, or a
    threading layer that several Python threads may not enter at once (numba's workqueue; its
    OpenMP and TBB layers may). Loaded once per process (numba's threads started then); the reason for a
    refusal is logged once."""
    if compiled.kernels(compiled.MIN_SIZE) is None:  # (switched off for now, or numba missing)
        return None
    if _NATIVE.kernels is not None or _NATIVE.refused is not None:
        return _NATIVE.kernels
    with _NATIVE.lock:
        if _NATIVE.kernels is None and _NATIVE.refused is None:
            try:
                _NATIVE.kernels = _load_native()
            except _Refused as e:
                _NATIVE.refused = str(e)
            except Exception as e:  # noqa: BLE001 - numba failing to compile or start threads
                _NATIVE.refused = f"{type(e).__name__}: {e}"
            if _NATIVE.refused is not None:
                log.info("onyx: the pool's threads are Python threads (%s)", _NATIVE.refused)
    return _NATIVE.kernels


class _Refused(Exception):
    pass


def _load_native() -> Native:
    gemms, gemvs = _cblas_routines()
    if not gemms:
        raise _Refused("no CBLAS GEMM found in the BLAS numpy loaded")
    import numba

    from onyx.runtime import _jit_par

    # one region, alone, starts numba's threads: only then does numba say which layer it took
    rows = np.zeros((1, 1), np.float32)
    _jit_par.program_bands(rows, rows, False, rows, 1, np.zeros(0, np.int8),
                           np.zeros(0, np.bool_), np.zeros((0, 4, 1), np.float32), 1)  # fmt: skip
    layer = numba.threading_layer()
    if layer not in ("omp", "tbb"):
        raise _Refused(f"numba's {layer} threading layer cannot be entered from two threads")
    return Native(_jit_par, gemms, gemvs)


def _cblas_routines() -> tuple[dict[np.dtype, tuple[Any, Any, Any]], dict[np.dtype, Any]]:
    """The CBLAS GEMMs (sgemm, dgemm: each with its 1 and 0) and GEMVs (sgemv, dgemv) of the
    first OpenBLAS loaded (through threadpoolctl, which finds its symbols' prefix and suffix:
    numpy's wheels bundle an ILP64 build whose names end in 64_), typed for numba to call;
    empty where the GEMMs are not found (the GEMVs alone may be missing).

    Each routine is an instance of a prototype class of its own signature: numba's dispatcher
    remembers the type of a ctypes function by its Python class, so routines of one library's
    class (argtypes set on each) would all take the type of the first it saw, and every call
    of a kernel given another would retype its arguments in Python (numba's slow path)."""
    import ctypes

    try:
        import threadpoolctl

        found = threadpoolctl.ThreadpoolController().select(internal_api="openblas")
        libraries = found.lib_controllers
    except Exception:  # noqa: BLE001 - not installed, or a library it cannot inspect
        return {}, {}
    pointer = ctypes.c_void_p
    for lib in libraries:
        symbol, suffix = getattr(lib, "_get_symbol", None), getattr(lib, "_symbol_suffix", None)
        if symbol is None or suffix is None:
            continue
        index = ctypes.c_int64 if "64" in suffix else ctypes.c_int32
        order = ctypes.c_int  # (CBLAS's enums: layout, transposes)
        gemms, gemvs = {}, {}
        for dtype, prefix, real in ((np.float32, "cblas_s", ctypes.c_float),
                                    (np.float64, "cblas_d", ctypes.c_double)):  # fmt: skip
            gemm = symbol(prefix + "gemm")
            if gemm is None:
                break
            gemm_type = ctypes.CFUNCTYPE(None, order, order, order, index, index, index, real,
                                         pointer, index, pointer, index, real, pointer, index)  # fmt: skip
            gemms[np.dtype(dtype)] = (_typed(gemm, gemm_type), dtype(1), dtype(0))
            gemv = symbol(prefix + "gemv")
            if gemv is not None:
                gemv_type = ctypes.CFUNCTYPE(None, order, order, index, index, real, pointer,
                                             index, pointer, index, real, pointer, index)  # fmt: skip
                gemvs[np.dtype(dtype)] = _typed(gemv, gemv_type)
        else:
            return gemms, gemvs
    return {}, {}


def _typed(routine: Any, prototype: Any) -> Any:
    """The C function ``routine`` (a ctypes function) as an instance of ``prototype``."""
    import ctypes

    return prototype(ctypes.cast(routine, ctypes.c_void_p).value)


class Threads:
    """A session's threads: ``with threads():`` around a run makes its pool ``current()``."""

    def __init__(self, intra_op_num_threads: int = 0, native_threads: bool = True,
                 prepack_weights: bool = True):  # fmt: skip
        """``native_threads=False``: the pool's threads are Python threads even where numba's
        could serve (for comparisons). ``prepack_weights=False``: products by a weight stay on
        BLAS (no packed copies of the weights)."""
        if intra_op_num_threads == 0:
            # The default: numba's threads on the physical cores where they serve; else no pool
            # (BLAS's own threads run the GEMMs, the rest runs on the calling thread): Python
            # threads, woken through the OS, took 1.05-1.33x that time in-model on this
            # project's 2-core machine, numba's 0.8-1.1x (docs/runtime.md, "Threads").
            found = native() if native_threads and _BLAS.controllable() else None
            if found is None:
                self.size, self.pool, self.splits_gemms = 1, pool(1), False
                return
            intra_op_num_threads = physical_cores()
        self.size = intra_op_num_threads
        # GEMMs are split over the pool only where BLAS can be held to one thread meanwhile
        self.splits_gemms = _BLAS.controllable()
        # One thread takes numba's pool too: its kernels (a convolution's GEMM with its
        # epilogue, Winograd by chunks of images, a row's norm in one pass) serve one thread
        # as well (onyx.batch runs several one-thread runs at once: bench_batch.py)
        found = native() if native_threads and self.splits_gemms else None
        self.pool = pool(intra_op_num_threads) if found is None else NativePool(
            intra_op_num_threads, found, prepack_weights
        )

    def __call__(self) -> _Run:
        return _Run(self)


class _Run:
    """The context of one run (a class: contextlib's generator took 5 us a run)."""

    __slots__ = ("count", "threads", "token")

    def __init__(self, threads: Threads):
        self.threads = threads

    def __enter__(self) -> Pool:
        self.token = _CURRENT.set(self.threads.pool)
        if self.threads.splits_gemms:
            _BLAS.enter()
        if self.threads.pool.native is not None:
            self.count = self.threads.pool.native.enter(self.threads.size)
        return self.threads.pool

    def __exit__(self, *exc: object) -> None:
        if self.threads.pool.native is not None:
            self.threads.pool.native.exit(self.count)
        if self.threads.splits_gemms:
            _BLAS.exit()
        _CURRENT.reset(self.token)


class blas_held:  # (lower case: used as a context manager, like a function)
    """``with blas_held():`` BLAS runs one thread per call meanwhile (where it can be held),
    counted with the pooled runs: for work that runs GEMMs in several threads at once."""

    __slots__ = ("held",)

    def __enter__(self) -> None:
        self.held = _BLAS.controllable()
        if self.held:
            _BLAS.enter()

    def __exit__(self, *exc: object) -> None:
        if self.held:
            _BLAS.exit()


def splits_gemms() -> bool:
    """Whether GEMMs may be split over the current pool (BLAS is held to one thread)."""
    return _BLAS.active > 0


# --- split kernels -------------------------------------------------------------------------
class Finish(NamedTuple):
    """What a GEMM's result gets, part by part while each is in cache: ``bias`` (N,) added
    (None: nothing), then ``residual`` (an array of the whole result's shape; None: nothing),
    then clamped to [lo, hi] as numpy's maximum and minimum do (NaN kept): a linear layer's
    bias and ReLU (or Clip), a convolution's residual connection. ``bias`` has the result's
    dtype, the bounds are not NaN. Only onyx's own packed products (``Native.packed_matmul``,
    ``Native.planes_matmul``) take a residual: ``matmul``'s parts do not."""

    bias: np.ndarray | None
    lo: float
    hi: float
    residual: np.ndarray | None = None

    def apply(self, y: np.ndarray, columns: slice = slice(None)) -> None:
        """In place, on ``y`` (M, N) (its ``columns`` of the N, where a part is a block of
        them; a residual for the whole of y only)."""
        if self.bias is not None:
            np.add(y, self.bias[columns], out=y)
        if self.residual is not None:
            np.add(y, self.residual, out=y)
        if self.lo > -np.inf:
            np.maximum(y, y.dtype.type(self.lo), out=y)
        if self.hi < np.inf:
            np.minimum(y, y.dtype.type(self.hi), out=y)


_NO_BIAS = {np.dtype(t): np.empty(0, t) for t in (np.float32, np.float64)}


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None,
           finish: Finish | None = None, by_rows: bool | None = None,
           packed: PackedWeight | None = None, swish: bool = False) -> np.ndarray:  # fmt: skip
    """``np.matmul(a, b, out=out)`` for a 2-D ``a`` (M, K) and ``b`` (K, N), split over the
    current pool by rows (or, where N exceeds M, by columns; ``by_rows`` chooses where given)
    when it is worth it; each part then ``finish``ed where given, then through a Swish where
    ``swish`` (in the store of onyx's own GEMM where it takes the product, else a pass after).
    ``packed``: where ``b`` is a weight, its cache for onyx's own GEMM (``PackedWeight``)."""
    found = current()
    m, k = a.shape
    n = b.shape[1]
    native = found is not None and found.native is not None and splits_gemms()
    least = NATIVE_MIN_FLOPS if native else MIN_FLOPS
    # (a product of few rows by a large weight is bound by reading the weight: split too)
    small = m * k * n < least * 2 and k * n < MIN_ELEMENTS * 4
    # (a weight packed for onyx's own GEMM takes every product: reading its panels once, it
    # runs 1, 2 or 4 rows in about the same time, where the GEMV reads the weight per row)
    packable = (
        native
        and packed is not None
        and found.prepack_weights
        and k >= PACKED_DEPTH
        and a.dtype == b.dtype == np.float32
        and not b.flags.writeable
        and (out is None or (out.dtype == a.dtype and out.strides[1] == out.itemsize))
    )
    if swish and not packable:  # (else in the packed product's store)
        out = matmul(a, b, out, finish, by_rows, packed)
        _swish(out)
        return out
    if native and not small and not packable and m <= few_rows(b):  # (see GEMV_ROWS)
        whole = np.empty((m, n), np.result_type(a, b)) if out is None else out
        if found.native.matmul(a, b, whole, found.size, finish):
            return whole
    if packable:
        whole = np.empty((m, n), np.float32) if out is None else out
        parts = 1 if small else found.size
        found.native.packed_matmul(a, packed.get(b), whole, parts, finish, by_rows, swish)
        return whole
    if found is None or found.size == 1 or small or not splits_gemms():
        if (
            finish is not None
            and found is not None
            and found.native is not None
            and splits_gemms()
            and min(m, n) > 1  # (numpy takes a product by a vector to BLAS's GEMV)
        ):  # one part: the finish compiled, while the product is in cache
            whole = np.empty((m, n), np.result_type(a, b)) if out is None else out
            if found.native.matmul(a, b, whole, 1, finish):
                return whole
        out = np.matmul(a, b, out=out)
        if finish is not None:
            finish.apply(out)
        return out
    if out is None:
        out = np.empty((m, n), np.result_type(a, b))
    parts = found.size
    if found.native is not None and found.native.matmul(a, b, out, parts, finish, by_rows):
        return out
    # each part packs the whole of the operand it does not split: rows share out A and pack
    # all of B, columns the reverse, so the split goes along the larger of M and N (BERT's
    # 128-row products by 768x3072 weights: 155 -> 173 GF/s on 2 threads by columns)
    if m >= n if by_rows is None else by_rows:

        def rows(r0, r1):
            np.matmul(a[r0:r1], b, out=out[r0:r1])
            if finish is not None:
                finish.apply(out[r0:r1])

        found.run(rows, [p for p in bands(m, parts) if p[0] < p[1]])
    else:
        # (columns in multiples of 16, the width of BLAS's kernels)
        cols = [(c0 * 16, min(n, c1 * 16)) for c0, c1 in bands((n + 15) // 16, parts)]

        def columns(c0, c1):
            np.matmul(a, b[:, c0:c1], out=out[:, c0:c1])
            if finish is not None:
                finish.apply(out[:, c0:c1], slice(c0, c1))

        found.run(columns, [p for p in cols if p[0] < p[1]])
    return out


def packed_replay(
    a: np.ndarray,
    b: np.ndarray,
    out: np.ndarray,
    finish: Finish | None = None,
    by_rows: bool | None = None,
    packed: PackedWeight | None = None,
    swish: bool = False,
) -> Callable[[np.ndarray, np.ndarray], None] | None:
    """``matmul(a, b, out, finish, by_rows, packed, swish)`` again for operands laid out as
    these, in the current pool: a function (a, out) -> None calling onyx's packed GEMM with
    what it takes fixed now (the panels, bias, bounds, split), for a convolution's kept path
    (kernels/conv.py, ``_Replay``); None where ``matmul`` would take another way (no packed
    weight, few rows, a residual, AVX2's copy of a transposed ``a`` into rows)."""
    found = current()
    if (
        found is None
        or found.native is None
        or not splits_gemms()
        or packed is None
        or not found.prepack_weights
        or (finish is not None and finish.residual is not None)
    ):
        return None
    m, k = a.shape
    n = b.shape[1]
    kernels = found.native.kernels
    if (
        k < PACKED_DEPTH
        or not a.dtype == b.dtype == out.dtype == np.float32
        or b.flags.writeable
        or out.strides[1] != out.itemsize
        or m <= kernels.FEW
    ):
        return None
    panels = packed.get(b)
    if panels is None or (
        not kernels.WIDE and a.strides[1] != a.itemsize and panels.shape[0] >= COPY_ROWS_PANELS
    ):
        return None
    small = m * k * n < NATIVE_MIN_FLOPS * 2 and k * n < MIN_ELEMENTS * 4  # (as matmul)
    parts = 1 if small else found.size
    bias = _NO_BIAS[out.dtype] if finish is None or finish.bias is None else finish.bias
    lo, hi = (-np.inf, np.inf) if finish is None else (finish.lo, finish.hi)
    lo, hi = np.float32(lo), np.float32(hi)
    rows = m >= n if by_rows is None else by_rows

    def again(a: np.ndarray, out: np.ndarray) -> None:
        kernels.packed_gemm(a, panels, out, n, bias, lo, hi, parts, rows, swish, None)

    return again


def batched_matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray, packed: bool = False
                   ) -> np.ndarray:  # fmt: skip
    """``np.matmul(a, b, out=out)`` for ``a`` and ``out`` stacked on their first axis (b
    stacked too, or 2-D), split over the current pool by that axis when it is worth it.
    ``packed``: on numba's threads, float32 stacks of b at least STACK_DEPTH deep go through
    onyx's own GEMM, each b[i] packed as it goes (attention's heads; docs/runtime.md,
    "Threads"), which stores into an ``out`` of any row stride (attention's heads written
    straight into their (S, H*D) rows); the other paths make such an ``out`` in C order first
    and copy it over."""
    found = current()
    count = a.shape[0]
    flops = a.size * b.shape[-1]
    least = NATIVE_MIN_FLOPS if found is not None and found.native is not None else MIN_FLOPS
    split = not (found is None or found.size == 1 or count < 2 or flops < least * 2
                 or not splits_gemms())  # fmt: skip
    if (split and packed and found.native is not None
            and found.native.packed_stack(a, b, out, found.size)):  # fmt: skip
        return out
    if not out.flags.c_contiguous:
        np.copyto(out, batched_matmul(a, b, np.empty(out.shape, out.dtype)))
        return out
    if not split:
        return np.matmul(a, b, out=out)
    if found.native is not None and found.native.stacked_matmul(a, b, out, found.size):
        return out
    stacked = b.ndim == a.ndim and b.shape[0] == count

    def part(i0, i1):
        np.matmul(a[i0:i1], b[i0:i1] if stacked else b, out=out[i0:i1])

    found.run(part, bands(count, found.size))
    return out


def rows(
    count: int,
    work: int,
    fn: Callable[[int, int], None],
    minimum: int = MIN_ELEMENTS,
    native: Callable[[Any, int], None] | None = None,
    native_minimum: int = NATIVE_MIN_ELEMENTS,
) -> None:
    """``fn(r0, r1)`` over ``count`` rows, split in bands over the current pool when ``work``
    (elements touched in all) is worth it. ``native(kernels, parts)``: the same over numba's
    threads (a kernel of _jit_par.py, in ``parts`` bands), where the pool has them, each part
    then of ``native_minimum`` elements at least."""
    parts = row_parts(count, work, minimum, native is not None, native_minimum)
    if parts == 1:
        fn(0, count)
        return
    found = current()
    if found.native is not None and native is not None:
        native(found.native.kernels, parts)
        return
    found.run(fn, bands(count, parts))


def row_parts(count: int, work: int, minimum: int = MIN_ELEMENTS, native: bool = True,
              native_minimum: int = NATIVE_MIN_ELEMENTS) -> int:  # fmt: skip
    """The bands ``rows`` splits ``count`` rows of ``work`` into on the current pool (1: it
    runs them on this thread), with a ``native`` kernel where it has one."""
    found = current()
    if native and found is not None and found.native is not None:
        minimum = min(minimum, native_minimum)
    if found is None or found.size == 1 or count < 2 or work < minimum * 2:
        return 1
    return min(found.size, work // minimum, count)


# a part of a copy (195 KB took 4 us on one thread as on two, 781 KB 18 and 10.5)
COPY_MIN_BYTES = 1 << 18


def copy(src: np.ndarray, dst: np.ndarray) -> None:
    """dst[...] = src for C-contiguous arrays of the same dtype and size, split over the
    current pool where it is large enough: a copy is bound by memory bandwidth, which each core
    adds to (3.2 MB in 226 us on one thread, 101 on two; scratch timing)."""
    found = current()
    if found is None or found.size == 1 or src.nbytes < 2 * COPY_MIN_BYTES:
        np.copyto(dst, src.reshape(dst.shape))
        return
    a, b = src.reshape(-1).view(np.uint8), dst.reshape(-1).view(np.uint8)
    parts = min(found.size, src.nbytes // COPY_MIN_BYTES)
    if found.native is not None:
        found.native.kernels.copy_bands(a, b, parts)
    else:
        found.run(lambda i0, i1: np.copyto(b[i0:i1], a[i0:i1]), bands(a.shape[0], parts))


# Copies of views of at least this many values go through the compiled gather where their
# runs (along the last axis, stepping by one value) are at most GATHER_RUN long. MobileViT's
# patches (runs of 2), 2 threads, in the model: numpy's copy against ``gathered``, 451,584
# values 235-357 against 98-148 us, 37,632 75 against 70-76, 15,360 33 against 53-57 (more
# than alone: 112,896 239 against 54, 15,360 30 against 14.5). The first C values of each
# pixel of a channel-last image (300,000 values), one thread, alone, np.copyto against
# ``gather_into``: C = 2 442 against 404 us, 4 289 against 241, 8 137 against 142, 16 74
# against 95, 64 24 against 46. (Zen 5.)
GATHER_MIN = 1 << 16
GATHER_RUN = 4


def gathered(x: np.ndarray) -> np.ndarray | None:
    """A C-contiguous copy of the view ``x`` by ``gather_into``; None where that does not
    apply. MobileViT's unfolding and folding of patches copy views whose runs are 2 values
    long: its two largest Reshapes (451,584 values) took 235 and 207 us a run by numpy's copy,
    98 and 66 by the gather (2 threads, in the model)."""
    if x.flags.c_contiguous:
        return None
    c_order = list(itertools.accumulate(reversed(x.shape[1:]), operator.mul, initial=x.itemsize))
    runs = _gather_runs(x, c_order[::-1])
    if runs is None:  # (before the result is made: a large one costs a mapping of memory)
        return None
    out = np.empty(x.shape, x.dtype)
    _gather(x, out, runs)
    return out


def gather_into(src: np.ndarray, dst: np.ndarray) -> bool:
    """dst[...] = src for two arrays of one shape and dtype laid out any way, by the compiled
    gather (_jit.gather), split over the current pool by bands of the first axis where worth
    it; False, nothing written, where it does not apply (``_gather_runs``)."""
    if dst.dtype != src.dtype or src.shape != dst.shape:
        return False
    runs = _gather_runs(src, dst.strides)
    if runs is None:
        return False
    _gather(src, dst, runs)
    return True


def _gather_runs(src: np.ndarray, dst_strides: Sequence[int]) -> list[tuple[int, ...]] | None:
    """The runs (``strided_runs``) of ``src`` and a destination of ``dst_strides`` where the
    compiled gather takes the copy; None where it does not: compiled kernels absent, another
    dtype, fewer than GATHER_MIN values, more than 4 axes of distinct steps, a last axis that
    does not step by one value in both (a transpose, which numpy's copy takes in blocks) or
    runs longer than GATHER_RUN (numpy's copy moves them faster), a negative step."""
    if src.dtype not in compiled.DTYPES or src.size < GATHER_MIN or not short_runs(src):
        return None
    if min(*src.strides, *dst_strides) < 0:
        return None
    runs = strided_runs(src.shape, src.strides, dst_strides)
    size = src.itemsize
    if len(runs) > 4 or runs[-1][0] > GATHER_RUN or runs[-1][1:] != (size, size) or any(
        step % size for _, *steps in runs for step in steps
    ):
        return None
    return runs if compiled.kernels(src.size) is not None else None


def _gather(src: np.ndarray, dst: np.ndarray, runs: list[tuple[int, ...]]) -> None:
    jit = compiled.kernels(src.size)
    size = src.itemsize
    runs = runs[:1] + [(1, 0, 0)] * (4 - len(runs)) + runs[1:]  # (split by the first run)
    shape = np.array([n for n, _, _ in runs], np.int64)
    src_steps = np.array([a // size for _, a, _ in runs], np.int64)
    dst_steps = np.array([b // size for _, _, b in runs], np.int64)
    # each a flat buffer from the array's first value to its last
    reach = 1 + sum((n - 1) * a for n, a, _ in runs) // size
    source = np.lib.stride_tricks.as_strided(src, (reach,), (size,), writeable=False)
    reach = 1 + sum((n - 1) * b for n, _, b in runs) // size
    target = np.lib.stride_tricks.as_strided(dst, (reach,), (size,))
    args = (source, src_steps, target, dst_steps, shape)
    rows(int(shape[0]), src.size, lambda r0, r1: jit.gather(*args, r0, r1),
         native=lambda par, parts: par.gather_bands(*args, parts))  # fmt: skip


def short_runs(x: np.ndarray) -> bool:
    """Whether the last run of the view ``x`` (its trailing axes stepping through memory as one
    axis, the last by one value) is at most GATHER_RUN values long: the gather's first test,
    cheap beside ``strided_runs`` (a Reshape of Swin's windows pays it on every run)."""
    run = 0
    for n, step in zip(reversed(x.shape), reversed(x.strides)):
        if n == 1:
            continue
        if run == 0 and step != x.itemsize:
            return False
        if run and step != run * x.itemsize:
            break
        run = n if run == 0 else run * n
        if run > GATHER_RUN:
            return False
    return run > 0


def strided_runs(shape: Sequence[int], *strides: Sequence[int]) -> list[tuple[int, ...]]:
    """(size, then the step in each of ``strides``) of each axis of views of one ``shape``, in
    C order, size-1 axes left out and each axis merged into the one before it where the two
    step through memory as one axis would, in every view."""
    runs: list[tuple[int, ...]] = []
    for axis, n in enumerate(shape):
        if n == 1:
            continue
        steps = tuple(s[axis] for s in strides)
        if runs and all(last == n * step for last, step in zip(runs[-1][1:], steps)):
            runs[-1] = (runs[-1][0] * n, *steps)
        else:
            runs.append((n, *steps))
    return runs or [(1, *(0 for _ in strides))]


def elementwise(
    fn: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    native: Callable[[Any, np.ndarray, np.ndarray, int], None] | None = None,
) -> np.ndarray:
    """``fn(x)`` for an elementwise ``fn`` (each output element from its input element only),
    split over the current pool in chunks of the flattened ``x`` when it is worth it.
    ``native(kernels, x, y, parts)``: ``fn``'s compiled float32 form over numba's threads into
    ``y`` (flat, both), where the pool has them.

    A transposed view of a dense array (Segformer's tokens, a convolution's output read
    channel-last) is worked on in its memory order, the result given the same layout: the
    kernels' contiguous paths apply, with no copy."""
    if type(x) is np.ndarray and x.ndim > 1 and not x.flags.c_contiguous:
        order = sorted(range(x.ndim), key=lambda axis: -x.strides[axis])
        dense = x.transpose(order)
        if dense.flags.c_contiguous:
            return elementwise(fn, dense, native).transpose(np.argsort(order))
    found = current()
    if (
        found is not None
        and found.native is not None
        and native is not None
        and type(x) is np.ndarray
        and x.dtype == np.float32
        and x.flags.c_contiguous
        and x.size >= 2 * NATIVE_MIN_ELEMENTS
        and compiled.kernels(x.size) is not None
    ):
        y = np.empty_like(x)
        parts = min(found.size, x.size // NATIVE_MIN_ELEMENTS)
        native(found.native.kernels, x.reshape(-1), y.reshape(-1), parts)
        return y
    if (
        found is None
        or found.size == 1
        or type(x) is not np.ndarray
        or x.size < 2 * MIN_ELEMENTS
        or not x.flags.c_contiguous
    ):
        return fn(x)
    flat = x.reshape(-1)
    chunks = [(a * 64, min(x.size, b * 64)) for a, b in bands(-(-x.size // 64), found.size)]
    results: list[Any] = [None] * len(chunks)

    def part(k: int, a: int, b: int) -> None:
        results[k] = fn(flat[a:b])

    found.run(part, [(k, a, b) for k, (a, b) in enumerate(chunks)])
    return np.concatenate(results).reshape(x.shape)


def last_axis(
    fn: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    native: Callable[[Any, np.ndarray, np.ndarray, int], None] | None = None,
) -> np.ndarray:
    """``fn(x)`` for an ``fn`` that works along the last axis of ``x`` (each row of the result
    from its own row only: a softmax), split over the current pool by rows when worth it.
    ``native(kernels, x, y, parts)`` as in ``elementwise`` (the caller checked that it applies)."""
    found = current()
    if (
        found is not None
        and found.native is not None
        and native is not None
        and x.ndim >= 1
        and x.size >= 2 * NATIVE_MIN_ELEMENTS
        and x.flags.c_contiguous
    ):
        y = np.empty_like(x)
        parts = min(found.size, x.size // NATIVE_MIN_ELEMENTS)
        native(found.native.kernels, x.reshape(-1), y.reshape(-1), parts)
        return y
    if (
        found is None
        or found.size == 1
        or type(x) is not np.ndarray
        or x.ndim < 2
        or x.size < 2 * MIN_ELEMENTS
        or not x.flags.c_contiguous
    ):
        return fn(x)
    x2 = x.reshape(-1, x.shape[-1])
    results: list[Any] = [None] * min(found.size, x2.shape[0])

    def part(k: int, r0: int, r1: int) -> None:
        results[k] = fn(x2[r0:r1])

    found.run(part, [(k, r0, r1) for k, (r0, r1) in enumerate(bands(x2.shape[0], len(results)))])
    return np.concatenate(results).reshape(x.shape)
