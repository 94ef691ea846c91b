"""Text: TfIdfVectorizer over integer tokens (mirroring runtime/kernels/text.py). String
tensors have no torch type, so the string operators and string pools never reach here."""

from __future__ import annotations

import itertools

from onyx.pytorch._torch import torch
from onyx.pytorch.registry import converter


def _tfidf(x, grams: dict, size: int, indexes, weights, mode: str, min_n: int, max_n: int,
           max_skip: int):  # fmt: skip
    """Counts of each pool n-gram (with up to ``max_skip`` tokens skipped between items) per
    row, weighted by ``mode``, scattered to their output columns."""
    rows = x.reshape(1, -1) if x.dim() == 1 else x
    counts = torch.zeros((rows.shape[0], len(indexes)), dtype=torch.float32)
    length = rows.shape[1]
    for n in range(max(min_n, 1), max_n + 1):
        if n not in grams:
            continue
        pool, slots = grams[n]  # (G, n) pool n-grams and their positions
        for skip in range(max_skip + 1 if n > 1 else 1):
            step = skip + 1
            width = length - (n - 1) * step
            if width <= 0:
                continue
            windows = torch.stack([rows[:, k * step : k * step + width] for k in range(n)], -1)
            match = (windows[:, :, None, :] == pool[None, None]).all(-1)  # (R, W, G)
            counts[:, slots] += match.sum(1).to(torch.float32)
    if mode == "IDF":
        counts = torch.clamp(counts, max=1) * weights
    elif mode == "TFIDF":
        counts = counts * weights
    out = torch.zeros((rows.shape[0], size), dtype=torch.float32)
    out.index_add_(1, indexes, counts)
    return out[0] if x.dim() == 1 else out


@converter("TfIdfVectorizer", 9)
def tfidf_vectorizer(cx, x, *, mode: str, min_gram_length: int, max_gram_length: int,
                     max_skip_count: int, ngram_counts: list[int], ngram_indexes: list[int],
                     pool_int64s: list[int] | None = None, pool_strings: list | None = None,
                     weights: list[float] | None = None):  # fmt: skip
    if mode not in ("TF", "IDF", "TFIDF"):
        raise cx.fail(f"mode must be TF, IDF or TFIDF, got {mode!r}")
    if pool_int64s is None:
        raise cx.fail("a string pool needs string tensors, which torch lacks")
    pool = list(pool_int64s)
    grams: dict[int, tuple] = {}
    bounds = list(ngram_counts) + [len(pool)]
    index = 0
    for n, (start, end) in enumerate(itertools.pairwise(bounds), start=1):
        items = [pool[i : i + n] for i in range(start, end, n)]
        if items:
            slots = torch.arange(index, index + len(items))
            grams[n] = (torch.tensor(items, dtype=torch.int64), slots)
        index += len(items)
    w = torch.tensor(weights if weights else [1.0] * len(ngram_indexes), dtype=torch.float32)
    indexes = torch.tensor(ngram_indexes, dtype=torch.int64)
    return cx.call(_tfidf, x.long(), grams, max(ngram_indexes) + 1, indexes, w, mode,
                   min_gram_length, max_gram_length, max_skip_count)  # fmt: skip
