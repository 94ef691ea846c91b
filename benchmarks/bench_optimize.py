"""onyx.optimize against the simplifiers: nodes after, time to optimize, outputs checked.

Models: the light zoo (onnx's backend test data), BERT-base and GPT-2 small exported here from
randomly initialised transformers models with non-zero random biases (sequence length dynamic),
by torch.onnx's TorchScript exporter (bert) and by its dynamo exporter (bert-dynamo,
gpt2-dynamo). Tools, each in its own
process: onyx (level 2, and with --target-opset 23), onnxslim, onnxsim, onnxoptimizer and
onnxruntime's basic offline optimization, where installed. Every output model is run by
onnxruntime beside the input on random inputs at two sizes of each dynamic dim; a difference
over 1e-5 (relative to the output's scale) marks the cell with "!".

    python benchmarks/bench_optimize.py [--models squeezenet,bert] [--tools onyx,onnxsim]
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


def model_path(name: str) -> pathlib.Path:
    if name in LIGHT_MODELS:
        import onnx

        return pathlib.Path(onnx.__file__).parent / "backend/test/data/light" / f"light_{name}.onnx"
    if name not in TRANSFORMERS:
        raise SystemExit(f"unknown model {name}; models: {', '.join(LIGHT_MODELS + TRANSFORMERS)}")
    path = CACHE / f"{name}.onnx"
    if not path.exists():
        _export(name, path)
    return path


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
    ok = True
    for size in (5, 11):
        rng = np.random.default_rng(size)
        feeds = {}
        for i in s1.get_inputs():
            shape = [d if isinstance(d, int) else size for d in i.shape]
            if "int" in i.type:
                feeds[i.name] = rng.integers(0, 1000, shape).astype(np.int64)
            else:
                feeds[i.name] = rng.random(shape, dtype=np.float32)
        for x, y in zip(s1.run(None, feeds), s2.run(None, feeds)):
            scale = max(1.0, float(np.abs(x).max()))
            ok &= x.shape == y.shape and float(np.abs(x - y).max()) <= 1e-5 * scale
    return len(a.graph.node), len(b.graph.node), ok, foreign


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--models", default=",".join((*LIGHT_MODELS, *TRANSFORMERS)))
    p.add_argument("--tools", default=",".join(TOOLS))
    p.add_argument("--one", nargs=3, metavar=("TOOL", "SRC", "DST"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps({"seconds": _optimize(*args.one)}))
        return
    rows = {}
    for name in args.models.split(","):
        src = str(model_path(name))
        for tool in args.tools.split(","):
            dst = str(CACHE / f"{name}.{tool}.onnx")
            CACHE.mkdir(parents=True, exist_ok=True)
            proc = subprocess.run([sys.executable, __file__, "--one", tool, src, dst],
                                  capture_output=True, text=True, timeout=1200, check=False)  # fmt: skip
            if proc.returncode != 0:
                rows[(name, tool)] = "–"
                continue
            seconds = json.loads(proc.stdout.strip().splitlines()[-1])["seconds"]
            try:
                before, after, ok, foreign = _check(src, dst)
            except Exception as e:  # noqa: BLE001 - a tool's output onnxruntime cannot run
                rows[(name, tool)] = f"error ({type(e).__name__})"
                continue
            rows[(name, "original")] = str(before)
            mark = "" if ok else "!"
            mark += f" ({foreign} non-std)" if foreign else ""
            rows[(name, tool)] = f"{after}{mark} / {seconds:.1f}s"
            for path in (dst, dst + ".repaired.onnx"):
                if os.path.exists(path):
                    os.remove(path)
        print(name, {t: rows.get((name, t)) for t in ("original", *args.tools.split(","))},
              flush=True)  # fmt: skip
    tools = ("original", *args.tools.split(","))
    print("\n| model | " + " | ".join(tools) + " |")
    print("|---|" + "--:|" * len(tools))
    for name in args.models.split(","):
        print(f"| {name} | " + " | ".join(rows.get((name, t), "–") for t in tools) + " |")


if __name__ == "__main__":
    main()
