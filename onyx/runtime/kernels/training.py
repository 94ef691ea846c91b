"""Training operators of ``ai.onnx.preview.training``: optimizers and Gradient.

The optimizers take ``R`` (learning rate), ``T`` (update count) and then groups of tensors in
order: every ``X``, then every ``G``, then each state (``H`` for Adagrad; ``V`` for Momentum;
``V`` and ``H`` for Adam). They return the new ``X``s followed by each new state group.

Gradient differentiates its own graph: the plan hands it the graph around the node (the kernel
declares ``wants_graph``), and at build time it collects the nodes between ``xs``/``zs`` and
``y``. Each call recomputes that forward slice at the given inputs and runs reverse mode over
it. Only a small set of attribute-free differentiable ops has rules; others raise
UnsupportedError when the session is built.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from onyx.errors import KernelError, UnsupportedError, ValidationError
from onyx.runtime.kernels.registry import kernel

TRAINING = "ai.onnx.preview.training"


# --- optimizers --------------------------------------------------------------------------------
def _scalar(value, name: str) -> float:
    a = np.asarray(value)
    if a.size != 1:
        raise KernelError(f"{name} must be a scalar, got shape {list(a.shape)}")
    return a.reshape(()).item()


def _groups(inputs: tuple, n_groups: int, op: str) -> list[tuple]:
    """Split the variadic inputs into ``n_groups`` equal groups (X..., G..., states...)."""
    if not inputs or len(inputs) % n_groups:
        raise KernelError(
            f"{op} expects {n_groups} tensors per optimized variable after R and T "
            f"(a multiple of {n_groups}), got {len(inputs)}"
        )
    n = len(inputs) // n_groups
    for i, x in enumerate(inputs):
        if x is None:
            raise KernelError(f"{op}: input {i + 2} is missing")
        if np.asarray(x).dtype not in (np.float32, np.float64):
            raise KernelError(f"{op}: tensors must be float or double, got {np.asarray(x).dtype}")
    return [tuple(inputs[k * n : (k + 1) * n]) for k in range(n_groups)]


def _same_shape(op: str, x: np.ndarray, *others: np.ndarray) -> None:
    """Gradients and states must have X's shape (or broadcast to it)."""
    for other in others:
        if other.shape != x.shape:
            try:
                fits = np.broadcast_shapes(other.shape, x.shape) == x.shape
            except ValueError:
                fits = False
            if not fits:
                raise KernelError(
                    f"{op}: tensor of shape {list(other.shape)} does not match X of shape "
                    f"{list(x.shape)}"
                )


@kernel("Adagrad", 1, domain=TRAINING)
def adagrad(r, t, *inputs, decay_factor=0.0, epsilon=1e-6, norm_coefficient=0.0):
    xs, gs, hs = _groups(inputs, 3, "Adagrad")
    rate = _scalar(r, "R") / (1.0 + _scalar(t, "T") * decay_factor)
    new_x, new_h = [], []
    for x, g, h in zip(xs, gs, hs):
        _same_shape("Adagrad", x, g, h)
        dtype = x.dtype
        g_reg = norm_coefficient * x + g
        h_new = h + g_reg * g_reg
        x_new = x - rate * g_reg / (np.sqrt(h_new) + epsilon)
        new_x.append(np.asarray(x_new, dtype).reshape(x.shape))
        new_h.append(np.asarray(np.broadcast_to(h_new, x.shape), h.dtype))
    return tuple(new_x + new_h)


@kernel("Adam", 1, domain=TRAINING)
def adam(r, t, *inputs, alpha=0.9, beta=0.999, epsilon=1e-6, norm_coefficient=0.0,
         norm_coefficient_post=0.0):  # fmt: skip
    xs, gs, vs, hs = _groups(inputs, 4, "Adam")
    rate, step = _scalar(r, "R"), _scalar(t, "T")
    if step > 0:
        rate = rate * np.sqrt(1.0 - beta**step) / (1.0 - alpha**step)
    new_x, new_v, new_h = [], [], []
    for x, g, v, h in zip(xs, gs, vs, hs):
        _same_shape("Adam", x, g, v, h)
        g_reg = norm_coefficient * x + g
        v_new = alpha * v + (1.0 - alpha) * g_reg
        h_new = beta * h + (1.0 - beta) * g_reg * g_reg
        x_new = (x - rate * v_new / (np.sqrt(h_new) + epsilon)) * (1.0 - norm_coefficient_post)
        new_x.append(np.asarray(x_new, x.dtype).reshape(x.shape))
        new_v.append(np.asarray(np.broadcast_to(v_new, x.shape), v.dtype))
        new_h.append(np.asarray(np.broadcast_to(h_new, x.shape), h.dtype))
    return tuple(new_x + new_v + new_h)


@kernel("Momentum", 1, domain=TRAINING)
def momentum(r, t, *inputs, alpha, beta, mode, norm_coefficient):
    if mode not in ("standard", "nesterov"):
        raise KernelError(f"Momentum mode must be 'standard' or 'nesterov', got {mode!r}")
    xs, gs, vs = _groups(inputs, 3, "Momentum")
    rate = _scalar(r, "R")
    beta_adjusted = beta if _scalar(t, "T") > 0 else 1.0
    new_x, new_v = [], []
    for x, g, v in zip(xs, gs, vs):
        _same_shape("Momentum", x, g, v)
        g_reg = norm_coefficient * x + g
        v_new = alpha * v + beta_adjusted * g_reg
        if mode == "nesterov":
            x_new = x - rate * (g_reg + alpha * v_new)
        else:
            x_new = x - rate * v_new
        new_x.append(np.asarray(x_new, x.dtype).reshape(x.shape))
        new_v.append(np.asarray(np.broadcast_to(v_new, x.shape), v.dtype))
    return tuple(new_x + new_v)


# --- Gradient ----------------------------------------------------------------------------------
def _unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum ``grad`` down to ``shape`` (the reverse of numpy broadcasting)."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


def _matmul_vjp(g, a, b, y):
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    g2 = g.reshape(np.matmul(a2, b2).shape)
    ga = np.matmul(g2, np.swapaxes(b2, -1, -2))
    gb = np.matmul(np.swapaxes(a2, -1, -2), g2)
    return _unbroadcast(ga, a2.shape).reshape(a.shape), _unbroadcast(gb, b2.shape).reshape(b.shape)


def _sum_vjp(g, *args):
    return tuple(_unbroadcast(g, a.shape) for a in args[:-1])


# op -> (forward(*inputs), vjp(grad_of_output, *inputs, output) -> grads of inputs)
_RULES: dict[str, tuple[Callable, Callable]] = {
    "Identity": (lambda a: a, lambda g, a, y: (g,)),
    "Neg": (np.negative, lambda g, a, y: (-g,)),
    "Add": (np.add, lambda g, a, b, y: (_unbroadcast(g, a.shape), _unbroadcast(g, b.shape))),
    "Sub": (np.subtract, lambda g, a, b, y: (_unbroadcast(g, a.shape), _unbroadcast(-g, b.shape))),
    "Mul": (np.multiply,
            lambda g, a, b, y: (_unbroadcast(g * b, a.shape), _unbroadcast(g * a, b.shape))),
    "Div": (np.divide,
            lambda g, a, b, y: (_unbroadcast(g / b, a.shape), _unbroadcast(-g * y / b, b.shape))),
    "Sum": (lambda *a: sum(a[1:], a[0]), _sum_vjp),
    "MatMul": (np.matmul, _matmul_vjp),
    "Relu": (lambda a: np.maximum(a, 0), lambda g, a, y: (g * (a > 0),)),
    "Sigmoid": (lambda a: 1 / (1 + np.exp(-a)), lambda g, a, y: (g * y * (1 - y),)),
    "Tanh": (np.tanh, lambda g, a, y: (g * (1 - y * y),)),
    "Exp": (np.exp, lambda g, a, y: (g * y,)),
    "Log": (np.log, lambda g, a, y: (g / a,)),
    "Sqrt": (np.sqrt, lambda g, a, y: (g / (2 * y),)),
}  # fmt: skip


def _constant_node(node) -> np.ndarray:
    from onyx.ir import Tensor

    for name, attr in node.attributes.items():
        value = attr.value
        if name == "value" and isinstance(value, Tensor):
            return value.numpy()
        if name in ("value_float", "value_floats"):
            return np.array(value, np.float32)
        if name in ("value_int", "value_ints"):
            return np.array(value, np.int64)
    raise UnsupportedError("Gradient: a Constant node in the differentiated graph needs 'value'")


@kernel("Gradient", 1, domain=TRAINING)
class Gradient:
    """Reverse-mode derivatives of ``y`` with respect to ``xs`` (``zs`` held fixed)."""

    wants_graph = True

    def __init__(self, *, xs, y, zs=None, _graph=None):
        if _graph is None:
            raise UnsupportedError("Gradient needs the graph around it (run it in a session)")
        self.xs, self.zs, self.y = list(xs), list(zs or []), y
        leaves = self.xs + self.zs
        produced = {v.name: n for n in _graph.nodes for v in n.outputs if v is not None}
        known = {v.name for v in _graph.inputs} | set(_graph.initializers) | set(produced)
        for name in leaves + [y]:
            if name not in known:
                raise ValidationError(f"Gradient: no value named {name!r} in the graph")
        self.constants: dict[str, np.ndarray] = {}
        needed: set = set()
        stack, seen = [y], set()
        while stack:  # walk back from y to the leaves
            name = stack.pop()
            if name in seen or name in leaves:
                continue
            seen.add(name)
            if name in _graph.initializers:
                self.constants[name] = _graph.initializers[name].const_value.numpy()
                continue
            producer = produced.get(name)
            if producer is None:
                raise ValidationError(
                    f"Gradient: {name!r} is needed to compute {y!r} but is not in xs or zs"
                )
            if producer.domain not in ("", "ai.onnx"):
                raise UnsupportedError(f"Gradient: no derivative rule for {producer.op_type}")
            if producer.op_type != "Constant" and producer.op_type not in _RULES:
                raise UnsupportedError(
                    f"Gradient: no derivative rule for {producer.op_type!r}; onyx "
                    f"differentiates {', '.join(sorted(_RULES))}"
                )
            if producer.op_type == "Constant":
                self.constants[name] = _constant_node(producer)
                continue
            if producer.attributes:
                raise UnsupportedError(
                    f"Gradient: {producer.op_type} with attributes is not differentiable in onyx"
                )
            needed.add(id(producer))
            stack += [v.name for v in producer.inputs if v is not None]
        # (op, input names, output name) in graph order
        self.tape = [
            (n.op_type, [v.name for v in n.inputs], n.outputs[0].name)
            for n in _graph.nodes
            if id(n) in needed
        ]

    def __call__(self, *inputs):
        leaves = self.xs + self.zs
        if len(inputs) != len(leaves):
            raise KernelError(
                f"Gradient expects {len(leaves)} inputs (xs then zs), got {len(inputs)}"
            )
        env = dict(self.constants)
        for name, value in zip(leaves, inputs):
            if value is None:
                raise KernelError(f"Gradient: input for {name!r} is missing")
            env[name] = np.asarray(value)
        for op, ins, out in self.tape:
            try:
                env[out] = np.asarray(_RULES[op][0](*(env[i] for i in ins)))
            except ValueError as e:
                raise KernelError(f"Gradient: forward {op} failed: {e}") from None
        target = env[self.y]
        grads: dict[str, np.ndarray] = {self.y: np.ones_like(target)}
        for op, ins, out in reversed(self.tape):
            g = grads.get(out)
            if g is None:
                continue
            args = [env[i] for i in ins]
            for name, gi in zip(ins, _RULES[op][1](g, *args, env[out])):
                if name in self.constants:
                    continue
                grads[name] = gi if name not in grads else grads[name] + gi
        results = []
        for name, value in zip(self.xs, inputs):
            value = np.asarray(value)
            g = grads.get(name)
            g = (
                np.zeros_like(value)
                if g is None
                else np.asarray(g, value.dtype).reshape(value.shape)
            )
            results.append(g)
        return tuple(results)
