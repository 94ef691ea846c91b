"""Rewrites of the IR, one small named pass per idea, composed into levels: ``onyx.optimize``.

    m2 = onyx.optimize(m)                        # a new model; m is left as it was
    m3 = onyx.optimize(m, passes=["dead-code", "constant-folding"])

Every pass edits a model in place and reports whether it changed anything (``PassResult``); a
level repeats its passes until none does (``Fixpoint``, capped). Passes see every graph: the
main graph, subgraphs, and model-local function bodies. The output holds standard operators
only: fusions emit LayerNormalization, Gelu, RMSNormalization and Attention where the model's
opset has them (``target_opset`` upgrades the model first).
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Collection

from onyx.errors import OptionError, PassError
from onyx.ir import Model
from onyx.passes import affine, algebra, basic, fusions, shapefold, transformer
from onyx.passes.core import FOLD_LIMIT, Fixpoint, Options, Pass, PassResult, all_graphs
from onyx.passes.inline import inline_functions
from onyx.passes.rules import Match, Rule, apply_rules

__all__ = [
    "PASSES",
    "Fixpoint",
    "Match",
    "Options",
    "Pass",
    "PassError",
    "PassResult",
    "Rule",
    "apply_rules",
    "optimize",
    "optimize_for_session",
]

#: Every pass by name, in the order a level runs them.
PASSES: dict[str, Pass] = {p.name: p for p in (
    basic.constants_to_initializers,
    algebra.infer,
    shapefold.fold_shapes,
    basic.fold_constants,
    basic.dedupe_initializers,
    algebra.identities,
    algebra.mul_reciprocal,
    algebra.layout_chains,
    algebra.transpose_push,
    affine.fold_affine,
    affine.pad_into_conv,
    affine.matmul_add_to_gemm,
    transformer.sequence_split,
    transformer.gemm_3d,
    fusions.fusions,
    transformer.attention_3d,
    transformer.attention_mask,
    transformer.merge_projections,
    basic.cse,
    basic.dead_code,
    basic.dead_functions,
    basic.drop_node_metadata,
)}  # fmt: skip

#: Passes that make a file no faster to run: only by name, and in the session's own plan.
#: merge-projections: onnxruntime ran the small Llama, Qwen2 and Mistral with their Q/K/V and
#: gate/up GEMMs merged at 1.04-1.05x the originals' time (0.99-1.00x without the merge) and
#: BERT-base no faster (benchmarks/bench_optimize.py --ort); onyx's runtime gains from one
#: wide GEMM.
ON_REQUEST = frozenset({"merge-projections"})

#: Levels: 0 nothing, 1 cleanups that keep every operator, 2 everything else (the default).
LEVELS: dict[int, list[str]] = {
    0: [],
    1: [
        "constant-to-initializer",
        "infer-shapes",
        "shape-folding",
        "constant-folding",
        "identities",
        "dedupe-initializers",
        "common-subexpressions",
        "dead-code",
        "dead-functions",
        "drop-node-metadata",
    ],
    2: [p for p in PASSES if p not in ON_REQUEST],
}


def optimize(model: Model, level: int = 2, passes: list[str] | None = None,
             target_opset: int | None = None, fold_limit: int = FOLD_LIMIT,
             inline: bool = False, counts: collections.Counter | None = None,
             explain: list[str] | None = None,
             progress: Callable[[str | None], None] | None = None) -> Model:  # fmt: skip
    """A smaller model computing the same: folded, simplified and fused into standard ops.

    ``level`` 0 copies, 1 cleans up (folding, identities, dead code, duplicates), 2 also folds
    weights and fuses (the default). ``passes`` names the passes to run instead (see
    ``PASSES``). ``target_opset`` first converts the model to that opset (so fusions into newer
    operators apply). ``fold_limit`` is how many bytes a folded constant may grow past its
    inputs, unless it is a weight (``onyx.passes.basic.is_weight``). ``inline`` inlines
    model-local functions first. ``counts`` receives what was done;
    ``explain``, where a fusion's pattern matched in part, why it did not fuse. ``progress`` is
    called with each pass's name as it starts and with None at the end (the CLI shows a pass
    that runs over a second).
    """
    from onyx.serde import as_model
    from onyx.shapes import clone_model

    model = as_model(model)
    if passes is None:
        if level not in LEVELS:
            raise OptionError(f"optimize: level {level!r} is not one of {sorted(LEVELS)}")
        names = LEVELS[level]
    else:
        unknown = [p for p in passes if p not in PASSES and p != "inline"]
        if unknown:
            raise OptionError(
                f"optimize: unknown pass {unknown[0]!r}; passes are: {', '.join(PASSES)}, inline"
            )
        inline = inline or "inline" in passes
        names = [p for p in passes if p != "inline"]
    legacy = model.ir_version < 4  # (the converter raises the IR version: decide first)
    if target_opset is not None and (model.opset("") or 1) < target_opset:
        from onyx.version_converter import convert_version

        model = convert_version(model, target_opset)
    work = clone_model(model)
    if names and legacy:
        # before IR 4 every initializer had to be listed as an input too: they are constants
        # (what an exporter meant), listed apart from the inputs in IR 4 and later
        g = work.graph
        g.inputs[:] = [v for v in g.inputs if v.name not in g.initializers]
        work.ir_version = max(work.ir_version, 4)
    options = Options(fold_limit=fold_limit, inline=inline, explain=explain, progress=progress)
    options.declared = {v for g in all_graphs(work) for v in g.value_info}
    kept_types = {id(v): v.type for g in all_graphs(work) for v in (*g.inputs, *g.outputs)}
    result = PassResult()
    if inline:
        result.add(inline_functions(work, options))
    if names:
        if "infer-shapes" not in names and any(n in _NEEDS_TYPES for n in names):
            names = ["infer-shapes", *names]
        level_pass = Fixpoint([PASSES[n] for n in names], name=f"optimize level {level}")
        result.add(level_pass(work, options))
    for g in all_graphs(work):
        for v in (*g.inputs, *g.outputs):
            if kept_types.get(id(v)) is not None:  # declared types stay as written
                v.type = kept_types[id(v)]
    if counts is not None:
        counts.update(result.counts)
    if progress is not None:
        progress(None)
    return work


_NEEDS_TYPES = frozenset({"shape-folding", "identities", "layout-chains", "fold-affine",
                          "matmul-add-to-gemm", "fusions", "sequence-split", "gemm-3d",
                          "attention-3d", "attention-mask", "merge-projections"})  # fmt: skip


#: What the runtime's build step runs (graph_optimization_level above 0): the weights folded
#: (Conv/Gemm/BatchNormalization and the per-channel steps after them); and, in graphs with a
#: Softmax, Erf, Tanh, ReduceMean or Sigmoid, the fusions into single operators
#: (LayerNormalization, Gelu, Swish, RMSNormalization, Attention on the 3-D tensors) that the
#: runtime runs as one kernel each, faster than the steps they replace (BERT-base: 12 Gelu and
#: 12 Attention nodes for 120; see benchmarks/bench_models.py). Those need types: shape
#: inference runs first, only then.
SESSION_PASSES = ("constant-folding", "fold-affine", "dead-code")
SESSION_FUSIONS = ("infer-shapes", "shape-folding", "fusions")
#: After an Attention fusion: the head split and merge around it folded into the 3-D form,
#: through the Transpose pairs the fusion leaves (no second inference: the types the fusion
#: kept are enough, and inference knows no operator of a newer opset than the model's); then
#: the Q, K and V projections of one input as one GEMM (BERT-base: 3 of 128x768x768 at about
#: 90 GFLOP/s with OpenBLAS on 2 cores, one of 128x768x2304 at about 155).
SESSION_ATTENTION = (
    "layout-chains",
    "identities",
    "attention-3d",
    "attention-mask",
    "merge-projections",
)
_SESSION_HOSTS = frozenset({"Conv", "ConvTranspose", "Gemm", "BatchNormalization"})
_FUSION_HINTS = frozenset({"Softmax", "Erf", "Tanh", "ReduceMean", "Sigmoid"})
#: The fused operators and the opset that brings each.
_FUSED_SINCE = {rule.emits[1]: rule.emits[2] for rule in fusions.RULES if rule.emits}


def optimize_for_session(model: Model, domain: str | None = None,
                         newer_ops: Collection[str] = ()) -> Model | None:  # fmt: skip
    """A copy of ``model`` for an InferenceSession's plan, or None when no pass applies.

    Initializers that are also graph inputs are treated as constants (every IR version): the
    session runs the unoptimized model when a feed overrides one. Inputs, outputs and their
    order stay as they are.

    With ``domain``, the fusions into the operators named in ``newer_ops`` also apply where
    the model's opset predates the operator (Gelu-20, Attention-23, ... in an opset-18
    export): each such node is put in ``domain``, whose kernels implement the operator's
    standard semantics, so that the rest of the graph keeps the versions of its own opset. The
    copy is the runtime's plan, never a model anyone saves; ``model`` itself is not touched.
    Otherwise fusions apply only where the model's opset has the operator.
    """
    from onyx.shapes import clone_model

    nodes = [n for g in all_graphs(model) for n in g.nodes]
    if any(n.domain == "ai.onnx.preview.training" for n in nodes):
        return None  # Gradient names the values it differentiates: the graph stays as written
    ops = {n.op_type for n in nodes if n.domain in ("", "ai.onnx")}
    folds = not ops.isdisjoint(_SESSION_HOSTS)
    fuses = not ops.isdisjoint(_FUSION_HINTS)
    if not (folds or fuses):
        return None
    work = clone_model(model)
    newer = frozenset(newer_ops) if domain is not None else frozenset()
    options = Options(fold_limit=1 << 62, fixed_initializers=True, newer_ops=newer,
                      copy_shared=True)  # fmt: skip
    options.declared = {v for g in all_graphs(work) for v in g.value_info}
    kept = [n for g in all_graphs(work) for n in g.nodes]  # (alive: their ids stay theirs)
    existing = {id(n) for n in kept}
    done = PassResult()
    for name in SESSION_PASSES[:-1]:  # one round: folding leaves nothing for a second
        done.add(PASSES[name](work, options))
    for name in SESSION_FUSIONS if fuses else ():
        done.add(PASSES[name](work, options))
    for name in SESSION_ATTENTION if done.counts.get("attention") else ():
        PASSES[name](work, options)
    PASSES[SESSION_PASSES[-1]](work, options)  # dead code last
    if domain is not None:
        opset = work.opset("") or 1
        moved = 0
        for g in all_graphs(work):
            for n in g.nodes:
                since = _FUSED_SINCE.get(n.op_type)
                if (
                    since is not None
                    and since > opset
                    and n.op_type in newer
                    and id(n) not in existing
                ):
                    n.domain = domain
                    moved += 1
        if moved:
            work.opset_imports[domain] = 1
    return work
