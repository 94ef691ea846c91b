"""Generate onyx/defs/opset_ir.json: the lowest IR version each ai.onnx opset needs.

The facts come from the standard's release table (``onnx.helper.VERSION_TABLE``): the IR version
of the first release that shipped each opset version. Run: ``python tools/gen_opset_ir.py``.
"""

from __future__ import annotations

import json
import os

import onnx.helper

OUT = os.path.join(os.path.dirname(__file__), "..", "onyx", "defs", "opset_ir.json")


def main() -> None:
    table: dict[str, int] = {}
    for _release, ir, opset, *_ in onnx.helper.VERSION_TABLE:
        for v in range(1, opset + 1):
            table.setdefault(str(v), ir)
    with open(OUT, "w") as f:
        json.dump({"ai.onnx": table}, f, indent=0, sort_keys=False)
        f.write("\n")


if __name__ == "__main__":
    main()
