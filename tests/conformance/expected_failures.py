"""Official backend tests onyx is known to fail: a pattern -> (reason, issue that will fix it).

This list only ever shrinks. Each entry is matched with re.search against the test name.
"""

EXPECTED_FAILURES: dict[str, str] = {}
