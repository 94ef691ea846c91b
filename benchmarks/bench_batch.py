"""Batch inference rows/s: onyx.batch (local engine, 1 and 2 workers; Ray, 2 actors) against a plain
loop over onnxruntime.InferenceSession with the same batch size, whole command with I/O.

Two models, exported with torch from random weights (nothing downloaded): a small CNN on
3x32x32 images (stored as flat float lists) and a small transformer encoder (2 layers, d=64,
4 heads) on 32 token ids, mean-pooled. Each dataset has ROWS rows (20,000) and an ``id`` column.
Every configuration runs as its own command (``python bench_batch.py --one ...``), timed from
start to exit; peak memory is the largest sum of RSS over the command's process tree (the Ray
cluster it starts included), sampled every 50 ms from /proc (Linux).

Run: python benchmarks/bench_batch.py [--rows N] [--skip-ray] [--models cnn,transformer]
     [--only 1,2,default,ray] [--repeat K]   (K interleaved runs of each; the fastest counts)

``--per-batch`` shows where a command's time goes instead: for each runtime, in a process of
its own, the session's build (from before the runtime's import) and the median time of one
run on a batch of 64 rows (100 runs cycling over 20 batches of the dataset), and onyx's plan
steps; then onyx's session on one thread per run with two batches run at once from two
threads (as onyx.batch runs them by default on 2 cores): the median time of such a pair, over
two. The runtimes alternate K times and each keeps its best.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys
import time

import numpy as np

CACHE = pathlib.Path(__file__).resolve().parent / ".cache" / "batch"
BATCH = 64


def export_models() -> dict[str, pathlib.Path]:
    import torch

    CACHE.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.backends.mha.set_fastpath_enabled(False)  # no fused encoder op: exportable

    class Cnn(torch.nn.Module):
        def __init__(self):
            super().__init__()
            c = torch.nn.Conv2d
            self.body = torch.nn.Sequential(
                c(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                c(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                c(32, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                torch.nn.Flatten(), torch.nn.Linear(64, 10),
            )  # fmt: skip

        def forward(self, image):
            return self.body(image)

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(1000, 64)
            layer = torch.nn.TransformerEncoderLayer(64, 4, 128, dropout=0.0, batch_first=True)
            self.encoder = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)

        def forward(self, tokens):
            return self.encoder(self.embed(tokens)).mean(dim=1)

    paths = {}
    for name, module, example, inp, out in (
        ("cnn", Cnn(), torch.randn(2, 3, 32, 32), "image", "logits"),
        ("transformer", Encoder(), torch.randint(0, 1000, (2, 32)), "tokens", "embedding"),
    ):
        path = CACHE / f"{name}.onnx"
        paths[name] = path
        if path.exists():
            continue
        with torch.no_grad():
            torch.onnx.export(module.eval(), (example,), str(path), input_names=[inp],
                              output_names=[out], dynamic_axes={inp: {0: "N"}, out: {0: "N"}},
                              opset_version=18, dynamo=False)  # fmt: skip
    return paths


def make_data(rows: int) -> dict[str, pathlib.Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    paths = {
        "cnn": CACHE / f"images_{rows}.parquet",
        "transformer": CACHE / f"tokens_{rows}.parquet",
    }
    if not paths["cnn"].exists():
        images = rng.standard_normal((rows, 3 * 32 * 32)).astype(np.float32)
        column = pa.FixedSizeListArray.from_arrays(pa.array(images.reshape(-1)), 3 * 32 * 32)
        pq.write_table(pa.table({"id": np.arange(rows), "image": column}), paths["cnn"])
    if not paths["transformer"].exists():
        tokens = rng.integers(0, 1000, (rows, 32))
        column = pa.FixedSizeListArray.from_arrays(pa.array(tokens.reshape(-1)), 32)
        pq.write_table(pa.table({"id": np.arange(rows), "tokens": column}), paths["transformer"])
    return paths


# --- the commands timed --------------------------------------------------------------------
def plain_loop(model: str, data: str, out: str, runtime: str = "onnxruntime") -> None:
    """Read the Parquet, run one session batch by batch, write Parquet: the baseline."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if runtime == "onnxruntime":
        import onnxruntime as ort

        session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    else:
        import onyx

        session = onyx.InferenceSession(model)
    inp = session.get_inputs()[0]
    shape = [d if isinstance(d, int) else -1 for d in inp.shape]
    dtype = np.float32 if "float" in inp.type else np.int64
    table = pq.read_table(data)
    column = table.column(inp.name).combine_chunks()
    values = column.flatten().to_numpy().astype(dtype).reshape(shape)
    results = [session.run(None, {inp.name: values[i : i + BATCH]})[0]
               for i in range(0, len(values), BATCH)]  # fmt: skip
    y = np.concatenate(results)
    out_column = pa.FixedSizeListArray.from_arrays(pa.array(y.reshape(-1)), y.shape[1])
    name = session.get_outputs()[0].name
    pq.write_table(table.drop_columns([inp.name]).append_column(name, out_column), out)


def per_batch(runtime: str, model: str, data: str) -> None:
    """Print {"build_s", "batch_ms", "steps"} for one runtime (see --per-batch): "onnxruntime",
    "onyx", or "onyx-runs" (one thread per run, two runs at once)."""
    import json

    import pyarrow.parquet as pq

    start = time.perf_counter()
    if runtime == "onnxruntime":
        import onnxruntime as ort

        session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
        steps = None
    else:
        import onyx

        threads = 1 if runtime == "onyx-runs" else 0
        session = onyx.InferenceSession(model, intra_op_num_threads=threads)
        steps = len(session._plan.steps)
    build = time.perf_counter() - start
    inp = session.get_inputs()[0]
    shape = [d if isinstance(d, int) else -1 for d in inp.shape]
    dtype = np.float32 if "float" in inp.type else np.int64
    column = pq.read_table(data).column(inp.name).combine_chunks()
    values = column.flatten().to_numpy().astype(dtype).reshape(shape)[: 20 * BATCH]
    batches = [{inp.name: values[i : i + BATCH]} for i in range(0, len(values), BATCH)]
    for feed in batches:
        session.run(None, feed)
    times = []
    if runtime == "onyx-runs":
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(2) as runs:
            for k in range(0, 200, 2):
                pair = [batches[k % len(batches)], batches[(k + 1) % len(batches)]]
                began = time.perf_counter()
                list(runs.map(lambda feed: session.run(None, feed), pair))
                times.append((time.perf_counter() - began) / 2)
    else:
        for k in range(100):
            began = time.perf_counter()
            session.run(None, batches[k % len(batches)])
            times.append(time.perf_counter() - began)
    print(json.dumps({"build_s": build, "batch_ms": float(np.median(times)) * 1e3, "steps": steps}))


def per_batch_table(models: dict, data: dict, names: list[str], repeat: int) -> None:
    import json

    print(f"one run on a batch of {BATCH} (median of 100) and the session's build, best of "
          f"{repeat}, each runtime in its own process")  # fmt: skip
    print(
        "| model | onnxruntime ms | onyx ms | onyx / onnxruntime | onyx, 2 runs at once of 1 "
        "thread: ms a batch | / onnxruntime | build s: onnxruntime, onyx | onyx plan steps |"
    )
    print("|---|--:|--:|--:|--:|--:|--:|--:|")
    for name in names:
        best: dict[str, dict] = {}
        for _ in range(repeat):
            for runtime in ("onnxruntime", "onyx", "onyx-runs"):
                done = subprocess.run(
                    [sys.executable, __file__, "--one", "per-batch", runtime, str(models[name]),
                     str(data[name])],
                    capture_output=True, text=True, check=True,
                )  # fmt: skip
                got = json.loads(done.stdout.strip().splitlines()[-1])
                old = best.get(runtime)
                if old is None or got["batch_ms"] < old["batch_ms"]:
                    got["build_s"] = min(got["build_s"], old["build_s"]) if old else got["build_s"]
                    best[runtime] = got
                else:
                    old["build_s"] = min(old["build_s"], got["build_s"])
        ort_ms, own_ms = best["onnxruntime"]["batch_ms"], best["onyx"]["batch_ms"]
        runs_ms = best["onyx-runs"]["batch_ms"]
        print(f"| {name} | {ort_ms:.2f} | {own_ms:.2f} | {own_ms / ort_ms:.2f}x | "
              f"{runs_ms:.2f} | {runs_ms / ort_ms:.2f}x | "
              f"{best['onnxruntime']['build_s']:.2f}, {best['onyx']['build_s']:.2f} | "
              f"{best['onyx']['steps']} |", flush=True)  # fmt: skip


def onyx_batch(model: str, data: str, out: str, engine: str, workers: int | None,
               runs: int | None = None) -> None:  # fmt: skip
    import onyx.batch

    if engine == "ray":
        import ray

        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    onyx.batch.run(model, data, out, batch_size=BATCH, engine=engine, workers=workers, runs=runs)


# --- measuring -----------------------------------------------------------------------------
def _tree_rss(root: int) -> int:
    """Bytes of RSS summed over ``root`` and its descendants (from /proc)."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            parents[int(entry)] = int(fields[1])
            rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    tree, frontier = {root}, [root]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parents.items() if pp == p and c not in tree]
        tree.update(kids)
        frontier.extend(kids)
    return sum(rss.get(p, 0) for p in tree)


def measure(args: list[str]) -> tuple[float, int, float]:
    """(seconds, peak bytes, CPU seconds) of one configuration run as its own command.

    CPU seconds (user + system of the command and the processes it waited for) move less than
    wall time on a machine others load too; onnxruntime's spinning threads count in them."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "--one", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_rss(proc.pid))
        time.sleep(0.05)
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"{args} failed:\n{proc.stderr.read().decode()[-3000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, peak, cpu


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=20_000)
    p.add_argument("--skip-ray", action="store_true")
    p.add_argument("--models", default="cnn,transformer", help="comma-separated: cnn,transformer")
    p.add_argument("--only", help="comma-separated: 1 (both one-worker commands), 2, default, "
                   "ray; the onnxruntime loop always runs")  # fmt: skip
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs of each command, interleaved; the fastest is reported",
    )
    p.add_argument("--per-batch", action="store_true",
                   help="time one run on a batch and the session's build, per runtime")  # fmt: skip
    p.add_argument("--one", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one and args.one[0] == "per-batch":
        per_batch(*args.one[1:])
        return
    if args.one:
        kind, model, data, out, *rest = args.one
        if kind in ("ort", "onyx-loop"):
            plain_loop(model, data, out, "onnxruntime" if kind == "ort" else "onyx")
        else:
            number = [int(v) if v != "default" else None for v in rest[1:]]
            onyx_batch(model, data, out, rest[0], *number)
        return
    models, data = export_models(), make_data(args.rows)
    # onyx's modules compiled to bytecode once, as an install does (a checkout run with
    # PYTHONDONTWRITEBYTECODE set, as here, recompiles them in every command: 0.2 s each)
    import compileall

    import onyx

    compileall.compile_dir(os.path.dirname(onyx.__file__), quiet=1)
    if args.per_batch:
        per_batch_table(models, data, args.models.split(","), args.repeat)
        return
    configs = [("onnxruntime loop", ["ort"]), ("onyx session loop", ["onyx-loop"]),
               ("onyx local, 1 worker, 1 run of 2 threads", ["onyx", "local", "1", "1"]),
               ("onyx local, 1 worker", ["onyx", "local", "1"]),
               ("onyx local, 2 workers", ["onyx", "local", "2"]),
               ("onyx local, defaults", ["onyx", "local", "default"])]  # fmt: skip
    if not args.skip_ray:
        configs.append(("onyx ray, 2 actors", ["onyx", "ray", "2"]))
    if args.only:
        keep = args.only.split(",")
        configs = [c for c in configs if c[0] == "onnxruntime loop" or c[1][-1] in keep]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"{args.rows:,} rows, batch size {BATCH}, {os.cpu_count()} cores, load {load:.1f}, "
        f"best of {args.repeat}"
    )
    print("| model | command | seconds | rows/s | vs onnxruntime loop | CPU s | peak RSS |")
    print("|---|---|---|---|---|---|---|")
    for name in args.models.split(","):
        model = models[name]
        best: dict[str, tuple[float, int, float]] = {}
        # the Ray commands after all the others: a Ray cluster's processes take seconds to go
        # after its command ends (a CNN loop run next took up to 2.5x its time)
        local = [c for c in configs if c[1][1:2] != ["ray"]]
        rounds = [local] * args.repeat + [[c] for c in configs if c not in local] * args.repeat
        for group in rounds:
            for label, config in group:
                out = str(CACHE / f"out_{name}_{'_'.join(config)}.parquet")
                kind, *rest = config
                seconds, peak, cpu = measure([kind, str(model), str(data[name]), out, *rest])
                old = best.get(label, (seconds, peak, cpu))
                best[label] = (min(seconds, old[0]), max(peak, old[1]), min(cpu, old[2]))
        if len(local) < len(configs):
            time.sleep(10)  # (the next model's commands start on a quiet machine)
        base = args.rows / best["onnxruntime loop"][0]
        for label, _ in configs:
            seconds, peak, cpu = best[label]
            rate = args.rows / seconds
            print(f"| {name} | {label} | {seconds:.1f} | {rate:,.0f} | {rate / base:.2f}x | "
                  f"{cpu:.1f} | {peak / 2**20:,.0f} MB |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
