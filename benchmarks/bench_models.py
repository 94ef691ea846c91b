"""Inference speed on real models: onyx, onnxruntime (CPU, default threads) and onnx's
reference evaluator in the same run, reported as ratios to onnxruntime.

Models: four of the light zoo shipped with onnx's test data, and BERT-base and GPT-2 small at
sequence length 128 (exported from randomly initialised models by export_models.py; never
committed). onyx's outputs are checked against onnxruntime's before timing.

Run: python benchmarks/bench_models.py [--models ...] [--repeat 10] [--no-reference]
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import statistics
import sys
import time

import numpy as np
import onnx

import onyx

LIGHT = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
MODELS = ["light_resnet50", "light_inception_v1", "light_densenet121", "light_squeezenet",
          "bert_base", "gpt2_small"]  # fmt: skip


def model_path(name: str) -> str:
    if name.startswith("light_"):
        return os.path.join(LIGHT, f"{name}.onnx")
    sys.path.insert(0, os.path.dirname(__file__))
    from export_models import export

    return str(export(name))


def feeds_for(session: onyx.InferenceSession) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    feeds = {}
    for arg in session.get_inputs():
        shape = [d if isinstance(d, int) else 1 for d in arg.shape]
        if arg.type == "tensor(int64)":
            feeds[arg.name] = rng.integers(0, 1000, shape, dtype=np.int64)
        else:
            n = math.prod(shape)
            feeds[arg.name] = (np.arange(n).reshape(shape) / n).astype(np.float32)
    return feeds


def median_time(fn, repeat: int) -> float:
    fn()  # warm up (and first-touch of the weights)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="*", default=MODELS)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument(
        "--no-reference", action="store_true", help="skip onnx's reference evaluator"
    )
    args = parser.parse_args()

    import onnxruntime as ort
    from onnx.reference import ReferenceEvaluator

    print(f"median of {args.repeat} runs; ratios are time / onnxruntime's time")
    print(
        f"{'model':<22}{'onnxruntime ms':>15}{'onyx ms':>10}{'onyx/ort':>10}{'reference/ort':>15}"
    )
    for name in args.models:
        path = model_path(name)
        session = onyx.InferenceSession(path)
        feeds = feeds_for(session)
        ort_session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        ours, theirs = session.run(None, feeds), ort_session.run(None, feeds)
        for a, b in zip(ours, theirs):
            np.testing.assert_allclose(
                a, b, rtol=1e-3, atol=1e-4, err_msg=f"{name}: onyx != onnxruntime"
            )
        t_ort = median_time(functools.partial(ort_session.run, None, feeds), args.repeat)
        t_onyx = median_time(functools.partial(session.run, None, feeds), args.repeat)
        ref = "-"
        if not args.no_reference:
            try:
                evaluator = ReferenceEvaluator(path)
                t_ref = median_time(functools.partial(evaluator.run, None, feeds), 1)
                ref = f"{t_ref / t_ort:.1f}x"
            except Exception as e:  # noqa: BLE001 - the peer failing is a result to report
                ref = f"fails ({type(e).__name__})"
        print(
            f"{name:<22}{t_ort * 1e3:>15.1f}{t_onyx * 1e3:>10.1f}{t_onyx / t_ort:>9.2f}x  {ref:>13}"
        )


if __name__ == "__main__":
    main()
