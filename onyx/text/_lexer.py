"""Tokens of the textual syntax, with positions that errors turn into line and column."""

from __future__ import annotations

import bisect
import re

from onyx.errors import ParseError

_TOKEN = re.compile(
    r"""
    (?P<skip>(?:\s+|\#[^\n]*)+)
  | (?P<str>"(?:[^"\\]|\\.)*")
  | (?P<num>-?\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|-(?:[iI][nN][fF](?:[iI][nN][iI][tT][yY])?|[nN][aA][nN])(?![A-Za-z0-9_]))
  | (?P<id>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<arrow>=>)
  | (?P<punct>[()\[\]{}<>,:=@.?])
    """,
    re.VERBOSE | re.DOTALL,
)
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)

#: identifiers that read as float literals where a number is expected
SPECIAL_FLOATS = {"inf", "infinity", "nan"}


class Token:
    __slots__ = ("kind", "pos", "text")

    def __init__(self, kind: str, text: str, pos: int):
        self.kind, self.text, self.pos = kind, text, pos

    def __repr__(self) -> str:
        return f"Token({self.kind}, {self.text!r})"

    @property
    def shown(self) -> str:
        return "end of input" if self.kind == "eof" else repr(self.text)


def unquote(text: str) -> str:
    """The value of a string literal: drop the quotes; a backslash keeps the next char as is."""
    body = text[1:-1]
    return _ESCAPE.sub(r"\1", body) if "\\" in body else body


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos, end = 0, len(text)
    match = _TOKEN.match
    while pos < end:
        m = match(text, pos)
        if m is None:
            where = Position(text)
            if text[pos] == '"':
                raise ParseError(f"{where.at(pos)}: unterminated string literal")
            raise ParseError(f"{where.at(pos)}: unexpected character {text[pos]!r}")
        kind = m.lastgroup
        if kind != "skip":
            if kind == "punct" or kind == "arrow":
                tokens.append(Token(m.group(), m.group(), pos))
            else:
                tokens.append(Token(kind, m.group(), pos))
        pos = m.end()
    tokens.append(Token("eof", "", end))
    return tokens


class Position:
    """Turns offsets into 'line L, column C'."""

    def __init__(self, text: str):
        self.text = text
        self.starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def line_col(self, pos: int) -> tuple[int, int]:
        line = bisect.bisect_right(self.starts, pos)
        return line, pos - self.starts[line - 1] + 1

    def at(self, pos: int) -> str:
        line, col = self.line_col(pos)
        return f"line {line}, column {col}"
