"""onyx as an `onnx.backend.base.Backend`, the standard way runtimes run the official tests."""

from __future__ import annotations

import onnx
import onnx.backend.base

import onyx


class OnyxRep(onnx.backend.base.BackendRep):
    def __init__(self, session: onyx.InferenceSession):
        self.session = session
        self.input_names = [arg.name for arg in session.get_inputs()]

    def run(self, inputs, **kwargs):
        if isinstance(inputs, dict):
            feeds = inputs
        else:
            feeds = {name: value for name, value in zip(self.input_names, inputs)}
        return self.session.run(None, feeds)


class OnyxBackend(onnx.backend.base.Backend):
    @classmethod
    def is_compatible(cls, model, device="CPU", **kwargs) -> bool:
        return True

    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs) -> OnyxRep:
        return OnyxRep(onyx.InferenceSession(model.SerializeToString()))

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return device == "CPU"
