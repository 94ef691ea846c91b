"""Export BERT-base and GPT-2 small, randomly initialised, to benchmarks/.cache (never committed).

Needs the bench extra (torch, transformers). Models are built from their configurations with
random weights (a fixed seed), so nothing is downloaded. Run: python benchmarks/export_models.py
"""

from __future__ import annotations

import os
import pathlib
import warnings

CACHE = pathlib.Path(__file__).resolve().parent / ".cache"
SEQ = 128


def export(name: str) -> pathlib.Path:
    """Path of the exported model, exporting it first if it is not cached yet."""
    path = CACHE / f"{name}.onnx"
    if path.exists():
        return path
    import torch
    import transformers

    torch.manual_seed(0)
    if name == "bert_base":
        config = transformers.BertConfig()  # bert-base-uncased sizes: 12 layers, 768 hidden
        model = transformers.BertModel(config)
    elif name == "gpt2_small":
        config = transformers.GPT2Config()  # 12 layers, 768 hidden, 50257 vocab
        model = transformers.GPT2Model(config)
    else:
        raise ValueError(f"unknown benchmark model {name!r}")
    model.eval()

    class LastHiddenState(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids):
            return self.inner(input_ids=input_ids, use_cache=False).last_hidden_state

    ids = torch.randint(0, 1000, (1, SEQ))
    CACHE.mkdir(exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            LastHiddenState(model), (ids,), str(tmp), input_names=["input_ids"], output_names=["last_hidden_state"],
            opset_version=18, dynamo=True, external_data=False, optimize=True,
        )  # fmt: skip
    os.replace(tmp, path)
    return path


if __name__ == "__main__":
    for model_name in ("bert_base", "gpt2_small"):
        print(export(model_name), f"{export(model_name).stat().st_size / 1e6:.0f} MB")
