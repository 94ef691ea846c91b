"""Random generators: the official cases have random expected outputs, so they are checked by shape,
type and value set; the rest are our own tests of range, seeding and distributions."""

import ml_dtypes
import numpy as np
import pytest
from kernel_harness import all_node_cases, cases_for, run_model

from onyx.errors import KernelError
from onyx.runtime.kernels import lookup

OPS = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
       "Bernoulli"}  # fmt: skip
FLOATS = [np.float16, ml_dtypes.bfloat16, np.float32, np.float64]
CODES = {np.float16: 10, ml_dtypes.bfloat16: 16, np.float32: 1, np.float64: 11}


@pytest.mark.parametrize("name", cases_for(OPS))
def test_official_node_case_by_shape_and_type(name):
    """Their expected values come from another generator; shape, type and 0/1 values must agree."""
    case = all_node_cases()[name]
    assert case.data_sets
    for inputs, expected in case.data_sets:
        got = run_model(case.model, inputs)
        for g, e in zip(got, expected):
            assert isinstance(g, np.ndarray)
            assert g.dtype == e.dtype and g.shape == e.shape
            if case.model.graph.node[0].op_type == "Bernoulli":
                assert set(np.unique(g).tolist()) <= {0, 1}


def make(op, **attrs):
    return lookup("", op, 22)(**attrs)


@pytest.mark.parametrize("dtype", FLOATS)
def test_random_normal(dtype):
    y = make("RandomNormal", shape=[200, 500], dtype=CODES[dtype], mean=2.0, scale=3.0)()
    assert y.dtype == dtype and y.shape == (200, 500)
    y = y.astype(np.float64)
    assert abs(y.mean() - 2.0) < 0.05 and abs(y.std() - 3.0) < 0.05


@pytest.mark.parametrize("dtype", FLOATS)
def test_random_uniform(dtype):
    y = make("RandomUniform", shape=[100000], dtype=CODES[dtype], low=-2.0, high=6.0)()
    assert y.dtype == dtype and y.shape == (100000,)
    y = y.astype(np.float64)
    assert y.min() >= -2.0 and y.max() <= 6.0
    assert abs(y.mean() - 2.0) < 0.05 and abs(y.var() - 64 / 12) < 0.1


def test_default_dtype_is_float():
    assert make("RandomNormal", shape=[2, 3])().dtype == np.float32
    assert make("RandomUniform", shape=[])().shape == ()


@pytest.mark.parametrize("dtype", FLOATS)
def test_like_ops_follow_input(dtype):
    x = np.zeros((3, 4), dtype)
    assert make("RandomNormalLike")(x).dtype == dtype
    u = make("RandomUniformLike", low=5.0, high=6.0)(x)
    assert u.dtype == dtype and u.shape == (3, 4)
    assert (u.astype(np.float64) >= 5).all() and (u.astype(np.float64) <= 6).all()


def test_like_ops_dtype_attribute_and_non_float_input():
    x = np.zeros((2, 2), np.int32)
    assert make("RandomNormalLike", dtype=11)(x).dtype == np.float64
    assert make("RandomUniformLike", dtype=10)(x).dtype == np.float16
    with pytest.raises(KernelError, match="dtype"):
        make("RandomUniformLike")(x)


@pytest.mark.parametrize(
    "op,attrs,inputs",
    [
        ("RandomNormal", {"shape": [5, 6]}, []),
        ("RandomUniform", {"shape": [5, 6]}, []),
        ("RandomNormalLike", {}, [np.zeros((5, 6), np.float32)]),
        ("RandomUniformLike", {}, [np.zeros((5, 6), np.float32)]),
        ("Bernoulli", {}, [np.full((5, 6), 0.5, np.float32)]),
        ("Multinomial", {"sample_size": 20}, [np.zeros((5, 6), np.float32)]),
    ],
)
def test_seed_reproducible(op, attrs, inputs):
    a = make(op, seed=3.0, **attrs)
    b = make(op, seed=3.0, **attrs)  # a fresh session's kernel
    first = a(*inputs)
    np.testing.assert_array_equal(first, b(*inputs))
    np.testing.assert_array_equal(first, a(*inputs))  # reset per call
    other = make(op, seed=4.0, **attrs)(*inputs)
    assert not np.array_equal(first, other)
    fractional = make(op, seed=3.5, **attrs)(*inputs)
    assert not np.array_equal(first, fractional)
    unseeded = make(op, **attrs)
    assert not np.array_equal(unseeded(*inputs), unseeded(*inputs))


@pytest.mark.parametrize("dtype", FLOATS)
def test_bernoulli_frequency(dtype):
    p = np.array([0.0, 0.2, 0.5, 0.9, 1.0]).astype(dtype)
    x = np.broadcast_to(p, (40000, 5))
    y = make("Bernoulli", seed=1.0)(x)
    assert y.dtype == dtype and y.shape == x.shape
    freq = y.astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(freq, p.astype(np.float64), atol=0.01)
    assert freq[0] == 0 and freq[-1] == 1


@pytest.mark.parametrize(
    "code,dtype", [(9, np.bool_), (6, np.int32), (2, np.uint8), (11, np.float64)]
)
def test_bernoulli_dtype_attribute(code, dtype):
    y = make("Bernoulli", dtype=code)(np.full((3, 3), 0.5, np.float32))
    assert y.dtype == dtype and set(np.unique(y).tolist()) <= {0, 1}


@pytest.mark.parametrize("in_dtype", FLOATS)
@pytest.mark.parametrize("code,dtype", [(6, np.int32), (7, np.int64)])
def test_multinomial_frequencies(in_dtype, code, dtype):
    probs = np.array([[0.1, 0.2, 0.7, 0.0], [0.25, 0.25, 0.25, 0.25]])
    with np.errstate(divide="ignore"):
        logits = np.log(probs).astype(in_dtype)
    y = make("Multinomial", sample_size=50000, dtype=code, seed=0.0)(logits)
    assert y.dtype == dtype and y.shape == (2, 50000)
    assert y.min() >= 0 and y.max() <= 3
    for row in range(2):
        freq = np.bincount(y[row], minlength=4) / 50000
        np.testing.assert_allclose(freq, probs[row], atol=0.01)
    assert (y[0] != 3).all()  # a zero-probability class is never drawn


def test_multinomial_unnormalized_and_defaults():
    y = make("Multinomial")(np.array([[100.0, 0.0], [0.0, 100.0]], np.float32))
    assert y.dtype == np.int32 and y.shape == (2, 1) and y.ravel().tolist() == [0, 1]


def test_multinomial_errors():
    with pytest.raises(KernelError):
        make("Multinomial")(np.zeros((3,), np.float32))
    with pytest.raises(KernelError):
        make("Multinomial", dtype=1)
    with pytest.raises(KernelError):
        make("Multinomial")(np.zeros((2, 0), np.float32))


def test_random_bad_shape_and_dtype():
    with pytest.raises(KernelError):
        make("RandomNormal", shape=[2, -1])
    with pytest.raises(KernelError):
        make("RandomUniform", shape=[2], dtype=6)


def test_versions_registered():
    for op in OPS:
        first = 7 if op == "Multinomial" else 15 if op == "Bernoulli" else 1
        assert lookup("", op, first) is not None and lookup("", op, first - 1) is None
