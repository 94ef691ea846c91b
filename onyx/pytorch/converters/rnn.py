"""Recurrent layers: RNN, GRU, LSTM (all directions, activations, sequence lengths, layouts).

Each node becomes one call of ``recurrent`` in the module: plain eager torch that loops over the
time steps when the module runs, so the sequence length may stay symbolic and autograd,
``torch.compile`` and ``torch.export`` see ordinary tensor code. The input projection X·W is one
matmul over all steps. Variable sequence lengths are a mask: a batch entry's state is frozen and
its Y zero at steps ``t >= sequence_lens[b]``.
"""

from __future__ import annotations

from onyx.pytorch._torch import torch
from onyx.pytorch.registry import converter

F = torch.nn.functional

# name -> (function(x, alpha, beta), default alpha, default beta)
_ACTIVATIONS = {
    "relu": (lambda x, a, b: torch.relu(x), None, None),
    "tanh": (lambda x, a, b: torch.tanh(x), None, None),
    "sigmoid": (lambda x, a, b: torch.sigmoid(x), None, None),
    "affine": (lambda x, a, b: x * a + b, 1.0, 0.0),
    "leakyrelu": (lambda x, a, b: F.leaky_relu(x, a), 0.01, None),
    "thresholdedrelu": (lambda x, a, b: torch.where(x >= a, x, torch.zeros_like(x)), 1.0, None),
    "scaledtanh": (lambda x, a, b: a * torch.tanh(b * x), 1.0, 1.0),
    "hardsigmoid": (lambda x, a, b: torch.clamp(x * a + b, 0, 1), 0.2, 0.5),
    "elu": (lambda x, a, b: F.elu(x, a), 1.0, None),
    "softsign": (lambda x, a, b: x / (1 + torch.abs(x)), None, None),
    "softplus": (lambda x, a, b: F.softplus(x), None, None),
}


def _activations(cx, names, alphas, betas, per_dir: int, defaults: tuple[str, ...],
                 num_dir: int) -> tuple:  # fmt: skip
    """The activation list as ((name, alpha, beta), ...) per direction."""
    names = list(names) if names else list(defaults) * num_dir
    if len(names) == per_dir and num_dir == 2:
        names = names * 2
    if len(names) != per_dir * num_dir:
        raise cx.fail(f"expected {per_dir * num_dir} activations for {num_dir} direction(s), "
                      f"got {names}")  # fmt: skip
    alphas, betas = list(alphas or []), list(betas or [])
    by_index_a, by_index_b = len(alphas) == len(names), len(betas) == len(names)
    ia = ib = 0
    out = []
    for i, name in enumerate(names):
        entry = _ACTIVATIONS.get(name.lower())
        if entry is None:
            raise cx.fail(f"unknown activation {name!r}; expected one of {list(_ACTIVATIONS)}")
        _, a, b = entry
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
        out.append((name.lower(), a, b))
    return tuple(tuple(out[d * per_dir : (d + 1) * per_dir]) for d in range(num_dir))


def _act(spec):
    name, a, b = spec
    fn = _ACTIVATIONS[name][0]
    return lambda x: fn(x, a, b)


def _rnn_cell(xw, wb, rb, rt, p, acts, hs, clip, lbr, coupled):
    (f,) = acts
    xw = xw + (wb + rb)

    def step(t, h, c):
        return f(clip(xw[t] + h @ rt)), None

    return step


def _gru_cell(xw, wb, rb, rt, p, acts, hs, clip, lbr, coupled):
    f, g = acts
    if lbr:
        xw = xw + wb + torch.cat([rb[: 2 * hs], torch.zeros_like(rb[2 * hs :])])
        rbh = rb[2 * hs :]
    else:
        xw = xw + (wb + rb)
    r_zr, r_h = rt[:, : 2 * hs], rt[:, 2 * hs :]

    def step(t, h, c):
        xt = xw[t]
        if lbr:
            hr = h @ rt
            zr = f(clip(xt[:, : 2 * hs] + hr[:, : 2 * hs]))
            z, r = zr[:, :hs], zr[:, hs:]
            hh = g(clip(xt[:, 2 * hs :] + r * (hr[:, 2 * hs :] + rbh)))
        else:
            zr = f(clip(xt[:, : 2 * hs] + h @ r_zr))
            z, r = zr[:, :hs], zr[:, hs:]
            hh = g(clip(xt[:, 2 * hs :] + (r * h) @ r_h))
        return hh + z * (h - hh), None

    return step


def _lstm_cell(xw, wb, rb, rt, p, acts, hs, clip, lbr, coupled):
    f, g, hact = acts
    xw = xw + (wb + rb)
    pi, po, pf = (p[:hs], p[hs : 2 * hs], p[2 * hs :]) if p is not None else (None,) * 3

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


_CELLS = {"RNN": (_rnn_cell, 1), "GRU": (_gru_cell, 3), "LSTM": (_lstm_cell, 4)}


def recurrent(kind: str, x, w, r, b, lens, h0, c0, p, *, acts: tuple, direction: str,
              clip: float | None, layout: int, lbr: int, coupled: int, dtype: torch.dtype):  # fmt: skip
    """An ONNX RNN/GRU/LSTM in eager torch: (Y, Y_h) or (Y, Y_h, Y_c)."""
    cell, g = _CELLS[kind]
    x = x.to(dtype)
    xs = x.transpose(0, 1) if layout else x  # (T, B, I)
    seq, batch, isz = xs.shape
    nd = len(acts)
    hs = r.shape[-1]
    n_states = 2 if kind == "LSTM" else 1

    def state(init):
        if init is None:
            return torch.zeros(nd, batch, hs, dtype=dtype, device=x.device)
        return (init.transpose(0, 1) if layout else init).to(dtype)

    h0 = state(h0)
    c0 = state(c0) if n_states == 2 else None
    clamp = (lambda v: v) if clip is None else (lambda v: torch.clamp(v, -clip, clip))
    active = None
    if lens is not None:
        steps = torch.arange(seq, device=x.device).reshape(seq, 1, 1)
        active = steps < lens.to(torch.int64).reshape(1, batch, 1)  # (T, B, 1)
    xf = xs.reshape(seq * batch, isz)
    ys, hns, cns = [], [], []
    for d in range(nd):
        reverse = direction == "reverse" or d == 1
        wd, rd = w[d].to(dtype), r[d].to(dtype)
        if b is not None:
            wb, rb = b[d, : g * hs].to(dtype), b[d, g * hs :].to(dtype)
        else:
            wb = rb = torch.zeros(g * hs, dtype=dtype, device=x.device)
        xw = (xf @ wd.T).reshape(seq, batch, g * hs)
        pd = p[d].to(dtype) if p is not None else None
        step = cell(xw, wb, rb, rd.T, pd, [_act(s) for s in acts[d]], hs, clamp, lbr, coupled)
        h, c = h0[d], c0[d] if c0 is not None else None
        out = [None] * seq
        for t in range(seq - 1, -1, -1) if reverse else range(seq):
            h_new, c_new = step(t, h, c)
            if active is None:
                h, c = h_new, c_new
                out[t] = h
            else:
                on = active[t]
                h = torch.where(on, h_new, h)
                c = torch.where(on, c_new, c) if c is not None else None
                out[t] = torch.where(on, h_new, torch.zeros_like(h_new))
        if active is not None:  # an empty sequence has a zero final state (as onnxruntime)
            empty = (lens.to(torch.int64) == 0).reshape(batch, 1)
            h = torch.where(empty, torch.zeros_like(h), h)
            c = torch.where(empty, torch.zeros_like(c), c) if c is not None else None
        if seq:
            ys.append(torch.stack(out))
        else:
            ys.append(torch.zeros(0, batch, hs, dtype=dtype, device=x.device))
        hns.append(h)
        cns.append(c)
    y = torch.stack(ys, 1)  # (T, nd, B, H)
    y_h = torch.stack(hns)
    y_c = torch.stack(cns) if n_states == 2 else None
    if layout:
        y = y.permute(2, 0, 1, 3)
        y_h = y_h.transpose(0, 1)
        y_c = y_c.transpose(0, 1) if y_c is not None else None
    return (y, y_h) if y_c is None else (y, y_h, y_c)


def _convert(cx, kind, x, w, r, b, lens, h0, c0, p, *, hidden_size, direction, activations,
             activation_alpha, activation_beta, clip, layout, lbr=0, coupled=0):  # fmt: skip
    if direction == "foward":  # GRU-1's schema default has this spelling
        direction = "forward"
    if direction not in ("forward", "reverse", "bidirectional"):
        raise cx.fail(f"direction must be forward, reverse or bidirectional, got {direction!r}")
    if layout not in (0, 1):
        raise cx.fail(f"layout must be 0 or 1, got {layout}")
    num_dir = 2 if direction == "bidirectional" else 1
    per_dir, defaults = {"RNN": (1, ("Tanh",)), "GRU": (2, ("Sigmoid", "Tanh")),
                         "LSTM": (3, ("Sigmoid", "Tanh", "Tanh"))}[kind]  # fmt: skip
    acts = _activations(cx, activations, activation_alpha, activation_beta, per_dir, defaults,
                        num_dir)  # fmt: skip
    dtype = torch.float64 if cx.dtype(x) == torch.float64 else torch.float32
    out = cx.call(recurrent, kind, x, w, r, b, lens, h0, c0, p, acts=acts, direction=direction,
                  clip=clip, layout=layout, lbr=lbr, coupled=coupled, dtype=dtype)  # fmt: skip
    n = 3 if kind == "LSTM" else 2
    return tuple(out[i] for i in range(n))


@converter("RNN", 1, 14)
def rnn(cx, x, w, r, b=None, sequence_lens=None, initial_h=None, *,
        hidden_size: int | None = None, direction: str = "forward",
        activations: list[str] | None = None, activation_alpha: list[float] | None = None,
        activation_beta: list[float] | None = None, clip: float | None = None,
        layout: int = 0, output_sequence: int = 0):  # fmt: skip
    return _convert(cx, "RNN", x, w, r, b, sequence_lens, initial_h, None, None,
                    hidden_size=hidden_size, direction=direction, activations=activations,
                    activation_alpha=activation_alpha, activation_beta=activation_beta,
                    clip=clip, layout=layout)  # fmt: skip


@converter("GRU", 1, 3, 7, 14)
def gru(cx, x, w, r, b=None, sequence_lens=None, initial_h=None, *,
        hidden_size: int | None = None, direction: str = "forward",
        activations: list[str] | None = None, activation_alpha: list[float] | None = None,
        activation_beta: list[float] | None = None, clip: float | None = None,
        layout: int = 0, linear_before_reset: int = 0, output_sequence: int = 0):  # fmt: skip
    return _convert(cx, "GRU", x, w, r, b, sequence_lens, initial_h, None, None,
                    hidden_size=hidden_size, direction=direction, activations=activations,
                    activation_alpha=activation_alpha, activation_beta=activation_beta,
                    clip=clip, layout=layout, lbr=linear_before_reset)  # fmt: skip


@converter("LSTM", 1, 7, 14)
def lstm(cx, x, w, r, b=None, sequence_lens=None, initial_h=None, initial_c=None, p=None, *,
         hidden_size: int | None = None, direction: str = "forward",
         activations: list[str] | None = None, activation_alpha: list[float] | None = None,
         activation_beta: list[float] | None = None, clip: float | None = None,
         layout: int = 0, input_forget: int = 0, output_sequence: int = 0):  # fmt: skip
    return _convert(cx, "LSTM", x, w, r, b, sequence_lens, initial_h, initial_c, p,
                    hidden_size=hidden_size, direction=direction, activations=activations,
                    activation_alpha=activation_alpha, activation_beta=activation_beta,
                    clip=clip, layout=layout, coupled=input_forget)  # fmt: skip
