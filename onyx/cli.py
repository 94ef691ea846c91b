"""The ``onyx`` command: inspect, print, convert, run and time models.

onyx info MODEL [--json]
onyx print MODEL [--max-elements N | --full]
onyx save-external MODEL OUT [--threshold BYTES]
onyx run MODEL [-i NAME=FILE ...] [--dim NAME=N ...] [--shape INPUT=D0,D1 ...] [--seed S]
               [--repeat N] [-o DIR] [--compare onnxruntime|FILE.npz [--rtol R] [--atol A]]
               [--json]
onyx bench MODEL [-n RUNS] [--warmup N] [--per-op] [--profile OUT.json] [feeds as for run] [--json]
onyx check MODEL [--full] [--all] [--json]
onyx shapes MODEL [-o OUT] [--json]
onyx convert-version MODEL --opset N -o OUT
onyx optimize MODEL OUT [--level 0|1|2] [--passes A,B] [--target-opset N] [--check] [--explain]
onyx batch MODEL INPUT OUTPUT [--batch-size N] [--workers N] [--engine local|ray] [--strict] ...

MODEL is a path, or sample:NAME for a model that ships with onyx (sample:mlp).
Exit status: 0 done, 1 the model, a file or a run failed (one line on stderr), 2 bad arguments.
docs/cli.md describes the JSON that --json writes.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import onyx
from onyx import dtypes
from onyx.errors import FeedError, FormatError, OnyxError, UnsupportedError
from onyx.ir import Graph, Tensor, TensorType, Value


# --- argument types: a bad value is a usage error (exit 2) -----------------------------------
def _int_at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value

    parse.__name__ = "integer"
    return parse


def _dim_spec(text: str) -> tuple[str, int]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE (as N=4), got {text!r}")
    return name, _int_at_least(0)(value)


def _shape_spec(text: str) -> tuple[str, list[int]]:
    name, sep, dims = text.rpartition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(
            f"expected INPUT=D0,D1,... (as x=1,3,224,224), got {text!r}"
        )
    try:
        shape = [int(d) for d in dims.replace("x", ",").split(",")] if dims.strip() else []
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: dims must be integers, as x=1,3,224,224"
        ) from None
    if any(d < 0 for d in shape):
        raise argparse.ArgumentTypeError(f"{text!r}: dims must not be negative")
    return name, shape


def _tolerance(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def _compare_spec(text: str) -> str:
    if text != "onnxruntime" and not text.endswith(".npz"):
        raise argparse.ArgumentTypeError(f"expected onnxruntime or FILE.npz, got {text!r}")
    return text


# --- commands --------------------------------------------------------------------------------
def cmd_info(args) -> None:
    m = onyx.load(args.model)
    g = m.graph
    consts = set(g.initializers)
    params = _parameters(g)
    main_nodes = len(g.nodes)
    ops = collections.Counter(
        f"{n.domain}::{n.op_type}" if n.domain else n.op_type for n in g.all_nodes()
    )
    total = sum(ops.values())
    inputs = [v for v in g.inputs if v.name not in consts]
    if args.json:
        return _emit({
            "model": args.model, "ir_version": m.ir_version,
            "opsets": {d or "ai.onnx": v for d, v in m.opset_imports.items()},
            "producer_name": m.producer_name, "producer_version": m.producer_version,
            "doc_string": m.doc_string,
            "inputs": [_value_json(v) for v in inputs], "outputs": [_value_json(v) for v in g.outputs],
            "parameters": params,
            "nodes": {"total": total, "main_graph": main_nodes, "in_subgraphs": total - main_nodes,
                      "functions": len(m.functions)},
            "op_types": dict(sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))),
            "metadata": dict(m.metadata_props),
        })  # fmt: skip
    print(f"model      {args.model}")
    print(f"ir_version {m.ir_version}")
    print("opsets     " + ", ".join(f"{d or 'ai.onnx'}={v}" for d, v in m.opset_imports.items()))
    producer = " ".join(x for x in (m.producer_name, m.producer_version) if x)
    print(f"producer   {producer or '-'}")
    if m.doc_string:
        print(f"doc        {m.doc_string}")
    print("inputs")
    for v in inputs:
        print(f"  {v.name}: {_describe(v)}")
    print("outputs")
    for v in g.outputs:
        print(f"  {v.name}: {_describe(v)}")
    where = f"{params['initializers']} initializers"
    if params["constants"]:
        where += f" and {params['constants']} Constant nodes"
    print(f"parameters {params['count']:,} in {where}, {_bytes(params['bytes'])}")
    split = f" ({total - main_nodes} of them in subgraphs)" if total != main_nodes else ""
    functions = f" ({len(m.functions)} functions)" if m.functions else ""
    print(f"nodes      {total}{split}{functions}")
    for op, k in sorted(ops.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {op:<28} {k}")
    if m.metadata_props:
        print("metadata")
        for key, value in m.metadata_props.items():
            print(f"  {key}: {value}")


def cmd_print(args) -> None:
    from onyx.text import print_model

    model = onyx.load(args.model)
    text = print_model(model) if args.full else print_model(model, max_elements=args.max_elements)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def cmd_save_external(args) -> None:
    m = onyx.load(args.model)
    onyx.save(m, args.out, external_data=True, size_threshold=args.threshold)
    data = os.path.basename(args.out) + ".data"
    print(f"wrote {args.out} and {data} (tensors of at least {args.threshold} bytes)")


def cmd_run(args) -> int:
    tolerance = args.rtol is not None or args.atol is not None
    if tolerance and not args.compare:
        _note(args, "error: --rtol and --atol need --compare onnxruntime|FILE.npz")
        return 2
    rtol, atol = args.rtol or 0.0, args.atol or 0.0
    session, feeds, origins, chosen = _prepare(args, profile=False)
    report: dict[str, Any] = {"model": args.model, "inputs": [], "chosen_dims": chosen}
    for name, value in feeds.items():
        report["inputs"].append({"name": name, "origin": origins[name], **_array_json(value)})
        if not args.json:
            print(f"input  {name}: {_summary(value)} ({origins[name]})")
    start = time.perf_counter()
    outputs = session.run(None, feeds)
    first = time.perf_counter() - start
    steady = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        session.run(None, feeds)
        steady.append(time.perf_counter() - start)
    report["first_run_ms"] = _ms(first)
    report["steady_ms"] = _ms(float(np.median(steady))) if steady else None
    report["steady_runs"] = len(steady)
    if not args.json:
        text = f"first run {first * 1e3:.2f} ms (with one-time costs)"
        if steady:
            text += f"; steady {np.median(steady) * 1e3:.2f} ms (median of {len(steady)} more runs)"
        print(text)
    names = [v.name for v in session.model.graph.outputs]
    if args.output_dir:
        try:
            os.makedirs(args.output_dir, exist_ok=True)
        except OSError as e:
            raise OnyxError(f"cannot create the output folder {args.output_dir!r}: {e.strerror}")
    report["outputs"] = []
    for name, out in zip(names, outputs):
        entry = {"name": name, **_array_json(out), "file": None}
        if args.output_dir:
            entry["file"] = _save_output(args.output_dir, name, out)
        report["outputs"].append(entry)
        if not args.json:
            print(f"output {name}: {_summary(out)}")
    failed: list[str] = []
    if args.compare:
        reference = _reference(args, feeds, names)
        report["compare"] = {"reference": args.compare, "outputs": []}
        if not args.json:
            print(f"compared with {args.compare}")
        for name, out in zip(names, outputs):
            diff = _diff(out, reference.get(name))
            if tolerance:
                diff["within_tolerance"] = _within(out, reference.get(name), rtol, atol)
                if not diff["within_tolerance"]:
                    failed.append(name)
            report["compare"]["outputs"].append({"name": name, **diff})
            if not args.json:
                mark = "" if not tolerance else "  ok" if name not in failed else "  EXCEEDS"
                print(f"  {name}: {_diff_text(diff)}{mark}")
        if tolerance:
            report["compare"].update(rtol=rtol, atol=atol, ok=not failed)
            if failed:
                _note(args, f"{len(failed)} output(s) differ from {args.compare} beyond "
                      f"--rtol {rtol:g} --atol {atol:g}: {', '.join(failed)}")  # fmt: skip
    if args.json:
        _emit(report)
    return 1 if failed else 0


def cmd_bench(args) -> None:
    profile = args.per_op or bool(args.profile)
    session, feeds, _, chosen = _prepare(args, profile=profile)
    warmup = []
    for _ in range(args.warmup):
        start = time.perf_counter()
        session.run(None, feeds)
        warmup.append(time.perf_counter() - start)
    before = session.profile_by_op()
    times = []
    bar = sys.stderr.isatty() and not args.json
    for i in range(args.runs):
        start = time.perf_counter()
        session.run(None, feeds)
        times.append(time.perf_counter() - start)
        if bar:
            _progress(i + 1, args.runs)
    after = session.profile_by_op()
    per_op = {op: seconds - before.get(op, 0.0) for op, seconds in after.items()}
    ms = np.array(times) * 1e3
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    trace = None
    if args.profile:
        trace = _move_profile(session.end_profiling(), args.profile)
    if args.json:
        by_op = sorted(per_op.items(), key=lambda kv: -kv[1])
        total = sum(per_op.values()) or 1.0
        return _emit({
            "model": args.model, "chosen_dims": chosen,
            "inputs": [{"name": k, **_array_json(v)} for k, v in feeds.items()],
            "warmup_ms": [_ms(t) for t in warmup],
            "runs": args.runs, "profiled": profile,
            "latency_ms": {"p50": _round(p50), "p90": _round(p90), "p99": _round(p99),
                           "mean": _round(ms.mean()), "min": _round(ms.min()),
                           "max": _round(ms.max())},
            "per_op": [{"op_type": op, "ms_per_run": _ms(s / args.runs), "share": _round(s / total)}
                       for op, s in by_op] if args.per_op else None,
            "profile": trace,
        })  # fmt: skip
    if warmup:
        rest = f", then {np.mean(warmup[1:]) * 1e3:.3f} ms mean" if len(warmup) > 1 else ""
        print(f"warm-up {len(warmup)} runs: first {warmup[0] * 1e3:.3f} ms{rest} (not counted)")
    note = " (profiled: includes the profiler's cost)" if profile else ""
    print(f"{args.runs} runs: p50 {p50:.3f} ms  p90 {p90:.3f} ms  p99 {p99:.3f} ms  "
          f"mean {ms.mean():.3f} ms{note}")  # fmt: skip
    if args.per_op:
        total = sum(per_op.values()) or 1.0
        print(f"per op type, over the {args.runs} timed runs:")
        print(f"{'op type':<24} {'ms/run':>10} {'share':>7}")
        for op, seconds in sorted(per_op.items(), key=lambda kv: -kv[1]):
            print(f"{op:<24} {seconds * 1e3 / args.runs:>10.4f} {seconds / total:>7.1%}")
    if trace:
        print(f"wrote {trace} (Chrome trace: open it in https://ui.perfetto.dev)")


def cmd_check(args) -> int:
    from onyx.checker import check

    model = onyx.load(args.model)
    errors: list[str] = []
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:  # the checker warns of oddities
        warnings.simplefilter("always")
        try:
            notes = list(check(model, full=args.full, collect=args.all) or [])
        except onyx.ValidationError as e:
            errors = [str(m) for m in (getattr(e, "errors", None) or [str(e)])]
    notes += [str(w.message) for w in caught]
    if args.json:
        _emit({"model": args.model, "ok": not errors, "full": args.full, "errors": errors,
               "notes": [str(n) for n in notes]})  # fmt: skip
        return 1 if errors else 0
    for message in errors:
        print(f"error: {message}", file=sys.stderr)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if errors:
        return 1
    print(f"{args.model}: ok")
    return 0


def cmd_convert_version(args) -> None:
    converted = onyx.convert_version(onyx.load(args.model), args.opset)
    onyx.save(converted, args.output)
    print(f"wrote {args.output} (ai.onnx opset {args.opset})")


def cmd_shapes(args) -> None:
    from onyx.shapes import shapes_table

    problems: list[str] = []  # contradictions inference proved, listed after the table
    inferred = onyx.infer_shapes(onyx.load(args.model), problems=problems)
    if args.output:
        onyx.save(inferred, args.output)
    if args.json:
        return _emit({"model": args.model, "values": _shape_rows(inferred.graph),
                      "problems": problems, "output": args.output})  # fmt: skip
    print(shapes_table(inferred))
    if problems:
        print(f"\n{len(problems)} problem(s):")
        print("\n".join(f"- {p}" for p in problems))
    if args.output:
        print(f"wrote {args.output}")


# --- feeds -----------------------------------------------------------------------------------
def _prepare(args, profile: bool):
    """The session (with --dim overrides) and the feeds: from files, else random of --shape,
    declared dims, --dim values; free dims left without a value become 1, said on stderr."""
    from onyx.runtime.session import SessionOptions

    opts = SessionOptions(enable_profiling=profile)
    if profile and args.profile:
        folder = os.path.dirname(os.path.abspath(args.profile))
        opts.profile_file_prefix = os.path.join(folder, ".onyx_profile")
    dims = dict(args.dim)
    for name, value in dims.items():
        opts.add_free_dimension_override_by_name(name, value)
    session = onyx.InferenceSession(args.model, opts)
    given = _read_inputs(args.input)
    origins = {name: f"from {path}" for name, (_, path) in given.items()}
    feeds = {name: array for name, (array, _) in given.items()}
    graph = session.model.graph
    consts = set(graph.initializers)
    wanted = [v for v in graph.inputs if v.name not in consts]
    shapes = dict(args.shape)
    known = {v.name for v in graph.inputs}
    for name in shapes:
        if name not in known:
            raise FeedError(f"--shape {name}=...: the model has no input {name!r}; its inputs "
                            f"are {[v.name for v in wanted]}")  # fmt: skip
    _bind_symbols(wanted, shapes, dims)
    unused = sorted({name for name, _ in args.dim} - _symbols(wanted))
    if unused:
        _note(args, f"no input has a dim named {', '.join(unused)} (kept as a session override)")
    rng = np.random.default_rng(args.seed)
    chosen: dict[str, int] = {}
    for v in wanted:
        if v.name in feeds:
            continue
        if not isinstance(v.type, TensorType):
            raise FeedError(f"input {v.name!r} has type {v.type}; give it with "
                            f"--input {v.name}=FILE.npy")  # fmt: skip
        if v.name in shapes:
            shape = shapes[v.name]
        elif v.type.shape is None:
            raise FeedError(f"input {v.name!r} has no declared shape; give it with "
                            f"--shape {v.name}=D0,D1,... or --input {v.name}=FILE.npy")  # fmt: skip
        else:
            shape = []
            for axis, d in enumerate(v.type.shape.dims):
                if isinstance(d, int) and d >= 0:
                    shape.append(d)
                elif isinstance(d, str) and d in dims:
                    shape.append(dims[d])
                else:
                    label = d if isinstance(d, str) else f"{v.name}[{axis}]"
                    chosen[label] = 1
                    if isinstance(d, str):
                        dims[d] = 1
                    shape.append(1)
        feeds[v.name] = _random(v.type.dtype, shape, rng)
        origins[v.name] = f"random, seed {args.seed}"
    if chosen:
        _note(args, "free dims without a value were set to 1: "
              + ", ".join(f"{k}=1" for k in chosen)
              + "; set them with --dim NAME=VALUE or --shape INPUT=D0,D1,...")  # fmt: skip
    return session, feeds, origins, chosen


def _symbols(inputs: list[Value]) -> set[str]:
    return {d for v in inputs if isinstance(v.type, TensorType) and v.type.shape is not None
            for d in v.type.shape.dims if isinstance(d, str)}  # fmt: skip


def _bind_symbols(inputs: list[Value], shapes: dict[str, list[int]], dims: dict[str, int]) -> None:
    """Symbolic dims that a --shape fixes (N of x: float[N, 16] with --shape x=4,16 is 4)."""
    explicit = dict(dims)
    for v in inputs:
        if v.name not in shapes or not isinstance(v.type, TensorType) or v.type.shape is None:
            continue
        shape, declared = shapes[v.name], v.type.shape.dims
        if len(shape) != len(declared):
            raise FeedError(f"--shape {v.name}={','.join(map(str, shape))}: input {v.name!r} has "
                            f"rank {len(declared)} ({_describe(v)})")  # fmt: skip
        for d, n in zip(declared, shape):
            if not isinstance(d, str):
                continue
            if d in explicit and explicit[d] != n:
                raise FeedError(f"--shape {v.name}=... sets {d}={n}, but --dim {d}={explicit[d]}")
            if dims.setdefault(d, n) != n:
                raise FeedError(f"--shape {v.name}=... sets {d}={n}, but another --shape sets "
                                f"{d}={dims[d]}")  # fmt: skip


def _read_inputs(specs: Sequence[str]) -> dict[str, tuple[Any, str]]:
    """NAME=FILE or FILE for .npy, .npz (all its arrays, or the one named NAME) and TensorProto
    .pb files; without NAME a .npy is named after its file and a .pb after its tensor."""
    out: dict[str, tuple[Any, str]] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = "", spec
        kind = os.path.splitext(path)[1].lower()
        if not os.path.isfile(path):
            raise FeedError(f"--input {spec!r}: no such file {path!r}")
        try:
            if kind == ".npy":
                out[name or os.path.splitext(os.path.basename(path))[0]] = (
                    np.load(path, allow_pickle=False),
                    path,
                )
            elif kind == ".npz":
                with np.load(path, allow_pickle=False) as z:
                    if not name:
                        out.update({key: (z[key], f"{path}:{key}") for key in z.files})
                    elif name in z.files or len(z.files) == 1:
                        key = name if name in z.files else z.files[0]
                        out[name] = (z[key], f"{path}:{key}")
                    else:
                        raise FeedError(f"--input {spec!r}: {path} has no array {name!r}; it has "
                                        f"{z.files}")  # fmt: skip
            elif kind == ".pb":
                tensor = onyx.load_tensor(path)
                if not (name or tensor.name):
                    raise FeedError(f"--input {spec!r}: the tensor in {path} has no name; "
                                    "give it as NAME=FILE.pb")  # fmt: skip
                out[name or tensor.name] = (tensor.numpy(), path)
            else:
                raise FeedError(
                    f"--input {spec!r}: expected a .npy, .npz or .pb (TensorProto) file"
                )
        except (OSError, ValueError, EOFError) as e:
            raise FeedError(f"--input {spec!r}: cannot read {path}: {e}") from None
    return out


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


# --- comparing with a reference --------------------------------------------------------------
def _reference(args, feeds: dict[str, np.ndarray], names: list[str]) -> dict[str, Any]:
    if args.compare.endswith(".npz"):
        try:
            with np.load(args.compare, allow_pickle=False) as z:
                return {key: z[key] for key in z.files}
        except (OSError, ValueError, EOFError) as e:
            raise FeedError(f"--compare {args.compare}: cannot read it: {e}") from None
    try:  # the one place onyx imports a peer: only when the user asks to compare with it
        import onnxruntime
    except ImportError:
        raise UnsupportedError(
            "--compare onnxruntime: onnxruntime is not installed (pip install onnxruntime)"
        ) from None
    try:
        reference = onnxruntime.InferenceSession(args.model, providers=["CPUExecutionProvider"])
        return dict(zip(names, reference.run(names, feeds)))
    except Exception as e:  # noqa: BLE001 (onnxruntime has error classes of its own)
        raise OnyxError(f"--compare onnxruntime: onnxruntime failed: {str(e).strip()}") from None


def _diff(ours: Any, ref: Any) -> dict[str, Any]:
    """max_abs_diff and max_rel_diff of one output against its reference (NaN = NaN)."""
    if ref is None:
        return {"status": "missing", "max_abs_diff": None, "max_rel_diff": None}
    a, b = np.asarray(ours), np.asarray(ref)
    if a.shape != b.shape:
        return {"status": f"shape {list(a.shape)} vs {list(b.shape)}", "max_abs_diff": None,
                "max_rel_diff": None}  # fmt: skip
    if a.dtype.kind not in "biufc" or b.dtype.kind not in "biufc":
        same = bool(np.array_equal(a, b))
        return {"status": "equal" if same else "different", "max_abs_diff": None,
                "max_rel_diff": None}  # fmt: skip
    wide = np.complex128 if "c" in (a.dtype.kind, b.dtype.kind) else np.float64
    a, b = a.astype(wide), b.astype(wide)
    with np.errstate(all="ignore"):
        same = (a == b) | (np.isnan(a) & np.isnan(b))
        d = np.where(same, 0.0, np.abs(a - b))
        d = np.where(np.isnan(d), np.inf, d)  # one side NaN
        rel = np.where(d == 0, 0.0, d / np.maximum(np.abs(b), np.finfo(np.float64).tiny))
    status = "equal" if not d.any() else "different"
    return {"status": status, "max_abs_diff": _round(d.max(initial=0.0), 10),
            "max_rel_diff": _round(rel.max(initial=0.0), 10)}  # fmt: skip


def _within(ours: Any, ref: Any, rtol: float, atol: float) -> bool:
    """Whether every element satisfies |ours - ref| <= atol + rtol * |ref| (NaN equals NaN);
    a missing output or one of another shape does not."""
    if ref is None:
        return False
    a, b = np.asarray(ours), np.asarray(ref)
    if a.shape != b.shape:
        return False
    if a.dtype.kind not in "biufc" or b.dtype.kind not in "biufc":
        return bool(np.array_equal(a, b))
    wide = np.complex128 if "c" in (a.dtype.kind, b.dtype.kind) else np.float64
    a, b = a.astype(wide), b.astype(wide)
    with np.errstate(all="ignore"):
        ok = (a == b) | (np.isnan(a) & np.isnan(b)) | (np.abs(a - b) <= atol + rtol * np.abs(b))
    return bool(ok.all())


def _diff_text(diff: dict[str, Any]) -> str:
    if diff["max_abs_diff"] is None:
        return diff["status"]
    return f"max abs diff {diff['max_abs_diff']:.3g}, max rel diff {diff['max_rel_diff']:.3g}"


# --- output ----------------------------------------------------------------------------------
def _emit(document: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(document, indent=2, allow_nan=False) + "\n")


def _note(args, text: str) -> None:
    sys.stderr.write(f"onyx {args.command}: {text}\n")


def _round(x: float, digits: int = 4) -> float | None:
    x = float(x)
    return round(x, digits) if math.isfinite(x) else None


def _ms(seconds: float) -> float | None:
    return _round(seconds * 1e3)


def _shape_json(t) -> list | None:
    if not isinstance(t, TensorType) or t.shape is None:
        return None
    return [d if isinstance(d, int | str) and not (isinstance(d, int) and d < 0) else None
            for d in t.shape.dims]  # fmt: skip


def _value_json(v: Value) -> dict[str, Any]:
    t = v.type
    if isinstance(t, TensorType):
        return {"name": v.name, "type": f"tensor({t.dtype.short_name})", "shape": _shape_json(t)}
    return {"name": v.name, "type": None if t is None else str(t), "shape": None}


def _array_json(out: Any) -> dict[str, Any]:
    if not isinstance(out, np.ndarray):
        kind = "none" if out is None else type(out).__name__
        return {"dtype": None, "shape": None, "kind": kind,
                "length": len(out) if hasattr(out, "__len__") else None}  # fmt: skip
    entry: dict[str, Any] = {"dtype": str(out.dtype), "shape": list(out.shape)}
    if out.size and out.dtype.kind in "biuf":
        a = out.astype(np.float64)
        entry.update(min=_round(a.min(), 8), max=_round(a.max(), 8), mean=_round(a.mean(), 8))
    return entry


def _shape_rows(g: Graph) -> list[dict[str, Any]]:
    rows, seen = [], set()

    def add(v: Value | None, producer: str) -> None:
        if v is None or v in seen:
            return
        seen.add(v)
        t = v.type
        if t is None and v.const_value is not None and isinstance(v.const_value, Tensor):
            rows.append({"name": v.name, "type": f"tensor({v.const_value.dtype.short_name})",
                         "shape": list(v.const_value.dims), "producer": producer})  # fmt: skip
            return
        rows.append({**_value_json(v), "producer": producer})

    for v in g.inputs:
        add(v, "input")
    for v in g.initializers.values():
        add(v, "initializer")
    for node in g.nodes:
        for v in node.outputs:
            add(v, node.op_type + (f" {node.name}" if node.name else ""))
    return rows


def _parameters(g: Graph) -> dict[str, int]:
    """Elements and bytes of the initializers and Constant-node tensors of every graph."""
    count = size = n_init = n_const = 0
    graphs = [g]
    while graphs:
        graph = graphs.pop()
        for v in graph.initializers.values():
            count, size, n_init = (
                count + v.const_value.size,
                size + v.const_value.nbytes,
                n_init + 1,
            )
        for node in graph.nodes:
            graphs.extend(node.subgraphs())
            if node.op_type != "Constant" or node.domain not in ("", "ai.onnx"):
                continue
            for attr in node.attributes.values():
                value = attr.value
                if isinstance(value, Tensor):
                    elements, nbytes = value.size, value.nbytes
                elif hasattr(value, "to_dense"):  # a sparse tensor: count the stored values
                    elements, nbytes = value.values.size, value.values.nbytes
                elif isinstance(value, list | tuple):
                    elements, nbytes = len(value), 8 * len(value)
                else:
                    elements, nbytes = 1, 8
                count, size, n_const = count + elements, size + nbytes, n_const + 1
    return {"count": count, "bytes": size, "initializers": n_init, "constants": n_const}


def _describe(v: Value) -> str:
    t = v.type
    if isinstance(t, TensorType):
        dims = _shape_json(t)
        shape = "[?]" if dims is None else "[" + ", ".join("?" if d is None else str(d)
                                                          for d in dims) + "]"  # fmt: skip
        return f"{t.dtype.short_name}{shape}"
    return "unknown type" if t is None else str(t)


def _bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{int(n)} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


def _summary(out) -> str:
    if not isinstance(out, np.ndarray):
        return f"{type(out).__name__} of {len(out)}" if hasattr(out, "__len__") else repr(out)
    text = f"{out.dtype} {list(out.shape)}"
    if out.size and out.dtype.kind in "biuf":
        a = out.astype(np.float64)
        text += f"  min {a.min():.6g}  max {a.max():.6g}  mean {a.mean():.6g}"
    return text


def _file_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "output"


def _save_output(folder: str, name: str, out: Any) -> str | None:
    """DIR/NAME.npy for a tensor, DIR/NAME.npz (item_0, ...) for a sequence; None otherwise."""
    base = os.path.join(folder, _file_name(name))
    try:
        if isinstance(out, np.ndarray):
            np.save(base + ".npy", out, allow_pickle=False)
            return base + ".npy"
        if isinstance(out, list) and all(isinstance(x, np.ndarray) for x in out):
            np.savez(base + ".npz", **{f"item_{i}": x for i, x in enumerate(out)})
            return base + ".npz"
    except (OSError, ValueError) as e:
        raise OnyxError(f"cannot write output {name!r} to {base}: {e}") from None
    return None


def _move_profile(written: str, target: str) -> str:
    try:
        os.replace(written, target)
    except OSError as e:
        raise OnyxError(f"--profile {target}: cannot write it: {e.strerror}") from None
    return target


def _progress(done: int, total: int, width: int = 30) -> None:
    filled = width * done // total
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()


# --- the command table -------------------------------------------------------------------------
_JSON = {"action": "store_true", "help": "write one JSON document to stdout (see below)"}
_FEEDS = [
    (("--input", "-i"), {"action": "append", "default": [], "metavar": "[NAME=]FILE",
                         "help": "an input from a .npy, .npz or TensorProto .pb file (repeatable; "
                                 "a .npz without NAME gives all its arrays); others are random"}),
    (("--dim",), {"action": "append", "default": [], "type": _dim_spec, "metavar": "NAME=VALUE",
                  "help": "the value of a symbolic dim (repeatable), also a session override"}),
    (("--shape",), {"action": "append", "default": [], "type": _shape_spec,
                    "metavar": "INPUT=D0,D1,...", "help": "the shape of a random input (repeatable)"}),
    (("--seed",), {"type": _int_at_least(0), "default": 0,
                   "help": "seed of the random inputs (0)"}),
]  # fmt: skip

_INFO_JSON = """JSON (--json): {"model", "ir_version", "opsets": {domain: version},
  "producer_name", "producer_version", "doc_string",
  "inputs"/"outputs": [{"name", "type": "tensor(float)", "shape": [int | "symbol" | null]}],
  "parameters": {"count", "bytes", "initializers", "constants"},
  "nodes": {"total", "main_graph", "in_subgraphs", "functions"}, "op_types": {op: count},
  "metadata": {key: value}}"""
_CHECK_JSON = """JSON (--json): {"model", "ok": bool, "full": bool, "errors": [str], "notes": [str]}
(exit status 1 when not ok)"""
_SHAPES_JSON = """JSON (--json): {"model", "values": [{"name", "type", "shape", "producer"}],
  "output": path | null}"""
_RUN_JSON = """JSON (--json): {"model", "chosen_dims": {dim: 1},
  "inputs": [{"name", "origin", "dtype", "shape", "min", "max", "mean"}],
  "first_run_ms", "steady_ms" (median, null without --repeat), "steady_runs",
  "outputs": [{"name", "dtype", "shape", "min", "max", "mean", "file"}],
  "compare": {"reference", "outputs": [{"name", "status", "max_abs_diff", "max_rel_diff",
  "within_tolerance"}], "rtol", "atol", "ok"} (only with --compare; the tolerance fields only
  with --rtol/--atol)}. Numbers that are not finite are null. Exit status 1 when an output
  differs beyond |ours - ref| <= atol + rtol * |ref|."""
_BENCH_JSON = """JSON (--json): {"model", "chosen_dims", "inputs": [{"name", "dtype", "shape", ...}],
  "warmup_ms": [ms of each warm-up run], "runs", "profiled": bool,
  "latency_ms": {"p50", "p90", "p99", "mean", "min", "max"} (timed runs only),
  "per_op": [{"op_type", "ms_per_run", "share"}] | null (timed runs only),
  "profile": path | null}"""


def cmd_batch(args) -> None:
    """Run the model over a dataset (Parquet, CSV, .npy/.npz, a folder of images) into Parquet."""
    import onyx.batch

    columns = {}
    for spec in args.column:
        name, sep, column = spec.partition("=")
        if not sep or not name or not column:
            raise onyx.batch.BatchError(f"--column {spec!r}: expected INPUT=COLUMN")
        columns[name] = column
    shown = sys.stderr.isatty()

    def progress(p) -> None:
        rate = p.rows_per_second
        eta = (p.rows_total - p.rows_done) / rate if p.rows_total and rate else None
        total = f"/{p.rows_total:,}" if p.rows_total else ""
        sys.stderr.write(f"\r{p.rows_done:,}{total} rows  {rate:,.0f} rows/s"
                         + (f"  ETA {eta:.0f} s " if eta is not None else "  "))  # fmt: skip
        sys.stderr.flush()

    summary = onyx.batch.run(
        args.model, args.input, args.output, batch_size=args.batch_size, columns=columns,
        workers=args.workers, runs=args.runs, threads=args.threads, engine=args.engine,
        ray_address=args.ray_address, strict=args.strict, progress=progress if shown else None,
        gpus_per_worker=args.gpus_per_worker,
    )  # fmt: skip
    if shown:
        sys.stderr.write("\n")
    print(summary)


def _optimize_parameters(model) -> int:
    return sum(math.prod(v.const_value.dims) for v in model.graph.initializers.values()
               if v.const_value is not None)  # fmt: skip


def _stored_size(path: str) -> int:
    """Bytes of a model file and of the external data files its initializers name."""
    model = onyx.load(path)  # lazy: tensors are not read
    places = {os.path.join(t.external.base_dir, t.external.location)
              for t in (v.const_value for v in model.graph.initializers.values())
              if t is not None and t.external is not None}  # fmt: skip
    return os.path.getsize(path) + sum(os.path.getsize(p) for p in places if os.path.exists(p))


def _optimize_table(before, after, size_in: int, size_out: int) -> str:
    """Nodes by op type, parameters and file size, before and after, as text."""
    a = collections.Counter(n.op_type for n in before.graph.nodes)
    b = collections.Counter(n.op_type for n in after.graph.nodes)
    rows = [("", "before", "after")]
    for op in sorted(set(a) | set(b), key=lambda k: (-a[k], k)):
        rows.append((op, str(a[op]), str(b[op])))
    rows.append(("nodes", str(sum(a.values())), str(sum(b.values()))))
    rows.append(("parameters", f"{_optimize_parameters(before):,}",
                 f"{_optimize_parameters(after):,}"))  # fmt: skip
    rows.append(("file size", f"{size_in / 1e6:.2f} MB", f"{size_out / 1e6:.2f} MB"))
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(f"{r[0]:<{w[0]}}  {r[1]:>{w[1]}}  {r[2]:>{w[2]}}" for r in rows)


def _optimize_feeds(model, size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random feeds for the model's inputs, every dynamic dim ``size``."""
    feeds = {}
    for v in model.graph.inputs:
        if v.name in model.graph.initializers:
            continue
        t = v.type
        shape = [d if isinstance(d, int) else size for d in (t.shape.dims if t.shape else [])]
        dtype = np.dtype(dtypes.to_numpy(t.dtype))
        if dtype.kind == "f":
            feeds[v.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind == "b":
            feeds[v.name] = rng.random(shape) < 0.5
        else:
            feeds[v.name] = rng.integers(0, 100, shape).astype(dtype)
    return feeds


def optimize_check(before, after, tolerance: float = 1e-5) -> list[str]:
    """Run both models on random inputs at two sizes of every dynamic dim; the differences."""
    problems = []
    for size in (3, 7):
        feeds = _optimize_feeds(before, size, np.random.default_rng(size))
        want = onyx.InferenceSession(before).run(None, feeds)
        got = onyx.InferenceSession(after).run(None, feeds)
        for v, x, y in zip(before.graph.outputs, want, got):
            x, y = np.asarray(x), np.asarray(y)
            if x.shape != y.shape:
                problems.append(f"output {v.name!r} at size {size}: shape {y.shape} != {x.shape}")
                continue
            if x.dtype.kind in "fc":
                x64, y64 = x.astype(np.float64), y.astype(np.float64)
                scale = max(1.0, float(np.nanmax(np.abs(x64)))) if x.size else 1.0
                err = float(np.nanmax(np.abs(x64 - y64))) if x.size else 0.0
                if err > tolerance * scale or np.isnan(x).sum() != np.isnan(y).sum():
                    problems.append(f"output {v.name!r} at size {size}: differs by {err:.3g}")
            elif not np.array_equal(x, y):
                problems.append(f"output {v.name!r} at size {size}: values differ")
    return problems


class _PassProgress:
    """On a terminal: the pass running now, once it has run over a second (stderr)."""

    def __init__(self):
        import threading

        self.current: tuple[str, float] | None = None
        self.shown = False
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def __call__(self, name: str | None) -> None:
        with self.lock:
            self.current = None if name is None else (name, time.perf_counter())
            if name is None:
                self.done.set()
                self._clear()

    def _clear(self) -> None:
        if self.shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
            self.shown = False

    def _watch(self) -> None:
        while not self.done.wait(0.25):
            with self.lock:
                if self.current is None:
                    continue
                name, since = self.current
                took = time.perf_counter() - since
                if took > 1.0:
                    sys.stderr.write(f"\r\033[Koptimizing: {name} ({took:.0f} s)")
                    sys.stderr.flush()
                    self.shown = True
                else:
                    self._clear()


def cmd_optimize(args) -> int:
    from onyx.passes import optimize

    started = time.perf_counter()
    before = onyx.load(args.model)
    passes = [p for p in args.passes.split(",") if p] if args.passes else None
    counts: collections.Counter = collections.Counter()
    explain: list[str] | None = [] if args.explain else None
    progress = _PassProgress() if sys.stderr.isatty() else None
    try:
        after = optimize(before, level=args.level, passes=passes, target_opset=args.target_opset,
                         counts=counts, explain=explain, progress=progress)  # fmt: skip
    finally:
        if progress is not None:
            progress(None)
    took = time.perf_counter() - started
    onyx.save(after, args.output)
    print(_optimize_table(before, after, _stored_size(args.model), _stored_size(args.output)))
    done = ", ".join(f"{k} {v}" for k, v in counts.most_common())
    print(f"optimized in {took:.2f} s: {done or 'nothing to do'}")
    if explain is not None:
        reasons = list(dict.fromkeys(explain))  # a pattern is tried each round: once each
        print(f"not fused ({len(reasons)}):" if reasons else "not fused: no partial matches")
        for line in reasons:
            print(f"  {line}")
    if args.check:
        problems = optimize_check(before, after)
        if problems:
            raise OnyxError("--check: the optimized model differs: " + "; ".join(problems))
        print("check: outputs agree at two sizes of every dynamic dim")
    return 0


COMMANDS = {
    "info": (cmd_info, "inputs, outputs, opsets, op types, parameters and metadata", _INFO_JSON, [
        (("--json",), _JSON),
    ]),
    "print": (cmd_print, "the model in the standard's textual syntax", "", [
        (("--max-elements",), {"type": _int_at_least(0), "default": 16, "metavar": "N",
                               "help": "show tensors of more than N elements abbreviated (16)"}),
        (("--full",), {"action": "store_true",
                       "help": "every element and dim as stored: text that parses back"}),
    ]),
    "save-external": (cmd_save_external, "save with tensor data in a file beside the model", "", [
        (("out",), {"help": "the model file to write"}),
        (("--threshold",), {"type": _int_at_least(0), "default": 1024, "metavar": "BYTES",
                            "help": "tensors of at least this many bytes go outside (1024)"}),
    ]),
    "run": (cmd_run, "run on given or random inputs and summarize the outputs", _RUN_JSON, [
        *_FEEDS,
        (("--repeat",), {"type": _int_at_least(0), "default": 3, "metavar": "N",
                         "help": "after the first run, N more to time the steady state (3)"}),
        (("--output-dir", "-o"), {"metavar": "DIR", "help": "write each output as DIR/NAME.npy"}),
        (("--compare",), {"type": _compare_spec, "metavar": "onnxruntime|FILE.npz",
                          "help": "max abs/rel difference of each output from onnxruntime's "
                                  "(run on the same inputs) or from the arrays of FILE.npz"}),
        (("--rtol",), {"type": _tolerance, "metavar": "R",
                       "help": "with --compare: exit 1 unless |ours - ref| <= atol + R * |ref| "
                               "everywhere (0 when only --atol is given)"}),
        (("--atol",), {"type": _tolerance, "metavar": "A",
                       "help": "with --compare: the absolute part of that bound (0 when only "
                               "--rtol is given)"}),
        (("--json",), _JSON),
    ]),
    "check": (cmd_check, "validate against the standard; exit 1 listing the defects", _CHECK_JSON, [
        (("--full",), {"action": "store_true", "help": "also infer shapes and compare with declarations"}),
        (("--all",), {"action": "store_true", "help": "report every defect, not just the first"}),
        (("--json",), _JSON),
    ]),
    "shapes": (cmd_shapes, "infer every value's type and shape and print them as a table",
               _SHAPES_JSON, [
        (("-o", "--output"), {"metavar": "OUT", "help": "also save the model with the types"}),
        (("--json",), _JSON),
    ]),
    "convert-version": (cmd_convert_version, "rewrite the model for another ai.onnx opset", "", [
        (("--opset",), {"type": _int_at_least(1), "required": True, "help": "the target opset"}),
        (("-o", "--output"), {"required": True, "metavar": "OUT", "help": "the model file to write"}),
    ]),
    "bench": (cmd_bench, "time runs on random inputs: warm-up, then p50/p90/p99 latency",
              _BENCH_JSON, [
        *_FEEDS,
        (("--runs", "-n"), {"type": _int_at_least(1), "default": 20, "help": "timed runs (20)"}),
        (("--warmup",), {"type": _int_at_least(0), "default": 2,
                         "help": "untimed runs first, reported apart (2)"}),
        (("--per-op",), {"action": "store_true",
                         "help": "also a table of time per op type over the timed runs"}),
        (("--profile",), {"metavar": "OUT.json",
                          "help": "write a Chrome trace of the session (build, every run, "
                                  "every node) to OUT.json"}),
        (("--json",), _JSON),
    ]),
    "batch": (cmd_batch, "run over a dataset (Parquet, CSV, .npy/.npz, images) into Parquet", "", [
        (("input",), {"help": "the dataset: .parquet, .csv, .npy, .npz, or a folder of them or of images"}),
        (("output",), {"help": "the Parquet file to write (bad rows go to OUTPUT's .errors.jsonl)"}),
        (("--batch-size",), {"type": _int_at_least(1), "default": 256, "metavar": "N",
                             "help": "rows per model run (256)"}),
        (("--workers",), {"type": _int_at_least(1), "metavar": "N",
                          "help": "processes (or Ray actors); default: one in this process, "
                                  "more on machines with many cores for big datasets"}),
        (("--runs",), {"type": _int_at_least(1), "metavar": "N",
                       "help": "batches each worker runs at once (threads sharing its "
                               "session); default: its cores over --threads"}),
        (("--threads",), {"type": _int_at_least(1), "metavar": "N",
                          "help": "threads per run; default: 1, or the worker's cores over "
                                  "--runs"}),
        (("--engine",), {"choices": ["local", "ray"], "default": "local",
                         "help": "a process pool here (local), or Ray Data (ray)"}),
        (("--ray-address",), {"metavar": "ADDR", "help": "a Ray cluster (default: start one here)"}),
        (("--gpus-per-worker",), {"type": float, "default": 0, "metavar": "G",
                                  "help": "GPUs Ray reserves for each actor (engine ray)"}),
        (("--column",), {"action": "append", "default": [], "metavar": "NAME=COLUMN",
                         "help": "feed model input NAME from COLUMN (default: same name)"}),
        (("--strict",), {"action": "store_true", "help": "stop at the first bad row"}),
    ]),
    "optimize": (cmd_optimize, "fold, simplify and fuse into standard ops; print before/after",
                 "", [
        (("output",), {"help": "the optimized model file to write"}),
        (("--level",), {"type": int, "default": 2, "choices": [0, 1, 2],
                        "help": "0 copy, 1 clean up, 2 also fold weights and fuse (2)"}),
        (("--passes",), {"metavar": "A,B", "help": "run these passes instead of a level"}),
        (("--target-opset",), {"type": _int_at_least(1), "metavar": "N",
                               "help": "convert to this opset first (fusions into newer ops)"}),
        (("--check",), {"action": "store_true",
                        "help": "run both models on random inputs at two sizes of each "
                                "dynamic dim; fail on a difference"}),
        (("--explain",), {"action": "store_true",
                          "help": "say why fusion patterns that matched in part did not fuse"}),
    ]),
}  # fmt: skip


def parser() -> argparse.ArgumentParser:
    """The argument parser of the ``onyx`` command, one subparser per command."""
    p = argparse.ArgumentParser(
        prog="onyx",
        description="Inspect, convert, run and time ONNX models.",
        epilog="Exit status: 0 done, 1 a failure (one line on stderr), 2 bad arguments.",
    )
    p.add_argument("--version", action="version", version=f"onyx {onyx.__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (func, help_text, epilog, options) in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text, epilog=epilog or None,
                             formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
        cmd.add_argument("model", help="an .onnx file, or sample:NAME for a shipped sample")
        for flags, kwargs in options:
            cmd.add_argument(*flags, **kwargs)
        cmd.set_defaults(func=func, json=False, dim=[], shape=[], input=[], seed=0)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; 0 on success, 1 on a failure, 2 on bad arguments (from argparse).

    A failure prints one line, ``onyx COMMAND: ErrorClass: message``, to stderr (and with
    ``--json`` also ``{"error": {"type", "message"}}`` to stdout); a closed stdout (``| head``)
    ends the command quietly. ``ONYX_DEBUG=1`` shows the traceback of an unexpected error."""
    args = parser().parse_args(argv)
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            return _call(args)
    except BrokenPipeError:
        _silence_stdout()
        return 0
    except KeyboardInterrupt:
        return 130
    except OnyxError as e:
        return _fail(args, type(e).__name__, str(e))
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        return _fail(args, "OnyxError", f"{where}{e.strerror or e}")
    except Exception as e:
        if os.environ.get("ONYX_DEBUG"):
            raise
        return _fail(args, type(e).__name__, f"{e} (an internal error of onyx: please report it; "
                     "ONYX_DEBUG=1 shows the traceback)")  # fmt: skip
    finally:
        for w in caught or []:  # Python's warnings as one line each, without source lines
            try:
                _note(args, f"warning: {' '.join(str(w.message).split())}")
            except OSError:
                break


def _call(args) -> int:
    """The command's own function, with sample:NAME resolved to the sample's path."""
    if args.model.startswith("sample:"):
        from onyx import samples

        try:
            args.model = samples.path(args.model[len("sample:") :])
        except FileNotFoundError as e:
            raise FormatError(str(e)) from None
    return args.func(args) or 0


def _fail(args, kind: str, message: str) -> int:
    message = " ".join(message.split())  # one line
    try:
        sys.stderr.write(f"onyx {args.command}: {kind}: {message}\n")
        if args.json:
            _emit({"error": {"type": kind, "message": message}})
    except BrokenPipeError:
        _silence_stdout()
    return 1


def _silence_stdout() -> None:
    """After the reader of stdout went away: send what is left to /dev/null, not to a traceback."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
