"""The IR: use-def links kept true by the mutation API, sorting, subgraph scopes, paths."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from onnx import TensorProto, helper

import onyx
from onyx.errors import GraphError
from onyx.ir import Graph, Node, Tensor, Value


def _chain():
    x = Value("x")
    a = Node("Relu", [x], name="a")
    b = Node("Neg", [a.outputs[0]], name="b")
    c = Node("Add", [a.outputs[0], b.outputs[0]], name="c")
    g = Graph([x], [c.outputs[0]], [a, b, c], name="g")
    return g, x, a, b, c


def test_construction_links_producers_and_uses():
    g, x, a, b, c = _chain()
    ya = a.outputs[0]
    assert ya.producer is a and ya.index == 0
    assert ya.uses == [(b, 0), (c, 0)]
    assert x.uses == [(a, 0)] and x.producer is None
    assert all(n.graph is g for n in g)


def test_set_input_append_input_and_replace_all_uses_with():
    _g, x, a, b, c = _chain()
    ya, yb = a.outputs[0], b.outputs[0]
    c.set_input(1, x)
    assert yb.uses == [] and x.uses == [(a, 0), (c, 1)]
    c.append_input(yb)
    assert c.inputs == (ya, x, yb) and yb.uses == [(c, 2)]
    c.append_input(None)
    assert c.inputs[3] is None
    ya.replace_all_uses_with(x)
    assert ya.uses == [] and b.inputs == (x,) and c.inputs[0] is x
    assert set(x.uses) == {(a, 0), (b, 0), (c, 0), (c, 1)}


def test_replace_all_uses_with_reaches_graph_outputs():
    g, _x, _a, _b, c = _chain()
    y = c.outputs[0]
    d = g.append(Node("Identity", [y], name="d"))
    y.replace_all_uses_with(d.outputs[0])
    assert g.outputs == [d.outputs[0]]
    assert d.inputs == (d.outputs[0],)  # d's own input moved too: callers re-point it
    d.set_input(0, y)
    assert y.uses == [(d, 0)]


def test_insert_positions_and_double_insert():
    g, x, _a, b, c = _chain()
    d = Node("Identity", [x], name="d")
    g.insert_before(b, d)
    e = Node("Identity", [x], name="e")
    g.insert_after(c, e)
    f = g.insert(0, Node("Identity", [x], name="f"))
    assert [n.name for n in g] == ["f", "a", "d", "b", "c", "e"]
    assert f.graph is g and g.node("d") is d
    with pytest.raises(GraphError):
        g.append(d)
    with pytest.raises(KeyError):
        g.node("missing")


def test_remove_refuses_while_used_and_unlinks_when_done():
    g, x, a, b, c = _chain()
    with pytest.raises(GraphError, match="'a'"):
        g.remove(a)  # its output feeds b and c
    with pytest.raises(GraphError):
        g.remove(c)  # its output is a graph output
    c.set_input(1, x)
    g.remove(b)
    assert b.graph is None and a.outputs[0].uses == [(c, 0)]
    assert b.outputs[0].producer is None
    g.remove(a, safe=False)
    assert x.uses == [(c, 1)] and [n.name for n in g] == ["c"]


def test_a_value_has_one_producer():
    _g, x, a, _b, _c = _chain()
    with pytest.raises(GraphError, match="producer"):
        Node("Relu", [x], [a.outputs[0]])


def test_sort_is_stable_and_finds_cycles():
    x = Value("x")
    p = Node("Relu", [x], name="p")
    q = Node("Neg", [x], name="q")  # independent of p: keeps its place after p
    r = Node("Add", [p.outputs[0], q.outputs[0]], name="r")
    s = Node("Abs", [r.outputs[0]], name="s")
    g = Graph([x], [s.outputs[0]], [s, r, p, q])
    g.sort()
    assert [n.name for n in g] == ["p", "q", "r", "s"]
    g.sort()
    assert [n.name for n in g] == ["p", "q", "r", "s"]
    # make a cycle: p reads s's output
    p.set_input(0, s.outputs[0])
    with pytest.raises(GraphError, match="cycle"):
        g.sort()
    with pytest.raises(GraphError, match="cycle"):
        p.set_input(0, p.outputs[0])
        g.sort()


def _if_model() -> bytes:
    then_g = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["t"], name="inner_add")], "then",
        [], [helper.make_tensor_value_info("t", TensorProto.FLOAT, [2])],
    )  # fmt: skip
    else_g = helper.make_graph(
        [helper.make_node("Neg", ["x"], ["e"], name="inner_neg")], "else",
        [], [helper.make_tensor_value_info("e", TensorProto.FLOAT, [2])],
    )  # fmt: skip
    node = helper.make_node("If", ["cond"], ["y"], name="branch", then_branch=then_g,
                            else_branch=else_g)  # fmt: skip
    graph = helper.make_graph(
        [node], "main",
        [helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
         helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        initializer=[helper.make_tensor("w", TensorProto.FLOAT, [2], [1.0, 2.0])],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)]).SerializeToString()


def test_subgraph_outer_scope_references_are_the_same_value():
    model = onyx.load(_if_model())
    g = model.graph
    x = next(v for v in g.inputs if v.name == "x")
    w = g.initializers["w"]
    branch = g.node("branch")
    then_g, else_g = branch.attribute("then_branch"), branch.attribute("else_branch")
    add, neg = then_g.nodes[0], else_g.nodes[0]
    assert add.inputs[0] is x and add.inputs[1] is w and neg.inputs[0] is x
    assert (add, 0) in x.uses and (neg, 0) in x.uses and (add, 1) in w.uses
    assert then_g.parent is branch and else_g.parent is branch
    assert {n.name for n in g.all_nodes()} == {"branch", "inner_add", "inner_neg"}
    assert onyx.to_bytes(model) == _if_model()


def test_graph_path_names_the_place():
    model = onyx.load(_if_model())
    g = model.graph
    branch = g.node("branch")
    assert g.path() == "main"
    assert branch.attribute("then_branch").path() == "main/branch.then_branch"
    assert branch.attribute("else_branch").path() == "main/branch.else_branch"


def test_initializers_need_data_and_unique_names():
    g = Graph(name="g")
    with pytest.raises(GraphError, match="'w'"):
        g.add_initializer(Value("w"))
    g.add_initializer(Value("w", const_value=Tensor(np.zeros(2, np.float32), "w")))
    with pytest.raises(GraphError, match="twice"):
        g.add_initializer(Value("w", const_value=Tensor(np.zeros(2, np.float32), "w")))


def test_negative_and_empty_dims_are_unknown_and_remembered():
    from onyx.ir import Shape

    s = Shape([-1, 3, "", "N", None])
    assert s.dims == (None, 3, None, "N", None)
    assert dict(s.written) == {0: -1, 2: ""}
    assert str(s) == "[?,3,?,N,?]" and not s.is_static
    # what was written rides beside the dims: equality and hashing see unknown dims only
    same = Shape([None, 3, None, "N", None])
    assert s == same and hash(s) == hash(same) and dict(same.written) == {}
    # a new shape made from the dims (as shape inference makes them) means new dims
    assert dict(Shape(s.dims).written) == {}
    assert dict(dataclasses.replace(s, dims=(4, 3)).written) == {}


def test_dim_denotations_tell_none_from_empty():
    from onyx.ir import Shape

    assert Shape([1, 2], [None, None]).denotations is None
    assert Shape([1, 2], ["", None]).denotations == ("", None)
    assert Shape([1, 2], ["", None]) != Shape([1, 2])


def test_type_presence_notes_do_not_change_equality():
    from onyx.dtypes import DataType
    from onyx.ir import SequenceType, TensorType

    plain = TensorType(DataType.UNDEFINED)
    noted = TensorType(DataType.UNDEFINED, present=frozenset({"-elem_type"}))
    assert plain == noted and hash(plain) == hash(noted) and "present" not in repr(noted)
    assert SequenceType(None) == SequenceType(None, present=frozenset({"elem_type"}))
