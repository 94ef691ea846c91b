"""The PyTorch bridge side by side with its sources: round trips and speed.

    python benchmarks/bench_torch.py                 # corpus + full-size CNNs + node tests
    python benchmarks/bench_torch.py --no-node-tests --models bert,vit

For every model of tests/pytorch/corpus.py (transformers, 2 layers, hidden 64, random weights)
and three full-size transformers CNNs (ResNet-50, ConvNeXt-tiny, MobileNetV2 at 224x224; stand-ins
for torchvision's, whose PyPI wheels do not load beside the +cpu torch): ``torch.onnx.export``
then ``onyx.to_torch``; the scaled error of the round trip against eager; the imported module's
time against the source module's own eager time, both under ``torch.inference_mode()`` in the
same run (target <= 1.1x); and a session with the TorchExecutionProvider (numpy in and out)
against calling the imported module on tensors (target <= 5% overhead). Times are the fastest of
calls made in turn. Then the official node tests through onyx.to_torch and through onnx2torch
(when it is installed; its torchvision-only converters are stubbed out) for the comparison column.
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import sys
import time
import types
import warnings

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "tests"), str(HERE.parent)]

import torch

import onyx


def _full_size_cnns() -> dict:
    import transformers as tf

    def make(model):
        from pytorch.corpus import _Outputs

        return lambda: (_Outputs(model(), ("pooler_output",), ("pixel_values",)),
                        (torch.randn(1, 3, 224, 224),), "vision")  # fmt: skip

    return {
        "resnet50_224": make(lambda: tf.ResNetModel(tf.ResNetConfig())),
        "convnext_tiny_224": make(lambda: tf.ConvNextModel(tf.ConvNextConfig())),
        "mobilenet_v2_224": make(lambda: tf.MobileNetV2Model(tf.MobileNetV2Config())),
    }


def build(name: str):
    from pytorch import corpus

    extra = _full_size_cnns()
    if name in extra:
        torch.manual_seed(0)
        module, args, kind = extra[name]()
        corpus._rescale(module)
        return module.eval(), args, kind
    return corpus.build(name)


def timed(fns: dict, budget: float = 2.0) -> dict[str, float]:
    """Seconds per call of each function: the functions are called in turn, one call each per
    round, for about ``budget`` seconds, and each keeps its fastest call (on a shared, loaded
    machine the minimum is the steadiest estimate of what a call costs, and alternating single
    calls exposes every function to the same load)."""
    for fn in fns.values():
        fn()  # warm up
    best = {n: float("inf") for n in fns}
    end = time.perf_counter() + budget
    rounds = 0
    while rounds < 15 or time.perf_counter() < end:  # at least 15 calls of a big model
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t)
        rounds += 1
        if rounds >= 2000:
            break
    return best


def scaled_error(got, want) -> float:
    errs = [float((g.double() - w.double()).abs().max()) / max(1.0, float(w.abs().max()))
            for g, w in zip(got, want)]  # fmt: skip
    return max(errs)


def model_row(name: str) -> dict:
    module, args, kind = build(name)
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module, args, dynamo=True, verbose=False)
    export_s = time.perf_counter() - t
    model = onyx.load(program.model_proto.SerializeToString())
    imported = onyx.to_torch(model).eval()
    with torch.inference_mode():
        err = scaled_error(imported(*args), module(*args))
    session = onyx.InferenceSession(model, providers=["TorchExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    feeds = {n: a.numpy() for n, a in zip(names, args)}
    provider_module = session._torch.module  # the very module the provider calls

    def under_inference(m):
        def call():
            with torch.inference_mode():
                return m(*args)

        return call

    times = timed({
        "eager": under_inference(module),
        "imported": under_inference(imported),
        "module": under_inference(provider_module),
        "provider": lambda: session.run(None, feeds),
    })  # fmt: skip
    optimized = len(onyx.optimize(model).graph.nodes)  # what onyx.export would hand over
    return {"model": name, "kind": kind, "nodes": len(model.graph.nodes), "onyx_nodes": optimized,
            "error": err,
            "export_s": export_s, **times}  # fmt: skip


def _stub_torchvision() -> None:
    """onnx2torch imports torchvision for its NMS and RoiAlign converters only; torchvision's
    wheels do not load beside the +cpu torch, so those two fail at run time instead."""
    if "torchvision" in sys.modules:
        return
    try:
        import torchvision  # noqa: F401

        return
    except Exception:  # noqa: BLE001,S110  (not installed, or built for another torch)
        pass

    def missing(*_a, **_k):
        raise NotImplementedError("torchvision is not installed")

    tv, ops = types.ModuleType("torchvision"), types.ModuleType("torchvision.ops")
    ops.nms = ops.roi_align = ops.box_convert = missing
    tv.ops = ops
    sys.modules["torchvision"], sys.modules["torchvision.ops"] = tv, ops


def node_tests() -> dict[str, int]:
    """How many official node cases pass through onyx.to_torch and through onnx2torch."""
    import kernel_harness as kh
    from pytorch.test_node_cases import NAMES, _to_numpy_value, _to_torch_value, run_case

    counts = {"cases": len(NAMES), "onyx": 0}
    for name in NAMES:
        try:
            run_case(name)
            counts["onyx"] += 1
        except Exception:  # noqa: BLE001,S110
            pass
    try:
        _stub_torchvision()
        import onnx2torch
    except ImportError:
        return counts
    counts["onnx2torch"] = 0
    for name in NAMES:
        case = kh.all_node_cases()[name]
        try:
            module = onnx2torch.convert(case.model)
            for inputs, expected in case.data_sets:
                with torch.no_grad():
                    out = module(*[_to_torch_value(a) for a in inputs])
                outs = out if isinstance(out, tuple | list) else (out,)
                got = [_to_numpy_value(t) for t in outs]
                assert len(got) == len(expected)
                for i, (g, e) in enumerate(zip(got, expected)):
                    undefined = kh.undefined_elements(case.model, inputs, i, e)
                    kh.compare(name, g, e, case.rtol, case.atol, undefined)
            counts["onnx2torch"] += 1
        except Exception:  # noqa: BLE001,S110
            pass
    return counts


def main() -> None:
    from pytorch.corpus import NAMES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(NAMES + list(_full_size_cnns())))
    parser.add_argument("--no-node-tests", action="store_true")
    parser.add_argument("--only-node-tests", action="store_true")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's own)")
    opts = parser.parse_args()
    if opts.threads:
        torch.set_num_threads(opts.threads)
    warnings.filterwarnings("ignore")
    import logging

    logging.disable(logging.WARNING)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if not opts.only_node_tests:
        print(
            "| model | nodes (torch.onnx) | nodes (onyx.optimize) | round-trip error | eager ms | imported ms | imported/eager "
            "| module ms | provider ms | provider overhead |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    ratios, overheads = [], []
    for name in [] if opts.only_node_tests else opts.models.split(","):
        try:
            r = model_row(name)
        except Exception as e:  # noqa: BLE001  (one failing model must not hide the rest)
            print(f"| {name} | failed: {type(e).__name__}: {str(e)[:120]} ||||||||", flush=True)
            continue
        ratio, over = r["imported"] / r["eager"], r["provider"] / r["module"] - 1
        ratios.append(ratio)
        overheads.append(over)
        print(f"| {name} | {r['nodes']} | {r['onyx_nodes']} | {r['error']:.1e} | {1e3 * r['eager']:.2f} | "
              f"{1e3 * r['imported']:.2f} | {ratio:.2f}x | {1e3 * r['module']:.2f} | "
              f"{1e3 * r['provider']:.2f} | {100 * over:+.1f}% |", flush=True)  # fmt: skip
    if ratios:
        geo = float(np.exp(np.mean(np.log(ratios))))
        print(f"\nimported/eager: geometric mean {geo:.2f}x, max {max(ratios):.2f}x; provider "
              f"overhead: median {100 * statistics.median(overheads):+.1f}%, "
              f"max {100 * max(overheads):+.1f}%")  # fmt: skip
    if not opts.no_node_tests:
        counts = node_tests()
        line = f"official node tests: onyx.to_torch passes {counts['onyx']} of {counts['cases']}"
        if "onnx2torch" in counts:
            line += f"; onnx2torch passes {counts['onnx2torch']}"
        print(line)


if __name__ == "__main__":
    main()
