"""A corpus of small transformers models (2 layers, hidden 64, random weights, nothing downloaded)
for the PyTorch bridge's round trips and benchmarks.

``build(name)`` gives ``(module, args, kind)``: an eval-mode ``torch.nn.Module`` whose forward
takes tensors and returns a tuple of tensors, example inputs, and "text", "audio" or "vision".
torchvision is not part of the corpus: its PyPI wheels are built against PyPI's CUDA torch and do
not load beside the ``+cpu`` torch installed here; the transformers ResNet, ConvNext and
MobileNetV2 stand in for its CNNs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

HIDDEN, LAYERS, HEADS, SEQ, VOCAB = 64, 2, 4, 16, 512

TEXT = ["bert", "distilbert", "roberta", "gpt2", "llama", "qwen2", "mistral", "t5", "bart"]
AUDIO = ["whisper_encoder", "wav2vec2"]
VISION = ["vit", "segformer", "convnext", "resnet", "swin", "mobilenet_v2"]
NAMES = TEXT + AUDIO + VISION


class _Outputs(torch.nn.Module):
    """``inner`` with tensors in and the named output fields out, as a tuple."""

    def __init__(self, inner: torch.nn.Module, fields: tuple[str, ...], keys: tuple[str, ...],
                 extra: dict | None = None):  # fmt: skip
        super().__init__()
        self.inner, self.fields, self.keys, self.extra = inner, fields, keys, dict(extra or {})

    def forward(self, *xs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.inner(**dict(zip(self.keys, xs)), **self.extra)
        return tuple(getattr(out, f) for f in self.fields)


def _text_config(cls, **over):
    common = {"vocab_size": VOCAB, "hidden_size": HIDDEN, "num_hidden_layers": LAYERS,
              "num_attention_heads": HEADS, "intermediate_size": 4 * HIDDEN,
              "max_position_embeddings": 128}  # fmt: skip
    common.update(over)
    return cls(**common)


def _builders() -> dict[str, Callable[[], tuple[torch.nn.Module, tuple, str]]]:
    import transformers as tf

    ids = torch.randint(0, VOCAB, (2, SEQ), generator=torch.Generator().manual_seed(1))
    mask = torch.ones(2, SEQ, dtype=torch.int64)
    mask[1, SEQ - 4 :] = 0
    image = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    hidden = ("last_hidden_state",)
    ids_mask = ("input_ids", "attention_mask")
    no_cache = {"use_cache": False}

    def text(model, keys=ids_mask, extra=None, args=(ids, mask)):
        return _Outputs(model, hidden, keys, extra), args, "text"

    def vision(model, fields=hidden):
        return _Outputs(model, fields, ("pixel_values",)), (image,), "vision"

    def decoder(cls, model_cls, **over):
        config = _text_config(cls, num_key_value_heads=2, **over)
        return text(model_cls(config), extra=no_cache)

    return {
        "bert": lambda: text(tf.BertModel(_text_config(tf.BertConfig))),
        "distilbert": lambda: text(tf.DistilBertModel(tf.DistilBertConfig(
            vocab_size=VOCAB, dim=HIDDEN, n_layers=LAYERS, n_heads=HEADS, hidden_dim=4 * HIDDEN,
            max_position_embeddings=128))),
        "roberta": lambda: text(tf.RobertaModel(_text_config(tf.RobertaConfig))),
        "gpt2": lambda: text(tf.GPT2Model(tf.GPT2Config(
            vocab_size=VOCAB, n_embd=HIDDEN, n_layer=LAYERS, n_head=HEADS, n_positions=128)),
            extra=no_cache),
        "llama": lambda: decoder(tf.LlamaConfig, tf.LlamaModel),
        "qwen2": lambda: decoder(tf.Qwen2Config, tf.Qwen2Model),
        "mistral": lambda: decoder(tf.MistralConfig, tf.MistralModel),
        "t5": lambda: text(tf.T5Model(tf.T5Config(
            vocab_size=VOCAB, d_model=HIDDEN, d_kv=HIDDEN // HEADS, d_ff=4 * HIDDEN,
            num_layers=LAYERS, num_decoder_layers=LAYERS, num_heads=HEADS,
            attn_implementation="eager")),
            keys=("input_ids", "attention_mask", "decoder_input_ids"), extra=no_cache,
            args=(ids, mask, ids[:, : SEQ // 2])),
        "bart": lambda: text(tf.BartModel(tf.BartConfig(
            vocab_size=VOCAB, d_model=HIDDEN, encoder_layers=LAYERS, decoder_layers=LAYERS,
            encoder_attention_heads=HEADS, decoder_attention_heads=HEADS,
            encoder_ffn_dim=4 * HIDDEN, decoder_ffn_dim=4 * HIDDEN,
            max_position_embeddings=128)), extra=no_cache),
        "whisper_encoder": lambda: (
            _Outputs(tf.WhisperModel(tf.WhisperConfig(
                vocab_size=VOCAB, num_mel_bins=80, d_model=HIDDEN, encoder_layers=LAYERS,
                decoder_layers=LAYERS, encoder_attention_heads=HEADS,
                decoder_attention_heads=HEADS, encoder_ffn_dim=4 * HIDDEN,
                decoder_ffn_dim=4 * HIDDEN, max_source_positions=32, pad_token_id=0,
                bos_token_id=1, eos_token_id=2, decoder_start_token_id=1)).get_encoder(),
                hidden, ("input_features",)),
            (torch.randn(2, 80, 64, generator=torch.Generator().manual_seed(3)),), "audio"),
        "wav2vec2": lambda: (
            _Outputs(tf.Wav2Vec2Model(tf.Wav2Vec2Config(
                vocab_size=32, hidden_size=HIDDEN, num_hidden_layers=LAYERS,
                num_attention_heads=HEADS, intermediate_size=4 * HIDDEN,
                conv_dim=(32, 32, 32), conv_stride=(5, 2, 2), conv_kernel=(10, 3, 3),
                num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)),
                hidden, ("input_values",)),
            (torch.randn(2, 1600, generator=torch.Generator().manual_seed(4)),), "audio"),
        "vit": lambda: vision(tf.ViTModel(tf.ViTConfig(
            hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
            intermediate_size=4 * HIDDEN, image_size=64, patch_size=8), add_pooling_layer=False)),
        "segformer": lambda: vision(tf.SegformerForSemanticSegmentation(tf.SegformerConfig(
            num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[32, 64],
            patch_sizes=[7, 3], strides=[4, 2], num_attention_heads=[1, 2],
            mlp_ratios=[2, 2], decoder_hidden_size=64, num_labels=5)), fields=("logits",)),
        "convnext": lambda: vision(tf.ConvNextModel(tf.ConvNextConfig(
            hidden_sizes=[32, 64], depths=[1, 1], num_stages=2)), fields=("pooler_output",)),
        "resnet": lambda: vision(tf.ResNetModel(tf.ResNetConfig(
            embedding_size=32, hidden_sizes=[32, 64], depths=[1, 1], layer_type="bottleneck")),
            fields=("pooler_output",)),
        "swin": lambda: vision(tf.SwinModel(tf.SwinConfig(
            image_size=64, patch_size=4, embed_dim=32, depths=[1, 1], num_heads=[2, 4],
            window_size=4, attn_implementation="eager")), fields=("pooler_output",)),
        "mobilenet_v2": lambda: vision(tf.MobileNetV2Model(tf.MobileNetV2Config(
            image_size=64, depth_multiplier=0.35)), fields=("pooler_output",)),
    }  # fmt: skip


def _rescale(module: torch.nn.Module) -> None:
    """Fan-in-scaled weights and non-trivial batch-norm statistics: transformers' small init
    (std 0.02) fades a CNN's activations to nothing through its depth, which would leave the
    comparisons meaningless."""
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.Conv2d | torch.nn.Linear):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2 / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
            elif isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(1 + 0.1 * torch.randn(n, generator=g))
                m.bias.copy_(0.1 * torch.randn(n, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
                m.running_var.copy_(1 + 0.1 * torch.rand(n, generator=g))


def build(name: str) -> tuple[torch.nn.Module, tuple[torch.Tensor, ...], str]:
    """The named corpus model (seeded random weights, eval mode), its example inputs and kind."""
    builder = _builders()[name]
    torch.manual_seed(0)
    module, args, kind = builder()
    if kind == "vision":
        _rescale(module)
    return module.eval(), args, kind
