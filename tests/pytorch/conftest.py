"""Fixtures shared by the PyTorch bridge's tests: corpus exports made once a session."""

from __future__ import annotations

import warnings

import pytest


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """``exported(name)`` -> (eager module, example args, kind, path of its ``onyx.export``), for
    a model of tests/pytorch/corpus.py; each is exported (and verified) once a session.
    ``exported.torch_nodes[name]`` is the node count of what torch.onnx.export (its own
    optimizer on) handed to onyx.export, for comparing with onyx's optimized output."""
    from unittest import mock

    import torch

    import onyx
    from pytorch.corpus import build

    folder = tmp_path_factory.mktemp("corpus")
    cache: dict[str, tuple] = {}
    torch_export = torch.onnx.export
    programs = []

    def recording_export(*args, **kwargs):
        programs.append(torch_export(*args, **kwargs))
        return programs[-1]

    def get(name: str):
        if name not in cache:
            module, args, kind = build(name)
            with (
                warnings.catch_warnings(),
                mock.patch.object(torch.onnx, "export", recording_export),
            ):
                warnings.simplefilter("ignore")
                model = onyx.export(module, args)  # verify=True: onyx's runtime agrees too
            get.torch_nodes[name] = len(programs.pop().model_proto.graph.node)
            path = folder / f"{name}.onnx"
            onyx.save(model, path)
            cache[name] = module, args, kind, path
        return cache[name]

    get.torch_nodes = {}
    return get
