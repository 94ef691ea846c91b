"""Loss kernels, Shrink and Det against the official node cases, plus error paths and types."""

import ml_dtypes
import numpy as np
import pytest
from kernel_harness import bind as _k
from kernel_harness import cases_for, check_case

from onyx.errors import KernelError

OPS = {"SoftmaxCrossEntropyLoss", "NegativeLogLikelihoodLoss", "Shrink", "Det"}


@pytest.mark.parametrize("name", cases_for(OPS))
def test_official_node_case(name):
    check_case(name)


def test_nll_errors():
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(KernelError, match="out of range"):
        _k("NegativeLogLikelihoodLoss", 13)(x, np.array([0, 3]))
    with pytest.raises(KernelError, match="target shape"):
        _k("NegativeLogLikelihoodLoss", 13)(x, np.array([0, 1, 2]))
    with pytest.raises(KernelError, match="reduction"):
        _k("NegativeLogLikelihoodLoss", 13, reduction="avg")(x, np.array([0, 1]))
    # an ignored label may be out of range
    y = _k("NegativeLogLikelihoodLoss", 13, ignore_index=-5)(x, np.array([0, -5]))
    assert y.shape == () and y.dtype == np.float32


@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16])
def test_sce_low_precision(dtype):
    rng = np.random.default_rng(0)
    s = rng.standard_normal((3, 4)).astype(np.float32)
    labels = np.array([1, 0, 3], np.int32)
    loss, logp = _k("SoftmaxCrossEntropyLoss", 13)(s.astype(dtype), labels)
    ref_loss, ref_logp = _k("SoftmaxCrossEntropyLoss", 13)(s, labels)
    assert loss.dtype == dtype and logp.dtype == dtype and loss.shape == ()
    np.testing.assert_allclose(loss.astype(np.float32), ref_loss, rtol=2e-2)
    np.testing.assert_allclose(logp.astype(np.float32), ref_logp, rtol=2e-2, atol=2e-2)


def test_shrink_integers_and_det():
    x = np.array([-5, -1, 0, 1, 5], np.int8)
    np.testing.assert_array_equal(_k("Shrink", 9, lambd=1.5, bias=1.5)(x), [-3, 0, 0, 0, 3])
    m = np.array([[[2, 0], [0, 3]], [[1, 2], [3, 4]]], np.float16)
    d = _k("Det", 22)(m)
    assert d.dtype == np.float16
    np.testing.assert_allclose(d, [6, -2], rtol=1e-3)
    assert _k("Det", 22)(np.eye(3, dtype=np.float32)).shape == ()
    with pytest.raises(KernelError):
        _k("Det", 22)(np.zeros((2, 3), np.float32))
