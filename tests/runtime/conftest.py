"""Fixtures for the runtime tests."""

import pytest

from onyx.runtime import compiled


@pytest.fixture(params=["numpy", "compiled"])
def both_paths(request, monkeypatch):
    """Run a test on the numpy kernels and again on the compiled ones (numba, a test extra:
    the compiled run fails rather than skips where they cannot load)."""
    monkeypatch.setattr(compiled, "enabled", request.param == "compiled")
    monkeypatch.setattr(compiled, "MIN_SIZE", 0)  # the tests' small tensors too
    if request.param == "compiled" and compiled.kernels(0) is None:
        pytest.fail("the compiled kernels did not load (is numba installed? see the log)")
    return request.param
