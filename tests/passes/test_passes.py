"""onyx.optimize: each pass and fusion on small models, positive and negative cases.

Every optimized model is checked (onyx's full check and onnx's) and run by onnxruntime beside
the input model on the same feeds.
"""

from __future__ import annotations

import collections
import math

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import onyx
from onyx.build import GraphBuilder
from onyx.passes import PASSES, Fixpoint, Options, PassResult, optimize

RNG = np.random.default_rng(7)


def f32(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def ops(model) -> collections.Counter:
    return collections.Counter(n.op_type for n in model.graph.nodes)


def run(model, feeds):
    session = ort.InferenceSession(onyx.to_bytes(model), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def optimized(model, feeds_list, rtol=1e-5, **kwargs):
    """optimize(model), checked, with the same outputs as ``model`` on every feed dict."""
    out = optimize(model, **kwargs)
    onyx.check(out, full=True)
    onnx.checker.check_model(onnx.load_from_string(bytes(onyx.to_bytes(out))), full_check=True)
    for feeds in feeds_list:
        for want, got in zip(run(model, feeds), run(out, feeds)):
            assert want.shape == got.shape and want.dtype == got.dtype
            scale = max(1.0, float(np.abs(want.astype(np.float64)).max()))
            np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64),
                                       rtol=0, atol=rtol * scale)  # fmt: skip
    again = optimize(out, **kwargs)  # optimizing an optimized model changes nothing
    assert ops(again) == ops(out)
    assert len(again.graph.initializers) == len(out.graph.initializers)
    return out


# --- infrastructure ---------------------------------------------------------------------------
def test_fixpoint_raises_a_pass_error_when_the_cap_is_hit():
    class Flip:
        name = "always-changes"

        def __call__(self, model, options):
            return PassResult(True)

    g = GraphBuilder(opset=21)
    g.output(g.op.Relu(g.input("x", "float", [2])), "y")
    with pytest.raises(onyx.PassError, match="always-changes.*no fixed point after 3 rounds"):
        Fixpoint([Flip()], rounds=3)(g.model(), Options())


def test_unknown_pass_and_level_are_option_errors():
    g = GraphBuilder(opset=21)
    g.output(g.op.Relu(g.input("x", "float", [2])), "y")
    with pytest.raises(onyx.OptionError, match="unknown pass 'nope'"):
        optimize(g.model(), passes=["nope"])
    with pytest.raises(onyx.OptionError, match="level 7"):
        optimize(g.model(), level=7)


def test_the_input_model_is_left_as_it_was():
    g = GraphBuilder(opset=21)
    x = g.input("x", "float", [2, 3])
    g.output(g.op.Relu(g.op.Identity(g.op.Add(x, np.zeros(3, np.float32)))), "y")
    model = g.model()
    out = optimize(model)
    assert list(ops(model).elements()) == ["Add", "Identity", "Relu"]
    assert ops(out) == {"Relu": 1}


# --- basic passes -----------------------------------------------------------------------------
def test_dead_code_constant_folding_and_dedupe():
    g = GraphBuilder(opset=21)
    x = g.input("x", "float", ["N", 4])
    w1 = g.op.Transpose(np.arange(12, dtype=np.float32).reshape(4, 3).T.copy())  # folds
    w2 = g.initializer("w2", np.arange(12, dtype=np.float32).reshape(4, 3))  # same bytes
    g.op.Exp(x)  # read by nobody
    y = g.op.Add(g.op.MatMul(x, w1), g.op.MatMul(x, w2))
    g.output(y, "y")
    out = optimized(g.model(), [{"x": f32(2, 4)}, {"x": f32(5, 4)}])
    assert sum(ops(out).values()) == 2 and "Exp" not in ops(out)  # folded, deduped, merged
    assert len(out.graph.initializers) == 1
    assert out.graph.inputs[0].type.shape.dims == ("N", 4)


def test_folding_never_grows_past_the_limit():
    g = GraphBuilder(opset=21)
    x = g.input("x", "float", [1000, 100])
    big = g.op.ConstantOfShape(np.array([1000, 100], np.int64), value=np.ones(1, np.float32))
    g.output(g.op.Add(x, big), "y")
    small = optimize(g.model(), fold_limit=1024)
    assert "ConstantOfShape" in ops(small)
    assert sum(v.const_value.numpy().nbytes for v in small.graph.initializers.values()) < 1024
    assert "ConstantOfShape" not in ops(optimize(g.model(), fold_limit=1 << 20))


def test_common_subexpressions_merge_but_different_attributes_do_not():
    g = GraphBuilder(opset=21)
    x = g.input("x", "float", [2, 6])
    a, b = g.op.Softmax(x, axis=1), g.op.Softmax(x, axis=1)
    c = g.op.Softmax(x, axis=0)
    g.output(g.op.Add(g.op.Add(a, b), c), "y")
    out = optimized(g.model(), [{"x": f32(2, 6)}])
    assert ops(out)["Softmax"] == 2


@pytest.mark.parametrize("build, gone", [
    (lambda g, x: g.op.Add(x, np.zeros((1, 3), np.float32)), "Add"),
    (lambda g, x: g.op.Mul(np.ones(3, np.float32), x), "Mul"),
    (lambda g, x: g.op.Cast(x, to=1), "Cast"),
    (lambda g, x: g.op.Transpose(x, perm=[0, 1]), "Transpose"),
    (lambda g, x: g.op.Reshape(x, np.array([0, 3], np.int64)), "Reshape"),
    (lambda g, x: g.op.Expand(x, np.array([1, 1], np.int64)), "Expand"),
    (lambda g, x: g.op.Pad(x, np.zeros(4, np.int64)), "Pad"),
    (lambda g, x: g.op.Slice(x, np.array([0], np.int64), np.array([2**62], np.int64)), "Slice"),
    (lambda g, x: g.op.Dropout(x), "Dropout"),
    (lambda g, x: g.op.Identity(x), "Identity"),
])  # fmt: skip
def test_identities_are_removed(build, gone):
    g = GraphBuilder(opset=21)
    x = g.input("x", "float", ["N", 3])
    g.output(g.op.Relu(build(g, x)), "y")
    out = optimized(g.model(), [{"x": f32(2, 3)}, {"x": f32(4, 3)}])
    assert gone not in ops(out)


def test_an_add_of_zeros_that_broadcasts_up_stays():
    g = GraphBuilder(opset=21)
    x = g.input("x", "float", ["N", 3])
    g.output(g.op.Add(x, np.zeros((2, 1, 3), np.float32)), "y")
    out = optimized(g.model(), [{"x": f32(4, 3)}])
    assert ops(out) == {"Add": 1}


def test_logic_with_a_neutral_constant_is_removed_unless_it_broadcasts_up():
    """x and true, true and x, x or false, x xor false are x; an And with a (2, 1, 3) block of
    trues makes x's result bigger and stays (the exporters' causal masks: And with new_ones)."""
    g = GraphBuilder(opset=21)
    x = g.input("x", "bool", ["N", 3])
    y = g.op.And(np.ones((1, 3), bool), g.op.And(x, np.array(True)))
    y = g.op.Xor(g.op.Or(y, np.zeros(3, bool)), np.array([False]))
    g.output(g.op.Not(y), "y")
    g.output(g.op.And(x, np.ones((2, 1, 3), bool)), "z")
    feeds = [{"x": RNG.random((n, 3)) > 0.5} for n in (2, 5)]
    out = optimized(g.model(), feeds)
    assert ops(out) == {"Not": 1, "And": 1}


def test_a_product_by_a_reciprocal_becomes_a_division():
    """T5's RMS normalization as exported: x * Reciprocal(Sqrt(mean(x^2) + eps)), either
    order; a Reciprocal read twice stays (dividing twice would not remove it)."""
    g = GraphBuilder(opset=18)
    x = g.input("x", "float", ["N", 8])
    ms = g.op.Add(g.op.ReduceMean(g.op.Mul(x, x), np.array([-1], np.int64)), np.float32(1e-6))
    g.output(g.op.Mul(x, g.op.Reciprocal(g.op.Sqrt(ms))), "y")
    g.output(g.op.Mul(g.op.Reciprocal(ms), x), "z")  # (the output keeps its name)
    shared = g.op.Reciprocal(g.op.Abs(x))
    g.output(g.op.Add(g.op.Mul(shared, f32(8)), shared), "w")
    feeds = [{"x": f32(n, 8)} for n in (2, 5)]
    out = optimized(g.model(), feeds)
    assert ops(out)["Div"] == 2 and ops(out)["Reciprocal"] == 1
    assert [v.name for v in out.graph.outputs] == ["y", "z", "w"]


def test_unsqueezes_of_one_unsqueeze_merge_when_every_reader_can():
    g = GraphBuilder(opset=21)
    x = g.input("x", "float", ["N"])
    u = g.op.Unsqueeze(x, np.array([0], np.int64))  # (1, N)
    g.output(g.op.Unsqueeze(u, np.array([1], np.int64)), "a")  # (1, 1, N)
    g.output(g.op.Unsqueeze(u, np.array([-1], np.int64)), "b")  # (1, N, 1)
    v = g.op.Unsqueeze(x, np.array([0], np.int64))
    g.output(g.op.Unsqueeze(v, np.array([2], np.int64)), "c")
    g.output(g.op.Relu(v), "d")  # v stays for this reader: its Unsqueeze reader stays too
    feeds = [{"x": f32(n)} for n in (3, 6)]
    out = optimized(g.model(), feeds)
    assert ops(out) == {"Unsqueeze": 4, "Relu": 1}
    assert [n.inputs[0].name for n in out.graph.nodes if n.op_type == "Unsqueeze"].count("x") == 3


def test_slices_of_one_slice_along_other_axes_merge_when_every_reader_can():
    """Swin's patch merging: x[:, 0::2, 0::2], x[:, 0::2, 1::2], ... as Slice of a Slice. Where
    a reader cuts the same axis again the pair stays."""
    g = GraphBuilder(opset=18)
    x = g.input("x", "float", ["N", 6, 6, 4])

    def i64(*v):
        return np.array(v, np.int64)

    big = 2**62
    rows = g.op.Slice(x, i64(0), i64(big), i64(1), i64(2))
    for start in (0, 1):
        g.output(g.op.Slice(rows, i64(start), i64(big), i64(-2), i64(2)), f"y{start}")
    other = g.op.Slice(x, i64(1), i64(big), i64(1), i64(2))
    g.output(g.op.Slice(other, i64(0), i64(2), i64(2)), "z0")  # (axes and steps by default: 0)
    g.output(g.op.Slice(other, i64(1), i64(big), i64(1)), "z1")  # axis 1 again
    feeds = [{"x": f32(n, 6, 6, 4)} for n in (1, 3)]
    out = optimized(g.model(), feeds)
    assert ops(out) == {"Slice": 5}
    assert sum(n.inputs[0].name == "x" for n in out.graph.nodes) == 3


def test_torch_exports_notes_on_the_graph_and_values_go_and_other_metadata_stays():
    g = GraphBuilder(opset=21)
    x = g.input("x", "float", [2])
    g.output(g.op.Relu(x), "y")
    model = g.model()
    model.metadata_props["author"] = "me"
    model.graph.metadata_props.update({"pkg.torch.export.ExportedProgram.graph_signature": "p",
                                       "purpose": "demo"})  # fmt: skip
    model.graph.inputs[0].metadata_props["pkg.torch.export.graph_signature.InputSpec.kind"] = "U"
    out = optimized(model, [{"x": f32(2)}])
    assert out.graph.metadata_props == {"purpose": "demo"}
    assert out.graph.inputs[0].metadata_props == {} and out.metadata_props == {"author": "me"}


def test_a_graph_output_keeps_its_name_when_its_node_is_bypassed():
    g = GraphBuilder(opset=21)
    x = g.input("x", "float", [2])
    g.output(g.op.Identity(g.op.Relu(x)), "y")
    out = optimized(g.model(), [{"x": f32(2)}])
    assert [v.name for v in out.graph.outputs] == ["y"] and ops(out) == {"Relu": 1}


def test_transpose_and_reshape_chains_merge():
    g = GraphBuilder(opset=21)
    x = g.input("x", "float", [2, 3, 4])
    t = g.op.Transpose(g.op.Transpose(x, perm=[1, 0, 2]), perm=[2, 0, 1])
    r = g.op.Reshape(g.op.Reshape(t, np.array([6, 4], np.int64)), np.array([4, 6], np.int64))
    g.output(r, "y")
    out = optimized(g.model(), [{"x": f32(2, 3, 4)}])
    assert ops(out) == {"Transpose": 1, "Reshape": 1}


# --- shape bookkeeping ------------------------------------------------------------------------
def test_shape_chains_become_reshape_targets_and_dynamic_dims_keep_their_names():
    g = GraphBuilder(opset=21)
    x = g.input("x", "float", ["batch", "seq", 8])
    s = g.op.Shape(x)
    b = g.op.Unsqueeze(g.op.Gather(s, np.array(0, np.int64), axis=0), np.array([0], np.int64))
    n = g.op.Unsqueeze(g.op.Gather(s, np.array(1, np.int64), axis=0), np.array([0], np.int64))
    target = g.op.Concat(b, n, np.array([2, 4], np.int64), axis=0)
    g.output(g.op.Reshape(x, target), "y", "float", ["batch", "seq", 2, 4])
    feeds = [{"x": f32(2, 3, 8)}, {"x": f32(1, 5, 8)}]
    out = optimized(g.model(), feeds)
    assert ops(out) == {"Reshape": 1}
    (shape,) = [v.const_value.numpy() for v in out.graph.initializers.values()]
    assert shape.tolist() == [0, 0, 2, 4]
    assert out.graph.inputs[0].type.shape.dims == ("batch", "seq", 8)
    assert out.graph.outputs[0].type.shape.dims == ("batch", "seq", 2, 4)


# --- weights folding --------------------------------------------------------------------------
def test_batchnorm_mul_add_fold_into_conv():
    g = GraphBuilder(opset=21)
    x = g.input("x", "float", [1, 3, 8, 8])
    y = g.op.Conv(x, f32(4, 3, 3, 3), f32(4), pads=[1, 1, 1, 1])
    y = g.op.BatchNormalization(y, f32(4), f32(4), f32(4), np.abs(f32(4)) + 0.5)
    y = g.op.Add(f32(1, 4, 1, 1), g.op.Mul(y, f32(4, 1, 1)))
    g.output(g.op.Relu(y), "y")
    out = optimized(g.model(), [{"x": f32(1, 3, 8, 8)}], rtol=1e-5)
    assert ops(out) == {"Conv": 1, "Relu": 1}


def test_a_scaling_read_twice_does_not_fold():
    g = GraphBuilder(opset=21)
    x = g.input("x", "float", [1, 3, 8, 8])
    c = g.op.Conv(x, f32(4, 3, 1, 1))
    g.output(g.op.Mul(c, f32(4, 1, 1)), "y")
    g.output(g.op.Relu(c), "z")  # the Conv's result is read elsewhere too
    out = optimized(g.model(), [{"x": f32(1, 3, 8, 8)}])
    assert ops(out) == {"Conv": 1, "Mul": 1, "Relu": 1}


def test_batchnorm_mul_add_chain_folds_into_the_batchnorm_and_gemm_takes_a_scaling():
    g = GraphBuilder(opset=21)
    x = g.input("x", "float", [2, 4, 5, 5])
    y = g.op.BatchNormalization(x, f32(4), f32(4), f32(4), np.abs(f32(4)) + 0.5)
    y = g.op.Add(g.op.Mul(y, f32(4, 1, 1)), f32(4, 1, 1))
    g.output(y, "y")
    a = g.input("a", "float", [3, 6])
    z = g.op.Mul(g.op.Gemm(a, f32(6, 5), f32(5)), f32(5))
    g.output(z, "z")
    out = optimized(g.model(), [{"x": f32(2, 4, 5, 5), "a": f32(3, 6)}])
    assert ops(out) == {"BatchNormalization": 1, "Gemm": 1}


def test_pad_folds_into_conv_and_matmul_add_becomes_gemm():
    g = GraphBuilder(opset=21)
    x = g.input("x", "float", [1, 2, 6, 6])
    p = g.op.Pad(x, np.array([0, 0, 1, 2, 0, 0, 1, 2], np.int64))
    g.output(g.op.Conv(p, f32(3, 2, 3, 3)), "y")
    a = g.input("a", "float", [4, 6])
    g.output(g.op.Add(g.op.MatMul(a, f32(6, 5)), f32(5)), "z")
    out = optimized(g.model(), [{"x": f32(1, 2, 6, 6), "a": f32(4, 6)}])
    assert ops(out) == {"Conv": 1, "Gemm": 1}


def test_a_reflect_pad_stays():
    g = GraphBuilder(opset=21)
    x = g.input("x", "float", [1, 2, 6, 6])
    p = g.op.Pad(x, np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), mode="reflect")
    g.output(g.op.Conv(p, f32(3, 2, 3, 3)), "y")
    assert ops(optimized(g.model(), [{"x": f32(1, 2, 6, 6)}])) == {"Pad": 1, "Conv": 1}


# --- fusions ----------------------------------------------------------------------------------
def _gelu_erf(g, x, half=0.5):
    erf = g.op.Erf(g.op.Div(x, np.array(math.sqrt(2), np.float32)))
    return g.op.Mul(g.op.Mul(x, g.op.Add(erf, np.array(1, np.float32))),
                    np.array(half, np.float32))  # fmt: skip


def test_gelu_erf_fuses_at_opset_20_and_not_below():
    for opset, fused in ((20, True), (18, False)):
        g = GraphBuilder(opset=opset)
        x = g.input("x", "float", ["N", 8])
        g.output(_gelu_erf(g, x), "y")
        out = optimized(g.model(), [{"x": f32(3, 8)}])
        assert (ops(out) == {"Gelu": 1}) is fused


def test_gelu_with_a_wrong_constant_or_a_wrong_edge_does_not_fuse():
    g = GraphBuilder(opset=20)
    x, z = g.input("x", "float", [3, 8]), g.input("z", "float", [3, 8])
    g.output(_gelu_erf(g, x, half=0.25), "y")
    erf = g.op.Erf(g.op.Div(z, np.array(math.sqrt(2), np.float32)))  # erf of another value
    g.output(g.op.Mul(g.op.Mul(x, g.op.Add(erf, np.array(1, np.float32))),
                      np.array(0.5, np.float32)), "w")  # fmt: skip
    out = optimized(g.model(), [{"x": f32(3, 8), "z": f32(3, 8)}])
    assert "Gelu" not in ops(out)


def test_gelu_tanh_fuses_and_a_shared_inner_value_blocks_it():
    def model(leak: bool):
        g = GraphBuilder(opset=20)
        x = g.input("x", "float", [3, 8])
        cube = g.op.Pow(x, np.array(3, np.float32))
        inner = g.op.Mul(g.op.Add(x, g.op.Mul(cube, np.array(0.044715, np.float32))),
                         np.array(math.sqrt(2 / math.pi), np.float32))  # fmt: skip
        t = g.op.Add(g.op.Tanh(inner), np.array(1, np.float32))
        g.output(g.op.Mul(g.op.Mul(x, np.array(0.5, np.float32)), t), "y")
        if leak:
            g.output(g.op.Relu(cube), "cube")
        return g.model()

    assert ops(optimized(model(False), [{"x": f32(3, 8)}])) == {"Gelu": 1}
    assert "Gelu" not in ops(optimized(model(True), [{"x": f32(3, 8)}]))


def _layer_norm(g, x, axes):
    mean = g.op.ReduceMean(x, np.array(axes, np.int64))
    d = g.op.Sub(x, mean)
    var = g.op.ReduceMean(g.op.Pow(d, np.array(2, np.float32)), np.array([-1], np.int64))
    n = g.op.Div(d, g.op.Sqrt(g.op.Add(var, np.array(1e-5, np.float32))))
    return g.op.Add(g.op.Mul(n, f32(8)), f32(8))


def test_layer_norm_fuses_only_over_one_axis():
    g = GraphBuilder(opset=18)
    x = g.input("x", "float", ["N", 8])
    g.output(_layer_norm(g, x, [-1]), "y")
    assert ops(optimized(g.model(), [{"x": f32(4, 8)}], rtol=1e-4)) == {"LayerNormalization": 1}
    g = GraphBuilder(opset=18)
    x = g.input("x", "float", ["N", 8])
    g.output(_layer_norm(g, x, [0]), "y")  # the mean over another axis
    assert "LayerNormalization" not in ops(optimized(g.model(), [{"x": f32(4, 8)}]))


def test_rms_norm_fuses_at_opset_23():
    g = GraphBuilder(opset=23)
    x = g.input("x", "float", ["N", 8])
    ms = g.op.ReduceMean(g.op.Pow(x, np.array(2, np.float32)), np.array([-1], np.int64))
    r = g.op.Reciprocal(g.op.Sqrt(g.op.Add(ms, np.array(1e-6, np.float32))))
    g.output(g.op.Mul(g.op.Mul(x, r), f32(8)), "y")
    out = optimized(g.model(), [{"x": f32(4, 8)}], rtol=1e-4)
    assert ops(out) == {"RMSNormalization": 1}


def test_rms_norm_without_a_scale_fuses_with_a_unit_weight():
    g = GraphBuilder(opset=23)
    x = g.input("x", "float", ["N", 8])
    ms = g.op.ReduceMean(g.op.Mul(x, x), np.array([-1], np.int64))
    g.output(g.op.Div(x, g.op.Sqrt(g.op.Add(ms, np.array(1e-6, np.float32)))), "y")
    out = optimized(g.model(), [{"x": f32(4, 8)}], rtol=1e-4)
    assert ops(out) == {"RMSNormalization": 1}


def _rotary(g, x, cos, sin, halves=((4, 8), (0, 4))):
    """x·cos + concat(-x[..., a:b], x[..., c:d])·sin, the rotate-half form exporters write."""
    (a, b), (c, d) = halves
    axis, step = np.array([-1], np.int64), np.array([1], np.int64)
    second = g.op.Slice(x, np.array([a], np.int64), np.array([b], np.int64), axis, step)
    first = g.op.Slice(x, np.array([c], np.int64), np.array([d], np.int64), axis, step)
    rotated = g.op.Concat(g.op.Neg(second), first, axis=-1)
    return g.op.Add(g.op.Mul(x, cos), g.op.Mul(rotated, sin))


def _tables(seq=5, dim=8, equal_halves=True):
    angles = RNG.uniform(0, 6, (1, 1, seq, dim // 2)).astype(np.float32)
    full = np.concatenate([angles, angles if equal_halves else angles + 0.5], axis=-1)
    return np.cos(full), np.sin(full)


def test_rotary_embedding_fuses_from_the_rotate_half_pattern():
    g = GraphBuilder(opset=23)
    x = g.input("x", "float", [2, 3, 5, 8])
    g.output(_rotary(g, x, *_tables()), "y")
    out = optimized(g.model(), [{"x": f32(2, 3, 5, 8)}], rtol=1e-5)
    assert ops(out) == {"RotaryEmbedding": 1}


@pytest.mark.parametrize("case", ["unequal halves", "halves swapped", "opset 22"])
def test_rotary_embedding_with_a_wrong_table_edge_or_opset_does_not_fuse(case):
    g = GraphBuilder(opset=22 if case == "opset 22" else 23)
    x = g.input("x", "float", [2, 3, 5, 8])
    tables = _tables(equal_halves=case != "unequal halves")
    halves = ((0, 4), (4, 8)) if case == "halves swapped" else ((4, 8), (0, 4))
    g.output(_rotary(g, x, *tables, halves=halves), "y")
    assert "RotaryEmbedding" not in ops(optimized(g.model(), [{"x": f32(2, 3, 5, 8)}]))


def _attention(g, q, k, v, mask, scale=0.125, perm=(0, 1, 3, 2)):
    s = g.op.Mul(g.op.MatMul(q, g.op.Transpose(k, perm=list(perm))), np.asarray(scale, np.float32))
    p = g.op.Softmax(g.op.Add(s, mask), axis=-1)
    guarded = g.op.Where(g.op.IsNaN(p), np.array(0, np.float32), p)
    return g.op.MatMul(guarded, v)


def test_attention_fuses_from_the_exported_pattern_with_a_mask_and_nan_guard():
    g = GraphBuilder(opset=23)
    q, k, v = (g.input(n, "float", [1, 2, "S", 4]) for n in "qkv")
    mask = g.input("mask", "float", [1, 1, "S", "S"])
    g.output(_attention(g, q, k, v, mask), "y")
    feeds = [{n: f32(1, 2, s, 4) for n in "qkv"} | {"mask": f32(1, 1, s, s)} for s in (3, 6)]
    out = optimized(g.model(), feeds, rtol=1e-4)
    assert ops(out) == {"Attention": 1}


def test_attention_with_a_scale_per_head_does_not_fuse():
    g = GraphBuilder(opset=23)
    q, k, v = (g.input(n, "float", [1, 2, 4, 4]) for n in "qkv")
    mask = g.input("mask", "float", [1, 1, 4, 4])
    g.output(_attention(g, q, k, v, mask, scale=np.array([0.1, 0.2], np.float32).reshape(
        1, 2, 1, 1)), "y")  # fmt: skip
    feeds = [{n: f32(1, 2, 4, 4) for n in "qkv"} | {"mask": f32(1, 1, 4, 4)}]
    assert "Attention" not in ops(optimized(g.model(), feeds))


def test_target_opset_upgrades_first_so_gelu_fuses():
    g = GraphBuilder(opset=18)
    x = g.input("x", "float", ["N", 8])
    g.output(_gelu_erf(g, x), "y")
    out = optimized(g.model(), [{"x": f32(3, 8)}], target_opset=20)
    assert ops(out) == {"Gelu": 1} and out.opset("") == 20


# --- subgraphs and functions ------------------------------------------------------------------
def test_passes_reach_into_subgraphs():
    def branch(name):
        b = GraphBuilder(opset=21, name=name)
        y = b.op.Identity(b.op.Add(outer, np.zeros(2, np.float32)))
        b.output(y, f"{name}_out")
        return b.graph

    g = GraphBuilder(opset=21)
    outer = g.input("x", "float", [2])
    cond = g.input("c", "bool", [])
    g.output(g.op.If(cond, then_branch=branch("then"), else_branch=branch("else")), "y",
             "float", [2])  # fmt: skip
    model = g.model()
    out = optimize(model)
    onyx.check(out, full=True)
    for sub in out.graph.nodes[0].subgraphs():
        assert len(sub.nodes) <= 1  # Add of zeros and Identity gone (an output keeps one)
    for c in (True, False):
        feeds = {"x": f32(2), "c": np.array(c)}
        np.testing.assert_array_equal(run(model, feeds)[0], run(out, feeds)[0])


def _model_with_function():
    body = GraphBuilder(opset=21, name="f")
    a = body.input("a")
    body.output(body.op.Relu(body.op.Identity(body.op.Mul(a, np.array(1, np.float32)))), "r")
    fgraph = body.graph
    fgraph.initializers.clear()  # function bodies hold Constants, not initializers
    one = next(n for n in fgraph.nodes if n.op_type == "Mul")
    c = onyx.ir.Value("one")
    fgraph.insert(0, onyx.ir.Node("Constant", [], [c], {"value": onyx.ir.Tensor(
        np.array(1, np.float32))}))  # fmt: skip
    one.set_input(1, c)
    fn = onyx.ir.Function("local", "F", fgraph, opset_imports={"": 21})
    g = GraphBuilder(opset=21, opsets={"local": 1})
    x = g.input("x", "float", [3])
    g.output(g.op("local", "F", x), "y", "float", [3])
    model = g.model()
    model.functions[fn.id] = fn
    return model


def test_passes_reach_into_functions_and_inline_on_request():
    model = _model_with_function()
    out = optimized(model, [{"x": f32(3)}])
    body = next(iter(out.functions.values())).graph
    assert [n.op_type for n in body.nodes] == ["Relu"]
    inlined = optimized(model, [{"x": f32(3)}], passes=["inline", "identities", "dead-code",
                                                        "dead-functions"])  # fmt: skip
    assert ops(inlined) == {"Relu": 1} and not inlined.functions


def test_every_pass_has_a_name_and_runs_alone():
    g = GraphBuilder(opset=21)
    x = g.input("x", "float", ["N", 4])
    g.output(g.op.Relu(g.op.Add(x, np.zeros(4, np.float32))), "y", "float", ["N", 4])
    for name in PASSES:
        optimized(g.model(), [{"x": f32(2, 4)}], passes=[name])


def test_cli_optimize_prints_the_table_and_checks(tmp_path, capsys):
    from onyx.cli import main

    g = GraphBuilder(opset=21)
    x = g.input("x", "float", ["N", 4])
    g.output(g.op.Relu(g.op.Identity(g.op.Add(x, np.zeros(4, np.float32)))), "y", "float",
             ["N", 4])  # fmt: skip
    src, dst = tmp_path / "in.onnx", tmp_path / "out.onnx"
    onyx.save(g.model(), src)
    assert main(["optimize", str(src), str(dst), "--check"]) == 0
    text = capsys.readouterr().out
    assert "nodes" in text and "check: outputs agree" in text
    assert ops(onyx.load(dst)) == {"Relu": 1}
    assert main(["optimize", str(src), str(dst), "--passes", "nope"]) == 1
