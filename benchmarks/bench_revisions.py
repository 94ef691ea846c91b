"""onyx against itself: two git revisions on the same models, alternately, with the same outputs.

A change's speed-up is worth reporting only when it survives this machine's drift, which moves
absolute times by tens of percent from minute to minute. Each revision is checked out into a
temporary worktree; for each model the two run alternately for several rounds (each run in a
process of its own, as bench_models.py does), each keeps its best median, and their outputs must
agree.

Run: python benchmarks/bench_revisions.py BASE [NEW] [--models ...] [--rounds 5]
(NEW defaults to the working tree.)
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from bench_models import MODELS, measure

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def checkout(revision: str, into: str) -> str:
    subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", into, revision],
                   check=True, capture_output=True)  # fmt: skip
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("base")
    parser.add_argument("new", nargs="?", help="a revision (default: the working tree)")
    parser.add_argument("--models", nargs="*", default=MODELS)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trees = {args.base: checkout(args.base, os.path.join(tmp, "base"))}
        label = args.new or "working tree"
        trees[label] = checkout(args.new, os.path.join(tmp, "new")) if args.new else ROOT
        try:
            print(f"{'model':<22}{args.base[:12]:>14}{label[:12]:>14}{'new/base':>10}  (ms)")
            for name in args.models:
                best = dict.fromkeys(trees, math.inf)
                outputs = {}
                for _ in range(args.rounds):
                    for key, tree in trees.items():
                        seconds, outs, error = measure("onyx", name, args.repeat, tmp, tree)
                        if seconds is None:
                            raise SystemExit(f"{name} at {key}: onyx failed: {error}")
                        best[key] = min(best[key], seconds)
                        outputs[key] = outs
                for a, b in zip(*outputs.values()):
                    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4, err_msg=name)
                t_base, t_new = best.values()
                print(f"{name:<22}{t_base * 1e3:>14.1f}{t_new * 1e3:>14.1f}"
                      f"{t_new / t_base:>9.2f}x")  # fmt: skip
        finally:
            for tree in trees.values():
                if tree != ROOT:
                    subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", tree],
                                   capture_output=True, check=False)  # fmt: skip


if __name__ == "__main__":
    main()
