"""Linear algebra and normalizers: MatMul, Gemm, Einsum, Softmax, LogSoftmax, Hardmax, TopK.

The matrix products compute float16 and bfloat16 operands in float32 (numpy has no BLAS for
them) and cast the result back; every other type goes to numpy as it is, so float32/float64 hit
BLAS with no copies. Softmax and LogSoftmax compute in the input's type (see there).
"""

from __future__ import annotations

import math

import numpy as np

from onyx.errors import KernelError
from onyx.runtime import compiled, threads
from onyx.runtime.kernels._common import dtype_name
from onyx.runtime.kernels.registry import kernel

_LOW_PRECISION = {"float16", "bfloat16"}


def _wide(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32) if dtype_name(x.dtype) in _LOW_PRECISION else x


def _blas_ready(x: np.ndarray) -> np.ndarray:
    """A layout BLAS takes as it is: numpy's matmul falls back to a slow loop for views whose
    strides it cannot hand to BLAS (such as a transposed slice of a split), so copy those once."""
    if x.ndim < 2 or x.flags.c_contiguous or x.flags.f_contiguous:
        return x
    return np.ascontiguousarray(x)


def _axis(axis: int, rank: int, op: str) -> int:
    if not -rank <= axis < max(rank, 1):
        raise KernelError(f"{op}: axis {axis} is out of range for a tensor of rank {rank}")
    return axis % rank if rank else 0


# --- MatMul / Gemm -----------------------------------------------------------------------------
def _split_matmul(a: np.ndarray, b: np.ndarray, finish: threads.Finish | None = None,
                  packed: threads.PackedWeight | None = None) -> np.ndarray | None:  # fmt: skip
    """The float product of ``a`` (..., M, K) and ``b`` as one GEMM, or stacked GEMMs, split over
    the session's thread pool; None where numpy's own matmul is the way (other types, other
    layouts, broadcast batches). A ``finish`` (for a 2-D ``b`` only) is applied to the result;
    ``packed`` is the node's cache of a 2-D ``b`` packed for onyx's own GEMM.

    An N-D ``a`` by a 2-D ``b`` (a linear layer on (batch, tokens, features) or on channel-last
    images) is one (batch * M, K) GEMM here: numpy's matmul makes one per matrix of ``a``."""
    if a.dtype != b.dtype or a.dtype not in _FLOATS or a.ndim < 2 or b.ndim < 2:
        return None
    if a.shape[-1] != b.shape[-2]:
        return None
    if b.ndim == 2:
        if a.ndim > 2 and not a.flags.c_contiguous:
            # (a channel-last view of NCHW activations, ConvNeXt's: numpy's matmul would copy
            # it too, then run unsplit, one thread while BLAS is held to one in the pool)
            a = np.ascontiguousarray(a)
        a2 = _blas_ready(a.reshape(-1, a.shape[-1]))
        y = threads.matmul(a2, _blas_ready(b), finish=finish, packed=packed)
        return y.reshape(a.shape[:-1] + (b.shape[1],))
    if a.shape[:-2] != b.shape[:-2]:
        return None
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    y = np.empty(a.shape[:-1] + (n,), a.dtype)
    # (reshape: views where the batch axes merge, as those of a head transpose do)
    a3, b3 = a.reshape(-1, m, k), b.reshape(-1, k, n)
    threads.batched_matmul(_blas_ready_stack(a3), _blas_ready_stack(b3), y.reshape(-1, m, n))
    return y


def _blas_ready_stack(x: np.ndarray) -> np.ndarray:
    """A stack of matrices each of which BLAS takes as it is (a unit stride on one axis)."""
    if x.strides[-1] == x.itemsize or x.strides[-2] == x.itemsize:
        return x
    return np.ascontiguousarray(x)


_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _finish(epilogue, a: np.ndarray, b: np.ndarray, bias=None) -> threads.Finish | None:
    """The followers of a product ``a`` @ ``b`` (2-D ``b``, float ``a`` of rank >= 2 and ``b``'s
    dtype) as a ``threads.Finish``, after ``bias`` (the product's own, or None): an Add of a
    constant vector along the last axis (where no ``bias``), then a Relu or Clip by constant
    bounds, each optional; None where the followers are anything else."""
    if a.ndim < 2 or b.ndim != 2 or a.dtype != b.dtype or a.dtype not in _FLOATS:
        return None
    rank, n, dtype = a.ndim, b.shape[1], a.dtype
    lo, hi, stage = -np.inf, np.inf, 0 if bias is None else 1
    for follower in epilogue.followers if epilogue is not None else ():
        if follower.rank is not None and follower.rank != rank:
            return None
        for ufunc, operand, per_channel in follower.ops:
            if ufunc is np.add and stage == 0:
                if type(operand) is not np.ndarray or operand.dtype != dtype or operand.size != n:
                    return None  # (a tensor computed at run time, or not a vector)
                if per_channel and rank != 2:  # (along axis 1: the last one at rank 2 only)
                    return None
                if not per_channel and not (operand.ndim <= rank and operand.shape[-1] == n):
                    return None
                bias, stage = operand.reshape(-1), 1
                continue
            value = 0.0 if operand is None else operand
            if not (
                (ufunc is np.maximum and stage < 2 or ufunc is np.minimum and stage < 3)
                and (operand is None or type(operand) is np.ndarray and operand.size == 1)
                and not np.isnan(value)
            ):
                return None
            if ufunc is np.maximum:
                lo, stage = float(value), 2
            else:
                hi, stage = float(value), 3
    if bias is None and stage == 0:
        return None
    return threads.Finish(bias, lo, hi)


@kernel("MatMul", 1)
class MatMul:
    """Matrix product with numpy.matmul's rules (1-D operands promoted, batch dims broadcast).
    With an ``epilogue`` (the plan's fusion: the steps that follow) that a linear layer's bias
    and ReLU make, those are applied to the product's parts while in cache."""

    takes_epilogue = True

    def __init__(self):
        self.packed = threads.PackedWeight()  # a weight B, packed for onyx's own GEMM

    def __call__(self, a, b, *, epilogue=None):
        if a.dtype not in _FLOATS and dtype_name(a.dtype) in _LOW_PRECISION:
            dtype = a.dtype
            a, b = a.astype(np.float32), b.astype(np.float32)
            finish = None
        else:
            dtype = None
            finish = _finish(epilogue, a, b) if epilogue is not None else None
        if a.ndim == 0 or b.ndim == 0:
            raise KernelError(
                f"MatMul needs operands of rank >= 1, got shapes {a.shape} and {b.shape}"
            )
        try:
            y = _split_matmul(a, b, finish, self.packed)
            if y is not None and finish is not None:
                epilogue.applied = True
            if y is None:
                y = np.matmul(_blas_ready(a), _blas_ready(b))
        except ValueError:
            raise KernelError(
                f"MatMul: shapes {a.shape} and {b.shape} are not compatible for a matrix product"
            ) from None
        y = np.asarray(y)
        return y if dtype is None else y.astype(dtype)


def _vector_c(c, beta: float, a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """Gemm's beta * C as a vector along the columns of A' @ B', where C is one ((N,) or
    (1, N)) of their float dtype; else None."""
    if c is None or beta == 0.0 or a.dtype != b.dtype or a.dtype not in _FLOATS:
        return None
    if c.dtype != a.dtype or c.size != b.shape[1] or not (c.ndim == 1 or c.shape == (1, c.size)):
        return None
    # (what the unfused steps compute: beta * C first, then the sum)
    return c.reshape(-1) if beta == 1.0 else a.dtype.type(beta) * c.reshape(-1)


@kernel("Gemm", 1, 7, 11)
class Gemm:
    """alpha * A' @ B' + beta * C, with C broadcast to (M, N). A vector C and the ``epilogue``
    (as MatMul's) are applied to the product's parts while in cache, where they fit."""

    takes_epilogue = True

    def __init__(self, *, alpha=1.0, beta=1.0, transA=0, transB=0, broadcast=0):
        self.alpha, self.beta, self.trans_a, self.trans_b = alpha, beta, transA, transB
        self.packed = threads.PackedWeight()  # a weight B', packed for onyx's own GEMM

    def __call__(self, a, b, c=None, *, epilogue=None):
        alpha, beta = self.alpha, self.beta
        if a.ndim != 2 or b.ndim != 2:
            raise KernelError(f"Gemm needs 2-D A and B, got shapes {a.shape} and {b.shape}")
        dtype = a.dtype
        low = dtype not in _FLOATS and dtype_name(dtype) in _LOW_PRECISION
        if low:
            a, b = a.astype(np.float32), b.astype(np.float32)
            c = None if c is None else c.astype(np.float32)
        if self.trans_a:
            a = a.T
        if self.trans_b:
            b = b.T
        if a.shape[1] != b.shape[0]:
            raise KernelError(
                f"Gemm: A' is {a.shape} and B' is {b.shape}; their inner dimensions must match"
            )
        finish = None
        bias = _vector_c(c, beta, a, b) if not low and alpha == 1.0 else None
        if not low and alpha == 1.0 and (bias is not None or c is None or beta == 0.0):
            # (a C added after the product must come before the followers: a vector C only)
            finish = _finish(epilogue, a, b, bias)
            if finish is not None and epilogue is not None:
                epilogue.applied = True
        if bias is not None:
            c = None  # (added by the finish)
            if finish is None:  # (followers that do not fit: C alone)
                finish = threads.Finish(bias, -np.inf, np.inf)
        y = _split_matmul(a, b, finish, self.packed)
        if y is None:
            y = _blas_ready(a) @ _blas_ready(b)
        integer = y.dtype.kind in "iu"
        if alpha != 1.0:
            if integer:
                y = (y * alpha).astype(y.dtype)
            else:
                y *= y.dtype.type(alpha)
        if c is not None and beta != 0.0:
            if c.ndim > 2 or any(s not in (1, t) for s, t in zip(c.shape[::-1], y.shape[::-1])):
                raise KernelError(
                    f"Gemm: C of shape {c.shape} cannot be broadcast to the output shape {y.shape}"
                )
            if beta == 1.0:
                y += c
            elif integer:
                y += (c * beta).astype(y.dtype)
            else:
                y += y.dtype.type(beta) * c
        return y.astype(dtype) if low else y


# --- Einsum ------------------------------------------------------------------------------------
@kernel("Einsum", 12)
class Einsum:
    """Einstein summation (numpy.einsum with path optimization)."""

    def __init__(self, *, equation):
        self.equation = equation.replace(" ", "")
        self._cache: tuple = ((), None)  # (input shapes, contraction path), swapped atomically

    def __call__(self, *inputs):
        if not inputs:
            raise KernelError("Einsum needs at least one input")
        dtype = inputs[0].dtype
        low = dtype_name(dtype) in _LOW_PRECISION
        ops = [x.astype(np.float32) for x in inputs] if low else inputs
        shapes = [x.shape for x in ops]
        try:
            cached_shapes, path = self._cache
            if shapes != cached_shapes:  # the contraction order depends on the shapes only
                path = np.einsum_path(self.equation, *ops, optimize="greedy")[0]
                self._cache = (shapes, path)
            y = np.asarray(np.einsum(self.equation, *ops, optimize=path))
        except (ValueError, TypeError) as e:
            raise KernelError(
                f"Einsum {self.equation!r} cannot be applied to shapes {shapes}: {e}"
            ) from None
        return y if y.dtype == dtype else y.astype(dtype)


# --- Softmax / LogSoftmax / Hardmax ------------------------------------------------------------
# Softmax and LogSoftmax compute in T, 16-bit floats too: each step rounds to T, as the steps of
# their function bodies do (the official fp16 cases expect exactly that; one rounding at the end
# differs from them by an ulp in places).
def _softmax(x, axis):
    if axis == x.ndim - 1 and x.dtype == np.float32 and compiled.kernels(x.size) is not None:
        from onyx.runtime import _jit_exp  # each row in cache: 3-5x numpy's five passes

        return _jit_exp.softmax(np.ascontiguousarray(x))  # (a view in another order: one copy)
    with np.errstate(invalid="ignore"):  # rows of -inf give NaN, as in onnxruntime
        e = x - x.max(axis=axis, keepdims=True)
        np.exp(e, out=e)
        e /= e.sum(axis=axis, keepdims=True)
    return e


def _log_softmax(x, axis):
    with np.errstate(divide="ignore", invalid="ignore"):
        s = x - x.max(axis=axis, keepdims=True)
        s -= np.log(np.exp(s).sum(axis=axis, keepdims=True))
    return s


def _hardmax(x, axis):
    w = _wide(x)
    y = np.zeros(w.shape, x.dtype)
    if w.shape[axis] == 0:
        return y
    idx = np.expand_dims(np.argmax(w, axis=axis), axis)
    np.put_along_axis(y, idx, 1, axis=axis)
    return y


def _along_axis(fn, op):
    """The opset-13 form: ``fn`` applied along ``axis`` only."""

    def impl(input, *, axis=-1):
        if input.ndim == 0:
            raise KernelError(f"{op} needs an input of rank >= 1, got a scalar")
        axis = _axis(axis, input.ndim, op)
        if fn is not _hardmax and math.prod(input.shape[axis + 1 :]) == 1 < input.ndim - axis:
            # (only ones after the axis: a classifier's (N, classes, 1, 1) scores are rows)
            return impl(input.reshape(input.shape[: axis + 1]), axis=axis).reshape(input.shape)
        if axis == input.ndim - 1 and fn is not _hardmax:  # rows split over the session's threads
            n = input.shape[-1]
            native = None
            if fn is _softmax and input.dtype == np.float32 and n:
                native = lambda par, x, y, parts: par.softmax_bands(x, y, n, parts)  # noqa: E731
            y = threads.last_axis(lambda rows: fn(rows, rows.ndim - 1), input, native)
        else:
            y = fn(input, axis)
        return y if y.dtype == input.dtype else y.astype(input.dtype)

    impl.__name__ = impl.__qualname__ = f"{op}_13"
    impl.__doc__ = f"{op} along ``axis``."
    return impl


def _flattened(fn, op):
    """The pre-13 form: the input is coerced to 2-D at ``axis`` and ``fn`` acts along dim 1."""

    def impl(input, *, axis=1):
        rank = input.ndim
        if not -rank <= axis <= rank:
            raise KernelError(f"{op}: axis {axis} is out of range for a tensor of rank {rank}")
        axis = axis % rank if axis < 0 else axis
        rows, cols = math.prod(input.shape[:axis]), math.prod(input.shape[axis:])
        y = fn(input.reshape(rows, cols), 1).reshape(input.shape)
        return y if y.dtype == input.dtype else y.astype(input.dtype)

    impl.__name__ = impl.__qualname__ = f"{op}_1"
    impl.__doc__ = f"{op} over the 2-D coercion of the input at ``axis``."
    return impl


for _op, _fn in (("Softmax", _softmax), ("LogSoftmax", _log_softmax), ("Hardmax", _hardmax)):
    kernel(_op, 1, 11)(_flattened(_fn, _op))
    kernel(_op, 13)(_along_axis(_fn, _op))


# --- TopK --------------------------------------------------------------------------------------
def _sorted_top(keys, k, axis, largest):
    """Positions along ``axis`` of the k extreme ``keys``, in order, equal keys by lower position."""
    n = keys.shape[axis]
    if largest:
        # A stable ascending sort of the reversed axis puts equal values in descending original
        # index order; reading its tail backwards gives descending values, lower index first.
        order = np.argsort(np.flip(keys, axis), axis=axis, kind="stable")
        return (n - 1) - np.flip(np.take(order, np.arange(n - k, n), axis=axis), axis)
    order = np.argsort(keys, axis=axis, kind="stable")
    return np.take(order, np.arange(k), axis=axis)


def _partitioned_top(keys, k, largest):
    """``_sorted_top`` along the last axis of 2-D ``keys`` for k << n (None if ties spoil it).

    Every element at least as extreme as the k-th one is a candidate; a partition of the m most
    extreme elements (m = the most candidates in a row) holds them all, whatever its tie order.
    Sorting the candidates by position and then stably by value gives the exact answer.
    """
    n = keys.shape[1]
    kth = n - k if largest else k - 1
    threshold = np.partition(keys, kth, axis=1)[:, kth : kth + 1]
    candidates = keys >= threshold if largest else keys <= threshold
    m = int(candidates.sum(axis=1).max())
    if 4 * m > n:
        return None
    part = np.argpartition(keys, n - m if largest else m - 1, axis=1)
    part = part[:, n - m :] if largest else part[:, :m]
    part.sort(axis=1)
    picked = _sorted_top(np.take_along_axis(keys, part, axis=1), k, 1, largest)
    return np.take_along_axis(part, picked, axis=1)


def _top_k(x, k, axis, largest):
    rank = x.ndim
    if rank == 0:
        raise KernelError("TopK needs an input of rank >= 1, got a scalar")
    axis = _axis(axis, rank, "TopK")
    n = x.shape[axis]
    if not 0 <= k <= n:
        raise KernelError(f"TopK: k must be in [0, {n}] (the size of axis {axis}), got {k}")
    keys = x.astype(np.float32) if dtype_name(x.dtype) in _LOW_PRECISION else x
    idx = None
    if 0 < k and 16 * k <= n and not (keys.dtype.kind == "f" and np.isnan(keys).any()):
        rows = np.moveaxis(keys, axis, -1)
        idx = _partitioned_top(rows.reshape(-1, n), k, largest)
        if idx is not None:
            idx = np.moveaxis(idx.reshape(rows.shape[:-1] + (k,)), -1, axis)
    if idx is None:
        idx = _sorted_top(keys, k, axis, largest)
    idx = idx.astype(np.int64, copy=False)
    return np.take_along_axis(x, idx, axis=axis), idx


def _k_from_input(k) -> int:
    if k is None or np.size(k) != 1:
        raise KernelError(f"TopK: K must be a tensor with one element, got {k!r}")
    return int(np.asarray(k).reshape(-1)[0])


@kernel("TopK", 1)
def top_k_1(x, *, k, axis=-1):
    """The k largest elements along ``axis`` (k an attribute), sorted, ties by lower index."""
    return _top_k(x, k, axis, True)


@kernel("TopK", 10)
def top_k_10(x, k, *, axis=-1):
    """The K largest elements along ``axis`` (K an input), sorted, ties by lower index."""
    return _top_k(x, _k_from_input(k), axis, True)


@kernel("TopK", 11)
def top_k(x, k, *, axis=-1, largest=1, sorted=1):
    """The K largest (or smallest) elements along ``axis``, always sorted, ties by lower index."""
    return _top_k(x, _k_from_input(k), axis, largest)
