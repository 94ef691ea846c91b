"""Rewrite expected_failures.py from a fresh run of every official node case through to_torch.

    python tests/pytorch/regenerate_expected_failures.py

Run it after adding converters (the test's xfails are strict), then review the reasons.
"""

from __future__ import annotations

import pathlib
import re
import sys
import warnings

HERE = pathlib.Path(__file__).parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent.parent)]

from pytorch.expected_failures import RANDOM_OUTPUTS
from pytorch.test_node_cases import NAMES, run_case


def reason(e: Exception) -> str:
    text = str(e).replace("\n", " ")
    if m := re.search(r"no converter for ([\w.]+)-\d+", text):
        return f"no converter for {m[1]} yet"
    if m := re.search(r"is tensor\((\w+)\), which torch lacks", text):
        return f"torch has no {m[1]} tensors"
    if isinstance(e, AssertionError):
        if re.search(r"bf16|fp16|float16", text):
            return "16-bit float rounding differs from the reference's"
        return "values differ: " + re.sub(r"\s+", " ", text)[:80]
    return f"{type(e).__name__}: " + re.sub(r"^node [^:]*: ", "", text)[:90]


def main() -> None:
    warnings.filterwarnings("ignore")
    failures = {}
    for name in NAMES:
        try:
            run_case(name)
        except Exception as e:  # noqa: BLE001  (every failure is listed with its reason)
            failures[name] = reason(e).replace('"', "'").replace("\\", "")
    path = HERE / "expected_failures.py"
    text = path.read_text()
    head = text[: text.index("EXPECTED_FAILURES: dict[str, str] = {")]
    body = "".join(f'    "{k}": "{v}",\n' for k, v in sorted(failures.items()))
    path.write_text(head + "EXPECTED_FAILURES: dict[str, str] = {\n" + body + "}  # fmt: skip\n")
    print(f"{len(NAMES) - len(failures)} of {len(NAMES)} pass; {len(failures)} listed")
    _ = RANDOM_OUTPUTS


if __name__ == "__main__":
    main()
