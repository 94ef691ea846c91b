"""Fixtures shared by the PyTorch bridge's tests: corpus exports made once a session."""

from __future__ import annotations

import warnings

import pytest


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """``exported(name)`` -> (eager module, example args, kind, path of its ``onyx.export``), for
    a model of tests/pytorch/corpus.py; each is exported (and verified) once a session."""
    import onyx
    from pytorch.corpus import build

    folder = tmp_path_factory.mktemp("corpus")
    cache: dict[str, tuple] = {}

    def get(name: str):
        if name not in cache:
            module, args, kind = build(name)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = onyx.export(module, args)  # verify=True: onyx's runtime agrees too
            path = folder / f"{name}.onnx"
            onyx.save(model, path)
            cache[name] = module, args, kind, path
        return cache[name]

    return get
