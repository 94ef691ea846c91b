"""Inference speed on real models: onyx, onnxruntime (CPU, default threads) and onnx's
reference evaluator, reported as ratios to onnxruntime.

Models: four of the light zoo shipped with onnx's test data; BERT-base and GPT-2 small at
sequence length 128; and modern architectures at their real sizes, one 224x224 image
(EfficientNet-B0, MobileNetV2, ConvNeXt-tiny, Segformer-B0, MobileViT-small, ViT-small,
Swin-tiny) and 2-layer BERT and GPT-2 of hidden 64 (all exported from randomly initialised
transformers models by export_models.py into benchmarks/.cache; never committed). ``--models``
takes names or the groups ``light``, ``modern`` and ``all`` (the default). Each runtime is timed in a process of its own, one after the other: in one process,
onnxruntime's spinning thread pool and OpenBLAS's threads slow each other down and skew the
comparison. onyx runs twice, with its compiled kernels (onyx.runtime.compiled, where numba is
installed) and without (onyx-numpy). onyx's outputs are checked against onnxruntime's.

The shared machine's speed drifts by tens of percent from minute to minute, so the two runtimes
are measured alternately for several rounds and each keeps its best median.

Scaling: with ``--threads`` (default counts: 1 and the machine's physical cores; or give them,
``--threads 1 2 4``) each runtime runs at each thread count, and the table shows the times, the
speedup from the first count to the last, and onyx / onnxruntime at the last. A run at n threads
sets OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, MKL_NUM_THREADS and NUMBA_NUM_THREADS to n in its
process and ``intra_op_num_threads`` = n in both runtimes' session options.

Run: python benchmarks/bench_models.py [--models ...] [--repeat 10] [--rounds 3] [--no-reference]
     [--threads [N ...]]
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx

import onyx

LIGHT = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
LIGHT_ZOO = ["light_resnet50", "light_inception_v1", "light_densenet121", "light_squeezenet"]
# exported by export_models.py: modern vision architectures at their real sizes (224x224) and
# 2-layer transformers of hidden 64
MODERN = ["efficientnet_b0", "mobilenet_v2", "convnext_tiny", "segformer_b0", "mobilevit_small",
          "vit_small", "swin_tiny", "bert_2l", "gpt2_2l"]  # fmt: skip
MODELS = LIGHT_ZOO + ["bert_base", "gpt2_small"] + MODERN
GROUPS = {"light": LIGHT_ZOO, "modern": MODERN, "all": MODELS}


def model_path(name: str) -> str:
    if name.startswith("light_"):
        return os.path.join(LIGHT, f"{name}.onnx")
    sys.path.insert(0, os.path.dirname(__file__))
    from export_models import export

    return str(export(name))


def feeds_for(session: onyx.InferenceSession) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    feeds = {}
    for arg in session.get_inputs():
        shape = [d if isinstance(d, int) else 1 for d in arg.shape]
        if arg.type == "tensor(int64)":
            feeds[arg.name] = rng.integers(0, 1000, shape, dtype=np.int64)
        else:
            n = math.prod(shape)
            feeds[arg.name] = (np.arange(n).reshape(shape) / n).astype(np.float32)
    return feeds


def median_time(fn, repeat: int) -> float:
    fn()  # warm up (and first-touch of the weights)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def worker(runtime: str, name: str, repeat: int, out: str, threads: int | None = None) -> None:
    """Time one runtime on one model; write its median and its outputs to ``out``."""
    path = model_path(name)
    if runtime in ("onyx", "onyx-numpy"):
        # one session, as a user has: building and dropping a second one first tunes glibc's
        # malloc thresholds by accident (that hid the page faults of every BERT and GPT-2 run,
        # 35-42k each, from this benchmark until the arena removed them)
        options = onyx.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        session = onyx.InferenceSession(path, options)
        feeds = feeds_for(session)
        run = functools.partial(session.run, None, feeds)
    else:
        # the inputs as onyx reads them, with onyx's process-wide malloc arena left off
        reader = onyx.SessionOptions()  # (set as an attribute: older revisions lack the option)
        reader.enable_cpu_mem_arena = False
        feeds = feeds_for(onyx.InferenceSession(path, reader))
        if runtime == "onnxruntime":
            import onnxruntime as ort

            ort_options = ort.SessionOptions()
            if threads is not None:
                ort_options.intra_op_num_threads = threads
            ort_session = ort.InferenceSession(path, ort_options,
                                               providers=["CPUExecutionProvider"])  # fmt: skip
            run = functools.partial(ort_session.run, None, feeds)
        else:
            from onnx.reference import ReferenceEvaluator

            run = functools.partial(ReferenceEvaluator(path).run, None, feeds)
            repeat = 1
    outputs = run()
    seconds = median_time(run, repeat)
    np.savez(out + ".npz", *outputs)
    with open(out + ".json", "w") as f:
        json.dump({"seconds": seconds}, f)


def measure(runtime: str, name: str, repeat: int, tmp: str, tree: str | None = None,
            threads: int | None = None) -> tuple[float | None, list, str]:  # fmt: skip
    """(median seconds, outputs, error) of one runtime on one model, in a process of its own;
    with ``tree``, onyx is imported from that source tree instead of the installed one; with
    ``threads``, at that many threads (environment and session options)."""
    out = os.path.join(tmp, f"{runtime}-{name}-{abs(hash(tree))}-{threads}")
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        runtime,
        name,
        "--repeat",
        str(repeat),
        "--out",
        out,
    ]
    env = dict(os.environ)
    if threads is not None:
        cmd += ["--threads", str(threads)]
        for var in THREAD_VARIABLES:
            env[var] = str(threads)
    if tree is not None:
        env["PYTHONPATH"] = os.pathsep.join([tree, os.environ.get("PYTHONPATH", "")])
    if runtime == "onyx-numpy":
        env["ONYX_COMPILED"] = "0"
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["?"])[-1]
        return None, [], last.split(":")[0]
    with open(out + ".json") as f:
        seconds = json.load(f)["seconds"]
    with np.load(out + ".npz") as data:
        outputs = [data[k] for k in data.files]
    return seconds, outputs, ""


#: (model, runtime) pairs whose outputs differed from onnxruntime's, listed after the table
DIFFERED: list[tuple[str, str]] = []


def agreement(name: str, runtime: str, got: list, want: list) -> float:
    """Largest difference of ``got`` from onnxruntime's ``want``, scaled by the output's
    magnitude (at least 1); where they differ beyond rtol 1e-3, atol 1e-4, the pair goes in
    ``DIFFERED`` (the table goes on: one model's difference is no reason to lose the rest)."""
    worst = 0.0
    for a, b in zip(got, want, strict=True):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        if a.shape != b.shape or not np.allclose(a, b, rtol=1e-3, atol=1e-4):
            DIFFERED.append((name, runtime))
        if a.size and a.shape == b.shape:
            worst = max(worst, float(np.max(np.abs(a - b))) / max(1.0, float(np.max(np.abs(b)))))
    return worst


def report_differences() -> None:
    for name, runtime in DIFFERED:
        print(f"! {name}: {runtime}'s outputs differ from onnxruntime's beyond rtol 1e-3, "
              "atol 1e-4")  # fmt: skip


THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMBA_NUM_THREADS")  # fmt: skip


def scaling(models: list[str], counts: list[int], repeat: int, rounds: int) -> None:
    """Each runtime at each thread count: times, speedup first -> last count, onyx / ort."""
    first, last = counts[0], counts[-1]
    print(f"best of {rounds} alternating rounds of a median of {repeat} runs, each runtime in its")
    print(f"own process; n threads: *_NUM_THREADS=n and intra_op_num_threads=n; speedup: "
          f"{first} -> {last} threads")  # fmt: skip
    head = "".join(f"{f'ort {n}t ms':>11}" for n in counts)
    head += "".join(f"{f'onyx {n}t ms':>12}" for n in counts)
    print(f"{'model':<22}{head}{'ort speedup':>13}{'onyx speedup':>14}{f'onyx/ort {last}t':>13}"
          f"{'max err':>10}")  # fmt: skip
    print("(max err: onyx's largest difference from onnxruntime, scaled by the output's magnitude)")
    with tempfile.TemporaryDirectory() as tmp:
        for name in models:
            best = {(r, n): math.inf for r in ("onnxruntime", "onyx") for n in counts}
            outputs = {}
            for _ in range(rounds):
                for (runtime, n), fastest in best.items():
                    seconds, outputs[runtime, n], error = measure(runtime, name, repeat, tmp,
                                                                  threads=n)  # fmt: skip
                    if seconds is None:
                        raise SystemExit(f"{name}: {runtime} at {n} threads failed: {error}")
                    best[runtime, n] = min(fastest, seconds)
            error = max(agreement(name, "onyx", outputs["onyx", n], outputs["onnxruntime", n])
                        for n in counts)  # fmt: skip
            row = "".join(f"{best['onnxruntime', n] * 1e3:>11.1f}" for n in counts)
            row += "".join(f"{best['onyx', n] * 1e3:>12.1f}" for n in counts)
            ort = best["onnxruntime", first] / best["onnxruntime", last]
            own = best["onyx", first] / best["onyx", last]
            ratio = best["onyx", last] / best["onnxruntime", last]
            print(f"{name:<22}{row}{ort:>12.2f}x{own:>13.2f}x{ratio:>12.2f}x{error:>10.1e}",
                  flush=True)  # fmt: skip
    report_differences()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="*", default=MODELS)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per model")
    parser.add_argument(
        "--no-reference", action="store_true", help="skip onnx's reference evaluator"
    )
    parser.add_argument(
        "--threads", nargs="*", type=int, metavar="N",
        help="time each runtime at these thread counts (none given: 1 and the physical cores)",
    )  # fmt: skip
    parser.add_argument("--worker", nargs=2, metavar=("RUNTIME", "MODEL"), help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.models = [m for name in args.models for m in GROUPS.get(name, [name])]
    if args.worker:
        threads = args.threads[0] if args.threads else None
        worker(*args.worker, args.repeat, args.out, threads)
        return
    if args.threads is not None:
        from onyx.runtime.threads import physical_cores

        counts = args.threads or sorted({1, physical_cores()})
        scaling(args.models, counts, args.repeat, args.rounds)
        return

    from onyx.runtime import compiled

    numpy_only = compiled.kernels(compiled.MIN_SIZE) is None
    print(
        f"best of {args.rounds} alternating rounds of a median of {args.repeat} runs, each runtime"
    )
    print("in its own process; ratios to onnxruntime; onyx-numpy: onyx without its compiled")
    print(
        "kernels" + (" (numba is not installed: onyx runs without them too)" if numpy_only else "")
    )
    print("max err: onyx's largest difference from onnxruntime (either path), scaled by the")
    print("output's magnitude (at least 1)")
    print(
        f"{'model':<22}{'onnxruntime ms':>15}{'onyx ms':>10}{'onyx/ort':>10}"
        f"{'onyx-numpy/ort':>16}{'reference/ort':>15}{'max err':>10}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            best = {"onnxruntime": math.inf, "onyx": math.inf, "onyx-numpy": math.inf}
            outputs = {}
            for _ in range(args.rounds):
                for runtime, fastest in best.items():
                    seconds, outputs[runtime], error = measure(runtime, name, args.repeat, tmp)
                    if seconds is None:
                        raise SystemExit(f"{name}: {runtime} failed: {error}")
                    best[runtime] = min(fastest, seconds)
            error = max(agreement(name, r, outputs[r], outputs["onnxruntime"])
                        for r in ("onyx", "onyx-numpy"))  # fmt: skip
            ref = "-"
            t_ort = best["onnxruntime"]
            if not args.no_reference:
                t_ref, _, failure = measure("reference", name, args.repeat, tmp)
                ref = f"{t_ref / t_ort:.1f}x" if t_ref is not None else f"fails ({failure})"
            print(
                f"{name:<22}{t_ort * 1e3:>15.1f}{best['onyx'] * 1e3:>10.1f}"
                f"{best['onyx'] / t_ort:>9.2f}x{best['onyx-numpy'] / t_ort:>15.2f}x  {ref:>13}"
                f"{error:>10.1e}",
                flush=True,
            )
    report_differences()


if __name__ == "__main__":
    main()
