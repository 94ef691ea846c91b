"""Arithmetic on dims (int, symbol or None) and broadcasting, stated once."""

from __future__ import annotations

import math

from onyx.errors import ValidationError


class ShapeError(ValidationError):
    """Shapes that cannot go together (dims that do not broadcast, a rank a rule cannot accept)."""


def _factors(d) -> tuple[int, list[str]] | None:
    if d is None:
        return None
    if isinstance(d, int):
        return d, []
    if "+" in d or "-" in d or "/" in d:
        return 1, [f"({d})"]
    coef, syms = 1, []
    for p in d.split("*"):
        if p.isdigit():
            coef *= int(p)
        else:
            syms.append(p)
    return coef, syms


def _join(coef: int, syms: list[str]):
    if coef == 0 or not syms:
        return coef
    syms = sorted(syms)
    return "*".join(([str(coef)] if coef != 1 else []) + syms)


def dmul(*dims):
    """The product of dims: an int, a canonical product of symbols ('3*N'), or None."""
    coef, syms = 1, []
    for d in dims:
        f = _factors(d)
        if f is None:
            return None
        coef *= f[0]
        syms += f[1]
    return _join(coef, syms)


def prod(dims) -> int | str | None:
    return dmul(*dims)


def ddiv(a, b):
    """``a / b`` when the quotient is exact (symbols cancel), else None."""
    fa, fb = _factors(a), _factors(b)
    if fa is None or fb is None or fb[0] == 0:
        return None
    syms = list(fa[1])
    for s in fb[1]:
        if s not in syms:
            return None
        syms.remove(s)
    if fa[0] % fb[0]:
        return None
    return _join(fa[0] // fb[0], syms)


def dadd(a, b):
    """``a + b`` (a symbol sum 'N+M' when not both known)."""
    if a is None or b is None:
        return None
    if isinstance(a, int) and isinstance(b, int):
        return a + b
    if a == 0:
        return b
    if b == 0:
        return a
    return "+".join(sorted([str(a), str(b)]))


def dsum(dims):
    out = 0
    for d in dims:
        out = dadd(out, d)
    return out


def dsub(a, b):
    if isinstance(a, int) and isinstance(b, int):
        return a - b
    if b == 0:
        return a
    return None


def cdiv(a, b):
    """Ceil division of known dims, else None."""
    if isinstance(a, int) and isinstance(b, int) and b:
        return -(-a // b)
    return None


def unify(ds, what="dims"):
    """One dim for several that must be equal: an int if any is known (ShapeError on a clash)."""
    ints = {d for d in ds if isinstance(d, int)}
    if len(ints) > 1:
        raise ShapeError(f"{what} {sorted(ints)} differ")
    if ints:
        return ints.pop()
    syms = {d for d in ds if d is not None}
    return syms.pop() if len(syms) == 1 else None


def bdim(ds):
    """The broadcast of several dims."""
    ints = {d for d in ds if isinstance(d, int) and d != 1}
    if len(ints) > 1:
        raise ShapeError(f"dims {sorted(ints)} do not broadcast")
    if ints:
        return ints.pop()
    rest = [d for d in ds if d != 1]
    if not rest:
        return 1
    if None not in rest and len(set(rest)) == 1:
        return rest[0]
    return None


def bcast(*shapes):
    """Numpy-style broadcast of shapes (tuples of dims); None if any rank is unknown."""
    if any(s is None for s in shapes):
        return None
    if len(shapes) == 1:
        return tuple(shapes[0])
    r = max(len(s) for s in shapes)
    return tuple(bdim([s[i - r + len(s)] for s in shapes if i - r + len(s) >= 0]) for i in range(r))


def axis(a: int, r: int) -> int:
    if not -r <= a < max(r, 1) and not (r == 0 and a in (0, -1)):
        raise ShapeError(f"axis {a} is out of range for rank {r}")
    return a + r if a < 0 else a


def floor_div(a, b):
    return math.floor(a / b)
