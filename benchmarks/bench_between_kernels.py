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

With ``--replay``, one run's kernel calls are then recorded with their arguments and made
again on those same arrays, alternating with runs of the session (a phase of its own): from a
plain Python loop, and from one numba function generated to call them all (its compile time
shown). Both write each step's
buffer of the recorded run, so they bound what an executor of calls bound once would take, cold
buffers included; the two together tell whether the calls themselves cost (the function would
win) or the steps' work around them (both equal, under the runs).

onnxruntime's time is measured as bench_models.py measures it, in a process of its own, at the
same thread count.

Run: python benchmarks/bench_between_kernels.py [--models ...] [--threads 1 2] [--runs 200]
     [--replay]
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
def kernels_wrapped(make):
    """Every compiled kernel of onyx.runtime._jit* replaced by ``make(kernel)`` meanwhile.
    Only after a warm-up compiled the kernels for the run's arguments: a kernel compiled while
    the names of the kernels it calls are wrappers would not type."""
    from numba.core.registry import CPUDispatcher

    from onyx.runtime import _jit, _jit_exp, _jit_gemm, _jit_par

    swapped, wrappers = [], {}
    for module in (_jit, _jit_par, _jit_gemm, _jit_exp):
        for name, value in list(vars(module).items()):
            if isinstance(value, CPUDispatcher):
                wrapper = wrappers.setdefault(id(value), make(value))
                swapped.append((module, name, value))
                setattr(module, name, wrapper)
    try:
        yield
    finally:
        for module, name, value in swapped:
            setattr(module, name, value)


def timed(spent: list[float]):
    """A wrapper maker for ``kernels_wrapped``: each call's seconds added to ``spent[0]``."""

    def make(kernel):
        def call(*args, **kwargs):
            start = time.perf_counter()
            try:
                return kernel(*args, **kwargs)
            finally:
                spent[0] += time.perf_counter() - start

        return call

    return make


def recorded(calls: list):
    """A wrapper maker for ``kernels_wrapped``: each call appended to ``calls`` as (kernel,
    args), then made."""

    def make(kernel):
        def call(*args, **kwargs):
            if kwargs:
                raise SystemExit("a kernel called with keywords: the replay passes positions only")
            calls.append((kernel, args))
            return kernel(*args)

        return call

    return make


def replays(calls: list) -> tuple:
    """(a loop making ``calls`` again, one numba function making them, its compile seconds)."""
    import numba

    def loop():
        for kernel, args in calls:
            kernel(*args)

    names = [f"a{i}" for i in range(len(calls))]
    lines = [f"def replay({', '.join(names)}):"]
    scope = {}
    for i, (kernel, args) in enumerate(calls):
        scope[f"k{i}"] = kernel
        lines.append(f"    k{i}({', '.join(f'a{i}[{j}]' for j in range(len(args)))})")
    exec("\n".join(lines), scope)  # noqa: S102 - code written here from the recorded calls
    compiled = numba.njit(scope["replay"])
    arguments = [args for _, args in calls]
    start = time.perf_counter()
    compiled(*arguments)
    return loop, lambda: compiled(*arguments), time.perf_counter() - start


def worker(name: str, runs: int, out: str, threads: int, replay: bool) -> None:
    import onyx

    options = onyx.SessionOptions()
    options.intra_op_num_threads = threads
    session = onyx.InferenceSession(model_path(name), options)
    feeds = feeds_for(session)
    for _ in range(10):
        session.run(None, feeds)
    times: dict = {"plain": [], "timed": [], "inside": []}
    spent = [0.0]
    for i in range(runs):
        for with_timers in (False, True) if i % 2 else (True, False):  # (ABBA)
            with kernels_wrapped(timed(spent)) if with_timers else contextlib.nullcontext():
                spent[0] = 0.0
                start = time.perf_counter()
                session.run(None, feeds)
                seconds = time.perf_counter() - start
            times["timed" if with_timers else "plain"].append(seconds)
            if with_timers:
                times["inside"].append(spent[0])
    if replay:  # (a phase of its own: the replays' buffers would chill the runs above)
        calls: list = []
        with kernels_wrapped(recorded(calls)):
            session.run(None, feeds)
        loop, function, compile_seconds = replays(calls)

        def in_pool(replay):
            def run():
                with session._threads():  # (the pool the kernels were split for, as a run)
                    replay()

            return run

        made = {"replayed run": lambda: session.run(None, feeds), "loop": in_pool(loop),
                "function": in_pool(function)}  # fmt: skip
        times.update({kind: [] for kind in made})
        kinds = list(made)
        for i in range(runs):
            for kind in kinds if i % 2 else kinds[::-1]:
                start = time.perf_counter()
                made[kind]()
                times[kind].append(time.perf_counter() - start)
    result = {kind: statistics.median(values) for kind, values in times.items()}
    result["steps"] = len(session._plan.steps)
    if replay:
        result["compile"] = compile_seconds
    with open(out, "w") as f:
        json.dump(result, f)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="*", default=DEFAULT_MODELS)
    parser.add_argument("--threads", nargs="*", type=int, metavar="N")
    parser.add_argument("--runs", type=int, default=200, help="of each, alternating")
    parser.add_argument("--replay", action="store_true", help="also one run's calls made again")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.runs, args.out, args.threads[0], args.replay)
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
                if args.replay:
                    cmd.append("--replay")
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
                if args.replay:
                    print(f"{'':<28}alternating: runs {got['replayed run'] * 1e3:.2f} ms, one run's "
                          f"calls from a loop {got['loop'] * 1e3:.2f} ms, from one numba function "
                          f"{got['function'] * 1e3:.2f} ms (compiled in {got['compile']:.1f} s)",
                          flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
