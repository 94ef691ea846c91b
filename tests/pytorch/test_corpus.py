"""Round trips through the PyTorch bridge on small transformers models: ``onyx.export`` (verified
under onyx's runtime) then ``onyx.to_torch`` computes what eager PyTorch computes, and for vision
models the gradients with respect to the input match too.

A representative subset of the corpus runs here (each export takes seconds);
``benchmarks/bench_torch.py`` runs the whole corpus and reports its errors beside its timings.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("onnxscript")

import onyx
from onyx.passes import all_graphs
from pytorch.corpus import VISION

#: one of each family: encoder, decoder (rotary, grouped-query), encoder-decoder, audio conv
#: front ends, vision transformer, windowed attention, depthwise CNN, segmentation head
SUBSET = ["bert", "llama", "bart", "whisper_encoder", "wav2vec2", "vit", "swin", "mobilenet_v2",
          "segformer"]  # fmt: skip
TOLERANCE = {"vision": 1e-4, "audio": 1e-3, "text": 1e-3}


def scaled_error(got: torch.Tensor, want: torch.Tensor) -> float:
    """max |got - want| / max(1, max |want|), in float64."""
    got, want = got.detach().double(), want.detach().double()
    return float((got - want).abs().max()) / max(1.0, float(want.abs().max()))


@pytest.mark.slow
@pytest.mark.parametrize("name", SUBSET)
def test_export_then_to_torch_gives_eagers_outputs(exported, name):
    module, args, kind, path = exported(name)
    back = onyx.to_torch(path)
    with torch.no_grad():
        want = module(*args)
        got = back(*args)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype
        assert w.double().std() > 0.1  # outputs vary: the comparison means something
        assert scaled_error(g, w) <= TOLERANCE[kind], name
    # every float initializer came back as a trainable parameter
    model = onyx.load(path)
    floats = [v.name for v in model.graph.initializers.values()
              if v.const_value.numpy().dtype.kind == "f"]  # fmt: skip
    params = dict(back.named_parameters())
    assert floats and {back.onnx_names[n] for n in floats} <= set(params)


@pytest.mark.slow
@pytest.mark.parametrize("name", SUBSET)
def test_export_has_no_more_nodes_than_torch_onnx_optimized(exported, name):
    """onyx.export's output (onyx.optimize over torch.onnx's own optimized export) is never
    bigger than torch.onnx's, and holds standard operators only."""
    path = exported(name)[3]
    model = onyx.load(path)
    assert not model.functions
    nodes = [n for g in all_graphs(model) for n in g.nodes]
    assert all(n.domain in ("", "ai.onnx") for n in nodes), name
    assert len(model.graph.nodes) <= exported.torch_nodes[name], name


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in SUBSET if n in VISION])
def test_input_gradients_match_eagers(exported, name):
    module, (image,), _, path = exported(name)
    back = onyx.to_torch(path)
    grads = []
    for m in (module, back):
        x = image.clone().requires_grad_(True)
        outs = m(x)
        # a fixed random projection of every output: sum() alone would hide many errors
        g = torch.Generator().manual_seed(7)
        loss = sum((o * torch.randn(o.shape, generator=g)).sum() for o in outs)
        loss.backward()
        grads.append(x.grad)
    want, got = grads[0], grads[1]
    assert want.abs().max() > 0
    assert scaled_error(got, want) <= 1e-4, name


@pytest.mark.slow
@pytest.mark.parametrize("name", ["bert_base", "gpt2_small"])
def test_full_size_bert_and_gpt2_match_onnxruntime(name):
    """BERT-base and GPT-2 small as benchmarks/export_models.py exports them (cached there)."""
    import pathlib
    import sys

    import numpy as np

    ort = pytest.importorskip("onnxruntime")
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "benchmarks"))
    try:
        from export_models import SEQ, export
    finally:
        sys.path.pop(0)
    path = export(name)
    model = onyx.load(path)
    module = onyx.to_torch(model)
    ids = np.random.default_rng(0).integers(0, 1000, (1, SEQ), dtype=np.int64)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    (want,) = ort.InferenceSession(str(path), options).run(None, {"input_ids": ids})
    with torch.no_grad():
        (got,) = module(torch.from_numpy(ids))
    assert want.std() > 0.1
    assert scaled_error(got, torch.from_numpy(want)) <= 1e-4
    floats = [v.name for v in model.graph.initializers.values()
              if v.const_value.dtype.name in ("FLOAT", "FLOAT16", "DOUBLE", "BFLOAT16")]  # fmt: skip
    params = dict(module.named_parameters())
    assert len(floats) > 50 and {module.onnx_names[n] for n in floats} <= set(params)
