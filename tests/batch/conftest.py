"""Fixtures of the batch tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def mlp(tmp_path) -> str:
    from batch_helpers import mlp_model

    return mlp_model(tmp_path / "mlp.onnx")
