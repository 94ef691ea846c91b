"""Custom operators: one registration makes an op of the user's domain known to the checker,
shape inference and InferenceSession; bad registrations are RegistrationErrors."""

from __future__ import annotations

import numpy as np
import pytest

import onyx
from onyx import helper
from onyx.ir import AttrType

DOMAIN = "com.example"


def _swish(x, *, beta=1.0):
    return x / (1 + np.exp(-beta * x))


def _register(**changes):
    spec = {
        "inputs": [("X", "T")], "outputs": [("Y", "T")], "attributes": {"beta": 1.0},
        "type_constraints": {"T": ["tensor(float)", "tensor(double)"]},
        "shape": lambda ctx: ctx.s(0), "kernel": _swish,
    }  # fmt: skip
    spec.update(changes)
    return onyx.register_op("Swish", DOMAIN, **spec)


def _model(op="Swish", version=1, dtype=1, **attrs):
    x = helper.make_tensor_value_info("x", dtype, ["N", 3])
    y = helper.make_tensor_value_info("y", dtype, None)
    node = helper.make_node(op, ["x"], ["y"], domain=DOMAIN, name="sw", **attrs)
    g = helper.make_graph([node], "g", [x], [y])
    return helper.make_model(
        g, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid(DOMAIN, version)]
    )


def test_documented_example_end_to_end(tmp_path):
    with _register() as op:
        assert op in onyx.registered_ops()
        model = _model(beta=2.0)
        onyx.save(model, tmp_path / "m.onnx")
        onyx.check(tmp_path / "m.onnx", full=True)
        inferred = onyx.infer_shapes(model)
        assert inferred.graph.outputs[0].type == onyx.ir.tensor_type("float", ["N", 3])
        x = np.linspace(-3, 3, 6, dtype=np.float32).reshape(2, 3)
        got = onyx.InferenceSession(tmp_path / "m.onnx").run(None, {"x": x})[0]
        want = x.astype(np.float64) / (1 + np.exp(-2.0 * x.astype(np.float64)))
        np.testing.assert_allclose(got.astype(np.float64), want, rtol=1e-6)
        # the schema's default fills an attribute the node leaves out
        got = onyx.InferenceSession(_model()).run(None, {"x": x})[0]
        np.testing.assert_allclose(got.astype(np.float64), x / (1 + np.exp(-x.astype(np.float64))),
                                   rtol=1e-6)  # fmt: skip
    assert op not in onyx.registered_ops()
    with pytest.raises(onyx.UnsupportedError, match="no kernel for domain 'com.example'"):
        onyx.InferenceSession(_model())


def test_checker_uses_the_schema():
    with _register():
        with pytest.raises(onyx.ValidationError, match="'gamma'.*Swish-1.*no such attribute"):
            onyx.check(_model(gamma=1.0))
        with pytest.raises(onyx.ValidationError, match="tensor\\(int64\\)"):
            onyx.check(_model(dtype=7))
        with pytest.raises(onyx.ValidationError, match="has 2 inputs"):
            bad = _model()
            bad.graph.nodes[0].append_input(bad.graph.inputs[0])
            onyx.check(bad)


def test_versions_and_shape_rule_dispatch():
    def tile_kernel(x, *, beta=1.0):
        return np.concatenate([x, x], axis=-1)

    with _register(), _register(since_version=3, shape=lambda ctx: (*ctx.s(0)[:-1], 6),
                                kernel=tile_kernel):  # fmt: skip
        x = np.ones((2, 3), np.float32)
        v1 = onyx.InferenceSession(_model(version=2)).run(None, {"x": x})[0]
        v3 = onyx.InferenceSession(_model(version=3)).run(None, {"x": x})[0]
        assert v1.shape == (2, 3) and v3.shape == (2, 6)
        assert onyx.infer_shapes(_model(version=3)).graph.outputs[0].type.shape.dims == ("N", 6)
        assert onyx.infer_shapes(_model(version=2)).graph.outputs[0].type.shape.dims == ("N", 3)


def test_shape_rule_optional_and_class_kernel():
    class Scale:
        def __init__(self, *, factor):
            self.factor = factor

        def __call__(self, x, bias=None):
            return x * self.factor + (0 if bias is None else bias)

    spec = {"inputs": [("X", "T"), ("B", "T", "optional")], "outputs": [("Y", "T")],
                "attributes": {"factor": AttrType.FLOAT}, "type_constraints": {"T": ["tensor(float)"]},
                "kernel": Scale}  # fmt: skip
    with onyx.register_op("Scale", DOMAIN, **spec):
        model = _model("Scale", factor=3.0)
        assert onyx.infer_shapes(model).graph.outputs[0].type.dtype == onyx.DataType.FLOAT
        got = onyx.InferenceSession(model).run(None, {"x": np.ones((1, 3), np.float32)})[0]
        np.testing.assert_array_equal(got, np.full((1, 3), 3.0, np.float32))
        with pytest.raises(onyx.ValidationError, match="required attribute.*factor"):
            onyx.check(_model("Scale"))


def test_registering_twice_and_unregistering():
    with _register(), pytest.raises(onyx.RegistrationError, match="Swish-1 is already registered"):
        _register()
    op = _register()
    onyx.unregister_op("Swish", DOMAIN)
    assert op not in onyx.registered_ops()
    with pytest.raises(onyx.RegistrationError, match="no custom operator com.example::Swish"):
        onyx.unregister_op("Swish", DOMAIN)
    _register().unregister()  # the name is free again


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"kernel": lambda x, *, gamma=1.0: x}, "keyword\\(s\\) gamma .*does not declare"),
        ({"kernel": lambda x: x}, "cannot take the schema's attribute\\(s\\) beta"),
        ({"kernel": lambda *, beta=1.0: 0}, "1 input\\(s\\), but kernel .* 0 positional"),
        ({"kernel": lambda x, y, *, beta=1.0: x}, "requires 2 input\\(s\\).*requires 1"),
        ({"kernel": lambda x, beta=1.0: x}, "takes attribute\\(s\\) beta positionally"),
        ({"inputs": [("X", "U")]}, "'U' is not a type string"),
        ({"type_constraints": {"T": ["tensor(flaot)"]}}, "'tensor\\(flaot\\)' is not a type"),
        ({"inputs": [("X", "T", "sometimes")]}, "option 'sometimes'"),
        ({"attributes": {"beta": []}}, "attribute 'beta'.*AttributeDef"),
        ({"inputs": [("X", "T", "variadic")], "kernel": _swish}, "needs a \\*inputs parameter"),
    ],
)
def test_kernel_and_schema_must_fit(changes, message):
    with pytest.raises(onyx.RegistrationError, match=message):
        _register(**changes)
    assert not onyx.registered_ops()  # nothing half-registered
    _register().unregister()


def test_standard_domain_is_refused():
    for domain in ("", "ai.onnx", "ai.onnx.ml"):
        with pytest.raises(onyx.RegistrationError, match="domain of their own"):
            onyx.register_op("Relu", domain, inputs=[], outputs=[])


def test_kernel_failures_name_the_node():
    def broken(x, *, beta=1.0):
        raise ValueError("boom")

    def short(x):
        return x

    with (
        _register(kernel=broken),
        pytest.raises(onyx.ExecutionError, match="'sw' \\(Swish\\).*ValueError: boom"),
    ):
        onyx.InferenceSession(_model()).run(None, {"x": np.ones((1, 3), np.float32)})
    spec = {"inputs": [("X", "T")], "outputs": [("Y", "T"), ("Z", "T")],
                "type_constraints": {"T": ["tensor(float)"]}, "kernel": short}  # fmt: skip
    with onyx.register_op("Two", DOMAIN, **spec):
        x = helper.make_tensor_value_info("x", 1, ["N", 3])
        y, z = (helper.make_tensor_value_info(n, 1, None) for n in "yz")
        node = helper.make_node("Two", ["x"], ["y", "z"], domain=DOMAIN, name="sw")
        m = helper.make_model(
            helper.make_graph([node], "g", [x], [y, z]),
            opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid(DOMAIN, 1)],
        )
        with pytest.raises(onyx.ExecutionError, match="returned 1 value\\(s\\) for 2 outputs"):
            onyx.InferenceSession(m).run(None, {"x": np.ones((1, 3), np.float32)})
        # an output nothing reads (here omitted) need not come back
        m = _model("Two")
        m.graph.nodes[0]._outputs.append(None)
        out = onyx.InferenceSession(m).run(None, {"x": np.ones((1, 3), np.float32)})
        np.testing.assert_array_equal(out[0], np.ones((1, 3), np.float32))


def test_run_options_terminate_between_steps():
    """A kernel sets terminate (as another thread would) and the run stops before the next step."""
    options = onyx.RunOptions(logid="stop-me")
    calls = []

    def flag(x, *, beta=1.0):
        calls.append(1)
        options.terminate = len(calls) == 1  # only in the first run
        return x

    with _register(kernel=flag):
        x = helper.make_tensor_value_info("x", 1, [1])
        nodes = [helper.make_node("Swish", ["x"], ["a"], domain=DOMAIN, name="first"),
                 helper.make_node("Swish", ["a"], ["y"], domain=DOMAIN, name="second")]  # fmt: skip
        g = helper.make_graph(nodes, "g", [x], [helper.make_tensor_value_info("y", 1, [1])])
        m = helper.make_model(g, opset_imports=[helper.make_opsetid(DOMAIN, 1)])
        s = onyx.InferenceSession(m)
        with pytest.raises(
            onyx.ExecutionError, match="terminated by RunOptions before node 'second'"
        ):
            s.run(None, {"x": np.ones(1, np.float32)}, options)
        assert len(calls) == 1
        options.terminate = False  # a new run with it cleared runs to the end
        assert s.run(None, {"x": np.ones(1, np.float32)}, options)[0].tolist() == [1.0]


def _swish_torch(cx, x, *, beta=1.0):
    import torch

    return x * torch.sigmoid(beta * x)


def test_torch_converter_makes_the_op_known_to_to_torch():
    torch = pytest.importorskip("torch")
    from onyx.pytorch import CONVERTERS, to_torch

    x = np.linspace(-3, 3, 12, dtype=np.float32).reshape(4, 3)
    with _register(torch=_swish_torch) as op:
        for attrs in ({"beta": 2.0}, {}):  # the schema's default fills an omitted attribute
            model = _model(**attrs)
            want = onyx.InferenceSession(model).run(None, {"x": x})[0]
            module = to_torch(model)
            got = module(torch.from_numpy(x))[0].detach().numpy()
            np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=1e-5)
        assert op.torch is _swish_torch and CONVERTERS.lookup(DOMAIN, "Swish", 1) is not None
        with pytest.raises(onyx.UnsupportedError, match="'gamma' .*not supported|gamma"):
            to_torch(_model(gamma=1.0))
    # unregistering removes the converter; without one, to_torch lists the node up front
    assert CONVERTERS.lookup(DOMAIN, "Swish", 1) is None
    with (
        _register(),
        pytest.raises(
            onyx.UnsupportedError,
            match="(?s)cannot convert 1 node.*'sw' \\(Swish\\).*com.example.Swish-1.*torch=",
        ),
    ):
        to_torch(_model())


@pytest.mark.parametrize(
    "converter, message",
    [
        (lambda x, *, beta=1.0: x, "takes 0 positional parameter\\(s\\) after the context cx"),
        (lambda cx, x, *, gamma=1.0: x, "converter .*keyword\\(s\\) gamma"),
        (lambda cx, x: x, "converter .*cannot take the schema's attribute\\(s\\) beta"),
        (lambda: None, "context first"),
    ],
)
def test_torch_converter_must_fit_the_schema(converter, message):
    with pytest.raises(onyx.RegistrationError, match=message):
        _register(torch=converter)
    assert not onyx.registered_ops()


def test_registering_a_converter_does_not_import_torch():
    """The converter waits for the bridge: torch loads only with onyx.pytorch."""
    import subprocess
    import sys
    import textwrap

    pytest.importorskip("torch")
    script = textwrap.dedent("""
        import sys
        import numpy as np
        import onyx
        def conv(cx, x, *, beta=1.0):
            return x * 2
        onyx.register_op("Twice", "com.example", inputs=[("X", "tensor(float)")],
                         outputs=[("Y", "tensor(float)")], attributes={"beta": 1.0},
                         kernel=lambda x, *, beta=1.0: x * 2, torch=conv)
        assert "torch" not in sys.modules, "registration imported torch"
        from onyx.pytorch import CONVERTERS
        assert CONVERTERS.lookup("com.example", "Twice", 1) is not None
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_checker_reports_a_domain_version_below_every_registered_one():
    with _register(since_version=3), _register(since_version=5):
        with pytest.raises(
            onyx.ValidationError,
            match="'sw' \\(com.example::Swish\\).*Swish of com.example is registered only from "
            "version 3 on "
            "\\(versions 3, 5\\).*imports com.example at version 2",
        ):
            onyx.check(_model(version=2))
        onyx.check(_model(version=3))  # a version at or above the first registered one is fine
    onyx.check(_model(version=2))  # nothing registered: an unknown custom op is left alone
