"""Broken models that only shape inference can reject: one defect each, built in code.

``CORPUS`` is a table of (id, build, expected fragment of the error). ``build()`` returns an
``onnx.ModelProto`` that passes onyx's structural checks (schemas, types, scoping) and carries one
contradiction that ``onyx.check(model, full=True)`` must report, naming the node. The fragments
spell the node as the checker does: ``node 'name' (Op) in graph 'path'``.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

F, I64, I32, B = TensorProto.FLOAT, TensorProto.INT64, TensorProto.INT32, TensorProto.BOOL
A = helper.make_node


def vi(name, shape=(2, 3), elem=F):
    return helper.make_tensor_value_info(name, elem, shape)


def const(name, values, dtype=np.int64):
    return numpy_helper.from_array(np.asarray(values, dtype), name)


def model(nodes, inputs, outputs, inits=(), value_info=(), opset=21) -> onnx.ModelProto:
    """A model of one graph named 'g'; inputs/outputs are value infos or (name, shape[, elem])."""
    ins = [x if isinstance(x, onnx.ValueInfoProto) else vi(*x) for x in inputs]
    outs = [x if isinstance(x, onnx.ValueInfoProto) else vi(*x) for x in outputs]
    g = helper.make_graph(nodes, "g", ins, outs, initializer=list(inits),
                          value_info=list(value_info))  # fmt: skip
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)


def unary(op, x_shape=(2, 3), out=None, opset=21, out_type=F, **attrs):
    """``y = op(x)`` with the node named 'n' and y's shape left to inference."""
    return model([A(op, ["x"], ["y"], name="n", **attrs)], [("x", x_shape)],
                 [("y", out, out_type)], opset=opset)  # fmt: skip


def binary(op, a, b, out=None, opset=21, out_type=F, **attrs):
    return model([A(op, ["a", "b"], ["y"], name="n", **attrs)], [("a", a), ("b", b)],
                 [("y", out, out_type)], opset=opset)  # fmt: skip


def with_const(op, x_shape, name, values, dtype=np.int64, opset=21, out=None, **attrs):
    """``y = op(x, <constant input>)``: an initializer fed as the second input."""
    return model([A(op, ["x", name], ["y"], name="n", **attrs)], [("x", x_shape)], [("y", out)],
                 inits=[const(name, values, dtype)], opset=opset)  # fmt: skip


def conv(x, w, b=None, op="Conv", **attrs):
    inputs = ["x", "w"] + (["b"] if b is not None else [])
    ins = [("x", x), ("w", w)] + ([("b", b)] if b is not None else [])
    return model([A(op, inputs, ["y"], name="n", **attrs)], ins, [("y", None)])


def if_model(then_outs, else_outs, node_outs=("y",), then_nodes=(), else_nodes=()):
    """x, c -> If(c); each branch returns the listed value infos (computed by its nodes)."""
    then = helper.make_graph(list(then_nodes), "then", [], list(then_outs))
    other = helper.make_graph(list(else_nodes), "else", [], list(else_outs))
    node = A("If", ["c"], list(node_outs), name="n", then_branch=then, else_branch=other)
    return model([node], [("x", (2, 3)), ("c", (), B)], [(o, None) for o in node_outs])


def loop_model(body_inputs, body_outputs, body_nodes, carried=("v",), outputs=("v_final",)):
    body = helper.make_graph(body_nodes, "body", body_inputs, body_outputs)
    node = A("Loop", ["trip", "cond", *carried], list(outputs), name="n", body=body)
    return model([node], [("trip", (), I64), ("cond", (), B)] + [(v, (2,)) for v in carried],
                 [(o, None) for o in outputs])  # fmt: skip


def _loop_body(iter_type=I64, v_out_type=F, n_in=3, n_out=2):
    ins = [vi("i", (), iter_type), vi("c_in", (), B), vi("v_in", (2,))][:n_in]
    src = "v_in" if n_in == 3 else "v"  # without its input, the body reads the outer value
    nodes = [A("Identity", ["c_in"], ["c_out"], name="cond_id")]
    if v_out_type == F:
        nodes.append(A("Relu", [src], ["v_out"], name="step"))
    else:
        nodes.append(A("Cast", [src], ["v_out"], name="step", to=v_out_type))
    outs = [vi("c_out", (), B), vi("v_out", (2,), v_out_type), vi("extra", (2,))][:n_out]
    if n_out > 2:
        nodes.append(A("Neg", [src], ["extra"], name="extra_step"))
    return loop_model(ins, outs, nodes)


def scan_model(n_body_in=2, n_body_out=2, **attrs):
    ins = [vi("s_in", (2,)), vi("x_t", (2,)), vi("spare", (2,))][:n_body_in]
    outs = [vi("s_out", (2,)), vi("y_t", (2,)), vi("more", (2,))][:n_body_out]
    nodes = [A("Add", ["s_in", "x_t"], ["s_out"], name="acc"),
             A("Identity", ["s_out"], ["y_t"], name="emit")]  # fmt: skip
    if n_body_out > 2:
        nodes.append(A("Neg", ["s_out"], ["more"], name="more_step"))
    body = helper.make_graph(nodes, "body", ins, outs)
    node = A("Scan", ["s0", "xs"], ["s_final", "ys"], name="n", body=body, num_scan_inputs=1,
             **attrs)  # fmt: skip
    return model([node], [("s0", (2,)), ("xs", (5, 2))], [("s_final", None), ("ys", None)])


def rnn(**attrs):
    nodes = [A("RNN", ["x", "w", "r"], ["y"], name="n", hidden_size=4, **attrs)]
    return model(nodes, [("x", (1, 2, 3)), ("w", (1, 4, 3)), ("r", (1, 4, 4))], [("y", None)])


N = "node 'n' ({}) in graph 'g': "


def at(op: str, text: str) -> str:
    return N.format(op) + text


# (id, build, expected fragment). One defect each; every model passes the structural checks.
CORPUS = [
    # operands that cannot be multiplied or broadcast
    ("add-no-broadcast", lambda: binary("Add", (2, 3), (4,)), at("Add", "dims [3, 4] do not broadcast")),
    ("mul-no-broadcast", lambda: binary("Mul", (2, 3, 4), (5, 4)), at("Mul", "dims [3, 5] do not broadcast")),
    ("sub-no-broadcast", lambda: binary("Sub", (3,), (2, 4)), at("Sub", "dims [3, 4] do not broadcast")),
    ("pow-no-broadcast", lambda: binary("Pow", (2, 3), (2,)), at("Pow", "dims [2, 3] do not broadcast")),
    ("equal-no-broadcast", lambda: binary("Equal", (6,), (5,), out=(6,), out_type=B),
     at("Equal", "dims [5, 6] do not broadcast")),
    ("where-no-broadcast", lambda: model(
        [A("Where", ["c", "a", "b"], ["y"], name="n")], [("c", (4,), B), ("a", (3,)), ("b", (3,))],
        [("y", None)]), at("Where", "dims [3, 4] do not broadcast")),
    ("sum-no-broadcast", lambda: model(
        [A("Sum", ["a", "b", "c"], ["y"], name="n")], [("a", (2,)), ("b", (2,)), ("c", (3,))],
        [("y", None)]), at("Sum", "dims [2, 3] do not broadcast")),
    ("matmul-inner-dims", lambda: binary("MatMul", (2, 3), (4, 5)), at("MatMul", "inner dims 3 and 4 differ")),
    ("matmul-vector-inner-dims", lambda: binary("MatMul", (3,), (4, 5)), at("MatMul", "inner dims 3 and 4 differ")),
    ("matmul-batch-dims", lambda: binary("MatMul", (2, 3, 4), (5, 4, 6)), at("MatMul", "dims [2, 5] do not broadcast")),
    ("matmul-scalar", lambda: binary("MatMul", (), (3,)), at("MatMul", "MatMul of a scalar")),
    ("gemm-inner-dims", lambda: binary("Gemm", (2, 3), (4, 5)), at("Gemm", "inner dims differ")),
    ("gemm-transposed-inner-dims", lambda: binary("Gemm", (2, 3), (5, 4), transB=1),
     at("Gemm", "inner dims differ: A is [2, 3] and B^T is [4, 5] (3 != 4)")),
    ("gemm-rank", lambda: binary("Gemm", (2, 3, 4), (4, 5)), at("Gemm", "input A has rank 3")),
    ("gemm-bias", lambda: model(
        [A("Gemm", ["a", "b", "c"], ["y"], name="n")], [("a", (2, 3)), ("b", (3, 5)), ("c", (3,))],
        [("y", None)]), at("Gemm", "input C of shape [3] does not broadcast to the product's shape [2, 5]")),
    ("expand-no-broadcast", lambda: with_const("Expand", (3,), "shape", [2, 4]),
     at("Expand", "dims [3, 4] do not broadcast")),
    ("conv-channels", lambda: conv((1, 3, 8, 8), (4, 2, 3, 3)),
     at("Conv", "input X has 3 channels but weight W takes 2 per group x group 1 = 2")),
    ("conv-group-channels", lambda: conv((1, 4, 8, 8), (4, 1, 3, 3), group=2),
     at("Conv", "input X has 4 channels but weight W takes 1 per group x group 2 = 2")),
    ("conv-group-outputs", lambda: conv((1, 4, 8, 8), (3, 2, 3, 3), group=2),
     at("Conv", "weight W has 3 output channels, not a multiple of group 2")),
    ("conv-ranks", lambda: conv((1, 3, 8), (4, 3, 3, 3)), at("Conv", "input X has rank 3 but weight W has rank 4")),
    ("conv-bias", lambda: conv((1, 3, 8, 8), (4, 3, 3, 3), b=(5,)), at("Conv", "bias B has shape [5]; expected [4]")),
    ("conv-kernel-shape", lambda: conv((1, 3, 8, 8), (4, 3, 3, 3), kernel_shape=[5, 5]),
     at("Conv", "attribute kernel_shape=[5, 5] differs from weight W's spatial dims [3, 3]")),
    ("conv-pads-length", lambda: conv((1, 3, 8, 8), (4, 3, 3, 3), pads=[1, 1]),
     at("Conv", "attribute pads has 2 values; expected 4")),
    ("conv-strides-length", lambda: conv((1, 3, 8, 8), (4, 3, 3, 3), strides=[1, 1, 1]),
     at("Conv", "attribute strides has 3 values for 2 spatial dims")),
    ("conv-transpose-channels", lambda: conv((1, 3, 8, 8), (4, 2, 3, 3), op="ConvTranspose"),
     at("ConvTranspose", "input X has 3 channels but weight W has 4 input channels")),
    ("maxpool-kernel-rank", lambda: unary("MaxPool", (1, 3, 8, 8), kernel_shape=[2]),
     at("MaxPool", "attribute kernel_shape has 1 values for 2 spatial dims")),
    ("avgpool-input-rank", lambda: unary("AveragePool", (3, 8), kernel_shape=[2]),
     at("AveragePool", "input X has rank 2")),
    ("batchnorm-scale", lambda: model(
        [A("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], name="n")],
        [("x", (2, 3, 4)), ("s", (4,)), ("b", (3,)), ("m", (3,)), ("v", (3,))], [("y", None)]),
     at("BatchNormalization", "input scale has shape [4]; expected [3]")),
    ("instancenorm-bias", lambda: model(
        [A("InstanceNormalization", ["x", "s", "b"], ["y"], name="n")],
        [("x", (2, 3, 4)), ("s", (3,)), ("b", (2,))], [("y", None)]),
     at("InstanceNormalization", "input B has shape [2]; expected [3]")),
    ("concat-dims", lambda: binary("Concat", (2, 3), (4, 4), axis=0), at("Concat", "dims [3, 4] differ")),
    ("concat-ranks", lambda: binary("Concat", (2, 3), (2,), axis=0), at("Concat", "inputs of different ranks")),
    ("reshape-count", lambda: with_const("Reshape", (2, 3), "shape", [4, 2]),
     at("Reshape", "cannot reshape 6 elements (shape [2, 3]) into shape [4, 2] (8 elements)")),
    ("reshape-infer-count", lambda: with_const("Reshape", (2, 3), "shape", [4, -1]),
     at("Reshape", "cannot reshape 6 elements (shape [2, 3]) into [4, -1]")),
    ("reshape-two-minus-ones", lambda: with_const("Reshape", (2, 3), "shape", [-1, -1]),
     at("Reshape", "shape [-1, -1] has more than one -1")),
    ("reshape-copies-missing-dim", lambda: with_const("Reshape", (6,), "shape", [1, 0]),
     at("Reshape", "shape [1, 0] copies dim 1 (a 0), but the input has rank 1")),
    ("split-sizes", lambda: model(
        [A("Split", ["x", "s"], ["a", "b"], name="n", axis=1)], [("x", (2, 5))],
        [("a", None), ("b", None)], inits=[const("s", [2, 2])]),
     at("Split", "split sizes [2, 2] add up to 4, but dim 1 of the input is 5")),
    ("split-count", lambda: model(
        [A("Split", ["x", "s"], ["a", "b"], name="n", axis=1)], [("x", (2, 5))],
        [("a", None), ("b", None)], inits=[const("s", [1, 1, 3])]),
     at("Split", "split gives 3 sizes for 2 outputs")),
    ("squeeze-non-unit", lambda: with_const("Squeeze", (2, 3), "axes", [0]),
     at("Squeeze", "axis 0 has size 2; only dims of size 1 can be squeezed")),
    ("tile-repeats", lambda: with_const("Tile", (2, 3), "repeats", [2]),
     at("Tile", "repeats has 1 entries for an input of rank 2")),
    ("pad-length", lambda: with_const("Pad", (2, 3), "pads", [0, 0]),
     at("Pad", "pads has 2 values; expected 4")),
    ("einsum-rank", lambda: binary("Einsum", (2, 3, 4), (3, 5), equation="ij,jk->ik"),
     at("Einsum", "operand 0 of equation 'ij,jk->ik' names 2 dims, but input 0 has rank 3")),
    ("gather-elements-rank", lambda: model(
        [A("GatherElements", ["x", "i"], ["y"], name="n")], [("x", (2, 3)), ("i", (2,), I64)],
        [("y", None)]), at("GatherElements", "data has rank 2 but indices rank 1")),
    ("scatter-nd-depth", lambda: model(
        [A("ScatterND", ["x", "i", "u"], ["y"], name="n")],
        [("x", (2, 3)), ("i", (1, 3), I64), ("u", (1,))], [("y", None)]),
     at("ScatterND", "indices address 3 dims, but data has rank 2")),
    ("scatter-elements-updates", lambda: model(
        [A("ScatterElements", ["x", "i", "u"], ["y"], name="n")],
        [("x", (2, 3)), ("i", (1, 2), I64), ("u", (1, 3))], [("y", None)]),
     at("ScatterElements", "indices of shape [1, 2] and updates of shape [1, 3] differ")),
    # declared shapes and types that contradict inferred ones
    ("declared-output-shape", lambda: unary("Relu", (2, 3), out=(3, 2)),
     at("Relu", "value 'y': inferred type float[2,3] contradicts the declared float[3,2]")),
    ("declared-output-rank", lambda: unary("Relu", (2, 3), out=(6,)), at("Relu", "value 'y': inferred type float[2,3] contradicts the declared float[6] (ranks differ)")),
    ("declared-value-info-shape", lambda: model(
        [A("Relu", ["x"], ["h"], name="n"), A("Neg", ["h"], ["y"], name="neg")], [("x", (2, 3))],
        [("y", None)], value_info=[vi("h", (2, 4))]), at("Relu", "value 'h': inferred type")),
    ("declared-value-info-dtype", lambda: model(
        [A("Cast", ["x"], ["h"], name="n", to=I32), A("Cast", ["h"], ["y"], name="back", to=F)],
        [("x", (2, 3))], [("y", None)], value_info=[vi("h", (2, 3), I64)]),
     at("Cast", "value 'h': inferred type int32[2,3] contradicts the declared int64[2,3]")),
    ("declared-shape-output", lambda: model(
        [A("Shape", ["x"], ["y"], name="n")], [("x", (2, 3))], [("y", (3,), I64)]),
     at("Shape", "value 'y': inferred type int64[2] contradicts the declared int64[3]")),
    ("declared-branch-output", lambda: if_model(
        [vi("t", (5,))], [vi("x", (2, 3))], then_nodes=[A("Relu", ["x"], ["t"], name="r")]),
     "node 'r' (Relu) in graph 'g/n.then_branch': value 't': inferred type float[2,3] contradicts"),
    # attributes out of range
    ("softmax-axis", lambda: unary("Softmax", axis=2), at("Softmax", "attribute axis 2 is out of range for an input of rank 2")),
    ("logsoftmax-axis", lambda: unary("LogSoftmax", axis=-3), at("LogSoftmax", "attribute axis -3 is out of range")),
    ("hardmax-axis", lambda: unary("Hardmax", axis=7), at("Hardmax", "attribute axis 7 is out of range")),
    ("flatten-axis", lambda: unary("Flatten", axis=3), at("Flatten", "attribute axis 3 is out of range for an input of rank 2 (expected -2..2)")),
    ("lp-normalization-axis", lambda: unary("LpNormalization", axis=2), at("LpNormalization", "attribute axis 2 is out of range")),
    ("gather-axis", lambda: with_const("Gather", (2, 3), "i", [0], axis=-3), at("Gather", "attribute axis -3 is out of range")),
    ("concat-axis", lambda: binary("Concat", (2, 3), (2, 3), axis=2), at("Concat", "attribute axis 2 is out of range")),
    ("argmax-axis", lambda: unary("ArgMax", axis=5, out_type=I64), at("ArgMax", "attribute axis 5 is out of range")),
    ("topk-axis", lambda: model(
        [A("TopK", ["x", "k"], ["v", "i"], name="n", axis=2)], [("x", (2, 3))],
        [("v", None), ("i", None, I64)], inits=[const("k", [1])]), at("TopK", "attribute axis 2 is out of range")),
    ("split-axis", lambda: model(
        [A("Split", ["x"], ["a", "b"], name="n", axis=2, num_outputs=2)], [("x", (2, 4))],
        [("a", None), ("b", None)]), at("Split", "attribute axis 2 is out of range")),
    ("layernorm-axis", lambda: model(
        [A("LayerNormalization", ["x", "s"], ["y"], name="n", axis=4)], [("x", (2, 3)), ("s", (3,))],
        [("y", None)]), at("LayerNormalization", "attribute axis 4 is out of range")),
    ("cumsum-axis", lambda: with_const("CumSum", (2, 3), "axis", 3), at("CumSum", "axis 3 is out of range")),
    ("compress-axis", lambda: model(
        [A("Compress", ["x", "m"], ["y"], name="n", axis=2)], [("x", (2, 3)), ("m", (2,), B)],
        [("y", None)]), at("Compress", "attribute axis 2 is out of range")),
    ("onehot-axis", lambda: model(
        [A("OneHot", ["i", "d", "v"], ["y"], name="n", axis=3)], [("i", (4,), I64)], [("y", None)],
        inits=[const("d", 5), const("v", [0.0, 1.0], np.float32)]), at("OneHot", "axis 3 is out of range")),
    ("reduce-axes-attribute", lambda: unary("ReduceSum", opset=11, axes=[3]), at("ReduceSum", "axis 3 is out of range")),
    ("reduce-axes-input", lambda: with_const("ReduceMean", (2, 3), "axes", [-4], opset=18),
     at("ReduceMean", "axis -4 is out of range")),
    ("unsqueeze-axes-repeat", lambda: with_const("Unsqueeze", (2, 3), "axes", [0, 0]),
     at("Unsqueeze", "axes [0, 0] repeat an axis")),
    ("unsqueeze-axis", lambda: with_const("Unsqueeze", (2, 3), "axes", [5]), at("Unsqueeze", "axis 5 is out of range for rank 3")),
    ("slice-axes", lambda: model(
        [A("Slice", ["x", "s", "e", "a"], ["y"], name="n")], [("x", (2, 3))], [("y", None)],
        inits=[const("s", [0]), const("e", [1]), const("a", [3])]), at("Slice", "axis 3 is out of range")),
    ("transpose-perm-repeat", lambda: unary("Transpose", perm=[0, 0]),
     at("Transpose", "attribute perm=[0, 0] is not a permutation of 0..1")),
    ("transpose-perm-length", lambda: unary("Transpose", perm=[0, 2, 1]),
     at("Transpose", "attribute perm=[0, 2, 1] has 3 entries for an input of rank 2")),
    ("reverse-sequence-axes", lambda: model(
        [A("ReverseSequence", ["x", "l"], ["y"], name="n", batch_axis=2, time_axis=0)],
        [("x", (2, 3, 4)), ("l", (3,), I64)], [("y", None)]),
     at("ReverseSequence", "batch_axis=2 and time_axis=0; expected 0 and 1")),
    ("gather-nd-batch-dims", lambda: model(
        [A("GatherND", ["x", "i"], ["y"], name="n", batch_dims=2)], [("x", (2, 3)), ("i", (2, 1), I64)],
        [("y", None)]), at("GatherND", "batch_dims=2 must be less than the ranks")),
    ("mvn-axes", lambda: unary("MeanVarianceNormalization", (2, 3, 4), axes=[0, 3]),
     at("MeanVarianceNormalization", "axis 3 is out of range")),
    # unknown enum values
    ("cast-to-unknown", lambda: unary("Cast", to=99, out=None), at("Cast", "attribute to=99 names no element type")),
    ("cast-to-undefined", lambda: unary("Cast", to=0), at("Cast", "attribute to=0 names no element type")),
    ("random-dtype-not-allowed", lambda: model(
        [A("RandomNormal", [], ["y"], name="n", shape=[2], dtype=I32)], [], [("y", None)]),
     at("RandomNormal", "attribute dtype=6 (int32) gives output 0 a type RandomNormal does not allow")),
    ("eyelike-dtype-unknown", lambda: unary("EyeLike", (3, 3), dtype=77), at("EyeLike", "attribute dtype=77 names no element type")),
    ("conv-auto-pad", lambda: conv((1, 3, 8, 8), (4, 3, 3, 3), auto_pad="SAME"),
     at("Conv", "attribute auto_pad='SAME' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID")),
    ("maxpool-auto-pad", lambda: unary("MaxPool", (1, 3, 8, 8), kernel_shape=[2, 2], auto_pad="same_upper"),
     at("MaxPool", "attribute auto_pad='same_upper' is not one of")),
    ("resize-mode", lambda: model(
        [A("Resize", ["x", "", "", "sz"], ["y"], name="n", mode="bicubic")], [("x", (1, 1, 2, 2))],
        [("y", None)], inits=[const("sz", [1, 1, 4, 4])]), at("Resize", "attribute mode='bicubic' is not one of")),
    ("resize-coordinate-mode", lambda: model(
        [A("Resize", ["x", "", "", "sz"], ["y"], name="n", coordinate_transformation_mode="corners")],
        [("x", (1, 1, 2, 2))], [("y", None)], inits=[const("sz", [1, 1, 4, 4])]),
     at("Resize", "attribute coordinate_transformation_mode='corners' is not one of")),
    ("pad-mode", lambda: with_const("Pad", (2, 3), "pads", [0, 0, 1, 1], mode="mirror"),
     at("Pad", "attribute mode='mirror' is not one of constant, reflect, edge, wrap")),
    ("rnn-direction", lambda: rnn(direction="backward"), at("RNN", "attribute direction='backward' is not one of")),
    ("depth-to-space-mode", lambda: unary("DepthToSpace", (1, 4, 2, 2), blocksize=2, mode="RDC"),
     at("DepthToSpace", "attribute mode='RDC' is not one of DCR, CRD")),
    ("gelu-approximate", lambda: unary("Gelu", approximate="erf"), at("Gelu", "attribute approximate='erf' is not one of none, tanh")),
    ("scatter-reduction", lambda: model(
        [A("ScatterElements", ["x", "i", "u"], ["y"], name="n", reduction="sum")],
        [("x", (2, 3)), ("i", (1, 3), I64), ("u", (1, 3))], [("y", None)]),
     at("ScatterElements", "attribute reduction='sum' is not one of")),
    # subgraphs that do not fit their operator
    ("if-branch-output-counts", lambda: if_model(
        [vi("x", (2, 3)), vi("x", (2, 3))], [vi("x", (2, 3))]),
     at("If", "then_branch has 2 outputs but else_branch 1")),
    ("if-node-output-count", lambda: if_model([vi("x", (2, 3))], [vi("x", (2, 3))], node_outs=("y", "z")),
     at("If", "the branches have 1 outputs but the node 2")),
    ("if-branch-types", lambda: if_model(
        [vi("t", None)], [vi("e", None, I64)], then_nodes=[A("Relu", ["x"], ["t"], name="r")],
        else_nodes=[A("Cast", ["x"], ["e"], name="cast", to=I64)]),
     at("If", "output 0 is tensor(float) in then_branch but tensor(int64) in else_branch")),
    ("loop-body-inputs", lambda: _loop_body(n_in=2), at("Loop", "body has 2 inputs; expected 2 + 1")),
    ("loop-body-outputs", lambda: _loop_body(n_out=3), at("Loop", "body has 3 outputs; expected 1 + 1")),
    ("loop-carried-type", lambda: _loop_body(v_out_type=I64),
     at("Loop", "loop-carried value 0 enters as tensor(float) but the body returns tensor(int64)")),
    ("loop-iteration-input-type", lambda: _loop_body(iter_type=F),
     at("Loop", "input 'i' of subgraph 'g/n.body' is declared float[], but the operator passes int64[]")),
    ("scan-body-inputs", lambda: scan_model(n_body_in=3), at("Scan", "body has 3 inputs; expected 1 state + 1 scan inputs")),
    ("scan-body-outputs", lambda: scan_model(n_body_out=3), at("Scan", "body has 3 outputs but the node 2")),
    ("scan-input-axes", lambda: scan_model(scan_input_axes=[0, 0]), at("Scan", "attribute scan_input_axes has 2 values; expected 1")),
]  # fmt: skip
