"""String operators: StringConcat, StringSplit, RegexFullMatch, StringNormalizer, TfIdfVectorizer.

Strings are numpy object arrays of Python str.
"""

from __future__ import annotations

import re

import numpy as np

from onyx.errors import KernelError
from onyx.runtime.kernels.registry import kernel


def _strings(shape, values) -> np.ndarray:
    out = np.empty(len(values), object)
    out[:] = values
    return out.reshape(shape)


@kernel("StringConcat", 20)
def string_concat(x, y):
    a, b = np.broadcast_arrays(x, y)
    return _strings(a.shape, [p + q for p, q in zip(a.reshape(-1), b.reshape(-1))])


@kernel("StringSplit", 20)
def string_split(x, *, delimiter="", maxsplit=None):
    limit = -1 if maxsplit is None else maxsplit
    flat = x.reshape(-1)
    # no delimiter: str.split(None) treats runs of whitespace as one separator and trims
    parts = [s.split(delimiter or None, limit) for s in flat]
    width = max((len(p) for p in parts), default=0)
    padded = [p + [""] * (width - len(p)) for p in parts]
    values = [s for p in padded for s in p]
    counts = np.array([len(p) for p in parts], np.int64).reshape(x.shape)
    return _strings(x.shape + (width,), values), counts


@kernel("RegexFullMatch", 20)
class RegexFullMatch:
    def __init__(self, *, pattern=""):
        try:
            self.regex = re.compile(pattern)
        except re.error as e:
            raise KernelError(f"invalid regular expression {pattern!r}: {e}") from None

    def __call__(self, x):
        flat = [self.regex.fullmatch(s) is not None for s in x.reshape(-1)]
        return np.array(flat, bool).reshape(x.shape)


@kernel("StringNormalizer", 10)
class StringNormalizer:
    def __init__(
        self, *, case_change_action="NONE", is_case_sensitive=0, locale="", stopwords=None
    ):
        if case_change_action not in ("NONE", "LOWER", "UPPER"):
            raise KernelError(
                f"case_change_action must be NONE, LOWER or UPPER, got {case_change_action!r}"
            )
        self.action, self.sensitive = case_change_action, bool(is_case_sensitive)
        words = stopwords or []
        self.stopwords = set(words) if self.sensitive else {w.lower() for w in words}

    def __call__(self, x):
        if x.ndim == 2 and x.shape[0] != 1 or x.ndim not in (1, 2):
            raise KernelError(
                f"StringNormalizer takes a [C] or [1, C] tensor, got shape {list(x.shape)}"
            )
        kept = [
            s for s in x.reshape(-1) if (s if self.sensitive else s.lower()) not in self.stopwords
        ]
        if self.action == "LOWER":
            kept = [s.lower() for s in kept]
        elif self.action == "UPPER":
            kept = [s.upper() for s in kept]
        if not kept:
            kept = [""]
        return _strings((len(kept),) if x.ndim == 1 else (1, len(kept)), kept)


@kernel("TfIdfVectorizer", 9)
class TfIdfVectorizer:
    def __init__(self, *, mode, min_gram_length, max_gram_length, max_skip_count, ngram_counts,
                 ngram_indexes, pool_int64s=None, pool_strings=None, weights=None):  # fmt: skip
        if mode not in ("TF", "IDF", "TFIDF"):
            raise KernelError(f"mode must be TF, IDF or TFIDF, got {mode!r}")
        if (pool_int64s is None) == (pool_strings is None):
            raise KernelError("exactly one of pool_int64s and pool_strings must be given")
        pool = list(pool_int64s if pool_int64s is not None else pool_strings)
        self.mode, self.min_n, self.max_n, self.max_skip = (
            mode,
            min_gram_length,
            max_gram_length,
            max_skip_count,
        )
        self.size = max(ngram_indexes) + 1
        self.weights = np.asarray(weights if weights else [1.0] * len(ngram_indexes), np.float32)
        # n-gram (as a tuple) -> its position in ngram_indexes
        self.grams: dict[tuple, int] = {}
        bounds = list(ngram_counts) + [len(pool)]
        index = 0
        for n, (start, end) in enumerate(zip(bounds[:-1], bounds[1:]), start=1):
            for i in range(start, end, n):
                self.grams[tuple(pool[i : i + n])] = index
                index += 1
        self.indexes = np.asarray(ngram_indexes, np.int64)

    def _row(self, tokens: list) -> np.ndarray:
        counts = np.zeros(len(self.indexes), np.float32)
        for n in range(max(self.min_n, 1), self.max_n + 1):
            for skip in range(self.max_skip + 1 if n > 1 else 1):
                step = skip + 1
                for start in range(len(tokens) - (n - 1) * step):
                    gram = tuple(tokens[start + k * step] for k in range(n))
                    found = self.grams.get(gram)
                    if found is not None:
                        counts[found] += 1
        if self.mode == "IDF":
            counts = np.minimum(counts, 1) * self.weights
        elif self.mode == "TFIDF":
            counts = counts * self.weights
        out = np.zeros(self.size, np.float32)
        np.add.at(out, self.indexes, counts)
        return out

    def __call__(self, x):
        if x.ndim not in (1, 2):
            raise KernelError(
                f"TfIdfVectorizer takes a 1-D or 2-D input, got shape {list(x.shape)}"
            )
        rows = [x.tolist()] if x.ndim == 1 else x.tolist()
        result = (
            np.stack([self._row(r) for r in rows]) if rows else np.zeros((0, self.size), np.float32)
        )
        return result[0] if x.ndim == 1 else result
