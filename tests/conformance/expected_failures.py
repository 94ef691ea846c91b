"""Official backend tests onyx is known to fail, each with its reason and the issue that owns it.

This list only ever shrinks. Each key is matched with re.search against the test name; the
runner marks matches as expected failures (an unexpected pass fails the suite, so a fixed entry
must be removed).
"""

# Random draws: onnx draws the expected values from numpy's global generator when the tests are
# collected, so they differ from run to run and no generator can reproduce them. They are not
# expected failures either: ten 0/1 draws agree by chance about once in 60 runs per test, and an
# unexpected pass fails the suite. So the backend run skips them, saying where they run:
# tests/runtime/kernels/test_random.py runs the same official cases by shape, type and value set,
# plus seed reproducibility and frequencies. (issue 3)
RANDOM_OUTPUTS: dict[str, str] = {
    r"^test_bernoulli(_double|_seed)?(_expanded)?_cpu$": "random values cannot match",
}

EXPECTED_FAILURES: dict[str, str] = {}
