"""Imported models without control flow go through ``torch.compile(fullgraph=True)`` and
``torch.export.export`` whole, and the results compute what the imported module computes.

The compile tests use the ``aot_eager`` backend: it runs Dynamo's whole-graph capture (what
``fullgraph=True`` asks for: no graph breaks) and AOTAutograd's tracing, without inductor's C++
code generation, which takes minutes on a small machine and tests torch rather than onyx.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import onyx

try:
    from conformance.test_light_zoo import _with_random_weights
except ImportError:  # pragma: no cover
    _with_random_weights = None


def _zoo(name: str) -> tuple[torch.nn.Module, tuple[torch.Tensor, ...]]:
    if _with_random_weights is None:
        pytest.skip("the light zoo needs onnx's backend test data")
    model = onyx.load(_with_random_weights(name))
    graph = model.graph
    rng = np.random.default_rng(3)
    args = tuple(
        torch.from_numpy(rng.standard_normal([d if isinstance(d, int) else 1
                                              for d in v.type.shape.dims]).astype(np.float32))
        for v in graph.inputs if v.name not in graph.initializers
    )  # fmt: skip
    return onyx.to_torch(model), args


def _bert(exported) -> tuple[torch.nn.Module, tuple[torch.Tensor, ...]]:
    pytest.importorskip("transformers")
    pytest.importorskip("onnxscript")
    _, args, _, path = exported("bert")
    return onyx.to_torch(path), args


def _same(got, want) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert w.double().std() > 1e-3  # outputs vary: the comparison means something
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5 * float(w.abs().max()))


@pytest.fixture(params=["squeezenet", "bert"])
def imported(request, exported):
    module, args = _zoo("squeezenet") if request.param == "squeezenet" else _bert(exported)
    with torch.no_grad():
        want = module(*args)
    return module, args, want


@pytest.mark.slow
def test_torch_compile_captures_the_whole_graph(imported):
    module, args, want = imported
    torch._dynamo.reset()
    compiled = torch.compile(module, fullgraph=True, backend="aot_eager")
    with torch.no_grad():
        got = compiled(*args)
    _same(got, want)


@pytest.mark.slow
def test_torch_export_exports_an_imported_model(imported):
    module, args, want = imported
    program = torch.export.export(module, args)
    assert not any(n.op == "call_module" for n in program.graph.nodes)  # all aten, no escapes
    got = program.module()(*args)
    _same(got, want)


def test_compiled_imported_module_trains():
    """Gradients flow through the compiled module to the imported parameters."""
    pytest.importorskip("onnxscript")
    torch.manual_seed(0)
    source = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    x = torch.randn(4, 6)
    module = onyx.to_torch(onyx.export(source, (x,)))
    torch._dynamo.reset()
    compiled = torch.compile(module, fullgraph=True, backend="aot_eager")
    (y,) = compiled(x)
    y.square().sum().backward()
    source(x).square().sum().backward()
    grads = {n: p.grad for n, p in module.named_parameters()}
    assert grads and all(g is not None for g in grads.values())
    want = sorted(float(p.grad.abs().sum()) for p in source.parameters())
    got = sorted(float(g.abs().sum()) for g in grads.values())
    np.testing.assert_allclose(got, want, rtol=1e-5)
