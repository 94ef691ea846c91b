"""The ``ai.onnx.ml`` domain, numeric parts: linear models, scalers and encoders, tree ensembles.

Attributes are parsed and checked by the runtime's own kernels (onyx/runtime/kernels/ml.py):
each converter builds the kernel once and turns what it parsed (coefficient matrices, lookup
tables, flat tree arrays) into constants of the module, which then computes in torch. Tree
ensembles walk every (sample, tree) pair down one level per step, all at once. String inputs
or outputs, maps (ZipMap, DictVectorizer, CastMap) and SVMs are refused up front (types torch
lacks) or have no converter.
"""

from __future__ import annotations

import numpy as np

from onyx.pytorch._torch import torch
from onyx.pytorch.registry import converter
from onyx.runtime.kernels import ml as _rt

ML = "ai.onnx.ml"


def _rows(cx, x):
    """``x`` as [N, C] float64 (a vector is one row)."""
    x = x.to(torch.float64)
    return x.reshape(1, -1) if cx.rank(x) == 1 else x.reshape(cx.shape(x)[0], -1)


def _post(scores, name: str):
    """A post_transform applied to [N, K] float64 scores."""
    if name == "NONE":
        return scores
    if name == "LOGISTIC":
        return torch.sigmoid(scores)
    if name == "PROBIT":
        return torch.special.ndtri(scores)
    if name == "SOFTMAX":
        return torch.softmax(scores, 1)
    zero = torch.abs(scores) <= 1e-7  # SOFTMAX_ZERO: zero scores stay out of the normalisation
    top = torch.amax(scores, 1, keepdim=True)
    e = torch.where(zero, torch.zeros_like(scores), torch.exp(scores - top))
    total = e.sum(1, keepdim=True)
    return torch.where(total > 0, e / torch.where(total > 0, total, torch.ones_like(total)),
                       torch.zeros_like(e))  # fmt: skip


def _const(a, dtype=None) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(a))
    return t if dtype is None else t.to(dtype)


@converter("ArrayFeatureExtractor", 1, domain=ML)
def array_feature_extractor(cx, x, y):
    index = y.reshape(-1).to(torch.int64)
    out = torch.index_select(x, cx.rank(x) - 1, index)
    return out.reshape(1, -1) if cx.rank(x) == 1 else out


@converter("Binarizer", 1, domain=ML)
def binarizer(cx, x, *, threshold: float = 0.0):
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    return torch.where(x > threshold, one, torch.where(x <= threshold, zero, x))  # NaN stays


@converter("Scaler", 1, domain=ML)
def scaler(cx, x, **attrs):
    k = _rt.Scaler(**attrs)
    return ((x.to(torch.float64) - _const(k.offset)) * _const(k.scale)).to(torch.float32)


@converter("Normalizer", 1, domain=ML)
def normalizer(cx, x, **attrs):
    k = _rt.Normalizer(**attrs)
    v = x.to(torch.float64)
    if k.norm == "MAX":
        d = torch.amax(v, -1, keepdim=True)
    elif k.norm == "L1":
        d = torch.abs(v).sum(-1, keepdim=True)
    else:
        d = torch.sqrt((v * v).sum(-1, keepdim=True))
    zero = d == 0
    return torch.where(zero, v, v / torch.where(zero, torch.ones_like(d), d)).to(torch.float32)


@converter("Imputer", 1, domain=ML)
def imputer(cx, x, **attrs):
    k = _rt.Imputer(**attrs)
    dtype = cx.dtype(x)
    if dtype.is_floating_point:
        values, replaced = (k.floats if k.floats.size else k.ints), k.rf
        mask = torch.isnan(x) if np.isnan(replaced) else x == replaced
    else:
        values, replaced = (k.ints if k.ints.size else k.floats), k.ri
        mask = x == replaced
    return torch.where(mask, _const(values, dtype), x)


@converter("FeatureVectorizer", 1, domain=ML)
def feature_vectorizer(cx, *inputs, inputdimensions: list[int] | None = None):
    dims = list(inputdimensions or [])
    if len(dims) != len(inputs):
        raise cx.fail(f"inputdimensions has {len(dims)} entries for {len(inputs)} inputs")
    parts = []
    for x, d in zip(inputs, dims):
        rows = _rows(cx, x).to(torch.float32)
        width = cx.shape(x)[-1] if cx.rank(x) > 1 else cx.shape(x)[0]
        if not isinstance(width, int):
            raise cx.fail("FeatureVectorizer needs static feature counts")
        if width >= d:
            parts.append(rows[:, :d])
        else:
            parts.append(torch.nn.functional.pad(rows, [0, d - width]))
    return torch.cat(parts, 1)


@converter("OneHotEncoder", 1, domain=ML)
def one_hot_encoder(cx, x, **attrs):
    k = _rt.OneHotEncoder(**attrs)
    if k.strings:
        raise cx.fail("string categories have no torch type")
    if not k.zeros:
        raise cx.fail("zeros=0 (fail on an unknown category) is not supported")
    cats = _const(np.asarray(attrs["cats_int64s"], np.int64))
    return (x.to(torch.int64).unsqueeze(-1) == cats).to(torch.float32)


@converter("LabelEncoder", 1, 2, 4, domain=ML)
def label_encoder(cx, x, **attrs):
    k = _rt.LabelEncoder(**attrs)
    if k.v1 or k.dtype == object or not k.table.numeric:
        raise cx.fail("string keys or values have no torch type")
    t = k.table
    vals = list(t.vals) + [t.default]
    if t.nan_value is not None:
        vals.append(t.nan_value)
    table = _const(np.asarray(vals, k.dtype))
    flat = x.reshape(-1)
    float_keys = t.keys.dtype.kind == "f"
    flat = flat.to(torch.float64) if float_keys else flat.to(torch.int64)
    miss = torch.full_like(flat, len(t.vals), dtype=torch.int64)
    if len(t.keys):
        keys = _const(t.keys, torch.float64 if float_keys else torch.int64)
        pos = torch.clamp(torch.searchsorted(keys, flat), max=len(t.keys) - 1)
        pick = torch.where(keys[pos] == flat, _const(t.index.astype(np.int64))[pos], miss)
    else:
        pick = miss
    if t.nan_value is not None and float_keys:
        pick = torch.where(torch.isnan(flat), torch.full_like(pick, len(vals) - 1), pick)
    return table[pick].reshape(x.shape if not cx.is_proxy(x) else cx.shape(x))


@converter("LinearRegressor", 1, domain=ML)
def linear_regressor(cx, x, **attrs):
    k = _rt.LinearRegressor(**attrs)
    return _post(_rows(cx, x) @ _const(k.w) + _const(k.b), k.post).to(torch.float32)


@converter("LinearClassifier", 1, domain=ML)
def linear_classifier(cx, x, **attrs):
    k = _rt.LinearClassifier(**attrs)
    if k.strings:
        raise cx.fail("string class labels have no torch type")
    scores = _rows(cx, x) @ _const(k.w) + _const(k.b)
    n_scores, labels = k.w.shape[1], np.asarray(k.labels, np.int64)
    if n_scores == 1:
        pos = scores[:, 0] > 0
        y = _const(labels)[pos.to(torch.int64)] if len(labels) == 2 else pos.to(torch.int64)
        t = _post(scores, k.post)
        z = torch.cat([1 - t, t], 1) if len(labels) == 2 and k.post != "PROBIT" else t
        return y, z.to(torch.float32)
    if len(labels) < n_scores:
        raise cx.fail(f"{len(labels)} class labels for {n_scores} scores per row")
    best = torch.argmax(scores, 1)
    return _const(labels)[best], _post(scores, k.post).to(torch.float32)


# --- tree ensembles ------------------------------------------------------------------------
_COMPARE = (torch.le, torch.lt, torch.ge, torch.gt, torch.eq, torch.ne)


def _leaves(cx, forest, x):
    """Leaf node index for every sample and tree: [N, trees] (x is [N, C] float64)."""
    f = forest
    feature, threshold = _const(f.feature), _const(f.threshold)
    mode, true, false = _const(f.mode), _const(f.true), _const(f.false)
    roots = _const(f.roots)
    idx = roots.unsqueeze(0).expand(x.shape[0] if not cx.is_proxy(x) else -1, -1)
    if cx.is_proxy(x):
        idx = roots.unsqueeze(0) + torch.zeros_like(x[:, :1], dtype=torch.int64)
    single = f.modes[0] if len(f.modes) == 1 and f.modes[0] != 6 else None
    for _ in range(f.depth):
        v = torch.gather(x, 1, feature[idx])
        t = threshold[idx]
        if single is not None:
            cond = _COMPARE[single](v, t)
        else:
            m = mode[idx]
            cond = torch.zeros_like(v, dtype=torch.bool)
            for code in f.modes:
                if code == 6:
                    table = _const(f.member_table)[_const(f.member_row)[idx]]  # [N, T, width]
                    hit = (v.unsqueeze(-1) == table).any(-1)
                else:
                    hit = _COMPARE[code](v, t)
                cond = cond | ((m == code) & hit)
        if f.has_missing:
            cond = cond | (torch.isnan(v) & _const(f.missing)[idx])
        idx = torch.where(cond, true[idx], false[idx])
    return idx


def _aggregate(cx, forest, weights, has, x, aggregate, base):
    leaves = _leaves(cx, forest, x)
    w = _const(weights.astype(np.float64))
    n_trees = len(forest.roots)
    if aggregate in ("SUM", "AVERAGE"):
        scores = w[leaves].sum(1)
        if aggregate == "AVERAGE" and n_trees:
            scores = scores / n_trees
    else:
        fill = float("inf") if aggregate == "MIN" else float("-inf")
        vals = torch.where(_const(has)[leaves], w[leaves], torch.tensor(fill, dtype=w.dtype))
        scores = vals.amin(1) if aggregate == "MIN" else vals.amax(1)
        scores = torch.where(scores == fill, torch.zeros_like(scores), scores)
    return scores + _const(np.asarray(base, np.float64))


@converter("TreeEnsemble", 5, domain=ML)
def tree_ensemble(cx, x, **attrs):
    k = _rt.TreeEnsemble(**attrs)
    scores = _aggregate(cx, k.forest, k.w, k.has, _rows(cx, x), k.aggregate, k.base)
    dtype = cx.dtype(x) if cx.dtype(x).is_floating_point else cx.out_dtype()
    return _post(scores, k.post).to(dtype)


@converter("TreeEnsembleRegressor", 1, 3, domain=ML)
def tree_ensemble_regressor(cx, x, **attrs):
    k = _rt.TreeEnsembleRegressor(**attrs)
    scores = _aggregate(cx, k.forest, k.w, k.has, _rows(cx, x), k.aggregate, k.base)
    return _post(scores, k.post).to(torch.float32)
