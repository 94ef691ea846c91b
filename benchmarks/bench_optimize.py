"""onyx.optimize against the simplifiers: nodes after, time to optimize, outputs checked.

Models: the light zoo (onnx's backend test data); BERT-base and GPT-2 small exported here from
randomly initialised transformers models with non-zero random biases (sequence length dynamic),
by torch.onnx's TorchScript exporter (bert) and by its dynamo exporter (bert-dynamo,
gpt2-dynamo); and the PyTorch bridge's corpus (corpus-*: 17 transformers models, 2 layers,
hidden 64) as torch.onnx.export(dynamo=True) writes them by default, batch dynamic (and the
sequence, for text). Tools, each in its own process: onyx (level 2, and with
--target-opset 23), onnxslim, onnxsim, onnxoptimizer and onnxruntime's basic offline
optimization, where installed. Every output model is run by onnxruntime beside the input on
random inputs at two sizes of each dynamic dim; a difference over 1e-5 (relative to the
output's scale), or a dim of an input or output renamed, marks the cell with "!", a node
outside the standard domains with "non-std". A cell reads nodes after / seconds to optimize /
bytes of the file written (with its external data).

With --ort, onnxruntime then runs the original and onyx's output of each model (its default
session options, one thread, which runs in the calling thread), each in a process of its own,
in alternating rounds; the table gives the best median CPU time of a run of each (the wall
clock of a shared machine mostly measures the other work on it) and their ratio (optimized /
original).

    python benchmarks/bench_optimize.py [--models squeezenet,bert] [--tools onyx,onnxsim]
    python benchmarks/bench_optimize.py --tools onyx --ort [--rounds 5 --repeat 20 --seq 128]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time
import warnings

CACHE = pathlib.Path(__file__).resolve().parent / ".cache" / "optimize"
LIGHT_MODELS = ("squeezenet", "inception_v1", "resnet50", "densenet121")
TOOLS = ("onyx", "onyx-23", "onnxslim", "onnxsim", "onnxoptimizer", "ort-basic")


# (GPT-2 has no TorchScript row: that exporter fails on transformers' masks, aten::diff)
TRANSFORMERS = ("bert", "bert-dynamo", "gpt2-dynamo")
#: The PyTorch bridge's corpus (tests/pytorch/corpus.py: transformers models, 2 layers, hidden
#: 64, random weights), as ``torch.onnx.export(dynamo=True)`` writes them by default.
CORPUS = ("bert", "distilbert", "roberta", "gpt2", "llama", "qwen2", "mistral", "t5", "bart",
          "whisper_encoder", "wav2vec2", "vit", "segformer", "convnext", "resnet", "swin",
          "mobilenet_v2")  # fmt: skip
CORPUS_MODELS = tuple(f"corpus-{n}" for n in CORPUS)


def model_path(name: str) -> pathlib.Path:
    if name in LIGHT_MODELS:
        import onnx

        return pathlib.Path(onnx.__file__).parent / "backend/test/data/light" / f"light_{name}.onnx"
    if name not in TRANSFORMERS + CORPUS_MODELS:
        known = ", ".join(LIGHT_MODELS + TRANSFORMERS + CORPUS_MODELS)
        raise SystemExit(f"unknown model {name}; models: {known}")
    path = CACHE / f"{name}.onnx"
    if not path.exists():
        if name in CORPUS_MODELS:
            _export_corpus(name.removeprefix("corpus-"), path)
        else:
            _export(name, path)
    return path


def _export_corpus(name: str, path: pathlib.Path) -> None:
    """A corpus model exported with torch.onnx's defaults (dynamo, its own optimization), the
    batch dim of every input dynamic and, for text, the sequence too; non-zero biases."""
    import torch

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
    from pytorch import corpus

    module, args, kind = corpus.build(name)
    with torch.no_grad():  # non-zero biases: removing x+0 earns nothing
        for p in module.parameters():
            if p.ndim == 1:
                p.add_(torch.randn_like(p) * 0.02)
    batch = torch.export.Dim("batch", max=64)
    dims = []
    for i, arg in enumerate(args):
        d = {0: batch}
        if kind == "text":  # (T5's decoder ids are a sequence of their own)
            d[1] = torch.export.Dim("seq" if arg.shape[1] == args[0].shape[1] else f"seq{i}",
                                    max=128)  # fmt: skip
        dims.append(d)
    CACHE.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        # (forward(*xs): the shapes of all inputs are one argument's)
        torch.onnx.export(module, args, str(path), dynamo=True, external_data=False,
                          dynamic_shapes=(tuple(dims),))  # fmt: skip


def _export(name: str, path: pathlib.Path) -> None:
    """Export BERT-base or GPT-2 small, randomly initialised, sequence length dynamic: with
    torch.onnx's TorchScript exporter ("bert") or its dynamo exporter ("...-dynamo")."""
    import torch
    import transformers

    torch.manual_seed(0)
    bert = name.startswith("bert")
    config = transformers.BertConfig() if bert else transformers.GPT2Config()
    inner = (transformers.BertModel if bert else transformers.GPT2Model)(config).eval()
    with torch.no_grad():  # non-zero biases: removing x+0 earns nothing
        for p in inner.parameters():
            if p.ndim == 1:
                p.add_(torch.randn_like(p) * 0.02)

    class Hidden(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = inner

        def forward(self, ids):
            return self.inner(input_ids=ids, use_cache=False).last_hidden_state

    CACHE.mkdir(parents=True, exist_ok=True)
    ids = torch.randint(0, 1000, (1, 16))
    common = {"input_names": ["input_ids"], "output_names": ["hidden"]}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        if name.endswith("-dynamo"):
            seq = torch.export.Dim("seq", max=512)
            torch.onnx.export(Hidden(), (ids,), str(path), opset_version=18, dynamo=True,
                              optimize=False, external_data=False,
                              dynamic_shapes={"ids": {1: seq}}, **common)  # fmt: skip
        else:
            torch.onnx.export(Hidden(), (ids,), str(path), opset_version=17, dynamo=False,
                              dynamic_axes={"input_ids": {1: "seq"}, "hidden": {1: "seq"}},
                              **common)  # fmt: skip


def _optimize(tool: str, src: str, dst: str) -> float:
    """Run one tool (in this process); seconds it took."""
    import onnx

    start = time.perf_counter()
    if tool.startswith("onyx"):
        import onyx

        model = onyx.optimize(onyx.load(src), target_opset=23 if tool == "onyx-23" else None)
        took = time.perf_counter() - start
        onyx.save(model, dst)
        return took
    if tool == "onnxslim":
        import onnxslim

        model = onnxslim.slim(src)
    elif tool == "onnxsim":
        import onnxsim

        model, _ok = onnxsim.simplify(onnx.load(src))
    elif tool == "onnxoptimizer":
        import onnxoptimizer

        model = onnxoptimizer.optimize(onnx.load(src))
    elif tool == "ort-basic":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = dst
        ort.InferenceSession(src, options, providers=["CPUExecutionProvider"])
        return time.perf_counter() - start
    else:
        raise SystemExit(f"unknown tool {tool}")
    took = time.perf_counter() - start
    onnx.save(model, dst)
    return took


def _without_stale_inputs(model, path: str) -> str:
    """``path``, or a repaired copy where the model lists graph inputs that have no value and
    that nothing reads: onnxruntime's optimized files of IR 3 models keep the inputs of the
    weights it folded away (``..._SHAPE``), which it then asks a feed for."""
    import onnx

    read = {name for node in model.graph.node for name in node.input}
    read |= {v.name for v in model.graph.output}
    inits = {t.name for t in model.graph.initializer}
    stale = [v for v in model.graph.input if v.name not in inits and v.name not in read]
    if not stale:
        return path
    for v in stale:
        model.graph.input.remove(v)
    repaired = path + ".repaired.onnx"
    onnx.save(model, repaired)
    return repaired


def _check(src: str, dst: str) -> tuple[int, int, bool, int]:
    """(nodes before, after, outputs agree, non-standard nodes) running both in onnxruntime."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    a, b = onnx.load(src, load_external_data=False), onnx.load(dst, load_external_data=False)
    dst = _without_stale_inputs(b, dst)
    std = {"", "ai.onnx", "ai.onnx.ml"}
    foreign = sum(n.domain not in std for n in b.graph.node)
    s1 = ort.InferenceSession(src, providers=["CPUExecutionProvider"])
    s2 = ort.InferenceSession(dst, providers=["CPUExecutionProvider"])
    ok = _names_kept(a, b)
    for size in (5, 11):
        feeds = _feeds(s1, size)
        for x, y in zip(s1.run(None, feeds), s2.run(None, feeds)):
            scale = max(1.0, float(np.abs(x).max()))
            ok &= x.shape == y.shape and float(np.abs(x - y).max()) <= 1e-5 * scale
    return len(a.graph.node), len(b.graph.node), ok, foreign


def _names_kept(a, b) -> bool:
    """Whether every named dim of ``a``'s graph inputs and outputs has its name in ``b``."""

    def named(model) -> dict:
        return {(v.name, i): d.dim_param for v in (*model.graph.input, *model.graph.output)
                for i, d in enumerate(v.type.tensor_type.shape.dim)}  # fmt: skip

    want, got = named(a), named(b)
    return all(got.get(k) == p for k, p in want.items() if p)


def _feeds(session, size: int) -> dict:
    """Random inputs for an onnxruntime session: every dynamic dim ``size``, ids below 1000."""
    import numpy as np

    rng = np.random.default_rng(size)
    feeds = {}
    for i in session.get_inputs():
        shape = [d if isinstance(d, int) else size for d in i.shape]
        if "mask" in i.name:
            feeds[i.name] = np.ones(shape, np.int64)
        elif "int" in i.type:  # (ids below every vocabulary's size: the corpus's is 512)
            feeds[i.name] = rng.integers(0, 500, shape).astype(np.int64)
        else:
            feeds[i.name] = rng.random(shape, dtype=np.float32)
    return feeds


def _file_size(path: str) -> int:
    """Bytes of a model file and of the external data files beside it that it names."""
    import onnx

    total = os.path.getsize(path)
    model = onnx.load(path, load_external_data=False)
    folder = os.path.dirname(path)
    places = {e.value for t in model.graph.initializer for e in t.external_data
              if e.key == "location"}  # fmt: skip
    return total + sum(os.path.getsize(os.path.join(folder, p)) for p in places)


def _size(n: int) -> str:
    return f"{n:,} B"  # (exact: the files of some tools differ by a few hundred bytes)


def _time_ort(path: str, size: int, repeat: int) -> float:
    """Median CPU seconds of one onnxruntime run of ``path`` (default optimizations, one
    thread). With one thread onnxruntime runs in the calling thread, so its CPU time is the
    run's time without the waits that other work on a shared machine adds to the wall clock."""
    import statistics

    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    feeds = _feeds(session, size)
    for _ in range(3):
        session.run(None, feeds)
    times = []
    for _ in range(repeat):
        start = time.thread_time()
        session.run(None, feeds)
        times.append(time.thread_time() - start)
    return statistics.median(times)


def ort_ratios(models: list[str], rounds: int, repeat: int, seq: int, fresh: bool) -> None:
    """onnxruntime on each original model and on onyx's output: best medians and their ratio.
    ``fresh``: onyx's outputs were just written (else they are made again here)."""
    print(f"\nonnxruntime, one thread, dynamic dims {seq} (corpus: {min(seq, 32)}): best of "
          f"{rounds} rounds of the median CPU time of {repeat} runs, each round a new process "
          "per file\n")  # fmt: skip
    print("| model | original CPU ms | onyx CPU ms | onyx / original |\n|---|--:|--:|--:|")
    for name in models:
        # (the corpus's models take at most 128 positions, RoBERTa's 126: smaller dims there)
        size = min(seq, 32) if name in CORPUS_MODELS else seq
        src, dst = str(model_path(name)), str(CACHE / f"{name}.onyx.onnx")
        if not fresh or not os.path.exists(dst):
            _run_one("onyx", src, dst)
        best = {src: float("inf"), dst: float("inf")}
        for r in range(rounds):
            for path in (src, dst) if r % 2 == 0 else (dst, src):
                proc = subprocess.run([sys.executable, __file__, "--time", path, str(size),
                                       str(repeat)], capture_output=True, text=True,
                                      timeout=1200, check=True)  # fmt: skip
                best[path] = min(best[path], float(proc.stdout.strip().splitlines()[-1]))
        a, b = best[src] * 1e3, best[dst] * 1e3
        print(f"| {name} | {a:.2f} | {b:.2f} | {b / a:.2f} |", flush=True)


def _run_one(tool: str, src: str, dst: str) -> subprocess.CompletedProcess:
    CACHE.mkdir(parents=True, exist_ok=True)
    return subprocess.run([sys.executable, __file__, "--one", tool, src, dst],
                          capture_output=True, text=True, timeout=1200, check=False)  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--models", default=",".join((*LIGHT_MODELS, *TRANSFORMERS, *CORPUS_MODELS)))
    p.add_argument("--tools", default=",".join(TOOLS))
    p.add_argument("--ort", action="store_true",
                   help="then time onnxruntime on each original and on onyx's output")  # fmt: skip
    p.add_argument("--rounds", type=int, default=5, help="--ort: processes per file")
    p.add_argument("--repeat", type=int, default=20, help="--ort: runs per process")
    p.add_argument("--seq", type=int, default=128,
                   help="--ort: size of every dynamic dim (at most 32 in the corpus)")  # fmt: skip
    p.add_argument("--one", nargs=3, metavar=("TOOL", "SRC", "DST"), help=argparse.SUPPRESS)
    p.add_argument("--time", nargs=3, metavar=("PATH", "SIZE", "REPEAT"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps({"seconds": _optimize(*args.one)}))
        return
    if args.time:
        print(_time_ort(args.time[0], int(args.time[1]), int(args.time[2])))
        return
    rows = {}
    for name in args.models.split(","):
        src = str(model_path(name))
        rows[(name, "original")] = _size(_file_size(src))
        for tool in args.tools.split(","):
            dst = str(CACHE / f"{name}.{tool}.onnx")
            proc = _run_one(tool, src, dst)
            if proc.returncode != 0:
                rows[(name, tool)] = "–"
                continue
            seconds = json.loads(proc.stdout.strip().splitlines()[-1])["seconds"]
            try:
                before, after, ok, foreign = _check(src, dst)
            except Exception as e:  # noqa: BLE001 - a tool's output onnxruntime cannot run
                rows[(name, tool)] = f"error ({type(e).__name__})"
                continue
            rows[(name, "original")] = f"{before} / {_size(_file_size(src))}"
            mark = "" if ok else "!"
            mark += f" ({foreign} non-std)" if foreign else ""
            rows[(name, tool)] = f"{after}{mark} / {seconds:.1f}s / {_size(_file_size(dst))}"
            keep = args.ort and tool == "onyx"  # --ort times this file
            for path in [dst + ".repaired.onnx"] + ([] if keep else [dst, dst + ".data"]):
                if os.path.exists(path):
                    os.remove(path)
        print(name, {t: rows.get((name, t)) for t in ("original", *args.tools.split(","))},
              flush=True)  # fmt: skip
    tools = ("original", *args.tools.split(","))
    print("\n| model | " + " | ".join(tools) + " |")
    print("|---|" + "--:|" * len(tools))
    for name in args.models.split(","):
        print(f"| {name} | " + " | ".join(rows.get((name, t), "–") for t in tools) + " |")
    if args.ort:
        fresh = "onyx" in args.tools.split(",")
        ort_ratios(args.models.split(","), args.rounds, args.repeat, args.seq, fresh)


if __name__ == "__main__":
    main()
