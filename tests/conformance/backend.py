"""onyx as an `onnx.backend.base.Backend`, the standard way runtimes run the official tests."""

from __future__ import annotations

from dataclasses import dataclass

import onnx
import onnx.backend.base
import onnx.backend.test
from kernel_harness import compare, undefined_elements

import onyx


@dataclass
class LastRun:
    """The model, inputs (in graph-input order) and outputs of the latest ``OnyxRep.run``."""

    model: onnx.ModelProto
    inputs: list
    outputs: list


class OnyxRep(onnx.backend.base.BackendRep):
    #: onnx's runner compares outputs without the model or its inputs; the comparison below finds
    #: them here (it checks that the outputs it got are these very objects before using them).
    last_run: LastRun | None = None

    def __init__(self, session: onyx.InferenceSession, model: onnx.ModelProto):
        self.session = session
        self.model = model
        self.input_names = [arg.name for arg in session.get_inputs()]

    def run(self, inputs, **kwargs):
        if isinstance(inputs, dict):
            feeds = inputs
        else:
            feeds = {name: value for name, value in zip(self.input_names, inputs)}
        outputs = self.session.run(None, feeds)
        ordered = [feeds.get(name) for name in self.input_names]
        OnyxRep.last_run = LastRun(self.model, ordered, list(outputs))
        return outputs


class OnyxBackend(onnx.backend.base.Backend):
    @classmethod
    def is_compatible(cls, model, device="CPU", **kwargs) -> bool:
        return True

    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs) -> OnyxRep:
        return OnyxRep(onyx.InferenceSession(model.SerializeToString()), model)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return device == "CPU"


class OnyxBackendTest(onnx.backend.test.BackendTest):
    """onnx's backend test runner, comparing outputs the way tests/kernel_harness.py does.

    onnx's own comparison runs np.testing.assert_allclose in the output's type: integers within a
    tolerance, float8/float4/int4 arithmetic in the narrow type itself. Here every output is
    widened first, integers compare exactly, floats within the case's rtol/atol, and elements the
    standard leaves undefined are skipped (``kernel_harness.undefined_elements``).
    """

    @classmethod
    def assert_similar_outputs(cls, ref_outputs, outputs, rtol, atol, model_dir=None) -> None:
        name = model_dir or "official case"
        assert len(outputs) == len(ref_outputs), (
            f"{name}: {len(outputs)} outputs, expected {len(ref_outputs)}"
        )
        last = OnyxRep.last_run
        ours = last is not None and all(o is g for o, g in zip(outputs, last.outputs))
        for i, (got, expected) in enumerate(zip(outputs, ref_outputs)):
            undefined = undefined_elements(last.model, last.inputs, i, expected) if ours else None
            compare(name, got, expected, rtol, atol, undefined)
