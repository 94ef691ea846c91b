"""Printing for reading: big tensors abbreviated, long symbolic dims aliased; full text intact."""

from __future__ import annotations

import numpy as np

import onyx
from onyx.text import parse_model, print_graph, print_model

LONG = "floor(floor((height + 2*pad - 3)/2 + 1)/2 + 1)"


def _model() -> onyx.ir.Model:
    weights = ", ".join(str(i) for i in range(100))
    constant = ", ".join(str(i) for i in range(40))
    text = f'''<ir_version: 10, opset_import: ["" : 21]>
    g (float["{LONG}", 8] x, float[N] small) => (float["{LONG}", 8] y, float[N] z)
        <float[100,1] w = {{{weights}}}> {{
        c = Constant <value = float[40] {{{constant}}}> ()
        y = Add (x, w)
        z = Identity (small)
    }}'''
    return parse_model(text)


def test_big_tensors_show_a_few_elements_and_their_count():
    m = _model()
    text = print_model(m, max_elements=16)
    assert "{0.0, 1.0, 2.0, 3.0, ... 100 elements}" in text  # the initializer
    assert "{0.0, 1.0, 2.0, 3.0, ... 40 elements}" in text  # the Constant's attribute
    assert "99.0" not in text and "39.0" not in text
    full = print_model(m, max_elements=100)  # at the limit: all elements
    assert "99.0" in full and "... 100 elements" not in full and "... 40 elements" not in full
    assert "{... 100 elements}" in print_model(m, max_elements=0)


def test_long_symbolic_dims_get_an_alias_listed_once():
    text = print_model(_model(), max_elements=16)
    assert text.count(LONG) == 1  # only in the alias line at the top
    assert text.startswith(f"# s0 = {LONG}\n")
    assert "float[s0,8] x" in text and "float[s0,8] y" in text
    assert "float[N] small" in text  # short dims stay as they are


def test_alias_avoids_dims_named_like_aliases():
    m = _model()
    m.graph.inputs[1].type = onyx.ir.TensorType(onyx.DataType.FLOAT, onyx.ir.Shape(["s0"]))
    text = print_model(m, max_elements=16)
    assert text.startswith(f"# s1 = {LONG}\n") and "float[s0] small" in text


def test_full_printing_round_trips_and_str_abbreviates():
    m = _model()
    full = print_model(m)  # the default: every element, parseable
    assert LONG in full and "99.0" in full and "#" not in full
    assert print_model(parse_model(full)) == full
    assert str(m) == print_model(m, max_elements=16)
    assert "... 100 elements" in str(m)
    assert "... 100 elements" in str(m.graph) and "... 100 elements" not in print_graph(m.graph)


def test_abbreviated_text_still_parses_when_only_dims_are_aliased():
    m = _model()
    m.graph.nodes.remove(m.graph.nodes[0])  # the Constant
    m.graph.initializers["w"].const_value = onyx.ir.Tensor(np.zeros((1, 1), np.float32), name="w")
    text = print_model(m, max_elements=16)
    again = parse_model(text)  # the alias comment is a comment; s0 is just a name there
    assert again.graph.inputs[0].type.shape.dims == ("s0", 8)
