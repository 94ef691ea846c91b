"""The ``onyx`` command: inspect, print, convert, run and time models.

onyx info MODEL
onyx print MODEL
onyx save-external MODEL OUT [--threshold BYTES]
onyx run MODEL [--input NAME=FILE.npy ...] [--output-dir DIR]
onyx bench MODEL [--runs N] [--per-op]
onyx check MODEL [--full] [--all]
onyx shapes MODEL [-o OUT]
onyx convert-version MODEL --opset N -o OUT

MODEL is a path, or sample:NAME for a model that ships with onyx (sample:mlp).
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import time
from collections.abc import Sequence

import numpy as np

import onyx
from onyx import dtypes
from onyx.errors import FeedError, OnyxError
from onyx.ir import Model, TensorType, Value


# --- commands --------------------------------------------------------------------------------
def cmd_info(args) -> None:
    m = onyx.load(args.model)
    g = m.graph
    consts = set(g.initializers)
    print(f"model      {args.model}")
    print(f"ir_version {m.ir_version}")
    print("opsets     " + ", ".join(f"{d or 'ai.onnx'}={v}" for d, v in m.opset_imports.items()))
    producer = " ".join(x for x in (m.producer_name, m.producer_version) if x)
    print(f"producer   {producer or '-'}")
    if m.doc_string:
        print(f"doc        {m.doc_string}")
    print("inputs")
    for v in g.inputs:
        if v.name not in consts:
            print(f"  {v.name}: {_describe(v)}")
    print("outputs")
    for v in g.outputs:
        print(f"  {v.name}: {_describe(v)}")
    tensors = [v.const_value for v in g.initializers.values()]
    count = sum(t.size for t in tensors)
    size = sum(t.nbytes for t in tensors)
    print(f"parameters {count:,} in {len(tensors)} initializers, {_bytes(size)}")
    ops = collections.Counter(
        f"{n.domain}::{n.op_type}" if n.domain else n.op_type for n in g.all_nodes()
    )
    print(
        f"nodes      {sum(ops.values())}"
        + (f" ({len(m.functions)} functions)" if m.functions else "")
    )
    for op, k in sorted(ops.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {op:<28} {k}")
    if m.metadata_props:
        print("metadata")
        for key, value in m.metadata_props.items():
            print(f"  {key}: {value}")


def cmd_print(args) -> None:
    from onyx.text import print_model

    print(print_model(onyx.load(args.model)))


def cmd_save_external(args) -> None:
    m = onyx.load(args.model)
    onyx.save(m, args.out, external_data=True, size_threshold=args.threshold)
    data = os.path.basename(args.out) + ".data"
    print(f"wrote {args.out} and {data} (tensors of at least {args.threshold} bytes)")


def cmd_run(args) -> None:
    session = onyx.InferenceSession(args.model)
    feeds = _feeds(session.model, args.input)
    given = {spec.split("=", 1)[0] for spec in args.input}
    for name, value in feeds.items():
        origin = "from file" if name in given else "random"
        print(f"input  {name}: {_summary(value)} ({origin})")
    start = time.perf_counter()
    outputs = session.run(None, feeds)
    print(f"ran in {(time.perf_counter() - start) * 1e3:.2f} ms")
    if args.output_dir:
        os.makedirs(args.output_dir, exist_ok=True)
    for value, out in zip(session.model.graph.outputs, outputs):
        print(f"output {value.name}: {_summary(out)}")
        if args.output_dir:
            np.save(os.path.join(args.output_dir, _file_name(value.name) + ".npy"), np.asarray(out))


def cmd_bench(args) -> None:
    from onyx.runtime.session import SessionOptions

    opts = SessionOptions(enable_profiling=args.per_op)
    session = onyx.InferenceSession(args.model, opts)
    feeds = _feeds(session.model, [])
    for _ in range(args.warmup):
        session.run(None, feeds)
    times = []
    for i in range(args.runs):
        start = time.perf_counter()
        session.run(None, feeds)
        times.append(time.perf_counter() - start)
        _progress(i + 1, args.runs)
    p50, p90, p99 = np.percentile(np.array(times) * 1e3, [50, 90, 99])
    print(f"{args.runs} runs: p50 {p50:.3f} ms  p90 {p90:.3f} ms  p99 {p99:.3f} ms  "
          f"mean {np.mean(times) * 1e3:.3f} ms")  # fmt: skip
    if args.per_op:
        by_op = session.profile_by_op()  # over the warm-up runs too
        total, profiled = sum(by_op.values()) or 1.0, args.warmup + args.runs
        print(f"{'op type':<24} {'ms/run':>10} {'share':>7}")
        for op, seconds in sorted(by_op.items(), key=lambda kv: -kv[1]):
            print(f"{op:<24} {seconds * 1e3 / profiled:>10.4f} {seconds / total:>7.1%}")


# --- helpers ---------------------------------------------------------------------------------
def _describe(v: Value) -> str:
    t = v.type
    if isinstance(t, TensorType):
        shape = (
            "[?]"
            if t.shape is None
            else "[" + ", ".join("?" if d is None else str(d) for d in t.shape) + "]"
        )
        return f"{t.dtype.short_name}{shape}"
    return "unknown type" if t is None else str(t)


def _bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


def _feeds(model: Model, given: Sequence[str]) -> dict[str, np.ndarray]:
    """Arrays from NAME=FILE.npy pairs; random ones (symbolic dims as 1) for inputs not given."""
    feeds = {}
    for item in given:
        name, sep, path = item.partition("=")
        if not sep:
            raise FeedError(f"--input {item!r}: expected NAME=FILE.npy")
        feeds[name] = np.load(path, allow_pickle=False)
    rng = np.random.default_rng(0)
    consts = set(model.graph.initializers)
    for v in model.graph.inputs:
        if v.name in feeds or v.name in consts:
            continue
        if not isinstance(v.type, TensorType):
            raise FeedError(
                f"input {v.name!r} has type {v.type}; give it with --input {v.name}=FILE.npy"
            )
        dims = (
            [] if v.type.shape is None else [d if isinstance(d, int) else 1 for d in v.type.shape]
        )
        feeds[v.name] = _random(v.type.dtype, dims, rng)
    return feeds


def _random(t: dtypes.DataType, shape: list[int], rng: np.random.Generator) -> np.ndarray:
    if t == dtypes.DataType.STRING:
        return np.full(shape, "a", object)
    if t == dtypes.DataType.BOOL:
        return rng.random(shape) < 0.5
    np_type = dtypes.to_numpy(t)
    if t in dtypes.INTEGER_TYPES:
        return rng.integers(0, 4, shape).astype(np_type)
    if np_type.kind == "c":
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np_type)
    return rng.standard_normal(shape).astype(np_type)


def _summary(out) -> str:
    if not isinstance(out, np.ndarray):
        return f"{type(out).__name__} of {len(out)}" if hasattr(out, "__len__") else repr(out)
    text = f"{out.dtype} {list(out.shape)}"
    if out.size and out.dtype.kind in "biufc" and out.dtype.kind != "c":
        a = out.astype(np.float64)
        text += f"  min {a.min():.6g}  max {a.max():.6g}  mean {a.mean():.6g}"
    return text


def _file_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "output"


def _progress(done: int, total: int, width: int = 30) -> None:
    filled = width * done // total
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def cmd_check(args) -> int:
    from onyx.checker import check

    model = onyx.load(args.model)
    try:
        notes = check(model, full=args.full, collect=args.all)
    except onyx.ValidationError as e:
        for message in getattr(e, "errors", None) or [str(e)]:
            print(f"error: {message}", file=sys.stderr)
        return 1
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"{args.model}: ok")
    return 0


def cmd_convert_version(args) -> None:
    converted = onyx.convert_version(onyx.load(args.model), args.opset)
    onyx.save(converted, args.output)
    print(f"wrote {args.output} (ai.onnx opset {args.opset})")


def cmd_shapes(args) -> None:
    from onyx.shapes import shapes_table

    inferred = onyx.infer_shapes(onyx.load(args.model))
    print(shapes_table(inferred))
    if args.output:
        onyx.save(inferred, args.output)
        print(f"wrote {args.output}")


# --- the command table -------------------------------------------------------------------------
COMMANDS = {
    "info": (cmd_info, "inputs, outputs, opsets, op types, parameters and metadata", []),
    "print": (cmd_print, "the model in the standard's textual syntax", []),
    "save-external": (cmd_save_external, "save with tensor data in a file beside the model", [
        (("out",), {"help": "the model file to write"}),
        (("--threshold",), {"type": int, "default": 1024, "metavar": "BYTES",
                            "help": "tensors of at least this many bytes go outside (1024)"}),
    ]),
    "run": (cmd_run, "run once on given or random inputs and summarize the outputs", [
        (("--input", "-i"), {"action": "append", "default": [], "metavar": "NAME=FILE.npy",
                             "help": "an input from a .npy file (others are random)"}),
        (("--output-dir", "-o"), {"metavar": "DIR", "help": "write each output as DIR/NAME.npy"}),
    ]),
    "check": (cmd_check, "validate against the standard; exit 1 listing the defects", [
        (("--full",), {"action": "store_true", "help": "also infer shapes and compare with declarations"}),
        (("--all",), {"action": "store_true", "help": "report every defect, not just the first"}),
    ]),
    "shapes": (cmd_shapes, "infer every value's type and shape and print them as a table", [
        (("-o", "--output"), {"metavar": "OUT", "help": "also save the model with the types"}),
    ]),
    "convert-version": (cmd_convert_version, "rewrite the model for another ai.onnx opset", [
        (("--opset",), {"type": int, "required": True, "help": "the target opset"}),
        (("-o", "--output"), {"required": True, "metavar": "OUT", "help": "the model file to write"}),
    ]),
    "bench": (cmd_bench, "time runs on random inputs: p50/p90/p99 latency", [
        (("--runs", "-n"), {"type": int, "default": 20, "help": "timed runs (20)"}),
        (("--warmup",), {"type": int, "default": 2, "help": "untimed runs first (2)"}),
        (("--per-op",), {"action": "store_true", "help": "also a table of time per op type"}),
    ]),
}  # fmt: skip


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="onyx", description="Inspect, convert, run and time ONNX models."
    )
    p.add_argument("--version", action="version", version=f"onyx {onyx.__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (func, help_text, options) in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        cmd.add_argument("model", help="an .onnx file, or sample:NAME for a shipped sample")
        for flags, kwargs in options:
            cmd.add_argument(*flags, **kwargs)
        cmd.set_defaults(func=func)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; 0 on success, 2 on an error in the model or the arguments."""
    args = parser().parse_args(argv)
    try:
        if args.model.startswith("sample:"):
            from onyx import samples

            args.model = samples.path(args.model[len("sample:") :])
        return args.func(args) or 0
    except (OnyxError, OSError, ValueError) as e:
        sys.stderr.write(f"onyx {args.command}: {type(e).__name__}: {e}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
