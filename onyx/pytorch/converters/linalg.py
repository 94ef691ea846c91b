"""Matrix products: MatMul, Gemm, Einsum, Det, MatMulInteger."""

from __future__ import annotations

from onyx.pytorch._torch import torch
from onyx.pytorch.registry import converter


@converter("MatMul", 1)
def matmul(cx, a, b):
    return torch.matmul(a, b)


@converter("Gemm", 1)
def gemm(cx, a, b, c=None, *, alpha: float = 1.0, beta: float = 1.0, transA: int = 0,
         transB: int = 0, broadcast: int = 0):  # fmt: skip
    y = torch.matmul(a.T if transA else a, b.T if transB else b)
    y = y * alpha if alpha != 1 else y
    if c is None:
        return y
    return y + (c * beta if beta != 1 else c)


@converter("Einsum", 12)
def einsum(cx, *xs, equation: str):
    return torch.einsum(equation.replace(" ", ""), *xs)


@converter("Det", 11)
def det(cx, x):
    return torch.linalg.det(x)


@converter("MatMulInteger", 10)
def matmul_integer(cx, a, b, a_zero_point=None, b_zero_point=None):
    a = a.to(torch.int32)
    b = b.to(torch.int32)
    if a_zero_point is not None:
        zp = a_zero_point.to(torch.int32)
        a = a - (zp.reshape(-1, 1) if cx.rank(a_zero_point) == 1 else zp)
    if b_zero_point is not None:
        b = b - b_zero_point.to(torch.int32)
    # int matmul kernels exist on CPU for int64; the sums fit in int32 for int8/uint8 inputs
    return torch.matmul(a.to(torch.int64), b.to(torch.int64)).to(torch.int32)
