"""The ``ai.onnx.ml`` domain: classic machine-learning operators (trees, linear models, SVMs, encoders).

Conventions: maps are Python dicts, sequences are lists, strings are numpy object arrays of str.
Where the standard is vague (binary classifiers, score layouts) onnxruntime's behaviour is followed,
since models from skl2onnx/onnxmltools are written against it. Tree ensembles are evaluated for the
whole batch at once: every (sample, tree) pair walks one level per step with index arrays.
"""

from __future__ import annotations

import math

import numpy as np

from onyx.errors import KernelError
from onyx.runtime.kernels.registry import kernel

ML = "ai.onnx.ml"
_TRANSFORMS = ("NONE", "SOFTMAX", "LOGISTIC", "SOFTMAX_ZERO", "PROBIT")


# --- shared helpers ------------------------------------------------------------------------------
def _strings(values, shape=None) -> np.ndarray:
    out = np.empty(len(values), object)
    out[:] = list(values)
    return out if shape is None else out.reshape(shape)


def _rows(x: np.ndarray, what: str = "X") -> np.ndarray:
    """The input as a 2-D [N, C] array (1-D is one row; higher ranks keep their first axis)."""
    if x.ndim == 1:
        return x.reshape(1, -1)
    if x.ndim == 2:
        return x
    if x.ndim == 0:
        raise KernelError(f"{what} must have rank 1 or 2, got a scalar")
    return x.reshape(x.shape[0], -1)


def _features(x: np.ndarray, n_features: int, what: str = "X") -> np.ndarray:
    x2 = _rows(x, what)
    if x2.shape[1] != n_features:
        raise KernelError(
            f"{what} has {x2.shape[1]} features per row, the model expects {n_features}"
        )
    return x2.astype(np.float64, copy=False)


def _transform_name(post_transform) -> str:
    if isinstance(post_transform, int | np.integer):
        if not 0 <= post_transform < len(_TRANSFORMS):
            raise KernelError(f"post_transform must be 0..4, got {post_transform}")
        return _TRANSFORMS[post_transform]
    if post_transform not in _TRANSFORMS:
        raise KernelError(
            f"post_transform must be one of {', '.join(_TRANSFORMS)}, got {post_transform!r}"
        )
    return post_transform


def _logistic(v: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-v))


# Acklam's rational approximation of the inverse normal CDF (relative error below 1.2e-9).
_A = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02,
      1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00)  # fmt: skip
_B = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02,
      6.680131188771972e01, -1.328068155288572e01)  # fmt: skip
_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00,
      -2.549732539343734e00, 4.374664141464968e00, 2.938163982698783e00)  # fmt: skip
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)


def _probit(p: np.ndarray) -> np.ndarray:
    """The inverse of the standard normal CDF, elementwise (NaN outside [0, 1])."""
    p = np.asarray(p, np.float64)
    out = np.full(p.shape, np.nan)
    low, high = 0.02425, 1 - 0.02425
    with np.errstate(all="ignore"):
        q = np.sqrt(-2 * np.log(np.where(p < low, p, 1 - p)))
        tail = (((((_C[0] * q + _C[1]) * q + _C[2]) * q + _C[3]) * q + _C[4]) * q + _C[5]) / (
            (((_D[0] * q + _D[1]) * q + _D[2]) * q + _D[3]) * q + 1
        )
        qc = p - 0.5
        r = qc * qc
        mid = (
            (((((_A[0] * r + _A[1]) * r + _A[2]) * r + _A[3]) * r + _A[4]) * r + _A[5])
            * qc
            / (((((_B[0] * r + _B[1]) * r + _B[2]) * r + _B[3]) * r + _B[4]) * r + 1)
        )
    out = np.where(p < low, tail, np.where(p > high, -tail, mid))
    out = np.where(p == 0, -np.inf, np.where(p == 1, np.inf, out))
    return np.where((p < 0) | (p > 1) | np.isnan(p), np.nan, out)


def _post(scores: np.ndarray, name: str) -> np.ndarray:
    """Apply a post_transform to [N, K] scores row by row (float64 in, float64 out)."""
    if name == "NONE":
        return scores
    if name == "LOGISTIC":
        return _logistic(scores)
    if name == "PROBIT":
        return _probit(scores)
    if scores.shape[1] == 0:
        return scores
    top = scores.max(axis=1, keepdims=True)
    if name == "SOFTMAX":
        e = np.exp(scores - top)
        return e / e.sum(axis=1, keepdims=True)
    # SOFTMAX_ZERO: zero scores stay zero and do not take part in the normalisation
    zero = np.abs(scores) <= 1e-7
    e = np.where(zero, 0.0, np.exp(scores - top))
    total = e.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, e / np.where(total > 0, total, 1), 0.0)


class _Table:
    """A key -> value lookup over arrays: numeric keys by binary search, strings by dict."""

    def __init__(self, keys, values, default):
        keys = list(keys)
        values = list(values)
        if len(keys) != len(values):
            raise KernelError(
                f"keys and values must have the same length, got {len(keys)} and {len(values)}"
            )
        self.default = default
        self.numeric = not any(isinstance(k, str) for k in keys) and len(keys) > 0
        if not self.numeric:
            self.map = dict(zip(keys, values))  # a repeated key: the last one wins
            return
        kv = (
            np.asarray(keys, np.float64)
            if any(isinstance(k, float) for k in keys)
            else np.asarray(keys)
        )
        nan = np.isnan(kv) if kv.dtype.kind == "f" else np.zeros(len(kv), bool)
        self.nan_value = values[int(np.nonzero(nan)[0][-1])] if nan.any() else None
        kv, vals = kv[~nan], [v for v, n in zip(values, nan) if not n]
        # keep the last of repeated keys: stable sort of the reversed order, then unique
        order = np.argsort(kv[::-1], kind="stable")
        rev = np.arange(len(kv))[::-1][order]
        self.keys, first = np.unique(kv[rev], return_index=True)
        self.index = rev[first]
        self.vals = vals

    def __call__(self, x: np.ndarray, out_dtype) -> np.ndarray:
        flat = x.reshape(-1)
        if not self.numeric:
            d, default = getattr(self, "map", {}), self.default
            if out_dtype == object:
                return _strings([d.get(k, default) for k in flat.tolist()], x.shape)
            return np.array([d.get(k, default) for k in flat.tolist()], out_dtype).reshape(x.shape)
        if flat.dtype == object:
            flat = np.array([v if not isinstance(v, str) else np.nan for v in flat], np.float64)
        table = np.empty(len(self.vals) + 1, object if out_dtype == object else out_dtype)
        table[:-1] = self.vals
        table[-1] = self.default
        if len(self.keys):
            pos = np.searchsorted(self.keys, flat)
            pos_c = np.minimum(pos, len(self.keys) - 1)
            hit = self.keys[pos_c] == flat
            pick = np.where(hit, self.index[pos_c], len(self.vals))
        else:
            pick = np.full(flat.shape, len(self.vals))
        if self.nan_value is not None and flat.dtype.kind == "f":
            table = np.append(table, np.array([self.nan_value], table.dtype))
            pick = np.where(np.isnan(flat), len(table) - 1, pick)
        return table[pick].reshape(x.shape)


# --- simple tensor ops ---------------------------------------------------------------------------
@kernel("ArrayFeatureExtractor", 1, domain=ML)
def array_feature_extractor(x, y):
    if x.ndim == 0:
        raise KernelError("X must have rank >= 1, got a scalar")
    idx = np.asarray(y).reshape(-1).astype(np.int64, copy=False)
    c = x.shape[-1]
    if idx.size and (idx.min() < 0 or idx.max() >= c):
        bad = idx[(idx < 0) | (idx >= c)][0]
        raise KernelError(f"index {bad} is out of range for the last axis of X (size {c})")
    out = np.take(x, idx, axis=-1)
    return out.reshape(1, -1) if x.ndim == 1 else out


@kernel("Binarizer", 1, domain=ML)
def binarizer(x, *, threshold=0.0):
    return np.where(x > threshold, 1, np.where(x <= threshold, 0, x)).astype(x.dtype, copy=False)


@kernel("Scaler", 1, domain=ML)
class Scaler:
    def __init__(self, *, offset=(), scale=()):
        self.offset = np.asarray(offset, np.float64) if len(offset) else np.zeros(1)
        self.scale = np.asarray(scale, np.float64) if len(scale) else np.ones(1)

    def __call__(self, x):
        c = x.shape[-1] if x.ndim else 1
        for name, v in (("offset", self.offset), ("scale", self.scale)):
            if v.size not in (1, c):
                raise KernelError(
                    f"{name} has {v.size} values; expected 1 or {c} (the features of X)"
                )
        return ((x.astype(np.float64) - self.offset) * self.scale).astype(np.float32)


@kernel("Normalizer", 1, domain=ML)
class Normalizer:
    def __init__(self, *, norm="MAX"):
        if norm not in ("MAX", "L1", "L2"):
            raise KernelError(f"norm must be MAX, L1 or L2, got {norm!r}")
        self.norm = norm

    def __call__(self, x):
        if x.ndim not in (1, 2):
            raise KernelError(f"X must have rank 1 or 2, got shape {list(x.shape)}")
        v = x.astype(np.float64)
        if self.norm == "MAX":
            d = v.max(axis=-1, keepdims=True)
        elif self.norm == "L1":
            d = np.abs(v).sum(axis=-1, keepdims=True)
        else:
            d = np.sqrt((v * v).sum(axis=-1, keepdims=True))
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(d == 0, v, v / np.where(d == 0, 1, d)).astype(np.float32)


@kernel("Imputer", 1, domain=ML)
class Imputer:
    def __init__(self, *, imputed_value_floats=(), imputed_value_int64s=(),
                 replaced_value_float=0.0, replaced_value_int64=0):  # fmt: skip
        self.floats = np.asarray(imputed_value_floats, np.float32)
        self.ints = np.asarray(imputed_value_int64s, np.int64)
        self.rf, self.ri = replaced_value_float, replaced_value_int64
        if not self.floats.size and not self.ints.size:
            raise KernelError("one of imputed_value_floats / imputed_value_int64s must be given")

    def __call__(self, x):
        if x.dtype.kind == "f":
            values, replaced = self.floats if self.floats.size else self.ints, self.rf
            mask = np.isnan(x) if math.isnan(replaced) else x == replaced
        else:
            values, replaced = self.ints if self.ints.size else self.floats, self.ri
            mask = x == replaced
        c = x.shape[-1] if x.ndim else 1
        if values.size not in (1, c):
            raise KernelError(f"{values.size} imputed values for {c} features (expected 1 or {c})")
        return np.where(mask, values.astype(x.dtype), x)


@kernel("FeatureVectorizer", 1, domain=ML)
class FeatureVectorizer:
    def __init__(self, *, inputdimensions=()):
        self.dims = list(inputdimensions)

    def __call__(self, *inputs):
        if len(self.dims) != len(inputs):
            raise KernelError(
                f"inputdimensions has {len(self.dims)} entries for {len(inputs)} inputs"
            )
        parts = [_rows(x, f"input {i}") for i, x in enumerate(inputs)]
        n = parts[0].shape[0] if parts else 0
        out = np.zeros((n, sum(self.dims)), np.float32)
        start = 0
        for i, (p, d) in enumerate(zip(parts, self.dims)):
            if p.shape[0] != n:
                raise KernelError(f"input {i} has {p.shape[0]} rows, input 0 has {n}")
            w = min(d, p.shape[1])
            out[:, start : start + w] = p[:, :w]
            start += d
        return out


@kernel("OneHotEncoder", 1, domain=ML)
class OneHotEncoder:
    def __init__(self, *, cats_int64s=(), cats_strings=(), zeros=1):
        if bool(len(cats_int64s)) == bool(len(cats_strings)):
            raise KernelError("exactly one of cats_int64s / cats_strings must be given")
        self.strings = bool(len(cats_strings))
        cats = list(cats_strings) if self.strings else list(cats_int64s)
        self.n = len(cats)
        self.table = _Table(cats, range(self.n), -1)
        self.zeros = zeros

    def __call__(self, x):
        if self.strings:
            if x.dtype != object:
                raise KernelError(f"the categories are strings, X is {x.dtype}")
        else:
            if x.dtype == object:
                raise KernelError("the categories are integers, X holds strings")
            x = x.astype(np.int64)
        pos = self.table(x, np.int64)
        if not self.zeros and (pos < 0).any():
            raise KernelError(
                f"value {x.reshape(-1)[(pos < 0).reshape(-1)][0]!r} is not a category"
            )
        out = (pos[..., None] == np.arange(self.n)).astype(np.float32)
        return out


@kernel("CategoryMapper", 1, domain=ML)
class CategoryMapper:
    def __init__(
        self, *, cats_int64s=(), cats_strings=(), default_int64=-1, default_string="_Unused"
    ):
        if len(cats_int64s) != len(cats_strings):
            raise KernelError(
                f"cats_int64s ({len(cats_int64s)}) and cats_strings ({len(cats_strings)}) differ in length"
            )
        self.to_int = _Table(cats_strings, cats_int64s, default_int64)
        self.to_str = _Table(list(cats_int64s), cats_strings, default_string)

    def __call__(self, x):
        if x.dtype == object:
            return self.to_int(x, np.int64)
        return self.to_str(x.astype(np.int64, copy=False), object)


@kernel("LabelEncoder", 1, 2, 4, domain=ML)
class LabelEncoder:
    def __init__(self, *, classes_strings=None, keys_strings=None, keys_int64s=None, keys_floats=None,
                 keys_tensor=None, values_strings=None, values_int64s=None, values_floats=None,
                 values_tensor=None, default_string="_Unused", default_int64=-1, default_float=-0.0,
                 default_tensor=None):  # fmt: skip
        if classes_strings is not None:  # version 1: strings <-> their index in classes_strings
            self.v1 = True
            self.to_int = _Table(classes_strings, range(len(classes_strings)), default_int64)
            self.to_str = _Table(range(len(classes_strings)), classes_strings, default_string)
            return
        self.v1 = False
        keys = [k for k in (keys_strings, keys_int64s, keys_floats, keys_tensor) if k is not None]
        values = [
            v
            for v in (values_strings, values_int64s, values_floats, values_tensor)
            if v is not None
        ]
        if len(keys) != 1 or len(values) != 1:
            raise KernelError("exactly one keys_* and one values_* attribute must be given")
        if keys_tensor is not None:
            keys = keys_tensor.reshape(-1).tolist()
        else:
            keys = list(keys[0])
            if keys_floats is not None:
                keys = [float(np.float32(k)) for k in keys]
        if values_tensor is not None:
            self.dtype = values_tensor.dtype
            vals = values_tensor.reshape(-1).tolist()
        elif values_strings is not None:
            self.dtype, vals = np.dtype(object), list(values_strings)
        elif values_int64s is not None:
            self.dtype, vals = np.dtype(np.int64), list(values_int64s)
        else:
            self.dtype, vals = np.dtype(np.float32), list(values_floats)
        if default_tensor is not None:
            default = default_tensor.reshape(-1)[0]
            default = default.item() if hasattr(default, "item") else default
        elif self.dtype == object:
            default = default_string
        elif self.dtype.kind in "iu":
            default = default_int64
        else:
            default = default_float
        self.table = _Table(keys, vals, default)

    def __call__(self, x):
        if self.v1:
            if x.dtype == object:
                return self.to_int(x, np.int64)
            return self.to_str(x.astype(np.int64, copy=False), object)
        return self.table(x, self.dtype)


# --- maps and sequences --------------------------------------------------------------------------
def _check_map(x, what="X"):
    if not isinstance(x, dict):
        raise KernelError(f"{what} must be a map (dict), got {type(x).__name__}")


@kernel("CastMap", 1, domain=ML)
class CastMap:
    def __init__(self, *, cast_to="TO_FLOAT", map_form="DENSE", max_map=1):
        if cast_to not in ("TO_FLOAT", "TO_STRING", "TO_INT64"):
            raise KernelError(f"cast_to must be TO_FLOAT, TO_STRING or TO_INT64, got {cast_to!r}")
        if map_form not in ("DENSE", "SPARSE"):
            raise KernelError(f"map_form must be DENSE or SPARSE, got {map_form!r}")
        self.cast_to, self.sparse, self.max_map = cast_to, map_form == "SPARSE", max_map

    def _convert(self, values: list):
        if self.cast_to == "TO_STRING":
            return _strings([v if isinstance(v, str) else f"{float(v):f}" for v in values])
        dtype = np.float32 if self.cast_to == "TO_FLOAT" else np.int64
        try:
            if self.cast_to == "TO_INT64":
                return np.array(
                    [int(float(v)) if isinstance(v, str) else int(v) for v in values], dtype
                )
            return np.array([float(v) for v in values], dtype)
        except ValueError as e:
            raise KernelError(
                f"cannot cast a map value to {self.cast_to[3:].lower()}: {e}"
            ) from None

    def __call__(self, x):
        _check_map(x)
        keys = sorted(x)
        values = self._convert([x[k] for k in keys])
        if not self.sparse:
            return values.reshape(1, -1)
        k = np.asarray(keys, np.int64)
        if k.size and (k.min() < 0 or k.max() >= self.max_map):
            raise KernelError(f"map key out of range [0, {self.max_map}) for SPARSE form: {keys}")
        fill = "0" if self.cast_to == "TO_STRING" else 0
        out = (
            np.full(self.max_map, fill, object)
            if values.dtype == object
            else np.zeros(self.max_map, values.dtype)
        )
        out[k] = values
        return out.reshape(1, -1)


def _scalar_dtype(v):
    if isinstance(v, np.generic):
        return np.dtype(object) if isinstance(v, np.str_) else v.dtype
    if isinstance(v, str):
        return np.dtype(object)
    if isinstance(v, bool | int):
        return np.dtype(np.int64)
    return np.dtype(np.float32)


@kernel("DictVectorizer", 1, domain=ML)
class DictVectorizer:
    def __init__(self, *, int64_vocabulary=(), string_vocabulary=()):
        if bool(len(int64_vocabulary)) == bool(len(string_vocabulary)):
            raise KernelError("exactly one of int64_vocabulary / string_vocabulary must be given")
        vocab = list(string_vocabulary) if len(string_vocabulary) else list(int64_vocabulary)
        self.strings = bool(len(string_vocabulary))
        self.index = {k: i for i, k in enumerate(vocab)}
        self.n = len(vocab)

    def __call__(self, x):
        _check_map(x)
        if not x:
            return np.zeros((1, self.n), np.float32)
        dtype = _scalar_dtype(next(iter(x.values())))
        out = np.full((1, self.n), "", object) if dtype == object else np.zeros((1, self.n), dtype)
        for k, v in x.items():
            i = self.index.get(k if self.strings else int(k))
            if i is not None:
                out[0, i] = v
        return out


@kernel("ZipMap", 1, domain=ML)
class ZipMap:
    def __init__(self, *, classlabels_int64s=(), classlabels_strings=()):
        if bool(len(classlabels_int64s)) == bool(len(classlabels_strings)):
            raise KernelError(
                "exactly one of classlabels_int64s / classlabels_strings must be given"
            )
        self.labels = (
            list(classlabels_strings)
            if len(classlabels_strings)
            else [int(v) for v in classlabels_int64s]
        )

    def __call__(self, x):
        x2 = _rows(x)
        if x2.shape[1] != len(self.labels):
            raise KernelError(f"X has {x2.shape[1]} columns for {len(self.labels)} class labels")
        labels = self.labels
        return [dict(zip(labels, row)) for row in x2.astype(np.float32).tolist()]


# --- linear models -------------------------------------------------------------------------------
def _labels(ints, strings):
    if len(strings):
        return _strings(strings), True
    return np.asarray(list(ints), np.int64), False


@kernel("LinearRegressor", 1, domain=ML)
class LinearRegressor:
    def __init__(self, *, coefficients=(), intercepts=(), targets=1, post_transform="NONE"):
        self.post = _transform_name(post_transform)
        coef = np.asarray(coefficients, np.float64)
        if targets < 1 or coef.size % targets:
            raise KernelError(f"{coef.size} coefficients do not split into {targets} targets")
        self.w = coef.reshape(targets, -1).T.copy()
        b = np.asarray(intercepts, np.float64)
        if b.size not in (0, targets):
            raise KernelError(f"{b.size} intercepts for {targets} targets")
        self.b = b if b.size else np.zeros(targets)

    def __call__(self, x):
        x2 = _features(x, self.w.shape[0])
        return _post(x2 @ self.w + self.b, self.post).astype(np.float32)


@kernel("LinearClassifier", 1, domain=ML)
class LinearClassifier:
    def __init__(self, *, coefficients, intercepts=(), classlabels_ints=(), classlabels_strings=(),
                 multi_class=0, post_transform="NONE"):  # fmt: skip
        self.post = _transform_name(post_transform)
        self.labels, self.strings = _labels(classlabels_ints, classlabels_strings)
        coef = np.asarray(coefficients, np.float64)
        b = np.asarray(intercepts, np.float64)
        k = b.size if b.size else (len(self.labels) or 1)
        if k == 0 or coef.size % k:
            raise KernelError(f"{coef.size} coefficients do not split into {k} classes")
        self.w = coef.reshape(k, -1).T.copy()
        self.b = b if b.size else np.zeros(k)

    def __call__(self, x):
        x2 = _features(x, self.w.shape[0])
        scores = x2 @ self.w + self.b
        k, n_labels = scores.shape[1], len(self.labels)
        if k == 1:  # one score: binary with the positive class's score
            s = scores[:, 0]
            pos = s > 0
            if n_labels == 2:
                label = np.where(pos, 1, 0)
                y = self.labels[label]
            else:
                y = (
                    _strings(np.where(pos, "1", "0").tolist())
                    if self.strings
                    else pos.astype(np.int64)
                )
            t = _post(scores, self.post)
            z = np.concatenate([1 - t, t], axis=1) if n_labels == 2 and self.post != "PROBIT" else t
            return y, z.astype(np.float32)
        best = scores.argmax(axis=1)
        if n_labels < k:
            raise KernelError(f"{n_labels} class labels for {k} scores per row")
        return self.labels[best], _post(scores, self.post).astype(np.float32)


# --- support vector machines ---------------------------------------------------------------------
class _SVMKernel:
    def __init__(self, kernel_type, kernel_params):
        if kernel_type not in ("LINEAR", "POLY", "RBF", "SIGMOID"):
            raise KernelError(
                f"kernel_type must be LINEAR, POLY, RBF or SIGMOID, got {kernel_type!r}"
            )
        self.type = kernel_type
        p = list(kernel_params) + [0.0] * 3
        self.gamma, self.coef0, self.degree = float(p[0]), float(p[1]), float(p[2])

    def __call__(self, x, sv):
        """K(x_n, sv_v) for all pairs: [N, V]."""
        if self.type == "RBF":
            d2 = (x * x).sum(1)[:, None] + (sv * sv).sum(1)[None, :] - 2 * (x @ sv.T)
            return np.exp(-self.gamma * np.maximum(d2, 0))
        dot = x @ sv.T
        if self.type == "LINEAR":
            return dot
        if self.type == "POLY":
            return (self.gamma * dot + self.coef0) ** self.degree
        return np.tanh(self.gamma * dot + self.coef0)


def _multiclass_probability(r: np.ndarray) -> np.ndarray:
    """Pairwise-coupled class probabilities for [N, K, K] pairwise estimates (Wu, Lin & Weng)."""
    n, k, _ = r.shape
    q = -r.transpose(0, 2, 1) * r
    diag = (r.transpose(0, 2, 1) ** 2).sum(axis=2) - np.einsum("nii->ni", r) ** 2
    idx = np.arange(k)
    q[:, idx, idx] = diag
    p = np.full((n, k), 1.0 / k)
    eps = 0.005 / k
    active = np.ones(n, bool)
    for _ in range(max(100, k)):
        qp = np.einsum("nij,nj->ni", q, p)
        pqp = (p * qp).sum(1)
        active &= np.abs(qp - pqp[:, None]).max(1) >= eps
        if not active.any():
            break
        a = active
        for t in range(k):
            diff = np.where(a, (-qp[:, t] + pqp) / q[:, t, t], 0.0)
            p[:, t] += diff
            scale = 1 + diff
            pqp = (pqp + diff * (diff * q[:, t, t] + 2 * qp[:, t])) / (scale * scale)
            p /= scale[:, None]
            qp = (qp + diff[:, None] * q[:, t, :]) / scale[:, None]
    return p


@kernel("SVMClassifier", 1, domain=ML)
class SVMClassifier:
    def __init__(self, *, classlabels_ints=(), classlabels_strings=(), coefficients=(), kernel_params=(),
                 kernel_type="LINEAR", post_transform="NONE", prob_a=(), prob_b=(), rho=(),
                 support_vectors=(), vectors_per_class=()):  # fmt: skip
        self.post = _transform_name(post_transform)
        self.labels, self.strings = _labels(classlabels_ints, classlabels_strings)
        self.k = len(self.labels)
        if self.k == 0:
            raise KernelError("one of classlabels_ints / classlabels_strings must be given")
        coef = np.asarray(coefficients, np.float64)
        self.rho = np.asarray(rho, np.float64)
        self.prob_a = np.asarray(prob_a, np.float64)
        self.prob_b = np.asarray(prob_b, np.float64)
        self.all_positive = bool((coef >= 0).all())
        self.n_pairs = self.k * (self.k - 1) // 2
        if len(vectors_per_class):
            self.svc = True
            counts = np.asarray(vectors_per_class, np.int64)
            v = int(counts.sum())
            if len(counts) != self.k or v == 0 or len(support_vectors) % v:
                raise KernelError(f"vectors_per_class {list(counts)} does not fit {self.k} classes and "
                                  f"{len(support_vectors)} support vector values")  # fmt: skip
            self.sv = np.asarray(support_vectors, np.float64).reshape(v, -1)
            if coef.size < (self.k - 1) * v or self.rho.size < self.n_pairs:
                raise KernelError(f"coefficients ({coef.size}) or rho ({self.rho.size}) too short for "
                                  f"{self.k} classes and {v} support vectors")  # fmt: skip
            self.coef = coef[: (self.k - 1) * v].reshape(self.k - 1, v)
            self.kernel = _SVMKernel(kernel_type, kernel_params)
            starts = np.concatenate([[0], np.cumsum(counts)])
            # one weight row per classifier (i, j): class i's vectors use coef[j-1], class j's coef[i]
            w = np.zeros((self.n_pairs, v))
            pairs = []
            for i in range(self.k - 1):
                for j in range(i + 1, self.k):
                    p = len(pairs)
                    si, sj = slice(starts[i], starts[i + 1]), slice(starts[j], starts[j + 1])
                    w[p, si] = self.coef[j - 1, si]
                    w[p, sj] = self.coef[i, sj]
                    pairs.append((i, j))
            self.pair_w = w.T.copy()
            self.pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
            if self.prob_a.size and (
                self.prob_a.size < self.n_pairs or self.prob_b.size < self.n_pairs
            ):
                raise KernelError(f"prob_a/prob_b need {self.n_pairs} values")
            self.n_features = self.sv.shape[1]
        else:
            self.svc = False
            if coef.size % self.k or self.rho.size < 1:
                raise KernelError(
                    f"{coef.size} coefficients do not split into {self.k} classes (or rho is empty)"
                )
            self.coef = coef.reshape(self.k, -1)
            self.n_features = self.coef.shape[1]

    def _binary_label(self, best, top, have_proba):
        if self.k == 2:
            if not have_proba:
                pos = (top >= 0.5) if self.all_positive else (top > 0)
                return self.labels[np.where(pos, 1, best)]
            return self.labels[best]
        pos = top > 0
        return _strings(np.where(pos, "1", "0").tolist()) if self.strings else pos.astype(np.int64)

    def __call__(self, x):
        x2 = _features(x, self.n_features).astype(np.float32).astype(np.float64)
        if not self.svc:
            scores = x2 @ self.coef.T + self.rho[0]
            best = scores.argmax(axis=1)
            top = scores[np.arange(len(best)), best]
            y = self._binary_label(best, top, False) if self.n_pairs == 1 else self.labels[best]
            return y, _post(scores, self.post).astype(np.float32)
        kern = self.kernel(x2, self.sv)
        pair_scores = kern @ self.pair_w + self.rho[: self.n_pairs]
        n = len(x2)
        votes = np.zeros((n, self.k), np.int64)
        winners = np.where(pair_scores > 0, self.pairs[:, 0], self.pairs[:, 1])
        np.add.at(votes, (np.repeat(np.arange(n), self.n_pairs), winners.reshape(-1)), 1)
        best = votes.argmax(axis=1)
        have_proba = self.prob_a.size > 0
        if have_proba:
            ab = pair_scores * self.prob_a[: self.n_pairs] + self.prob_b[: self.n_pairs]
            with np.errstate(over="ignore"):
                pr = np.where(ab >= 0, np.exp(-ab) / (1 + np.exp(-ab)), 1 / (1 + np.exp(ab)))
            pr = np.clip(pr.astype(np.float32), 1e-7, 1 - 1e-7).astype(np.float64)
            r = np.zeros((n, self.k, self.k))
            r[:, self.pairs[:, 0], self.pairs[:, 1]] = pr
            r[:, self.pairs[:, 1], self.pairs[:, 0]] = 1 - pr
            z = _post(_multiclass_probability(r), self.post)
        elif self.k > 2:
            z = _post(pair_scores, self.post)
        else:
            s = pair_scores[:, 0]
            if self.post == "NONE":
                z = np.stack([-s, s], axis=1)
            elif self.post == "PROBIT":
                z = _probit(s)[:, None]
            else:
                t = _post(pair_scores, self.post)[:, 0]
                z = np.stack([1 - t, t], axis=1)
        y = (
            self._binary_label(best, np.zeros(n), have_proba)
            if self.n_pairs == 1
            else self.labels[best]
        )
        return y, z.astype(np.float32)


@kernel("SVMRegressor", 1, domain=ML)
class SVMRegressor:
    def __init__(self, *, coefficients=(), kernel_params=(), kernel_type="LINEAR", n_supports=0,
                 one_class=0, post_transform="NONE", rho=(), support_vectors=()):  # fmt: skip
        self.post = _transform_name(post_transform)
        self.coef = np.asarray(coefficients, np.float64)
        if not self.coef.size:
            raise KernelError("coefficients must not be empty")
        self.rho = float(rho[0]) if len(rho) else 0.0
        self.one_class = bool(one_class)
        if n_supports > 0:
            if len(support_vectors) % n_supports or self.coef.size < n_supports:
                raise KernelError(f"{len(support_vectors)} support vector values and {self.coef.size} "
                                  f"coefficients do not fit n_supports={n_supports}")  # fmt: skip
            self.sv = np.asarray(support_vectors, np.float64).reshape(n_supports, -1)
            self.coef = self.coef[:n_supports]
            self.kernel = _SVMKernel(kernel_type, kernel_params)
        else:
            self.sv = None
            self.kernel = _SVMKernel("LINEAR", ())

    def __call__(self, x):
        nf = self.sv.shape[1] if self.sv is not None else self.coef.size
        x2 = _features(x, nf).astype(np.float32).astype(np.float64)
        if self.sv is not None:
            score = self.kernel(x2, self.sv) @ self.coef + self.rho
        else:
            score = x2 @ self.coef + self.rho
        score = score[:, None]
        if self.one_class:
            score = np.where(score > 0, 1.0, -1.0)
        return _post(score, self.post).astype(np.float32)


# --- tree ensembles ------------------------------------------------------------------------------
_MODES = {"BRANCH_LEQ": 0, "BRANCH_LT": 1, "BRANCH_GTE": 2, "BRANCH_GT": 3, "BRANCH_EQ": 4,
          "BRANCH_NEQ": 5, "BRANCH_MEMBER": 6, "LEAF": 7}  # fmt: skip
_COMPARE = (np.less_equal, np.less, np.greater_equal, np.greater, np.equal, np.not_equal)
_AGGREGATES = ("AVERAGE", "SUM", "MIN", "MAX")


class _Forest:
    """Trees as flat node arrays (leaves are nodes whose children are themselves).

    ``leaves(x)`` walks every (sample, tree) pair down one level per step, all at once.
    ``weights`` is [nodes, targets]: each leaf's contribution to each target.
    """

    def __init__(self, feature, threshold, mode, true_child, false_child, missing_true, roots,
                 members=None):  # fmt: skip
        self.feature = np.asarray(feature, np.int64)
        self.threshold = np.asarray(threshold, np.float64)
        self.mode = np.asarray(mode, np.int64)
        self.true = np.asarray(true_child, np.int64)
        self.false = np.asarray(false_child, np.int64)
        self.missing = np.asarray(missing_true, bool)
        self.roots = np.asarray(roots, np.int64)
        m = len(self.mode)
        for name, a in (("true", self.true), ("false", self.false), ("root", self.roots)):
            if a.size and (a.min() < 0 or a.max() >= m):
                raise KernelError(f"a {name} node reference is out of range [0, {m})")
        self.leaf = self.mode == 7
        self.feature = np.where(self.leaf, 0, self.feature)
        if self.feature.size and self.feature.min() < 0:
            raise KernelError("negative feature id in nodes_featureids")
        self.n_features = int(self.feature.max()) + 1 if self.feature.size else 0
        modes = set(np.unique(self.mode[~self.leaf]).tolist())
        self.modes = sorted(modes)
        self.has_missing = bool(self.missing[~self.leaf].any())
        if members is not None:  # [member sets, width] padded with NaN; row per node
            self.member_row, self.member_table = members
        # depth: walk all trees level by level until every path ends at a leaf
        frontier, depth = np.unique(self.roots), 0
        while frontier.size:
            inner = frontier[~self.leaf[frontier]]
            if not inner.size:
                break
            depth += 1
            if depth > m:
                raise KernelError("the tree nodes form a cycle")
            frontier = np.unique(np.concatenate([self.true[inner], self.false[inner]]))
        self.depth = depth

    def leaves(self, x: np.ndarray) -> np.ndarray:
        """Leaf node index for every sample and tree: [N, trees]."""
        if x.shape[1] < self.n_features:
            raise KernelError(
                f"X has {x.shape[1]} features, the trees use feature {self.n_features - 1}"
            )
        n = x.shape[0]
        idx = np.broadcast_to(self.roots, (n, len(self.roots))).copy()
        rows = np.arange(n)[:, None]
        single = self.modes[0] if len(self.modes) == 1 and self.modes[0] != 6 else None
        for _ in range(self.depth):
            v = x[rows, self.feature[idx]]
            t = self.threshold[idx]
            if single is not None:
                cond = _COMPARE[single](v, t)
            else:
                mode = self.mode[idx]
                cond = np.zeros(idx.shape, bool)
                for m in self.modes:
                    sel = mode == m
                    if m == 6:
                        table = self.member_table[self.member_row[idx[sel]]]
                        cond[sel] = (v[sel][:, None] == table).any(axis=1)
                    else:
                        cond[sel] = _COMPARE[m](v[sel], t[sel])
            if self.has_missing:
                cond |= np.isnan(v) & self.missing[idx]
            idx = np.where(cond, self.true[idx], self.false[idx])
        return idx


def _aggregate(forest, weights, has, x, aggregate, base):
    """Scores [N, targets] (float64): leaf values aggregated over trees, plus base values."""
    leaves = forest.leaves(x)
    n_trees = leaves.shape[1]
    if aggregate in ("SUM", "AVERAGE"):
        scores = (
            weights[leaves].sum(axis=1)
            if n_trees
            else np.zeros((len(x), weights.shape[1]), weights.dtype)
        )
        if aggregate == "AVERAGE" and n_trees:
            scores /= n_trees
    else:
        fill = np.inf if aggregate == "MIN" else -np.inf
        vals = np.where(has[leaves], weights[leaves], fill)
        scores = vals.min(axis=1) if aggregate == "MIN" else vals.max(axis=1)
        scores = np.where(np.isinf(scores) & (scores == fill), 0.0, scores)
    return (scores + base).astype(np.float64)


def _pick(plain, tensor):
    """A float attribute or its double ``*_as_tensor`` twin (float32 sums, like the reference runtime)."""
    if tensor is not None:
        return np.asarray(tensor, np.float64).reshape(-1)
    return np.asarray(plain if plain is not None else (), np.float32)


def _legacy_forest(treeids, nodeids, featureids, values, modes, truenodeids, falsenodeids, missing):
    """A _Forest from the per-node tuples of TreeEnsembleRegressor/Classifier; returns (forest, index)."""
    treeids, nodeids, featureids = list(treeids), list(nodeids), list(featureids)
    modes, truenodeids, falsenodeids = list(modes), list(truenodeids), list(falsenodeids)
    n = len(nodeids)
    cols = {"nodes_treeids": treeids, "nodes_featureids": featureids, "nodes_values": values,
            "nodes_modes": modes, "nodes_truenodeids": truenodeids, "nodes_falsenodeids": falsenodeids}  # fmt: skip
    for name, col in cols.items():
        if len(col) != n:
            raise KernelError(f"{name} has {len(col)} entries, nodes_nodeids has {n}")
    try:
        mode = [_MODES[m] for m in modes]
    except KeyError as e:
        raise KernelError(f"unknown node mode {e.args[0]!r}") from None
    if 6 in mode:
        raise KernelError("BRANCH_MEMBER is only supported by TreeEnsemble")
    index = {(t, i): k for k, (t, i) in enumerate(zip(treeids, nodeids))}
    if len(index) != n:
        raise KernelError("a (tree id, node id) pair appears twice")
    true_c, false_c, children = [], [], set()
    for k in range(n):
        if mode[k] == 7:
            true_c.append(k)
            false_c.append(k)
            continue
        t = treeids[k]
        try:
            a, b = index[(t, truenodeids[k])], index[(t, falsenodeids[k])]
        except KeyError as e:
            raise KernelError(
                f"node {nodeids[k]} of tree {t} points to a missing node {e.args[0][1]}"
            ) from None
        true_c.append(a)
        false_c.append(b)
        children.update((a, b))
    roots, seen = [], set()
    for k, t in enumerate(treeids):  # the first node of each tree that no node points to
        if t not in seen and k not in children:
            seen.add(t)
            roots.append(k)
    if len(roots) != len(set(treeids)):
        raise KernelError("a tree has no root: its nodes form a cycle")
    miss = list(missing) if missing is not None and len(missing) else [0] * n
    if len(miss) != n:
        raise KernelError(f"nodes_missing_value_tracks_true has {len(miss)} entries for {n} nodes")
    forest = _Forest(featureids, values, mode, true_c, false_c, miss, roots)
    return forest, index


def _leaf_table(index, n_nodes, n_targets, treeids, nodeids, targets, weights, what):
    """[nodes, targets] summed weights, and a [nodes, targets] 'has a weight' mask."""
    if not len(treeids) == len(nodeids) == len(targets) == len(weights):
        raise KernelError(f"the {what}_* attributes differ in length")
    try:
        rows = np.asarray([index[(t, i)] for t, i in zip(treeids, nodeids)], np.int64)
    except KeyError as e:
        raise KernelError(f"{what} weight for a missing node (tree, node) = {e.args[0]}") from None
    cols = np.asarray(targets, np.int64)
    if cols.size and (cols.min() < 0 or cols.max() >= n_targets):
        raise KernelError(f"{what} id out of range [0, {n_targets})")
    weights = np.asarray(weights)
    w = np.zeros((n_nodes, n_targets), weights.dtype if weights.dtype.kind == "f" else np.float32)
    has = np.zeros((n_nodes, n_targets), bool)
    np.add.at(w, (rows, cols), weights)
    has[rows, cols] = True
    return w, has, rows, cols


def _tree_input(x):
    x2 = _rows(x)
    if x2.dtype.kind in "iu":
        x2 = x2.astype(np.float32)
    return x2.astype(np.float64, copy=False)


@kernel("TreeEnsembleRegressor", 1, 3, domain=ML)
class TreeEnsembleRegressor:
    def __init__(self, *, n_targets=None, nodes_nodeids=(), nodes_treeids=(), nodes_featureids=(),
                 nodes_values=None, nodes_values_as_tensor=None, nodes_modes=(), nodes_truenodeids=(),
                 nodes_falsenodeids=(), nodes_missing_value_tracks_true=None, nodes_hitrates=None,
                 nodes_hitrates_as_tensor=None, target_ids=(), target_nodeids=(), target_treeids=(),
                 target_weights=None, target_weights_as_tensor=None, base_values=None,
                 base_values_as_tensor=None, aggregate_function="SUM", post_transform="NONE"):  # fmt: skip
        self.post = _transform_name(post_transform)
        if aggregate_function not in _AGGREGATES:
            raise KernelError(
                f"aggregate_function must be one of {', '.join(_AGGREGATES)}, got {aggregate_function!r}"
            )
        self.aggregate = aggregate_function
        values = _pick(nodes_values, nodes_values_as_tensor)
        self.forest, index = _legacy_forest(
            nodes_treeids, nodes_nodeids, nodes_featureids, values, nodes_modes,
            nodes_truenodeids, nodes_falsenodeids, nodes_missing_value_tracks_true,
        )  # fmt: skip
        if n_targets is None:
            n_targets = int(max(target_ids)) + 1 if len(target_ids) else 1
        weights = _pick(target_weights, target_weights_as_tensor)
        self.w, self.has, *_ = _leaf_table(index, len(nodes_nodeids), n_targets, list(target_treeids),
                                           list(target_nodeids), target_ids, weights, "target")  # fmt: skip
        base = _pick(base_values, base_values_as_tensor)
        if base.size not in (0, n_targets):
            raise KernelError(f"{base.size} base_values for {n_targets} targets")
        self.base = base if base.size else np.zeros(n_targets, self.w.dtype)

    def __call__(self, x):
        scores = _aggregate(
            self.forest, self.w, self.has, _tree_input(x), self.aggregate, self.base
        )
        return _post(scores, self.post).astype(np.float32)


@kernel("TreeEnsembleClassifier", 1, 3, domain=ML)
class TreeEnsembleClassifier:
    def __init__(self, *, classlabels_int64s=(), classlabels_strings=(), nodes_nodeids=(),
                 nodes_treeids=(), nodes_featureids=(), nodes_values=None, nodes_values_as_tensor=None,
                 nodes_modes=(), nodes_truenodeids=(), nodes_falsenodeids=(),
                 nodes_missing_value_tracks_true=None, nodes_hitrates=None,
                 nodes_hitrates_as_tensor=None, class_ids=(), class_nodeids=(), class_treeids=(),
                 class_weights=None, class_weights_as_tensor=None, base_values=None,
                 base_values_as_tensor=None, post_transform="NONE"):  # fmt: skip
        self.post = _transform_name(post_transform)
        self.labels, self.strings = _labels(classlabels_int64s, classlabels_strings)
        k = len(self.labels)
        if k == 0:
            raise KernelError("one of classlabels_int64s / classlabels_strings must be given")
        values = _pick(nodes_values, nodes_values_as_tensor)
        self.forest, index = _legacy_forest(
            nodes_treeids, nodes_nodeids, nodes_featureids, values, nodes_modes,
            nodes_truenodeids, nodes_falsenodeids, nodes_missing_value_tracks_true,
        )  # fmt: skip
        weights = _pick(class_weights, class_weights_as_tensor)
        self.w, self.has, _, cols = _leaf_table(index, len(nodes_nodeids), k, list(class_treeids),
                                                list(class_nodeids), class_ids, weights, "class")  # fmt: skip
        self.base = _pick(base_values, base_values_as_tensor)
        if self.base.size not in (0, 1, 2) and self.base.size != k:
            raise KernelError(f"{self.base.size} base_values for {k} classes")
        # one class id used among two labels: a single score decides between them
        self.binary = k == 2 and len(set(cols.tolist())) == 1
        self.all_positive = bool((weights >= 0).all())

    def __call__(self, x):
        x2 = _tree_input(x)
        leaves = self.forest.leaves(x2)
        scores = self.w[leaves].sum(axis=1)
        has = self.has[leaves].any(axis=1)
        k = len(self.labels)
        if k != 2:
            if self.base.size:
                scores = scores + self.base[:k]
            best = scores.argmax(axis=1)
            return self.labels[best], _post(scores.astype(np.float64), self.post).astype(np.float32)
        return self._binary(scores.astype(np.float64), has)

    def _binary(self, scores, has):
        """Two labels, onnxruntime's rules: class 1's score decides when it has one, else class 0's."""
        s0, s1 = scores[:, 0], scores[:, 1]
        h0, h1 = has[:, 0], has[:, 1]
        if self.base.size == 2:
            s1 = s1 + self.base[1]
            s0 = np.where(h1 & self.binary, -s1, s0 + self.base[0])
            two = np.ones(len(s0), bool)
        else:
            if self.base.size == 1:
                s0 = s0 + self.base[0]
            two = h1
        pos_w = np.where(two, s1, np.where(h0 | (self.base.size == 1), s0, 0.0))
        pos = pos_w > 0.5 if self.binary and self.all_positive else pos_w > 0
        y = self.labels[pos.astype(np.int64)]
        # one score (s0): the second column is derived from it
        if self.post == "PROBIT":
            one = np.stack([_probit(s0), np.zeros_like(s0)], axis=1)
        elif self.binary and self.all_positive:
            one = np.stack([1 - s0, s0], axis=1)
        elif self.binary or self.base.size == 0:
            if self.post == "LOGISTIC":
                one = np.stack([_logistic(-s0), _logistic(s0)], axis=1)
            else:
                one = np.where(
                    pos[:, None], np.stack([-s0, s0], axis=1), np.stack([s0, -s0], axis=1)
                )
        else:
            one = np.stack([s0, np.zeros_like(s0)], axis=1)
        both = _post(np.stack([s0, s1], axis=1), self.post)
        return y, np.where(two[:, None], both, one).astype(np.float32)


@kernel("TreeEnsemble", 5, domain=ML)
class TreeEnsemble:
    def __init__(self, *, tree_roots, nodes_modes, nodes_featureids, nodes_splits, nodes_truenodeids,
                 nodes_trueleafs, nodes_falsenodeids, nodes_falseleafs, leaf_targetids, leaf_weights,
                 n_targets=None, nodes_missing_value_tracks_true=None, nodes_hitrates=None,
                 membership_values=None, aggregate_function=1, post_transform=0):  # fmt: skip
        self.post = _transform_name(post_transform)
        if not 0 <= aggregate_function < 4:
            raise KernelError(f"aggregate_function must be 0..3, got {aggregate_function}")
        self.aggregate = _AGGREGATES[aggregate_function]
        modes = np.asarray(nodes_modes).reshape(-1).astype(np.int64)
        m = len(modes)
        lw = np.asarray(leaf_weights).reshape(-1)
        n_leaves = len(lw)
        self.dtype = lw.dtype
        splits = np.asarray(nodes_splits).reshape(-1).astype(np.float64)
        for name, a in (("nodes_featureids", nodes_featureids), ("nodes_splits", splits),
                        ("nodes_truenodeids", nodes_truenodeids), ("nodes_falsenodeids", nodes_falsenodeids),
                        ("nodes_trueleafs", nodes_trueleafs), ("nodes_falseleafs", nodes_falseleafs)):  # fmt: skip
            if len(a) != m:
                raise KernelError(f"{name} has {len(a)} entries, nodes_modes has {m}")
        if len(leaf_targetids) != n_leaves:
            raise KernelError(
                f"leaf_targetids has {len(leaf_targetids)} entries, leaf_weights has {n_leaves}"
            )
        if modes.size and (modes.min() < 0 or modes.max() > 6):
            raise KernelError(f"nodes_modes values must be 0..6, got {sorted(set(modes.tolist()))}")
        tl = np.asarray(nodes_trueleafs, bool)
        fl = np.asarray(nodes_falseleafs, bool)
        tn = np.asarray(nodes_truenodeids, np.int64)
        fn = np.asarray(nodes_falsenodeids, np.int64)
        for ids, leafs in ((tn, tl), (fn, fl)):
            bad = (ids < 0) | np.where(leafs, ids >= n_leaves, ids >= m)
            if bad.any():
                raise KernelError("a node child id is out of range of nodes_* / leaf_*")
        true_c = np.where(tl, tn + m, tn)
        false_c = np.where(fl, fn + m, fn)
        leaf_ids = np.arange(m, m + n_leaves)
        miss = nodes_missing_value_tracks_true
        miss = np.asarray(miss, bool) if miss is not None and len(miss) else np.zeros(m, bool)
        members = None
        if (modes == 6).any():
            if membership_values is None:
                raise KernelError("BRANCH_MEMBER nodes need membership_values")
            mv = np.asarray(membership_values, np.float64).reshape(-1)
            cuts = np.nonzero(np.isnan(mv))[0]
            sets = np.split(mv, cuts)
            sets = [s[~np.isnan(s)] for s in sets]
            member_nodes = np.nonzero(modes == 6)[0]
            if len(sets) < len(member_nodes):
                raise KernelError(
                    f"membership_values has {len(sets)} sets for {len(member_nodes)} member nodes"
                )
            width = max([len(s) for s in sets] + [1])
            table = np.full((len(member_nodes) + 1, width), np.nan)
            for r, s in enumerate(sets[: len(member_nodes)]):
                table[r, : len(s)] = s
            row = np.full(m + n_leaves, len(member_nodes), np.int64)
            row[member_nodes] = np.arange(len(member_nodes))
            members = (row, table)
        self.forest = _Forest(
            np.concatenate([np.asarray(nodes_featureids, np.int64), np.zeros(n_leaves, np.int64)]),
            np.concatenate([splits, np.zeros(n_leaves)]),
            np.concatenate([modes, np.full(n_leaves, 7)]),
            np.concatenate([true_c, leaf_ids]),
            np.concatenate([false_c, leaf_ids]),
            np.concatenate([miss, np.zeros(n_leaves, bool)]),
            tree_roots,
            members,
        )
        targets = np.asarray(leaf_targetids, np.int64)
        if n_targets is None:
            n_targets = int(targets.max()) + 1 if targets.size else 1
        if targets.size and (targets.min() < 0 or targets.max() >= n_targets):
            raise KernelError(f"leaf_targetids must be in [0, {n_targets})")
        self.w = np.zeros((m + n_leaves, n_targets))
        self.has = np.zeros((m + n_leaves, n_targets), bool)
        self.w[leaf_ids, targets] = lw.astype(np.float64)
        self.has[leaf_ids, targets] = True
        self.base = np.zeros(n_targets)

    def __call__(self, x):
        x2 = _rows(x).astype(np.float64)
        scores = _aggregate(self.forest, self.w, self.has, x2, self.aggregate, self.base)
        return _post(scores, self.post).astype(x.dtype if x.dtype.kind == "f" else self.dtype)
