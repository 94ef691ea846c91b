"""Export the model benchmark's transformers models, randomly initialised, to benchmarks/.cache
(never committed).

BERT-base and GPT-2 small at sequence length 128; the modern vision architectures at their real
sizes, one 224x224 image, with ImageNet classification heads (1,000 classes; Segformer-B0 with
its ADE20k segmentation head): EfficientNet-B0, MobileNetV2, ConvNeXt-tiny, Segformer-B0,
MobileViT-small, ViT-small (hidden 384, 12 layers, 6 heads, patch 16) and Swin-tiny; and 2-layer BERT and GPT-2 of hidden 64 (vocabulary 1,000,
sequence 128), whose time is mostly per-step overhead. All through
``torch.onnx.export(dynamo=True)`` at opset 18.

Needs the bench extra (torch, transformers). Models are built from their configurations with
random weights (a fixed seed; the CNNs' weights scaled by fan-in, as tests/pytorch/corpus.py does,
so activations do not fade through their depth), so nothing is downloaded.
Run: python benchmarks/export_models.py [NAME ...]
"""

from __future__ import annotations

import os
import pathlib
import warnings

CACHE = pathlib.Path(__file__).resolve().parent / ".cache"
SEQ = 128
TEXT = ["bert_base", "gpt2_small", "bert_2l", "gpt2_2l"]
VISION = ["efficientnet_b0", "mobilenet_v2", "convnext_tiny", "segformer_b0", "mobilevit_small",
          "vit_small", "swin_tiny"]  # fmt: skip
NAMES = TEXT + VISION
IMAGE = 224


def _text_model(name: str):
    import transformers as tf

    small = {"vocab_size": 1000, "max_position_embeddings": 128}  # the benchmark's ids: 0..999
    if name == "bert_base":
        return tf.BertModel(tf.BertConfig())  # bert-base-uncased sizes: 12 layers, 768 hidden
    if name == "gpt2_small":
        return tf.GPT2Model(tf.GPT2Config())  # 12 layers, 768 hidden, 50257 vocab
    if name == "bert_2l":
        return tf.BertModel(
            tf.BertConfig(
                hidden_size=64,
                num_hidden_layers=2,
                num_attention_heads=4,
                intermediate_size=256,
                **small,
            )
        )
    if name == "gpt2_2l":
        return tf.GPT2Model(
            tf.GPT2Config(vocab_size=1000, n_positions=128, n_embd=64, n_layer=2, n_head=4)
        )
    raise ValueError(f"unknown benchmark model {name!r}")


def _vision_model(name: str):
    """(module, output field) of a vision model at its real size."""
    import transformers as tf

    if name == "efficientnet_b0":
        config = tf.EfficientNetConfig(
            width_coefficient=1.0,
            depth_coefficient=1.0,
            image_size=IMAGE,
            dropout_rate=0.2,
            hidden_dim=1280,
            num_labels=1000,
        )
        return tf.EfficientNetForImageClassification(config), "logits"
    if name == "mobilenet_v2":
        return tf.MobileNetV2ForImageClassification(tf.MobileNetV2Config(num_labels=1000)), "logits"
    if name == "convnext_tiny":
        return tf.ConvNextForImageClassification(tf.ConvNextConfig(num_labels=1000)), "logits"
    if name == "segformer_b0":  # the ADE20k head: 150 classes at 1/4 resolution
        config = tf.SegformerConfig(num_labels=150)
        return tf.SegformerForSemanticSegmentation(config), "logits"
    if name == "mobilevit_small":
        config = tf.MobileViTConfig(image_size=IMAGE, num_labels=1000)
        return tf.MobileViTForImageClassification(config), "logits"
    if name == "vit_small":
        config = tf.ViTConfig(
            hidden_size=384,
            num_hidden_layers=12,
            num_attention_heads=6,
            intermediate_size=1536,
            image_size=IMAGE,
            patch_size=16,
            num_labels=1000,
        )
        return tf.ViTForImageClassification(config), "logits"
    if name == "swin_tiny":
        return tf.SwinForImageClassification(
            tf.SwinConfig(image_size=IMAGE, num_labels=1000)
        ), "logits"
    raise ValueError(f"unknown benchmark model {name!r}")


def _rescale(module) -> None:
    """Fan-in-scaled weights and non-trivial batch-norm statistics (tests/pytorch/corpus.py's)."""
    import sys

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests"))
    from pytorch.corpus import _rescale

    _rescale(module)


def export(name: str) -> pathlib.Path:
    """Path of the exported model, exporting it first if it is not cached yet."""
    path = CACHE / f"{name}.onnx"
    if path.exists():
        return path
    import torch

    torch.manual_seed(0)

    class Field(torch.nn.Module):
        """``inner`` with one tensor in and one named output field out."""

        def __init__(self, inner, key: str, field: str, extra: dict):
            super().__init__()
            self.inner, self.key, self.field, self.extra = inner, key, field, extra

        def forward(self, x):
            return getattr(self.inner(**{self.key: x}, **self.extra), self.field)

    if name in TEXT:
        model = _text_model(name)
        module = Field(model, "input_ids", "last_hidden_state", {"use_cache": False})
        example, names = torch.randint(0, 1000, (1, SEQ)), (["input_ids"], ["last_hidden_state"])
    elif name in VISION:
        model, field = _vision_model(name)
        _rescale(model)
        module = Field(model, "pixel_values", field, {})
        example, names = torch.randn(1, 3, IMAGE, IMAGE), (["pixel_values"], [field])
    else:
        raise ValueError(f"unknown benchmark model {name!r}")
    module.eval()
    CACHE.mkdir(exist_ok=True)
    # (a name of this process's own: the tests export into this cache from two xdist workers
    # at once on a fresh checkout, and a shared name let one rename the other's file away)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, (example,), str(tmp), input_names=names[0], output_names=names[1],
            opset_version=18, dynamo=True, external_data=False, optimize=True,
        )  # fmt: skip
    os.replace(tmp, path)
    return path


if __name__ == "__main__":
    import sys

    for model_name in sys.argv[1:] or NAMES:
        print(export(model_name), f"{export(model_name).stat().st_size / 1e6:.0f} MB", flush=True)
