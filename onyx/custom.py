"""Custom operators: an op of your own domain, known to the checker, shape inference and the runtime.

One call registers the three parts of an operator::

    import numpy as np
    import onyx

    def swish(x, *, beta=1.0):                       # inputs positional, attributes keyword-only
        return x / (1 + np.exp(-beta * x))

    op = onyx.register_op(
        "Swish", "com.example",
        inputs=[("X", "T")], outputs=[("Y", "T")],
        attributes={"beta": 1.0},                    # name -> default (or AttrType: required)
        type_constraints={"T": ["tensor(float)", "tensor(double)"]},
        shape=lambda ctx: ctx.s(0),                  # Y has X's shape
        kernel=swish,
    )
    ...                                              # models importing com.example now work
    op.unregister()                                  # or: with onyx.register_op(...): ...

The schema (inputs, outputs, attributes, type constraints, since_version) goes into the table
``onyx.defs`` reads, so ``onyx.check`` checks arity, types and attributes of such nodes; the shape
rule goes into ``onyx.shapes`` (without one, outputs get the element type the type constraints
bind and no shape); the kernel goes into the runtime's kernel table, so ``InferenceSession`` runs
it, with the schema's attribute defaults filled in. Each is picked like a standard operator's: the
newest since_version not above the model's opset import of the domain.

A shape rule receives the node's context (``onyx.shapes.NodeContext``): ``ctx.t(i)`` the type of
input ``i``, ``ctx.s(i)`` its shape as a tuple of dims (ints, symbols, None) or None,
``ctx.dt(i)`` its element type, ``ctx.v(i)`` its value when known, ``ctx.a(name)`` an attribute,
``ctx.nin``/``ctx.nout``, ``ctx.fresh()`` a new symbol. It returns, per output (a list when there
are several), a tuple of dims, None (element type only), or a full ``ir.Type``; a
``onyx.shapes.ShapeError`` it raises is a shape error of the node (a ValidationError under strict
inference).

A kernel is a function ``fn(*inputs, **attributes)`` (inputs positional, numpy arrays or None for
an omitted optional input; attributes keyword-only) or a class whose ``__init__`` takes the
attributes and whose ``__call__`` takes the inputs (prepared once per node). It returns an array,
or a tuple of arrays for several outputs. Registration compares the signature with the schema and
refuses one that cannot be called as the schema says (too few positional parameters, a required
one for an optional input, a keyword the schema does not declare, an attribute it cannot take).

``torch=fn`` adds a converter for ``onyx.to_torch``: ``fn(cx, *inputs, **attributes)`` like the
bridge's own converters (onyx/pytorch/registry.py), checked against the schema the same way and
given the schema's attribute defaults. torch is not imported for it: the bridge takes the
converters registered so far when it loads (``install_converters``) and later ones directly.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from onyx import defs
from onyx.defs.schemas import INFINITE, deregister_schema, register_schema
from onyx.errors import KernelError, RegistrationError
from onyx.ir.attribute import AttrType, infer_attr_type

__all__ = ["CustomOp", "install_converters", "register_op", "registered_ops", "unregister_op"]

_STANDARD = frozenset({"", "ai.onnx", *defs.DOMAINS, "ai.onnx.training"})
_OPTIONS = ("single", "optional", "variadic")
_REGISTERED: dict[tuple[str, str, int], CustomOp] = {}


@dataclasses.dataclass
class CustomOp:
    """A registered custom operator (one version): its schema, shape rule and kernel.

    ``unregister()`` removes all three; used as a context manager it unregisters on exit.
    """

    schema: defs.Schema
    shape: Callable | None = None
    kernel: Callable | None = None
    torch: Callable | None = None
    _bound_kernel: Any = dataclasses.field(default=None, repr=False)
    _bound_converter: Any = dataclasses.field(default=None, repr=False)

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.schema.domain, self.schema.name, self.schema.since_version)

    def unregister(self) -> None:
        """Remove this operator version from the checker, shape inference and the runtime."""
        if _REGISTERED.get(self.key) is not self:
            return
        domain, name, version = self.key
        del _REGISTERED[self.key]
        deregister_schema(name, version, domain)
        _install_rule(domain, name)
        if self._bound_kernel is not None:
            from onyx.runtime.kernels.registry import KERNELS

            table = KERNELS.get((domain, name), {})
            if table.get(version) is self._bound_kernel:
                del table[version]
            if not table:
                KERNELS.pop((domain, name), None)
        if self._bound_converter is not None and _TORCH_TABLE:
            table = _TORCH_TABLE[0].get((domain, name), {})
            if table.get(version) is self._bound_converter:
                del table[version]
            if not table:
                _TORCH_TABLE[0].pop((domain, name), None)

    def __enter__(self) -> CustomOp:  # noqa: PYI034 - Self needs Python 3.11
        return self

    def __exit__(self, *_: object) -> None:
        self.unregister()


def register_op(
    name: str,
    domain: str,
    *,
    inputs: Sequence[Any],
    outputs: Sequence[Any],
    attributes: Mapping[str, Any] | None = None,
    type_constraints: Mapping[str, Iterable[str]] | None = None,
    since_version: int = 1,
    shape: Callable | None = None,
    kernel: Callable | type | None = None,
    torch: Callable | None = None,
) -> CustomOp:
    """Register operator ``domain::name`` from ``since_version`` on (see the module docstring).

    ``inputs``/``outputs``: ``(name, type)`` or ``(name, type, option)`` pairs, where type is a
    type-constraint name or a type string (``"tensor(int64)"``) and option is ``"single"`` (the
    default), ``"optional"`` or ``"variadic"``. ``attributes``: name -> default value (its kind
    follows the value), name -> ``AttrType`` (a required attribute), or ``defs.AttributeDef``.
    ``type_constraints``: name -> the type strings it allows. Raises ``RegistrationError`` when
    the version is registered already, the domain is one of the standard's, or the schema or the
    kernel's signature is malformed. ``torch``: a converter for ``onyx.to_torch``,
    ``fn(cx, *inputs, **attributes)`` as the bridge's own (onyx/pytorch/registry.py); torch is
    not imported for it.
    """
    where = f"custom operator {domain}::{name}-{since_version}"
    if not isinstance(name, str) or not name.isidentifier():
        raise RegistrationError(f"{where}: the name must be an identifier, got {name!r}")
    if not isinstance(domain, str) or domain in _STANDARD:
        raise RegistrationError(
            f"{where}: custom operators live in a domain of their own (e.g. 'com.example'), "
            f"not the standard's {domain!r}"
        )
    if not isinstance(since_version, int) or isinstance(since_version, bool) or since_version < 1:
        raise RegistrationError(f"{where}: since_version must be a positive int")
    if (domain, name, since_version) in _REGISTERED or since_version in defs.versions(name, domain):
        raise RegistrationError(
            f"{where} is already registered; unregister it first (op.unregister() or "
            "onyx.unregister_op) or register another since_version"
        )
    constraints = {k: tuple(v) for k, v in (type_constraints or {}).items()}
    for key, allowed in constraints.items():
        if isinstance(allowed, str) or not allowed:
            raise RegistrationError(f"{where}: type constraint {key!r} needs a list of types")
        for t in allowed:
            _check_type_str(where, f"type constraint {key!r}", t)
    ins = _params(where, "input", inputs, constraints)
    outs = _params(where, "output", outputs, constraints)
    attrs = _attributes(where, attributes or {})
    schema = defs.Schema(
        domain=domain, name=name, since_version=since_version, deprecated=False,
        inputs=ins, outputs=outs, attributes=attrs, type_constraints=constraints,
        min_input=_min_count(ins), max_input=_max_count(ins),
        min_output=_min_count(outs), max_output=_max_count(outs),
    )  # fmt: skip
    if shape is not None and not callable(shape):
        raise RegistrationError(f"{where}: shape must be a function of the node context")
    bound = _bind_kernel(where, schema, kernel) if kernel is not None else None
    if bound is not None:
        from onyx.runtime.kernels.registry import KERNELS

        if since_version in KERNELS.get((domain, name), {}):
            raise RegistrationError(f"{where}: the runtime already has a kernel for this version")
    converter = _bind_converter(where, schema, torch) if torch is not None else None
    if (
        converter is not None
        and _TORCH_TABLE
        and since_version in _TORCH_TABLE[0].get((domain, name), {})
    ):
        raise RegistrationError(f"{where}: onyx.to_torch already has a converter for this version")
    op = CustomOp(schema, shape, kernel, torch, bound, converter)
    register_schema(schema)
    _REGISTERED[op.key] = op
    _install_rule(domain, name)
    if bound is not None:
        KERNELS.setdefault((domain, name), {})[since_version] = bound
    if converter is not None and _TORCH_TABLE:
        _TORCH_TABLE[0].setdefault((domain, name), {})[since_version] = converter
    return op


def unregister_op(name: str, domain: str, since_version: int | None = None) -> None:
    """Unregister ``domain::name`` (one version, or all when ``since_version`` is None);
    RegistrationError when nothing matches."""
    ops = [op for key, op in _REGISTERED.items() if key[:2] == (domain, name)
           and (since_version is None or key[2] == since_version)]  # fmt: skip
    if not ops:
        version = "" if since_version is None else f"-{since_version}"
        raise RegistrationError(f"no custom operator {domain}::{name}{version} is registered")
    for op in ops:
        op.unregister()


def registered_ops() -> list[CustomOp]:
    """The custom operators registered now, by domain, name and version."""
    return [_REGISTERED[k] for k in sorted(_REGISTERED)]


# --- the schema ------------------------------------------------------------------------------
def _check_type_str(where: str, what: str, t: Any) -> None:
    from onyx.shapes import parse_type

    ok = isinstance(t, str)
    if ok:
        try:
            ok = parse_type(t) is not None or t.replace(" ", "").startswith("map(")
        except (KeyError, ValueError, IndexError):
            ok = False
    if not ok:
        raise RegistrationError(
            f"{where}: {what}: {t!r} is not a type string such as 'tensor(float)', "
            "'seq(tensor(int64))' or 'optional(tensor(bool))'"
        )


def _params(where: str, kind: str, items: Sequence[Any], constraints: Mapping) -> tuple:
    if isinstance(items, str | bytes):
        raise RegistrationError(f"{where}: {kind}s must be a list of (name, type) pairs")
    out = []
    for i, item in enumerate(items):
        if isinstance(item, defs.FormalParameter):
            param = item
        elif isinstance(item, tuple | list) and len(item) in (2, 3):
            pname, type_str, *rest = item
            option = rest[0] if rest else "single"
            if option not in _OPTIONS:
                raise RegistrationError(
                    f"{where}: {kind} {pname!r}: option {option!r} is not one of {_OPTIONS}"
                )
            param = defs.FormalParameter(str(pname), type_str, option)
        else:
            raise RegistrationError(
                f"{where}: {kind} {i} must be (name, type) or (name, type, option), got {item!r}"
            )
        if param.type_str not in constraints:
            _check_type_str(where, f"{kind} {param.name!r}", param.type_str)
        if param.is_variadic and i != len(items) - 1:
            raise RegistrationError(f"{where}: only the last {kind} may be variadic")
        out.append(param)
    return tuple(out)


def _min_count(params: tuple) -> int:
    required = [i for i, p in enumerate(params) if not p.is_optional]
    if not required:
        return 0
    last = required[-1]
    return last + (params[last].min_arity if params[last].is_variadic else 1)


def _max_count(params: tuple) -> int:
    return INFINITE if params and params[-1].is_variadic else len(params)


def _attributes(where: str, spec: Mapping[str, Any]) -> dict:
    out = {}
    for aname, value in spec.items():
        if isinstance(value, defs.AttributeDef):
            out[aname] = value
        elif isinstance(value, AttrType):
            out[aname] = defs.AttributeDef(aname, value, required=True)
        else:
            try:
                kind = infer_attr_type(value)
            except TypeError as e:
                raise RegistrationError(
                    f"{where}: attribute {aname!r}: {e}; give a defs.AttributeDef"
                ) from None
            out[aname] = defs.AttributeDef(aname, kind, required=False, default=value)
    return out


# --- the shape rule --------------------------------------------------------------------------
def _install_rule(domain: str, name: str) -> None:
    """Point shapes' rule table at a rule that dispatches on the selected schema's version."""
    from onyx.shapes.rules import RULES

    versions = {k[2]: op.shape for k, op in _REGISTERED.items() if k[:2] == (domain, name)}
    if not any(versions.values()):
        RULES.pop((domain, name), None)
        return

    def rule(ctx):
        fn = versions.get(ctx.schema.since_version) if ctx.schema is not None else None
        return fn(ctx) if fn is not None else None

    RULES[(domain, name)] = rule


# --- the kernel ------------------------------------------------------------------------------
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _bind_kernel(where: str, schema: defs.Schema, kernel: Any) -> Any:
    """Check ``kernel`` against ``schema``; return what the runtime's table holds: the kernel
    with the schema's attribute defaults filled in and its results checked."""
    is_class = isinstance(kernel, type)
    if not callable(kernel):
        raise RegistrationError(f"{where}: kernel must be a function or a class")
    _check_signature(where, schema, kernel, is_class, 0)
    return _wrap(schema, kernel, is_class, getattr(kernel, "__name__", repr(kernel)))


def _check_signature(where: str, schema: defs.Schema, kernel: Any, is_class: bool,
                     skip: int) -> None:  # fmt: skip
    """Refuse a kernel (or converter, after its ``skip`` leading parameters) that cannot be
    called with the schema's inputs positionally and its attributes by keyword."""
    what = "converter" if skip else "kernel"
    try:
        call_sig = inspect.signature(kernel.__call__ if is_class else kernel)
        init_sig = inspect.signature(kernel.__init__) if is_class else call_sig
    except (TypeError, ValueError) as e:
        raise RegistrationError(f"{where}: cannot read the {what}'s signature: {e}") from None
    call_params = list(call_sig.parameters.values())
    if is_class:
        call_params = call_params[1:]  # self
    if skip:
        lead = [p for p in call_params[:skip] if p.kind in _POSITIONAL]
        if len(lead) < skip:
            raise RegistrationError(f"{where}: a torch converter takes the conversion context "
                                    "first: fn(cx, *inputs, **attributes)")  # fmt: skip
        call_params = call_params[skip:]
    positional = [p for p in call_params if p.kind in _POSITIONAL]
    var_pos = any(p.kind == p.VAR_POSITIONAL for p in call_params)
    needed = [p.name for p in positional if p.default is p.empty]
    kname = f"{what} " + getattr(kernel, "__name__", repr(kernel))
    if schema.max_input == INFINITE and not var_pos:
        raise RegistrationError(f"{where}: its last input is variadic, so {kname} needs "
                                "a *inputs parameter")  # fmt: skip
    if schema.max_input != INFINITE and not var_pos and len(positional) < schema.max_input:
        raise RegistrationError(
            f"{where}: the schema has {schema.max_input} input(s), but {kname} takes "
            f"{len(positional)} positional parameter(s)" + (" after the context cx" if skip else "")
        )
    if len(needed) > schema.min_input:
        raise RegistrationError(
            f"{where}: {kname} requires {len(needed)} input(s) ({', '.join(needed)}), but "
            f"the schema requires {schema.min_input}; give the optional ones a default (None)"
        )
    if is_class:
        attr_params = [p for p in list(init_sig.parameters.values())[1:]
                       if p.kind not in (p.VAR_POSITIONAL,)]  # fmt: skip
        positional_init = [p.name for p in attr_params if p.kind == p.POSITIONAL_ONLY]
        if positional_init:
            raise RegistrationError(f"{where}: {kname}.__init__ takes attributes by keyword; "
                                    f"{', '.join(positional_init)} is positional-only")  # fmt: skip
    else:
        attr_params = [p for p in call_params if p.kind in (p.KEYWORD_ONLY, p.VAR_KEYWORD)]
        clash = [p.name for p in positional if p.name in schema.attributes]
        if clash:
            raise RegistrationError(
                f"{where}: {kname} takes attribute(s) {', '.join(clash)} positionally; "
                "make them keyword-only (after a *)"
            )
    var_kw = any(p.kind == p.VAR_KEYWORD for p in attr_params)
    keywords = {p.name: p for p in attr_params if p.kind != p.VAR_KEYWORD}
    extra = sorted(n for n in keywords if n not in schema.attributes and not n.startswith("_"))
    if extra:
        raise RegistrationError(f"{where}: {kname} takes keyword(s) {', '.join(extra)} "
                                "that the schema does not declare as attributes")  # fmt: skip
    missing = sorted(n for n in schema.attributes if n not in keywords and not var_kw)
    if missing:
        raise RegistrationError(f"{where}: {kname} cannot take the schema's attribute(s) "
                                f"{', '.join(missing)}")  # fmt: skip
    for n, p in keywords.items():
        spec = schema.attributes.get(n)
        if spec is not None and p.default is p.empty and not spec.required and spec.default is None:
            raise RegistrationError(
                f"{where}: {kname} requires attribute {n!r}, which the schema makes "
                "optional with no default; give one of them a default"
            )


# --- the torch converter ---------------------------------------------------------------------
_TORCH_TABLE: list = []  # [onyx.pytorch's CONVERTERS] once the bridge is imported


def install_converters(table: Any) -> None:
    """Called by the PyTorch bridge when it loads: put the converters registered so far into
    its table, and those registered later too (torch is never imported for a registration)."""
    if _TORCH_TABLE:
        return
    _TORCH_TABLE.append(table)
    for (domain, name, version), op in _REGISTERED.items():
        if op._bound_converter is not None:
            table.setdefault((domain, name), {})[version] = op._bound_converter


def converter_hint(domain: str, name: str) -> str:
    """What to add to to_torch's "no converter" line for a registered custom operator."""
    if any(key[:2] == (domain, name) for key in _REGISTERED):
        return (
            " (a custom operator registered without a torch converter: pass register_op's torch=)"
        )
    return ""


def _bind_converter(where: str, schema: defs.Schema, fn: Any) -> Any:
    """Check a torch converter ``fn(cx, *inputs, **attributes)`` against ``schema``; return it
    with the schema's attribute defaults filled in, as the bridge's table holds it."""
    if not callable(fn) or isinstance(fn, type):
        raise RegistrationError(f"{where}: torch must be a function fn(cx, *inputs, **attributes)")
    _check_signature(where, schema, fn, False, 1)
    defaults = {n: a.default for n, a in schema.attributes.items() if a.default is not None}

    def convert(cx, *inputs, _outputs=1, **attrs):
        return fn(cx, *inputs, **{**defaults, **{k: v for k, v in attrs.items() if v is not None}})

    convert.__signature__ = _signature(schema, [
        inspect.Parameter("cx", inspect.Parameter.POSITIONAL_ONLY),
        inspect.Parameter("inputs", inspect.Parameter.VAR_POSITIONAL),
    ])  # fmt: skip
    convert.__name__ = getattr(fn, "__name__", "convert")
    return convert


def _signature(schema: defs.Schema, first: list) -> inspect.Signature:
    params = list(first)
    for n, spec in schema.attributes.items():
        if spec.required:
            params.append(inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY))
        else:
            params.append(inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=None))
    params.append(inspect.Parameter("_outputs", inspect.Parameter.KEYWORD_ONLY, default=1))
    return inspect.Signature(params)


def _results(result: Any, count: int, kname: str) -> Any:
    if count <= 1 and type(result) is not tuple:
        return result if isinstance(result, np.ndarray | list | dict) or result is None else (
            np.asarray(result))  # fmt: skip
    results = result if isinstance(result, tuple) else (result,)
    if len(results) < count:
        raise KernelError(f"custom kernel {kname} returned {len(results)} value(s) for {count} "
                          "outputs")  # fmt: skip
    return tuple(r if isinstance(r, np.ndarray | list | dict) or r is None else np.asarray(r)
                 for r in results)  # fmt: skip


def _wrap(schema: defs.Schema, kernel: Any, is_class: bool, kname: str) -> Any:
    defaults = {n: a.default for n, a in schema.attributes.items() if a.default is not None}

    def given(attrs: dict) -> dict:
        return {**defaults, **{k: v for k, v in attrs.items() if v is not None}}

    if not is_class:

        def call(*inputs, _outputs=1, **attrs):
            return _results(kernel(*inputs, **given(attrs)), _outputs, kname)

        call.__signature__ = _signature(
            schema, [inspect.Parameter("inputs", inspect.Parameter.VAR_POSITIONAL)]
        )
        call.__name__ = kname
        return call

    class Bound:
        def __init__(self, _outputs=1, **attrs):
            self.impl, self.count = kernel(**given(attrs)), _outputs

        def __call__(self, *inputs):
            return _results(self.impl(*inputs), self.count, kname)

    Bound.__init__.__signature__ = _signature(
        schema, [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    )
    Bound.__name__ = Bound.__qualname__ = kname
    return Bound
