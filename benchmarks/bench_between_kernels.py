"""Where onyx's runs spend their time outside its compiled kernels, model by model.

In a process of its own per model and thread count, a session is built and warmed up; then its
runs alternate between plain ones and ones in which every call of a compiled kernel (the numba
functions of onyx.runtime._jit*, as the steps make them) is timed. "in kernels" sums those
calls (numba's dispatch of each included): the floor of an executor that ran the same kernels
on the same memory with nothing between them. The rest of a timed run, "outside", is what
onyx spends between its kernels: the steps' Python (checks, kept paths, views, the
epilogue's bookkeeping), allocating results, and any work a step does in numpy; the timers
themselves add to it about the difference of the timed runs from the plain ones (shown). The
kernels' calls replayed alone from a loop would not measure the floor: each would write the
buffer it wrote a whole run earlier, colder than the block malloc hands a run's step (on
MobileNetV2 at one thread such a replay ran slower than the runs themselves).

onnxruntime's time is measured as bench_models.py measures it, in a process of its own, at the
same thread count.

Run: python benchmarks/bench_between_kernels.py [--models ...] [--threads 1 2] [--runs 200]
(models default to the light zoo, MobileNetV2, EfficientNet-B0 and the 2-layer transformers;
threads to 1 and the physical cores). The machine is shared and noisy: onyx's columns come
from one process, run by run; the onnxruntime column from another.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from bench_models import GROUPS, THREAD_VARIABLES, feeds_for, measure, model_path

DEFAULT_MODELS = GROUPS["light"] + ["mobilenet_v2", "efficientnet_b0", "bert_2l", "gpt2_2l"]


@contextlib.contextmanager
def timed_kernels(spent: list[float]):
    """Every compiled kernel of onyx.runtime._jit* timed while inside: each call's seconds
    added to ``spent[0]``. Swapped in only after a warm-up compiled the kernels for the run's
    arguments: a kernel compiled while the names of the kernels it calls are wrappers would
    not type."""
    from numba.core.registry import CPUDispatcher

    from onyx.runtime import _jit, _jit_exp, _jit_gemm, _jit_par

    swapped, wrappers = [], {}
    for module in (_jit, _jit_par, _jit_gemm, _jit_exp):
        for name, value in list(vars(module).items()):
            if not isinstance(value, CPUDispatcher):
                continue
            if id(value) not in wrappers:

                def timed(*args, _kernel=value, **kwargs):
                    start = time.perf_counter()
                    try:
                        return _kernel(*args, **kwargs)
                    finally:
                        spent[0] += time.perf_counter() - start

                wrappers[id(value)] = timed
            swapped.append((module, name, value))
            setattr(module, name, wrappers[id(value)])
    try:
        yield
    finally:
        for module, name, value in swapped:
            setattr(module, name, value)


def worker(name: str, runs: int, out: str, threads: int) -> None:
    import onyx

    options = onyx.SessionOptions()
    options.intra_op_num_threads = threads
    session = onyx.InferenceSession(model_path(name), options)
    feeds = feeds_for(session)
    for _ in range(10):
        session.run(None, feeds)
    plain, timed, inside = [], [], []
    spent = [0.0]
    for i in range(runs):
        for with_timers in (False, True) if i % 2 else (True, False):  # (ABBA)
            with timed_kernels(spent) if with_timers else contextlib.nullcontext():
                spent[0] = 0.0
                start = time.perf_counter()
                session.run(None, feeds)
                seconds = time.perf_counter() - start
            if with_timers:
                timed.append(seconds)
                inside.append(spent[0])
            else:
                plain.append(seconds)
    with open(out, "w") as f:
        json.dump({
            "plain": statistics.median(plain), "timed": statistics.median(timed),
            "inside": statistics.median(inside), "steps": len(session._plan.steps),
        }, f)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="*", default=DEFAULT_MODELS)
    parser.add_argument("--threads", nargs="*", type=int, metavar="N")
    parser.add_argument("--runs", type=int, default=200, help="of each, alternating")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.runs, args.out, args.threads[0])
        return
    from onyx.runtime.threads import physical_cores

    counts = args.threads or sorted({1, physical_cores()})
    models = [m for name in args.models for m in GROUPS.get(name, [name])]
    print(f"medians of {args.runs} runs of each kind, alternating in one process; timers: the")
    print("timed runs' median less the plain ones'; outside: the timed runs less their kernels")
    print(f"{'model':<20}{'threads':>8}{'steps':>7}{'ort ms':>9}{'onyx ms':>9}{'timers ms':>11}"
          f"{'in kernels ms':>15}{'outside ms':>13}{'us/step':>9}{'onyx/ort':>10}"
          f"{'kernels/ort':>13}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for name in models:
            for n in counts:
                ort, _, error = measure("onnxruntime", name, 20, tmp, threads=n)
                if ort is None:
                    raise SystemExit(f"{name}: onnxruntime at {n} threads failed: {error}")
                out = os.path.join(tmp, f"{name}-{n}.json")
                env = dict(os.environ, **{var: str(n) for var in THREAD_VARIABLES})
                cmd = [sys.executable, __file__, "--worker", name, "--out", out,
                       "--runs", str(args.runs), "--threads", str(n)]  # fmt: skip
                result = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
                if result.returncode != 0:
                    last = (result.stderr.strip().splitlines() or ["?"])[-1]
                    raise SystemExit(f"{name}: onyx at {n} threads failed: {last}")
                with open(out) as f:
                    got = json.load(f)
                outside = got["timed"] - got["inside"]
                print(f"{name:<20}{n:>8}{got['steps']:>7}{ort * 1e3:>9.2f}"
                      f"{got['plain'] * 1e3:>9.2f}{(got['timed'] - got['plain']) * 1e3:>11.2f}"
                      f"{got['inside'] * 1e3:>15.2f}{outside * 1e3:>7.2f} ({outside / got['timed']:.0%})"
                      f"{outside / got['steps'] * 1e6:>9.1f}{got['plain'] / ort:>9.2f}x"
                      f"{got['inside'] / ort:>12.2f}x", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
