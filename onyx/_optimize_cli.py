"""``onyx optimize IN OUT``: the optimizer from the command line (the table and ``--check``)."""

from __future__ import annotations

import collections
import math
import os
import time

import numpy as np

import onyx
from onyx.errors import OnyxError
from onyx.ir import Model


def _parameters(model: Model) -> int:
    return sum(math.prod(v.const_value.dims) for v in model.graph.initializers.values()
               if v.const_value is not None)  # fmt: skip


def table(before: Model, after: Model, size_in: int, size_out: int) -> str:
    """Nodes by op type, parameters and file size, before and after, as text."""
    a = collections.Counter(n.op_type for n in before.graph.nodes)
    b = collections.Counter(n.op_type for n in after.graph.nodes)
    rows = [("", "before", "after")]
    for op in sorted(set(a) | set(b), key=lambda k: (-a[k], k)):
        rows.append((op, str(a[op]), str(b[op])))
    rows.append(("nodes", str(sum(a.values())), str(sum(b.values()))))
    rows.append(("parameters", f"{_parameters(before):,}", f"{_parameters(after):,}"))
    rows.append(("file size", f"{size_in / 1e6:.2f} MB", f"{size_out / 1e6:.2f} MB"))
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(f"{r[0]:<{w[0]}}  {r[1]:>{w[1]}}  {r[2]:>{w[2]}}" for r in rows)


def _feeds(model: Model, size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    from onyx.dtypes import to_numpy

    feeds = {}
    for v in model.graph.inputs:
        if v.name in model.graph.initializers:
            continue
        t = v.type
        shape = [d if isinstance(d, int) else size for d in (t.shape.dims if t.shape else [])]
        dtype = np.dtype(to_numpy(t.dtype))
        if dtype.kind == "f":
            feeds[v.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind == "b":
            feeds[v.name] = rng.random(shape) < 0.5
        else:
            feeds[v.name] = rng.integers(0, 100, shape).astype(dtype)
    return feeds


def check(before: Model, after: Model, tolerance: float = 1e-5) -> list[str]:
    """Run both models on random inputs at two sizes of every dynamic dim; the differences."""
    problems = []
    for size in (3, 7):
        feeds = _feeds(before, size, np.random.default_rng(size))
        want = onyx.InferenceSession(before).run(None, feeds)
        got = onyx.InferenceSession(after).run(None, feeds)
        for v, x, y in zip(before.graph.outputs, want, got):
            x, y = np.asarray(x), np.asarray(y)
            if x.shape != y.shape:
                problems.append(f"output {v.name!r} at size {size}: shape {y.shape} != {x.shape}")
                continue
            if x.dtype.kind in "fc":
                scale = max(1.0, float(np.nanmax(np.abs(x.astype(np.float64)))) if x.size else 1)
                err = float(np.nanmax(np.abs(x.astype(np.float64) - y.astype(np.float64)))) \
                    if x.size else 0.0  # fmt: skip
                if err > tolerance * scale or np.isnan(x).sum() != np.isnan(y).sum():
                    problems.append(f"output {v.name!r} at size {size}: differs by {err:.3g}")
            elif not np.array_equal(x, y):
                problems.append(f"output {v.name!r} at size {size}: values differ")
    return problems


def cmd_optimize(args) -> int:
    from onyx.passes import optimize

    started = time.perf_counter()
    before = onyx.load(args.model)
    passes = [p for p in args.passes.split(",") if p] if args.passes else None
    counts: collections.Counter = collections.Counter()
    after = optimize(before, level=args.level, passes=passes, target_opset=args.target_opset,
                     counts=counts)  # fmt: skip
    took = time.perf_counter() - started
    onyx.save(after, args.output)
    print(table(before, after, os.path.getsize(args.model), os.path.getsize(args.output)))
    done = ", ".join(f"{k} {v}" for k, v in counts.most_common())
    print(f"optimized in {took:.2f} s: {done or 'nothing to do'}")
    if args.check:
        problems = check(before, after)
        if problems:
            raise OnyxError("--check: the optimized model differs: " + "; ".join(problems))
        print("check: outputs agree at two sizes of every dynamic dim")
    return 0
