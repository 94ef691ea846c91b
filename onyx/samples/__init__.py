"""Small models shipped with onyx (built by tools/make_sample.py)."""

from __future__ import annotations

import os

_HERE = os.path.dirname(os.path.abspath(__file__))


def path(name: str = "mlp") -> str:
    """The path of the sample model ``name`` (``"mlp"``: 16 -> 32 -> 32 -> 10 with softmax)."""
    file = os.path.join(_HERE, f"{name}.onnx")
    if not os.path.isfile(file):
        names = sorted(f[:-5] for f in os.listdir(_HERE) if f.endswith(".onnx"))
        raise FileNotFoundError(f"no sample model {name!r}; the samples are {names}")
    return file
