"""Random generators: RandomNormal, RandomUniform, their *Like forms, Multinomial, Bernoulli.

Seeds. A node with a ``seed`` attribute draws from ``np.random.default_rng(seed)`` created afresh on
every call, so its output is a pure function of the seed and the inputs: the same on every call and
in every session (which also makes such nodes safe to constant-fold). The seed is a float in the
standard; a whole non-negative value is used as that integer, any other value through its 64 bits.
A node without a seed draws from a generator seeded from OS entropy when the session is built and
advanced by every call, so each call gives new values.
"""

from __future__ import annotations

import numpy as np

from onyx.dtypes import to_numpy
from onyx.errors import KernelError
from onyx.runtime.kernels.registry import kernel
from onyx.runtime.memory import check_allocation

_FLOAT_OUT = {"float16", "bfloat16", "float32", "float64"}


def _seed_value(seed: float) -> int:
    seed = float(seed)
    if seed.is_integer() and seed >= 0:
        return int(seed)
    return int(np.array(seed, np.float64).view(np.uint64))


class _Random:
    """Holds the seed (or the session's own generator) and the output element type."""

    def __init__(self, seed, dtype, op):
        self.op = op
        self.seed = None if seed is None else _seed_value(seed)
        self.dtype = None if dtype is None else np.dtype(to_numpy(dtype))
        self._rng = np.random.default_rng() if seed is None else None

    def rng(self) -> np.random.Generator:
        return self._rng if self.seed is None else np.random.default_rng(self.seed)

    def float_type(self, like: np.ndarray | None = None) -> np.dtype:
        dtype = self.dtype if self.dtype is not None else like.dtype
        if dtype.name not in _FLOAT_OUT:
            raise KernelError(
                f"{self.op}: the output type must be float16, bfloat16, float or double, "
                f"got {dtype}"
                + ("" if self.dtype is not None else " (from the input; set the dtype attribute)")
            )
        return dtype


def _shape(shape, op) -> tuple[int, ...]:
    if any(int(d) < 0 for d in shape):
        raise KernelError(f"{op}: shape {list(shape)} has a negative dimension")
    return tuple(int(d) for d in shape)


def _draw_shape(shape, dtype) -> tuple[int, ...]:
    check_allocation(shape, dtype)  # checked per call: the limit belongs to the running session
    return shape


def _normal(rng, shape, dtype, mean, scale):
    draw = np.float64 if dtype == np.float64 else np.float32
    y = rng.standard_normal(shape, dtype=draw)
    if scale != 1.0:
        y *= draw(scale)
    if mean != 0.0:
        y += draw(mean)
    return y.astype(dtype, copy=False)


def _uniform(rng, shape, dtype, low, high):
    draw = np.float64 if dtype == np.float64 else np.float32
    y = rng.random(shape, dtype=draw)
    y *= draw(high - low)
    y += draw(low)
    return y.astype(dtype, copy=False)


@kernel("RandomNormal", 1)
class RandomNormal(_Random):
    """Samples of N(mean, scale^2) in a tensor of the given shape."""

    def __init__(self, *, shape, dtype=1, mean=0.0, scale=1.0, seed=None):
        super().__init__(seed, dtype, "RandomNormal")
        self.shape = _shape(shape, "RandomNormal")
        self.out = self.float_type()
        self.mean, self.scale = mean, scale

    def __call__(self):
        return _normal(
            self.rng(), _draw_shape(self.shape, self.out), self.out, self.mean, self.scale
        )


@kernel("RandomUniform", 1)
class RandomUniform(_Random):
    """Samples of U[low, high) in a tensor of the given shape."""

    def __init__(self, *, shape, dtype=1, low=0.0, high=1.0, seed=None):
        super().__init__(seed, dtype, "RandomUniform")
        self.shape = _shape(shape, "RandomUniform")
        self.out = self.float_type()
        self.low, self.high = low, high

    def __call__(self):
        return _uniform(
            self.rng(), _draw_shape(self.shape, self.out), self.out, self.low, self.high
        )


@kernel("RandomNormalLike", 1)
class RandomNormalLike(_Random):
    """Samples of N(mean, scale^2) shaped like the input (of its type unless ``dtype`` says)."""

    def __init__(self, *, dtype=None, mean=0.0, scale=1.0, seed=None):
        super().__init__(seed, dtype, "RandomNormalLike")
        self.mean, self.scale = mean, scale

    def __call__(self, input):
        return _normal(self.rng(), input.shape, self.float_type(input), self.mean, self.scale)


@kernel("RandomUniformLike", 1)
class RandomUniformLike(_Random):
    """Samples of U[low, high) shaped like the input (of its type unless ``dtype`` says)."""

    def __init__(self, *, dtype=None, low=0.0, high=1.0, seed=None):
        super().__init__(seed, dtype, "RandomUniformLike")
        self.low, self.high = low, high

    def __call__(self, input):
        return _uniform(self.rng(), input.shape, self.float_type(input), self.low, self.high)


@kernel("Bernoulli", 15)
class Bernoulli(_Random):
    """1 with the probability the input gives for each element, else 0."""

    def __init__(self, *, dtype=None, seed=None):
        super().__init__(seed, dtype, "Bernoulli")

    def __call__(self, input):
        dtype = self.dtype if self.dtype is not None else input.dtype
        p = input if input.dtype in (np.float32, np.float64) else input.astype(np.float32)
        draw = self.rng().random(p.shape, dtype=p.dtype)
        return (draw < p).astype(dtype)


@kernel("Multinomial", 7)
class Multinomial(_Random):
    """``sample_size`` class indices per row, drawn with the softmax of the row's log-weights."""

    def __init__(self, *, dtype=6, sample_size=1, seed=None):
        super().__init__(seed, dtype, "Multinomial")
        if self.dtype not in (np.int32, np.int64):
            raise KernelError(f"Multinomial: dtype must be int32 or int64, got {self.dtype}")
        if sample_size < 0:
            raise KernelError(f"Multinomial: sample_size must be >= 0, got {sample_size}")
        self.sample_size = int(sample_size)

    def __call__(self, input):
        if input.ndim != 2:
            raise KernelError(
                f"Multinomial: input must be 2-D [batch_size, class_size], got shape {input.shape}"
            )
        batch, classes = input.shape
        if classes == 0:
            raise KernelError("Multinomial: class_size is 0, there is nothing to draw from")
        logits = input.astype(np.float64)
        weights = np.exp(logits - logits.max(axis=1, keepdims=True))
        cdf = np.cumsum(weights, axis=1)
        cdf /= cdf[:, -1:]
        # One searchsorted over all rows: row r's cdf lies in (r, r + 1] after shifting by r.
        rows = np.arange(batch, dtype=np.float64)[:, None]
        flat = (cdf + rows).ravel()
        u = self.rng().random((batch, self.sample_size)) + rows
        idx = np.searchsorted(flat, u.ravel(), side="right").reshape(batch, self.sample_size)
        idx -= (np.arange(batch) * classes)[:, None]
        np.clip(idx, 0, classes - 1, out=idx)
        return idx.astype(self.dtype)
