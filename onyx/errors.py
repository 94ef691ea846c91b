"""Every failure a user can cause ends in one of these classes.

Messages name the place (file, tensor, node, value, subgraph path) and what was expected.
"""

from __future__ import annotations


class OnyxError(Exception):
    """Base of every error onyx raises on bad input."""


# --- files and the wire format -------------------------------------------------------------
class FormatError(OnyxError):
    """A file or byte string is not a valid ONNX model (empty, truncated, garbage)."""


class TensorDataError(OnyxError):
    """Tensor data disagrees with its declared type or shape (wrong length, bad dims, bad type)."""


class UnknownDataTypeError(TensorDataError):
    """An element type code outside the standard's list."""


class ExternalDataError(OnyxError):
    """External tensor data is missing, out of range, or points outside the model's folder."""


# --- the graph -----------------------------------------------------------------------------
class GraphError(OnyxError):
    """The graph is malformed: a cycle, a value defined twice, a use of an undefined value."""


class ValidationError(OnyxError):
    """A model breaks a rule of the standard (raised by onyx.check)."""


class ParseError(OnyxError):
    """The textual syntax could not be parsed; the message gives line and column."""


# --- running -------------------------------------------------------------------------------
class UnsupportedError(OnyxError):
    """An operator, version, type or feature onyx does not implement."""


class FeedError(OnyxError):
    """Inputs given to InferenceSession.run do not match the model's declared inputs."""


class KernelError(OnyxError):
    """An operator failed on its inputs at run time (raised inside kernels, given a node by the plan)."""


class ExecutionError(OnyxError):
    """An operator failed while running; the message names the node, op type and subgraph path."""


class AllocationError(ExecutionError):
    """An operator asked for more memory than the session's allocation limit."""


class PassError(OnyxError):
    """A graph optimization pass failed or did not settle (the message names the pass and graph)."""


# --- extending -----------------------------------------------------------------------------
class RegistrationError(OnyxError):
    """A custom operator cannot be registered: its name is taken, its schema is malformed, or
    its kernel's signature does not fit the schema."""


class OptionError(OnyxError, ValueError):
    """A session or run option has a value outside what it accepts (an unknown option name is a
    TypeError, as for any Python keyword)."""
