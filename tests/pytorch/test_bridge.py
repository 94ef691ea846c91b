"""onyx.to_torch on real models, the torch execution provider and onyx.export."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import onyx
from onyx.errors import FeedError, OnyxError, UnsupportedError
from onyx.text import parse_model

try:
    from conformance.test_light_zoo import MODELS, _with_random_weights
except ImportError:  # pragma: no cover
    MODELS, _with_random_weights = [], None


def _feeds(model: onyx.ir.Model, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    graph = model.graph
    return {
        v.name: rng.standard_normal(
            [d if isinstance(d, int) else 1 for d in v.type.shape.dims]
        ).astype(np.float32)
        for v in graph.inputs
        if v.name not in graph.initializers
    }


def _ort(data: bytes, feeds: dict) -> list[np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(data, options).run(None, feeds)


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_light_zoo_model_matches_onnxruntime_and_trains(name):
    data = _with_random_weights(name)
    model = onyx.load(data)
    module = onyx.to_torch(model)
    feeds = _feeds(model)
    (expected,) = _ort(data, feeds)
    (got,) = module(*[torch.from_numpy(a) for a in feeds.values()])
    scale = np.abs(expected).max()
    assert expected.std() > 1e-3 * scale  # not uniform: the comparison means something
    np.testing.assert_allclose(got.detach().numpy(), expected, rtol=1e-4, atol=1e-4 * scale)
    # every float initializer is a trainable parameter, found under its (sanitized) name
    floats = [v.name for v in model.graph.initializers.values()
              if v.const_value.numpy().dtype.kind == "f"]  # fmt: skip
    params = dict(module.named_parameters())
    used = {module.onnx_names[n] for n in floats if n in module.onnx_names}
    assert used and used <= set(params)
    assert all(p.requires_grad for p in params.values())


def _small_cnn() -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    module = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2), torch.nn.Conv2d(8, 4, 3), torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(), torch.nn.Linear(4, 5), torch.nn.Softmax(-1),
    ).eval()  # fmt: skip
    return module, torch.randn(2, 3, 12, 12)


@pytest.fixture(scope="module")
def exported():
    module, x = _small_cnn()
    return module, x, onyx.export(module, (x,))


def test_export_verifies_and_round_trips(exported):
    module, x, model = exported
    assert isinstance(model, onyx.ir.Model)
    back = onyx.to_torch(model)
    (y,) = back(x)
    torch.testing.assert_close(y, module(x), rtol=1e-4, atol=1e-5)
    # the weights are parameters: gradients reach them
    y.sum().backward()
    assert all(p.grad is not None for p in back.parameters())


def test_one_sgd_step_lowers_the_loss_of_an_imported_classifier(exported):
    _, x, model = exported
    module = onyx.to_torch(model)
    target = torch.tensor([3, 1])
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    losses = []
    for _ in range(2):
        optimizer.zero_grad()
        (probabilities,) = module(x)
        loss = torch.nn.functional.nll_loss(torch.log(probabilities), target)
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    assert losses[1] < losses[0]


def test_torch_export_succeeds_on_an_imported_cnn(exported):
    module, x, model = exported
    program = torch.export.export(onyx.to_torch(model), (x,))
    (y,) = program.module()(x)
    torch.testing.assert_close(y, module(x), rtol=1e-4, atol=1e-5)


def test_torch_provider_runs_a_model(exported):
    module, x, model = exported
    session = onyx.InferenceSession(
        model, providers=["TorchExecutionProvider"], provider_options=[{"device": "cpu"}]
    )
    assert session.get_providers()[0] == "TorchExecutionProvider"
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    np.testing.assert_allclose(got, module(x).detach().numpy(), rtol=1e-4, atol=1e-6)


def test_torch_provider_outputs_are_the_callers_own():
    """The provider hands torch's results over without a copy, except where torch returned a
    weight or a fed tensor as is: writing into an output must change neither the model nor the
    feed, and a later run must not write into an earlier run's output."""
    text = """
    <ir_version: 10, opset_import: ["" : 21]>
    g (float[2] x) => (float[2] same, float[2] weight, float[2] sum)
      <float[2] w = {1.0, 2.0}> {
        same = Identity(x)
        weight = Identity(w)
        sum = Add(x, w)
    }
    """
    session = onyx.InferenceSession(parse_model(text), providers=["TorchExecutionProvider"])
    x = np.array([5, 6], np.float32)
    first = session.run(None, {"x": x})
    for out in first:
        out[:] = -1
    np.testing.assert_array_equal(x, [5, 6])
    same, weight, total = session.run(None, {"x": x})
    np.testing.assert_array_equal(same, [5, 6])
    np.testing.assert_array_equal(weight, [1, 2])
    np.testing.assert_array_equal(total, [6, 8])
    np.testing.assert_array_equal(first[2], [-1, -1])  # not overwritten by the second run
    # the short path (all outputs, a dict feed) and the general one check feeds alike
    (total,) = session.run(["sum"], {"x": x}, onyx.RunOptions())
    np.testing.assert_array_equal(total, [6, 8])
    for run in (lambda feed: session.run(None, feed), lambda feed: session.run(["sum"], feed)):
        with pytest.raises(FeedError, match="'x'"):
            run({"x": x.astype(np.float64)})
        with pytest.raises(FeedError, match="missing"):
            run({})


def test_torch_provider_refuses_missing_cuda_and_unknown_options(exported):
    _, _, model = exported
    if not torch.cuda.is_available():
        with pytest.raises(UnsupportedError, match="CUDA"):
            onyx.InferenceSession(model, providers=["TorchExecutionProvider"],
                                  provider_options=[{"device": "cuda"}])  # fmt: skip
    with pytest.raises(OnyxError, match="unknown option"):
        onyx.InferenceSession(model, providers=["TorchExecutionProvider"],
                              provider_options=[{"threads": 3}])  # fmt: skip


def test_unsupported_nodes_are_listed_up_front():
    text = """
    <ir_version: 10, opset_import: ["" : 21]>
    g (float[2] x) => (float[2] y) {
        a = Relu(x)
        s = StringNormalizer(a)
        b = NoSuchOp(a)
        y = Abs(b)
    }
    """
    model = parse_model(text)
    with pytest.raises(UnsupportedError) as info:
        onyx.to_torch(model)
    message = str(info.value)
    assert "StringNormalizer" in message and "NoSuchOp" in message


def test_symbolic_batch_stays_symbolic():
    module, x = _small_cnn()
    model = onyx.export(module, (x,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    back = onyx.to_torch(model)
    for n in (1, 3):
        xi = torch.randn(n, 3, 12, 12)
        torch.testing.assert_close(back(xi)[0], module(xi), rtol=1e-4, atol=1e-5)


def test_initializers_without_declared_types_convert_statically(tmp_path):
    """An initializer's type comes from its tensor when no value_info declares it (files that
    optimizers wrote): a Gather over it converts to torch ops, not a run-time step, and
    torch.export takes the module."""
    text = """
    <ir_version: 10, opset_import: ["" : 18]>
    g (int64[2, 3] ids) => (float[2, 3, 2] y)
      <float[4, 2] table = {1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0}> {
        y = Gather(table, ids)
    }
    """
    path = tmp_path / "gather.onnx"
    onyx.save(parse_model(text), path)
    model = onyx.load(path)
    assert model.graph.initializers["table"].type is None  # nothing declares it in the file
    module = onyx.to_torch(model)
    assert "_step" not in module.code
    ids = torch.tensor([[0, 1, 3], [2, 2, 0]])
    (got,) = torch.export.export(module, (ids,)).module()(ids)
    want = torch.arange(1.0, 9.0).reshape(4, 2)[ids]
    torch.testing.assert_close(got, want)
