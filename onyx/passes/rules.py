"""Rules: a pattern of operators, a check that returns why not, and a replacement.

    class Relu6(Rule):
        def pattern(self, p, x):
            return p.op.Clip(x, p.const("lo"), p.const("hi"))
        def check(self, m, site):
            return None if (m["lo"], m["hi"]) == (0, 6) else "not a Relu6 clip"
        def replace(self, b, m, site):
            return b.op.Relu6(m.x)

The driver (``apply_rules``) owns the safety test: every matched node but the root must feed
only other matched nodes and no graph output, so nothing outside the match loses a value.
A variable used twice in a pattern must bind the same value both times (one wrong edge and the
pattern does not match); constants bind their arrays for ``check`` to test.
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np

from onyx.ir import Node, Value
from onyx.passes.core import Site, graph_pass, remove_dead, replace_value

_COMMUTATIVE = frozenset({"Add", "Mul", "Max", "Min", "And", "Or", "Equal", "Sum"})


class Var:
    """A pattern variable: any value (bound by name)."""

    def __init__(self, name: str):
        self.name = name


class Const(Var):
    """A pattern constant: any constant value; its array is bound by name."""


class Op:
    """A pattern node: an operator over pattern inputs; ``output`` picks which result it is."""

    def __init__(self, op_type: str, inputs: tuple, name: str | None, output: int = 0,
                 domain: str = ""):  # fmt: skip
        self.op_type, self.inputs, self.name, self.output = op_type, inputs, name, output
        self.domain = domain


class PatternBuilder:
    """``p.op.Mul(x, p.const("c"))``: pattern nodes in the op-builder language."""

    def __init__(self):
        self.count = 0
        outer = self

        class _Ops:
            def __getattr__(self, op_type: str):
                def make(*inputs, _name: str | None = None, _output: int = 0):
                    outer.count += 1
                    return Op(op_type, inputs, _name or f"{op_type}_{outer.count}", _output)

                return make

        self.op = _Ops()

    def var(self, name: str) -> Var:
        return Var(name)

    def const(self, name: str) -> Const:
        return Const(name)


class Match:
    """What a pattern bound: values and arrays by variable name, nodes by pattern-node name."""

    def __init__(self, root: Node):
        self.root = root
        self.values: dict[str, Value | None] = {}
        self.arrays: dict[str, np.ndarray] = {}
        self.nodes: dict[str, Node] = {}
        self.extra: dict[str, Any] = {}  # what check() computed, for replace()

    def __getattr__(self, name: str) -> Value:
        try:
            return self.__dict__["values"][name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    def copy(self) -> Match:
        m = Match(self.root)
        m.values, m.arrays, m.nodes = dict(self.values), dict(self.arrays), dict(self.nodes)
        return m


def _match(pat, value: Value | None, m: Match, site: Site) -> Iterator[Match]:
    """Every way ``pat`` matches ``value`` extending ``m`` (a fresh Match each)."""
    if isinstance(pat, Var):
        if pat.name in m.values:
            if m.values[pat.name] is value:
                yield m
            return
        if isinstance(pat, Const):
            array = site.const(value)
            if array is None:
                return
            m = m.copy()
            m.arrays[pat.name] = array
        else:
            m = m.copy()
        m.values[pat.name] = value
        yield m
        return
    if value is None:
        return
    node = value.producer
    if node is None or node.graph is not site.graph or node.op_type != pat.op_type:
        return
    if node.domain not in ("", "ai.onnx") if not pat.domain else node.domain != pat.domain:
        return
    if value.index != pat.output:
        return
    bound = m.nodes.get(pat.name)
    if bound is not None:
        if bound is node:
            yield m
        return
    if any(n is node for n in m.nodes.values()):
        return
    ins = list(node.inputs)
    while ins and ins[-1] is None:
        ins.pop()
    if len(ins) != len(pat.inputs):
        return
    m = m.copy()
    m.nodes[pat.name] = node
    orders = [pat.inputs]
    if pat.op_type in _COMMUTATIVE and len(pat.inputs) == 2:
        orders.append(pat.inputs[::-1])
    for order in orders:
        yield from _match_inputs(list(order), ins, m, site)


def _match_inputs(pats: list, values: list, m: Match, site: Site) -> Iterator[Match]:
    if not pats:
        yield m
        return
    for m2 in _match(pats[0], values[0], m, site):
        yield from _match_inputs(pats[1:], values[1:], m2, site)


class Rule:
    """A rewrite: ``pattern`` (built once), ``check`` (None to go, or why not), ``replace``."""

    name: str = "rule"
    emits: tuple[str, str, int] | None = None  # (domain, op, since): skipped below that opset
    max_opset: int | None = None  # skipped above (a rule rewriting an op that later changed)

    def pattern(self, p: PatternBuilder) -> Op:
        raise NotImplementedError

    def check(self, m: Match, site: Site) -> str | None:
        return None

    def replace(self, b: Site, m: Match) -> Value | list[Value]:
        raise NotImplementedError

    def built(self) -> list[Op]:
        """The pattern's variants (``pattern`` may return one Op or a list; one root op type)."""
        if "_pattern" not in self.__dict__:
            got = self.pattern(PatternBuilder())
            self._pattern = list(got) if isinstance(got, list | tuple) else [got]
        return self._pattern

    def applies(self, site: Site) -> bool:
        if self.emits is not None and self.emits[1] not in site.options.newer_ops:
            domain, _, since = self.emits
            if site.opsets.get(domain, 0) < since:
                return False
        return self.max_opset is None or site.opset <= self.max_opset

    def matches(self, node: Node, site: Site) -> Iterator[Match]:
        for root in self.built():
            if node.op_type != root.op_type:
                continue
            for out in node.outputs:
                if out is not None and out.index == root.output:
                    yield from _match(root, out, Match(node), site)


def leaks(m: Match, site: Site) -> str | None:
    """Why the match may not be replaced: an inner value read outside it or a graph output."""
    inside = set(m.nodes.values())
    g = site.graph
    for node in inside:
        if node is m.root:
            continue
        for v in node.outputs:
            if v is None:
                continue
            if v in g.outputs:
                return f"{v.name!r} is a graph output"
            for user, _ in v.uses:
                if user not in inside:
                    return f"{v.name!r} is also read by {user.name or user.op_type!r}"
    return None


def apply_rules(site: Site, rules: list[Rule]) -> collections.Counter:
    """Apply each rule wherever it matches safely; the counts by rule name."""
    counts: collections.Counter = collections.Counter()
    active = [r for r in rules if r.applies(site)]
    if not active:
        return counts
    by_root: dict[str, list[Rule]] = collections.defaultdict(list)
    for r in active:
        for op in {root.op_type for root in r.built()}:
            by_root[op].append(r)
    g = site.graph
    explain = site.options.explain
    for node in list(g.nodes):
        for rule in by_root.get(node.op_type, ()):
            if node.graph is not g:
                break
            done = False
            for m in itertools.islice(rule.matches(node, site), 16):
                why = leaks(m, site) or rule.check(m, site)
                if why is not None:
                    if explain is not None:
                        explain.append(f"{rule.name} at {node.name or node.op_type}: {why}")
                    continue
                new = rule.replace(site, m)
                new = new if isinstance(new, list | tuple) else [new]
                olds = [v for v in node.outputs if v is not None]
                for old, value in zip(olds, new):
                    if value is not old:
                        if value.type is None:
                            value.type = old.type
                        replace_value(g, old, value, site)
                remove_dead(g, list(m.nodes.values()))
                counts[rule.name] += 1
                done = True
                break
            if done:
                break
    return counts


def rule_pass(name: str, rules: list[Rule]):
    """A Pass applying ``rules`` on every graph."""

    @graph_pass(name)
    def run(site: Site):
        return apply_rules(site, rules)

    return run
