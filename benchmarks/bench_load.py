"""Loading and saving a large model: onyx against onnx, side by side, each in a fresh process.

Load = open the model and read every weight into numpy (summing each, so every byte is read).
Save = write the loaded model back to disk (onnx: serialize and write). Peak RSS is the child
process's maximum resident set, compared with the file size. The model is BERT-base (about
435 MB) exported from a randomly initialised model by export_models.py, never committed.

Run: python benchmarks/bench_load.py [--model bert_base] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

WORKER = r"""
import json, resource, sys, time
import numpy as np
side, action, path, out = sys.argv[1:5]
if side == "onyx":
    import onyx
    start = time.perf_counter()
    model = onyx.load(path)
    total = sum(float(v.const_value.numpy().sum()) for v in model.graph.initializers.values())
    loaded = time.perf_counter() - start
    if action == "save":
        start = time.perf_counter()
        onyx.save(model, out)
else:
    import onnx
    from onnx import numpy_helper
    start = time.perf_counter()
    model = onnx.load(path)
    total = sum(float(numpy_helper.to_array(t).sum()) for t in model.graph.initializer)
    loaded = time.perf_counter() - start
    if action == "save":
        start = time.perf_counter()
        onnx.save_model(model, out)
seconds = loaded if action == "load" else time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"seconds": seconds, "peak_rss": peak, "checksum": total}))
"""


def measure(side: str, action: str, path: str, out: str) -> dict:
    result = subprocess.run([sys.executable, "-c", WORKER, side, action, path, out],
                            capture_output=True, text=True, check=True)  # fmt: skip
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="bert_base")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, os.path.dirname(__file__))
    from export_models import export

    path = str(export(args.model))
    size = os.path.getsize(path)
    with open(path, "rb") as f:  # warm the page cache for both sides alike
        while f.read(1 << 24):
            pass
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.onnx")
        for action in ("load", "save"):
            for side in ("onnx", "onyx"):
                runs = [measure(side, action, path, out) for _ in range(args.repeat)]
                rows[(side, action)] = min(runs, key=lambda r: r["seconds"])
    assert abs(
        rows[("onyx", "load")]["checksum"] - rows[("onnx", "load")]["checksum"]
    ) < 1e-3 * abs(rows[("onnx", "load")]["checksum"]), "onyx and onnx read different weights"
    print(f"{args.model}: {size / 1e6:.0f} MB, best of {args.repeat} fresh processes each")
    print(
        f"{'':<18}{'onnx s':>9}{'onyx s':>9}{'onyx/onnx':>11}{'onyx RSS/file':>15}{'onnx RSS/file':>15}"
    )
    for action, label in (("load", "load + read all"), ("save", "save")):
        a, b = rows[("onnx", action)], rows[("onyx", action)]
        print(f"{label:<18}{a['seconds']:>9.3f}{b['seconds']:>9.3f}{b['seconds'] / a['seconds']:>10.2f}x"
              f"{b['peak_rss'] / size:>15.2f}{a['peak_rss'] / size:>15.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
