"""Fixtures for the runtime tests."""

import pytest

from onyx.runtime import compiled, threads


@pytest.fixture(params=["numpy", "compiled"])
def both_paths(request, monkeypatch):
    """Run a test on the numpy kernels and again on the compiled ones (numba, a test extra:
    the compiled run fails rather than skips where they cannot load)."""
    monkeypatch.setattr(compiled, "enabled", request.param == "compiled")
    monkeypatch.setattr(compiled, "MIN_SIZE", 0)  # the tests' small tensors too
    if request.param == "compiled" and compiled.kernels(0) is None:
        pytest.fail("the compiled kernels did not load (is numba installed? see the log)")
    return request.param


@pytest.fixture
def compiled_calls(monkeypatch):
    """``compiled_calls((module, name), ...)``: the compiled kernels turned on for small tensors
    too, and a list that gets each named kernel's name at each call from Python (a kernel of
    _jit_par.py runs the _jit.py ones it calls inside numba, unseen)."""

    def watch(*kernels):
        monkeypatch.setattr(compiled, "enabled", True)
        threads.native()  # (numba's threads' kernels bound to the kernels before they are wrapped)
        monkeypatch.setattr(compiled, "MIN_SIZE", 0)
        if compiled.kernels(0) is None:
            pytest.fail("the compiled kernels did not load (is numba installed? see the log)")
        made = []
        for module, name in kernels:
            kernel = getattr(module, name)

            def counted(*args, _kernel=kernel, _name=name):
                made.append(_name)
                return _kernel(*args)

            monkeypatch.setattr(module, name, counted)
        return made

    return watch
