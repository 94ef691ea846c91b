"""A fuzzing campaign: mutated real models through load -> check -> infer_shapes -> run.

Seeds are the official backend test models (node, simple, pytorch-*), the light zoo and the
sample MLP; each execution applies one to three structure-aware mutations (tests/fuzz_harness.py)
and runs the result in a worker process under a time limit and a memory cap. The summary counts
executions and outcomes and lists the distinct failure classes (status, exception type, innermost
onyx frame, stage) with a reproduction for each; ``--save DIR`` writes the failing models there.
Run-time exceptions that the plan wrapped into an ExecutionError are clean, but listed too:
they show kernels that trusted their inputs.

Run: python benchmarks/fuzz_campaign.py [--executions N] [--seconds S] [--seed K]
     [--kinds node,simple,...] [--save DIR]
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "tests"))
from fuzz_harness import RandomDraw, Worker, load_seeds, mutate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executions", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=600.0, help="time budget")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--kinds", default="node,simple,pytorch-converted,pytorch-operator,light,mlp"
    )
    parser.add_argument("--save", help="folder for the failing models (one per class)")
    parser.add_argument("--stderr", help="file for the worker's stderr")
    args = parser.parse_args()

    seeds = load_seeds(tuple(args.kinds.split(",")))
    rng = random.Random(args.seed)
    worker = Worker(args.stderr)
    statuses: collections.Counter = collections.Counter()
    stage_errors: collections.Counter = collections.Counter()
    failures: dict[str, list] = {}
    wrapped: dict[str, list] = {}
    start = time.monotonic()
    executions = 0
    print(f"{len(seeds)} seeds; budget {args.executions} executions or {args.seconds:.0f} s")
    try:
        while executions < args.executions and time.monotonic() - start < args.seconds:
            name, seed = rng.choice(seeds)
            blob, steps = mutate(seed, RandomDraw(rng))
            outcome = worker.execute(blob)
            executions += 1
            statuses[outcome.status] += 1
            for stage, result in outcome.stages.items():
                stage_errors[f"{stage}: {result}"] += 1
            if not outcome.ok:
                entry = failures.setdefault(outcome.key, [0, name, steps, outcome])
                entry[0] += 1
                if entry[0] == 1:
                    print(f"[{executions}] new failure class {outcome.key}", flush=True)
                    if args.save:
                        os.makedirs(args.save, exist_ok=True)
                        path = os.path.join(args.save, f"failure_{len(failures):03d}.onnx")
                        with open(path, "wb") as f:
                            f.write(blob)
                        entry.append(path)
            elif outcome.wrapped:
                entry = wrapped.setdefault(outcome.wrapped, [0, name, steps])
                entry[0] += 1
            if executions % 500 == 0:
                print(f"[{executions}] {time.monotonic() - start:.0f} s, {dict(statuses)}",
                      flush=True)  # fmt: skip
    finally:
        worker.close()
    elapsed = time.monotonic() - start
    print(f"\n{executions} executions in {elapsed:.0f} s ({executions / elapsed:.1f}/s)")
    print("outcomes:", dict(statuses))
    print("stage results:")
    for key, count in sorted(stage_errors.items()):
        print(f"  {count:7d}  {key}")
    print(f"\n{len(failures)} failure classes:")
    for key, (count, name, steps, outcome, *saved) in sorted(
        failures.items(), key=lambda e: -e[1][0]
    ):
        print(
            f"  {count:5d}  {key}\n         seed {name}, {steps}\n         {outcome.message[:200]}"
        )
        if saved:
            print(f"         saved {saved[0]}")
        if outcome.trace:
            print("         " + outcome.trace.strip().replace("\n", "\n         ")[-1500:])
    print(f"\n{len(wrapped)} kinds of raw exceptions the plan wrapped into ExecutionError:")
    for key, (count, name, steps) in sorted(wrapped.items(), key=lambda e: -e[1][0]):
        print(f"  {count:5d}  {key}  (seed {name}, {steps})")


if __name__ == "__main__":
    main()
