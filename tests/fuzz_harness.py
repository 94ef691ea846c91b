"""Structure-aware fuzzing of onyx: seeds, mutations and an isolated executor.

A fuzz example is a real model (a seed) with one to three mutations applied, some on the protobuf
(made with the ``onnx`` package, which only tests and benchmarks may use) and some on the
serialized bytes. The bytes go to a worker process that runs load -> check -> infer_shapes ->
InferenceSession -> run under a per-example time limit (SIGALRM, and a hard kill from the
parent) and a memory cap (RLIMIT_AS), with the session's ``allocation_limit`` set well below the
cap. Every stage runs even when an earlier one failed cleanly (a model that fails the checker
still goes through shape inference and the session), so each stage sees every mutation.

An outcome is clean when each stage either succeeded or raised an ``onyx.OnyxError``; anything
else fails: a raw exception, a hang, a crash of the worker, or memory the limit did not stop
(a MemoryError under the cap, or the peak RSS growing past it). A PassError that wraps a raw
exception counts as that exception: the build-time passes wrap whatever they raise, so the wrap
says only that a pass tripped over the model.

Mutators draw their choices from a ``Draw``: ``HypothesisDraw`` in tests/test_fuzz.py (so
hypothesis can replay and shrink) and ``RandomDraw`` in benchmarks/fuzz_campaign.py.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import pickle
import random
import struct
import subprocess
import sys
import traceback
from collections.abc import Callable

import onnx

DATA = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")
MLP = os.path.join(os.path.dirname(__file__), os.pardir, "onyx", "samples", "mlp.onnx")
ONYX_DIR = os.path.realpath(os.path.join(os.path.dirname(__file__), os.pardir, "onyx"))

ALLOCATION_LIMIT = 256 << 20  # the session's allocation_limit in the worker
MEMORY_CAP = 3 << 30  # RLIMIT_AS above the worker's address space after start-up
PEAK_RSS = 2 << 30  # growth of the peak RSS in one example that fails it (vgg19 needs 0.6 GiB)
EXAMPLE_SECONDS = 10.0  # SIGALRM in the worker; the parent kills it 5 s later


# --- seeds ---------------------------------------------------------------------------------
def load_seeds(kinds: tuple[str, ...] = ("node", "simple", "pytorch-converted", "pytorch-operator",
                                         "light", "mlp")) -> list[tuple[str, bytes]]:  # fmt: skip
    """(name, serialized model) for each seed of the given kinds."""
    seeds: list[tuple[str, bytes]] = []
    for kind in kinds:
        if kind == "mlp":
            with open(MLP, "rb") as f:
                seeds.append(("mlp", f.read()))
        elif kind == "node":
            import warnings

            from onnx.backend.test.loader import load_node_model_tests

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cases = load_node_model_tests()
            seeds += [(f"node/{c.name}", c.model.SerializeToString()) for c in cases]
        elif kind == "light":
            for path in sorted(glob.glob(os.path.join(DATA, "light", "light_*.onnx"))):
                with open(path, "rb") as f:
                    seeds.append((f"light/{os.path.basename(path)[:-5]}", f.read()))
        else:
            for path in sorted(glob.glob(os.path.join(DATA, kind, "*", "model.onnx"))):
                with open(path, "rb") as f:
                    seeds.append((f"{kind}/{os.path.basename(os.path.dirname(path))}", f.read()))
    return seeds


# --- where mutators get their choices --------------------------------------------------------
class Draw:
    """The source of a mutator's choices."""

    def int(self, lo: int, hi: int) -> int:
        raise NotImplementedError

    def choice(self, options):
        options = list(options)
        return options[self.int(0, len(options) - 1)]

    def bool(self) -> bool:
        return self.int(0, 1) == 1

    def bytes(self, n: int) -> bytes:
        return bytes(self.int(0, 255) for _ in range(n))


class RandomDraw(Draw):
    def __init__(self, rng: random.Random):
        self.rng = rng

    def int(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)


class HypothesisDraw(Draw):
    def __init__(self, data):
        from hypothesis import strategies as st

        self.data, self.st = data, st

    def int(self, lo: int, hi: int) -> int:
        return self.data.draw(self.st.integers(lo, hi))


# --- mutations -----------------------------------------------------------------------------
INTERESTING = [0, 1, -1, 2, 3, -2, 7, 255, 1 << 16, (1 << 31) - 1, 1 << 31, -(1 << 31), 1 << 32,
               1 << 40, 1 << 62, (1 << 63) - 1, -(1 << 63)]  # fmt: skip
INT32 = [v for v in INTERESTING if -(1 << 31) <= v < (1 << 31)]
FLOATS = [0.0, -0.0, 1.0, -1.0, 0.5, 1e-30, 1e30, 3.4e38, float("inf"), float("-inf"),
          float("nan")]  # fmt: skip
OPS = ["Add", "Abs", "Relu", "MatMul", "Gemm", "Conv", "Reshape", "Transpose", "Concat", "Split",
       "Slice", "Gather", "Expand", "Tile", "Pad", "Resize", "ReduceSum", "ReduceMean", "Softmax",
       "Cast", "Constant", "ConstantOfShape", "Range", "Shape", "Size", "Squeeze", "Unsqueeze",
       "Loop", "If", "Scan", "TopK", "NonZero", "Where", "Einsum", "MaxPool", "AveragePool",
       "BatchNormalization", "LSTM", "GRU", "RNN", "Identity", "Flatten", "OneHot", "Range",
       "SequenceConstruct", "SplitToSequence", "Compress", "ScatterND", "GatherND", "CumSum",
       "DepthToSpace", "Upsample", "NotAnOp", "Dropout", "Trilu", "Col2Im", "DFT",
       "StringNormalizer", "Unique", "Mod", "BitShift", "QuantizeLinear", "DequantizeLinear"]  # fmt: skip


def _int(r: Draw, bits: int = 64) -> int:
    """An integer likely to break something: interesting values and small ones."""
    pool = INTERESTING if bits == 64 else INT32
    return r.choice(pool) if r.bool() else r.int(-4, 16)


def _graphs(model: onnx.ModelProto) -> list[onnx.GraphProto]:
    """The main graph, every subgraph and every function body's nodes (as pseudo-graphs)."""
    found = []

    def walk(g):
        found.append(g)
        for node in g.node:
            for a in node.attribute:
                if a.HasField("g"):
                    walk(a.g)
                for sub in a.graphs:
                    walk(sub)

    walk(model.graph)
    return found


def _nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    nodes = [n for g in _graphs(model) for n in g.node]
    return nodes + [n for f in model.functions for n in f.node]


def _value_infos(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    return [v for g in _graphs(model) for v in (*g.input, *g.output, *g.value_info)]


def _tensors(model: onnx.ModelProto) -> list[onnx.TensorProto]:
    tensors = [t for g in _graphs(model) for t in g.initializer]
    for node in _nodes(model):
        for a in node.attribute:
            if a.HasField("t"):
                tensors.append(a.t)
            tensors.extend(a.tensors)
    return tensors


def _tensor_types(model: onnx.ModelProto) -> list:
    """Every TypeProto.Tensor reachable from value infos (through sequences and optionals)."""
    found = []

    def walk(t):
        kind = t.WhichOneof("value")
        if kind in ("tensor_type", "sparse_tensor_type"):
            found.append(getattr(t, kind))
        elif kind == "sequence_type":
            walk(t.sequence_type.elem_type)
        elif kind == "optional_type":
            walk(t.optional_type.elem_type)
        elif kind == "map_type":
            walk(t.map_type.value_type)

    for v in _value_infos(model):
        walk(v.type)
    return found


def _messages(model: onnx.ModelProto) -> list:
    """Every message in the model (for dropping a field anywhere)."""
    found = []

    def walk(m):
        found.append(m)
        for field, value in m.ListFields():
            if field.type != field.TYPE_MESSAGE:
                continue
            if field.is_repeated:
                if field.message_type.GetOptions().map_entry:
                    continue
                for item in value:
                    walk(item)
            else:
                walk(value)

    walk(model)
    return found


def m_drop_field(model, r: Draw) -> str:
    messages = [m for m in _messages(model) if m.ListFields()]
    m = r.choice(messages)
    field = r.choice([f for f, _ in m.ListFields()])
    if field.is_repeated and r.bool():
        items = getattr(m, field.name)
        index = r.int(0, len(items) - 1)
        del items[index]
        return f"dropped {type(m).__name__}.{field.name}[{index}]"
    m.ClearField(field.name)
    return f"cleared {type(m).__name__}.{field.name}"


def m_dim(model, r: Draw) -> str:
    types = [t for t in _tensor_types(model) if t.HasField("shape")]
    targets = [("type", t) for t in types] + [("tensor", t) for t in _tensors(model) if t.dims]
    if not targets:
        return "no dims"
    kind, t = r.choice(targets)
    if kind == "tensor":
        i = r.int(0, len(t.dims) - 1)
        t.dims[i] = _int(r)
        return f"tensor {t.name!r} dims[{i}] = {t.dims[i]}"
    dims = t.shape.dim
    action = r.int(0, 3)
    if action == 0 or not dims:
        d = dims.add()
        d.dim_value = _int(r)
        return f"added dim {d.dim_value}"
    i = r.int(0, len(dims) - 1)
    if action == 1:
        del dims[i]
        return f"removed dim {i}"
    if action == 2:
        dims[i].dim_param = r.choice(["N", "", "?", "a b"])
        return f"dim {i} = {dims[i].dim_param!r}"
    dims[i].dim_value = _int(r)
    return f"dim {i} = {dims[i].dim_value}"


def m_attribute(model, r: Draw) -> str:
    attrs = [(n, a) for n in _nodes(model) for a in n.attribute]
    if not attrs:
        return "no attributes"
    node, a = r.choice(attrs)
    where = f"{node.op_type}.{a.name}"
    action = r.int(0, 6)
    if action == 0:
        a.i = _int(r)
        return f"{where}.i = {a.i}"
    if action == 1:
        if a.ints and r.bool():
            k = r.int(0, len(a.ints) - 1)
            a.ints[k] = _int(r)
            return f"{where}.ints[{k}] = {a.ints[k]}"
        a.ints.append(_int(r))
        return f"{where}.ints += {a.ints[-1]}"
    if action == 2:
        a.f = r.choice(FLOATS)
        return f"{where}.f = {a.f}"
    if action == 3:
        a.type = r.int(0, 14)
        return f"{where}.type = {a.type}"
    if action == 4:
        a.s = r.choice([b"", b"\xff\xfe", b"NOTSET", b"constant", b"x" * 300])
        return f"{where}.s = {a.s[:10]!r}"
    if action == 5:
        del a.ints[:]
        del a.floats[:]
        return f"{where} emptied lists"
    a.name = r.choice(["", "axis", "to", "perm", "value", "body", "then_branch", "bogus"])
    return f"{where} renamed to {a.name!r}"


def m_elem_type(model, r: Draw) -> str:
    targets = [("type", t) for t in _tensor_types(model)] + [("tensor", t) for t in _tensors(model)]
    if not targets:
        return "no element types"
    kind, t = r.choice(targets)
    value = r.choice([*range(27), -1, 28, 29, 40, 1 << 20])
    if kind == "tensor":
        t.data_type = value
        return f"tensor {t.name!r} data_type = {value}"
    t.elem_type = value
    return f"elem_type = {value}"


def m_rewire(model, r: Draw) -> str:
    nodes = [n for n in _nodes(model) if n.input or n.output]
    if not nodes:
        return "no nodes"
    node = r.choice(nodes)
    names = sorted({x for n in _nodes(model) for x in (*n.input, *n.output)} |
                   {v.name for g in _graphs(model) for v in (*g.input, *g.initializer)})  # fmt: skip
    action = r.int(0, 5)
    if action == 0 and len(node.input) > 1:
        i, j = r.int(0, len(node.input) - 1), r.int(0, len(node.input) - 1)
        node.input[i], node.input[j] = node.input[j], node.input[i]
        return f"{node.op_type}: swapped inputs {i}, {j}"
    if action == 1 and node.input:
        i = r.int(0, len(node.input) - 1)
        node.input[i] = r.choice(["undefined_value", "", *names])
        return f"{node.op_type}: input {i} = {node.input[i]!r}"
    if action == 2 and node.output:
        i = r.int(0, len(node.output) - 1)
        node.output[i] = r.choice(["", *names])
        return f"{node.op_type}: output {i} = {node.output[i]!r}"
    if action == 3:
        node.input.append(r.choice(["", "undefined_value", *names]))
        return f"{node.op_type}: extra input {node.input[-1]!r}"
    if action == 4 and node.output:
        node.output.append(r.choice(["", *names]))
        return f"{node.op_type}: extra output {node.output[-1]!r}"
    g = model.graph
    if len(g.node) > 1:  # reorder: a use before its definition
        i, j = r.int(0, len(g.node) - 1), r.int(0, len(g.node) - 1)
        a, b = onnx.NodeProto(), onnx.NodeProto()
        a.CopyFrom(g.node[i])
        b.CopyFrom(g.node[j])
        g.node[i].CopyFrom(b)
        g.node[j].CopyFrom(a)
        return f"swapped nodes {i}, {j}"
    return "no rewiring"


def m_op_type(model, r: Draw) -> str:
    nodes = _nodes(model)
    if not nodes:
        return "no nodes"
    node = r.choice(nodes)
    old = node.op_type
    if r.int(0, 4) == 0:
        node.domain = r.choice(["ai.onnx.ml", "com.microsoft", "ai.onnx.preview.training", "x"])
        return f"{old}: domain = {node.domain!r}"
    node.op_type = r.choice(OPS)
    return f"op {old} -> {node.op_type}"


def m_opset(model, r: Draw) -> str:
    action = r.int(0, 3)
    if action == 0 and model.opset_import:
        i = r.int(0, len(model.opset_import) - 1)
        model.opset_import[i].version = r.choice([0, 1, 2, 6, 7, 9, 11, 13, 17, 21, 23, 28, 29,
                                                  100, -1, 1 << 40])  # fmt: skip
        return f"opset {model.opset_import[i].domain!r} = {model.opset_import[i].version}"
    if action == 1 and model.opset_import:
        del model.opset_import[r.int(0, len(model.opset_import) - 1)]
        return "dropped an opset import"
    if action == 2:
        model.ir_version = r.choice([0, 1, 3, 7, 10, 11, 14, 15, 100, -1])
        return f"ir_version = {model.ir_version}"
    entry = model.opset_import.add()
    entry.domain = r.choice(["", "ai.onnx", "ai.onnx.ml", "com.x"])
    entry.version = r.choice([1, 13, 21, 1 << 40])
    return f"added opset {entry.domain!r} {entry.version}"


def m_tensor_data(model, r: Draw) -> str:
    tensors = _tensors(model)
    if not tensors:
        return "no tensors"
    t = r.choice(tensors)
    action = r.int(0, 4)
    if action == 0 and t.raw_data:
        cut = r.int(0, len(t.raw_data))
        t.raw_data = t.raw_data[:cut]
        return f"tensor {t.name!r} raw_data cut to {cut}"
    if action == 1:
        t.raw_data = t.raw_data + r.bytes(r.int(1, 9))
        return f"tensor {t.name!r} raw_data grown"
    if action == 2:
        for field in ("float_data", "int32_data", "int64_data", "double_data", "uint64_data"):
            if getattr(t, field):
                del getattr(t, field)[-1]
                return f"tensor {t.name!r} {field} shortened"
        t.int64_data.append(_int(r))
        return f"tensor {t.name!r} int64_data appended"
    if action == 3:
        t.float_data.extend([1.0, 2.0])
        return f"tensor {t.name!r} float_data appended (next to raw_data={bool(t.raw_data)})"
    t.string_data.append(b"\xff")
    return f"tensor {t.name!r} string_data appended"


PROTO_MUTATORS: list[Callable] = [m_drop_field, m_dim, m_attribute, m_elem_type, m_rewire,
                                  m_op_type, m_opset, m_tensor_data]  # fmt: skip


def mutate_bytes(blob: bytes, r: Draw) -> tuple[bytes, str]:
    if not blob:
        return r.bytes(r.int(0, 8)), "random bytes"
    action = r.int(0, 3)
    i = r.int(0, len(blob) - 1)
    if action == 0:
        flipped = blob[i] ^ (1 << r.int(0, 7))
        return blob[:i] + bytes([flipped]) + blob[i + 1 :], f"flipped a bit at {i}"
    if action == 1:
        return blob[:i], f"truncated to {i}"
    if action == 2:
        extra = r.bytes(r.int(1, 8))
        return blob[:i] + extra + blob[i:], f"inserted {len(extra)} bytes at {i}"
    value = r.choice([0x00, 0xFF, 0x7F, 0x80])
    return blob[:i] + bytes([value]) + blob[i + 1 :], f"set byte {i} to {value:#x}"


def mutate(seed: bytes, r: Draw) -> tuple[bytes, list[str]]:
    """The seed with one to three mutations (protobuf-level, bytes-level or both)."""
    model = onnx.ModelProto()
    model.ParseFromString(seed)
    steps = []
    for _ in range(r.int(1, 3)):
        if r.int(0, 5) == 0:
            steps.append("bytes")
        else:
            mutator = r.choice(PROTO_MUTATORS)
            steps.append(mutator.__name__[2:] + ": " + mutator(model, r))
    blob = model.SerializeToString()
    for k, step in enumerate(steps):
        if step == "bytes":
            blob, steps[k] = mutate_bytes(blob, r)
            steps[k] = "bytes: " + steps[k]
    return blob, steps


# --- the outcome of one example ----------------------------------------------------------------
@dataclasses.dataclass
class Outcome:
    status: str  # "ok" (each stage succeeded or raised OnyxError), "raw", "hang", "crash", "memory"
    stage: str = ""
    error: str = ""  # exception type
    frame: str = ""  # the innermost frame inside onyx: file:function
    message: str = ""
    trace: str = ""
    stages: dict = dataclasses.field(default_factory=dict)  # stage -> "ok" | OnyxError type
    wrapped: str = ""  # an ExecutionError caused by a non-onyx exception: its class key

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def key(self) -> str:
        """The failure class: status, exception type and the innermost onyx frame."""
        return f"{self.status} {self.error} at {self.frame} ({self.stage})"

    def report(self) -> str:
        return f"{self.key}: {self.message}\n{self.trace}"


def _onyx_frame(tb) -> str:
    frame = "outside onyx"
    for summary in traceback.extract_tb(tb):
        path = os.path.realpath(summary.filename)
        if path.startswith(ONYX_DIR):
            frame = f"{os.path.relpath(path, os.path.dirname(ONYX_DIR))}:{summary.name}"
    return frame


class _Timeout(BaseException):
    """Raised by SIGALRM in the worker (a BaseException, so no `except Exception` hides it)."""


def _feeds(session):
    """Inputs for every fed input: declared type and shape, symbolic dims as 2; None where the
    harness cannot make one (the run stage is then skipped)."""
    import numpy as np

    import onyx
    from onyx import dtypes
    from onyx.ir import TensorType

    feeds = {}
    rng = np.random.default_rng(0)
    for value in session._feeds:
        t = value.type
        if not isinstance(t, TensorType) or t.dtype is None or t.shape is None:
            return None
        shape = [d if isinstance(d, int) else 2 for d in t.shape.dims]
        if any(d < 0 for d in shape) or np.prod(shape, dtype=float) > 1 << 20:
            return None
        try:
            dtype = dtypes.to_numpy(t.dtype)
        except onyx.OnyxError:
            return None
        if dtype == object:
            feeds[value.name] = np.full(shape, "a", dtype=object)
        elif dtype == bool:
            feeds[value.name] = rng.random(shape) > 0.5
        else:
            feeds[value.name] = (rng.random(shape) * 4 - 1).astype(dtype)
    return feeds


def run_example(blob: bytes, limit: int = ALLOCATION_LIMIT) -> Outcome:
    """Load, check, infer shapes, build a session and run it; report the first raw failure."""
    import onyx
    from onyx.errors import OnyxError, PassError

    stages: dict[str, str] = {}
    wrapped = ""

    def stage(name, fn):
        nonlocal wrapped
        try:
            result = fn()
            stages[name] = "ok"
            return result
        except onyx.OnyxError as e:
            stages[name] = type(e).__name__
            cause = e.__cause__
            if isinstance(cause, MemoryError):
                raise
            if isinstance(e, PassError) and cause is not None and not isinstance(cause, OnyxError):
                raise cause  # a pass tripped over the model: the pass's raw error is the defect
            if cause is not None and not isinstance(cause, onyx.OnyxError) and not wrapped:
                wrapped = f"{type(cause).__name__} at {_onyx_frame(cause.__traceback__)} ({name})"
            return None

    current = "load"
    try:
        model = stage("load", lambda: onyx.load(blob))
        if model is None:
            return Outcome("ok", stages=stages)
        current = "check"
        stage("check", lambda: onyx.check(model))
        current = "infer_shapes"
        stage("infer_shapes", lambda: onyx.infer_shapes(model))
        current = "session"
        options = onyx.SessionOptions(allocation_limit=limit)
        session = stage("session", lambda: onyx.InferenceSession(blob, options))
        if session is not None:
            current = "run"
            try:
                feeds = _feeds(session)
            except Exception:  # noqa: BLE001  (the harness's own limits, not onyx's)
                feeds = None
            if feeds is None:
                stages["run"] = "skipped"
            else:
                stage("run", lambda: session.run(None, feeds))
    except _Timeout as e:
        return Outcome("hang", current, "Timeout", _onyx_frame(e.__traceback__),
                       f"over {EXAMPLE_SECONDS} s", traceback.format_exc(limit=-8), stages)  # fmt: skip
    except (MemoryError, onyx.OnyxError) as e:  # an OnyxError here was caused by MemoryError
        return Outcome("memory", current, type(e).__name__, _onyx_frame(e.__traceback__),
                       str(e)[:300], traceback.format_exc(limit=-8), stages)  # fmt: skip
    except RecursionError as e:
        return Outcome("raw", current, "RecursionError", _onyx_frame(e.__traceback__),
                       str(e)[:300], "", stages)  # fmt: skip
    except Exception as e:  # noqa: BLE001  (what the fuzzing looks for)
        return Outcome("raw", current, type(e).__name__, _onyx_frame(e.__traceback__),
                       str(e)[:300], traceback.format_exc(limit=-8), stages)  # fmt: skip
    return Outcome("ok", stages=stages, wrapped=wrapped)


# --- the worker process ---------------------------------------------------------------------------
def _worker_main() -> None:
    import resource
    import signal
    import warnings

    warnings.simplefilter("ignore")  # shape inference warns about contradicting declarations

    channel_in = os.fdopen(os.dup(0), "rb")
    channel_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed goes to stderr, not into the channel
    import numpy  # noqa: F401

    import onyx
    from onyx.runtime import session  # noqa: F401  (imports the kernels before the cap)

    run_example(onnx_free_seed())  # warm up (imports done lazily inside onyx)
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    cap = vm + MEMORY_CAP
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    def alarm(*_):
        raise _Timeout()

    signal.signal(signal.SIGALRM, alarm)
    del onyx
    while True:
        header = channel_in.read(8)
        if len(header) < 8:
            return
        (n,) = struct.unpack("<Q", header)
        blob = channel_in.read(n)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        signal.setitimer(signal.ITIMER_REAL, EXAMPLE_SECONDS)
        try:
            outcome = run_example(blob)
        except _Timeout:  # fired between the stages' handlers
            outcome = Outcome("hang", "", "Timeout", "", f"over {EXAMPLE_SECONDS} s")
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - peak
        if outcome.ok and grown > PEAK_RSS:  # this example set a new peak, far above the last
            outcome = Outcome("memory", "", "PeakRSS", "", f"peak RSS grew by {grown >> 20} MiB",
                              "", outcome.stages)  # fmt: skip
        data = pickle.dumps(outcome)
        channel_out.write(struct.pack("<Q", len(data)) + data)
        channel_out.flush()
        if outcome.status == "memory":
            return  # the parent starts a fresh worker (peak RSS only grows)


def onnx_free_seed() -> bytes:
    """The sample MLP's bytes (the worker warms up on it without importing onnx)."""
    with open(MLP, "rb") as f:
        return f.read()


class Worker:
    """A child process that runs examples; restarted after a hang, a crash or a memory failure."""

    def __init__(self, stderr_path: str | None = None):
        self.stderr_path = stderr_path
        self.proc: subprocess.Popen | None = None

    def _start(self) -> None:
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
                   NUMBA_NUM_THREADS="1", PYTHONPATH=os.path.dirname(os.path.abspath(__file__)))  # fmt: skip
        self._warm = False
        command = [sys.executable, "-c", "import fuzz_harness; fuzz_harness._worker_main()"]
        with open(self.stderr_path or os.devnull, "ab") as stderr:  # the child keeps its copy
            self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=stderr, env=env)  # fmt: skip

    def execute(self, blob: bytes) -> Outcome:
        import select

        if self.proc is None or self.proc.poll() is not None:
            self._start()
        proc = self.proc
        try:
            proc.stdin.write(struct.pack("<Q", len(blob)) + blob)
            proc.stdin.flush()
        except BrokenPipeError:
            return self._died()
        deadline = EXAMPLE_SECONDS + 5 + (60 if not getattr(self, "_warm", False) else 0)
        ready, _, _ = select.select([proc.stdout], [], [], deadline)
        if not ready:
            self.close()
            return Outcome("hang", "", "Timeout", "", f"no answer in {deadline} s (killed)")
        header = proc.stdout.read(8)
        if len(header) < 8:
            return self._died()
        (n,) = struct.unpack("<Q", header)
        outcome = pickle.loads(proc.stdout.read(n))
        self._warm = True
        if outcome.status == "memory":
            proc.wait(timeout=30)
            self.proc = None
        return outcome

    def _died(self) -> Outcome:
        code = self.proc.wait(timeout=30)
        self.proc = None
        return Outcome("crash", "", f"exit {code}", "", "the worker died")

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
