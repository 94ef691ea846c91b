"""Recurrent kernels: RNN, GRU, LSTM (all directions, sequence lengths, layouts, activations).

The input projection X·W is one matmul over all time steps; only the recurrence loops over time.
Variable sequence lengths are a mask: a batch entry's state is frozen (and its Y zero) at steps
``t >= sequence_lens[b]``, which also gives the reverse direction its per-entry start for free.
"""

from __future__ import annotations

import numpy as np

from onyx.errors import KernelError
from onyx.runtime.kernels.registry import kernel

_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)


def _sigmoid(x, a, b):
    return np.tanh(x * 0.5) * 0.5 + 0.5


def _softplus(x, a, b):
    return np.logaddexp(0, x)


# name -> (function(x, alpha, beta), default alpha, default beta)
_ACTIVATIONS = {
    "relu": (lambda x, a, b: np.maximum(x, 0), None, None),
    "tanh": (lambda x, a, b: np.tanh(x), None, None),
    "sigmoid": (_sigmoid, None, None),
    "affine": (lambda x, a, b: x * a + b, 1.0, 0.0),
    "leakyrelu": (lambda x, a, b: np.where(x >= 0, x, x * a), 0.01, None),
    "thresholdedrelu": (lambda x, a, b: np.where(x >= a, x, 0), 1.0, None),
    "scaledtanh": (lambda x, a, b: a * np.tanh(b * x), 1.0, 1.0),
    "hardsigmoid": (lambda x, a, b: np.clip(x * a + b, 0, 1), 0.2, 0.5),
    "elu": (lambda x, a, b: np.where(x >= 0, x, a * np.expm1(np.minimum(x, 0))), 1.0, None),
    "softsign": (lambda x, a, b: x / (1 + np.abs(x)), None, None),
    "softplus": (_softplus, None, None),
}


def _activations(names, alphas, betas, per_dir: int, defaults: tuple[str, ...], num_dir: int):
    """Resolve the activation list into callables ``f(x)``, ``per_dir`` per direction."""
    names = list(names) if names else list(defaults) * num_dir
    if len(names) == per_dir and num_dir == 2:
        names = names * 2
    if len(names) != per_dir * num_dir:
        raise KernelError(
            f"expected {per_dir * num_dir} activations for {num_dir} direction(s), got {names}"
        )
    alphas, betas = list(alphas or []), list(betas or [])
    # alpha/beta lists: one per activation, or consumed in order by those that take one
    by_index_a, by_index_b = len(alphas) == len(names), len(betas) == len(names)
    ia = ib = 0
    fns = []
    for i, name in enumerate(names):
        entry = _ACTIVATIONS.get(name.lower())
        if entry is None:
            raise KernelError(f"unknown activation {name!r}; expected one of {list(_ACTIVATIONS)}")
        fn, a, b = entry
        if a is not None:
            if by_index_a:
                a = alphas[i]
            elif ia < len(alphas):
                a, ia = alphas[ia], ia + 1
        if b is not None:
            if by_index_b:
                b = betas[i]
            elif ib < len(betas):
                b, ib = betas[ib], ib + 1
        fns.append(lambda x, fn=fn, a=a, b=b: fn(x, a, b))
    return [fns[d * per_dir : (d + 1) * per_dir] for d in range(num_dir)]


class _Recurrent:
    """Shared plumbing: attributes, input checks, layouts, directions, masking, outputs."""

    gates = 1
    per_dir = 1
    default_acts = ("Tanh",)
    n_states = 1

    def __init__(self, *, hidden_size=None, direction="forward", activations=None,
                 activation_alpha=None, activation_beta=None, clip=None, layout=0,
                 output_sequence=0, linear_before_reset=0, input_forget=0):  # fmt: skip
        if direction == "foward":  # GRU-1's schema default has this spelling
            direction = "forward"
        if direction not in ("forward", "reverse", "bidirectional"):
            raise KernelError(
                f"direction must be forward, reverse or bidirectional, got {direction!r}"
            )
        if layout not in (0, 1):
            raise KernelError(f"layout must be 0 or 1, got {layout}")
        if clip is not None and clip <= 0:
            raise KernelError(f"clip must be positive, got {clip}")
        self.hidden_size = hidden_size
        self.direction = direction
        self.num_dir = 2 if direction == "bidirectional" else 1
        self.acts = _activations(activations, activation_alpha, activation_beta,
                                 self.per_dir, self.default_acts, self.num_dir)  # fmt: skip
        self.clip = clip
        self.layout = layout
        self.linear_before_reset = bool(linear_before_reset)
        self.input_forget = bool(input_forget)

    def _clip(self, g):
        return g if self.clip is None else np.clip(g, -self.clip, self.clip, out=g)

    def _state(self, init, name, shape, wt):
        if init is None:
            return np.zeros(shape, wt)
        if self.layout:
            init = init.transpose(1, 0, 2)
        if init.shape != shape:
            raise KernelError(f"{name} must have shape {shape} (layout {self.layout}), "
                              f"got {init.shape}")  # fmt: skip
        return init.astype(wt)

    def __call__(self, x, w, r, b=None, sequence_lens=None, initial_h=None, initial_c=None,
                 p=None):  # fmt: skip
        if x.ndim != 3:
            raise KernelError(f"X must be 3-D, got shape {x.shape}")
        dt = x.dtype
        wt = _F64 if dt == _F64 else _F32
        xs = x.transpose(1, 0, 2) if self.layout else x  # (T, B, I)
        seq, batch, isz = xs.shape
        nd, g = self.num_dir, self.gates
        hs = r.shape[-1] if r.ndim == 3 else -1
        if self.hidden_size is not None and hs != self.hidden_size:
            raise KernelError(f"R has shape {r.shape}, expected hidden_size {self.hidden_size}")
        if w.shape != (nd, g * hs, isz):
            raise KernelError(f"W must have shape {(nd, g * hs, isz)}, got {w.shape}")
        if r.shape != (nd, g * hs, hs):
            raise KernelError(f"R must have shape {(nd, g * hs, hs)}, got {r.shape}")
        if b is not None and b.shape != (nd, 2 * g * hs):
            raise KernelError(f"B must have shape {(nd, 2 * g * hs)}, got {b.shape}")
        lens = None
        if sequence_lens is not None:
            if sequence_lens.shape != (batch,):
                raise KernelError(f"sequence_lens must have shape ({batch},), "
                                  f"got {sequence_lens.shape}")  # fmt: skip
            if ((sequence_lens < 0) | (sequence_lens > seq)).any():
                raise KernelError(f"sequence_lens values must be in [0, {seq}], "
                                  f"got {sequence_lens.tolist()}")  # fmt: skip
            if (sequence_lens != seq).any():
                lens = sequence_lens.astype(np.int64)
        hshape = (nd, batch, hs)
        h0 = self._state(initial_h, "initial_h", hshape, wt)
        c0 = self._state(initial_c, "initial_c", hshape, wt) if self.n_states == 2 else None
        if p is not None and p.shape != (nd, 3 * hs):
            raise KernelError(f"P must have shape {(nd, 3 * hs)}, got {p.shape}")

        xf = xs.astype(wt, copy=False).reshape(seq * batch, isz)
        y = np.zeros((seq, nd, batch, hs), wt)
        y_h = np.empty(hshape, wt)
        y_c = np.empty(hshape, wt) if self.n_states == 2 else None
        for d in range(nd):
            reverse = self.direction == "reverse" or d == 1
            wb = b[d, : g * hs].astype(wt) if b is not None else np.zeros(g * hs, wt)
            rb = b[d, g * hs :].astype(wt) if b is not None else np.zeros(g * hs, wt)
            xw = (xf @ w[d].astype(wt, copy=False).T).reshape(seq, batch, g * hs)
            rt = np.ascontiguousarray(r[d].astype(wt, copy=False).T)  # (hs, g*hs)
            pd = p[d].astype(wt) if p is not None else None
            step = self.cell(xw, wb, rb, rt, pd, self.acts[d], hs)
            h = h0[d]
            c = c0[d] if c0 is not None else None
            for t in range(seq - 1, -1, -1) if reverse else range(seq):
                h_new, c_new = step(t, h, c)
                if lens is None:
                    h, c = h_new, c_new
                    y[t, d] = h
                else:
                    active = (t < lens)[:, None]
                    h = np.where(active, h_new, h)
                    if c is not None:
                        c = np.where(active, c_new, c)
                    y[t, d] = np.where(active, h_new, 0)
            if lens is not None:  # an empty sequence has a zero final state (as onnxruntime)
                empty = (lens == 0)[:, None]
                h = np.where(empty, 0, h)
                c = np.where(empty, 0, c) if c is not None else None
            y_h[d] = h
            if y_c is not None:
                y_c[d] = c
        if self.layout:
            y = y.transpose(2, 0, 1, 3)
            y_h = y_h.transpose(1, 0, 2)
            y_c = y_c.transpose(1, 0, 2) if y_c is not None else None
        outs = (y, y_h) if y_c is None else (y, y_h, y_c)
        return tuple(np.ascontiguousarray(o, dtype=dt) for o in outs)


@kernel("RNN", 1, 14)
class RNN(_Recurrent):
    """Ht = f(Xt·Wi^T + Ht-1·Ri^T + Wbi + Rbi)."""

    def cell(self, xw, wb, rb, rt, p, acts, hs):
        xw += wb + rb
        (f,) = acts

        def step(t, h, c):
            return f(self._clip(xw[t] + h @ rt)), None

        return step


@kernel("GRU", 1, 3, 14)
class GRU(_Recurrent):
    """Gates z, r, h; ``linear_before_reset`` applies the reset after the recurrent matmul."""

    gates, per_dir, default_acts = 3, 2, ("Sigmoid", "Tanh")

    def cell(self, xw, wb, rb, rt, p, acts, hs):
        f, g = acts
        lbr = self.linear_before_reset
        if lbr:
            xw += wb
            xw[..., : 2 * hs] += rb[: 2 * hs]
            rbh = rb[2 * hs :]
        else:
            xw += wb + rb
        r_zr, r_h = rt[:, : 2 * hs], rt[:, 2 * hs :]

        def step(t, h, c):
            xt = xw[t]
            if lbr:
                hr = h @ rt
                zr = f(self._clip(xt[:, : 2 * hs] + hr[:, : 2 * hs]))
                z, r = zr[:, :hs], zr[:, hs:]
                hh = g(self._clip(xt[:, 2 * hs :] + r * (hr[:, 2 * hs :] + rbh)))
            else:
                zr = f(self._clip(xt[:, : 2 * hs] + h @ r_zr))
                z, r = zr[:, :hs], zr[:, hs:]
                hh = g(self._clip(xt[:, 2 * hs :] + (r * h) @ r_h))
            return hh + z * (h - hh), None  # (1 - z) * hh + z * h

        return step


@kernel("LSTM", 1, 14)
class LSTM(_Recurrent):
    """Gates i, o, f, c with optional peepholes P[iof] and coupled input/forget gates."""

    gates, per_dir, default_acts, n_states = 4, 3, ("Sigmoid", "Tanh", "Tanh"), 2

    def cell(self, xw, wb, rb, rt, p, acts, hs):
        f, g, hact = acts
        xw += wb + rb
        pi, po, pf = (p[:hs], p[hs : 2 * hs], p[2 * hs :]) if p is not None else (None,) * 3
        coupled = self.input_forget
        clip = self._clip

        def step(t, h, c):
            gates = xw[t] + h @ rt
            gi, go, gf, gc = (gates[:, k * hs : (k + 1) * hs] for k in range(4))
            if pi is not None:
                gi = gi + pi * c
                gf = gf + pf * c
            i = f(clip(gi))
            fg = 1 - i if coupled else f(clip(gf))
            c_new = fg * c + i * g(clip(gc))
            if po is not None:
                go = go + po * c_new
            o = f(clip(go))
            return o * hact(c_new), c_new

        return step
