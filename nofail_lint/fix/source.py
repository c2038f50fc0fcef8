"""One C file as the rewrites see it: text, lines, a tree-sitter tree, and
the small syntax questions every rewrite asks (which node is at a finding,
which statement holds it, how it is indented, which locals are left unused).

Text is `str` decoded with `surrogateescape`, so any bytes round-trip. The
tree is parsed from `extract.prepare_source` (same length as the source, so
offsets hold) but node texts are always read back from the real source.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

import tree_sitter as ts

from ..extract import LANGUAGE, prepare_source
from ..source import SourceText

_PARSER: ts.Parser | None = None
_WORD = re.compile(r"[A-Za-z_]\w*")


def parser() -> ts.Parser:
    global _PARSER
    if _PARSER is None:
        _PARSER = ts.Parser(LANGUAGE)
    return _PARSER


def decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


@dataclass
class Source:
    """A file's bytes, parsed once."""

    path: str          # display path (as in findings)
    data: bytes

    @cached_property
    def tree(self) -> ts.Tree:
        return parser().parse(prepare_source(self.data))

    @cached_property
    def lines(self) -> SourceText:
        return SourceText(self.data)

    @property
    def line_starts(self) -> list[int]:
        return self.lines.starts

    @property
    def root(self) -> ts.Node:
        return self.tree.root_node

    def text(self, node: ts.Node | None) -> str:
        return decode(self.data[node.start_byte:node.end_byte]) if node is not None else ""

    def between(self, start: int, end: int) -> str:
        return decode(self.data[start:end])

    def offset(self, line: int, column: int) -> int:
        """1-based line and character column (as the source model counts them) -> byte offset."""
        row = line - 1
        raw = self.lines.line_bytes(row)
        byte_col = 0
        while byte_col < len(raw) and self.lines.char_col(row, byte_col) < column:
            byte_col += 1
        return self.line_starts[row] + byte_col

    def line_start(self, offset: int) -> int:
        return self.data.rfind(b"\n", 0, offset) + 1

    def line_end(self, offset: int) -> int:
        """Offset just past the newline ending the line that holds `offset`."""
        nl = self.data.find(b"\n", offset)
        return len(self.data) if nl < 0 else nl + 1

    def indent_at(self, offset: int) -> str:
        start = self.line_start(offset)
        blanks = self.data[start:offset]
        return decode(blanks[:len(blanks) - len(blanks.lstrip(b" \t"))])

    def starts_line(self, node: ts.Node) -> bool:
        return not self.data[self.line_start(node.start_byte):node.start_byte].strip()

    def ends_line(self, node: ts.Node) -> bool:
        """Only blanks or a comment follow `node` on its last line."""
        rest = self.data[node.end_byte:self.line_end(node.end_byte)].strip()
        return not rest or (rest.startswith(b"/*") and rest.endswith(b"*/") and b"*/" not in rest[2:-2]) \
            or rest.startswith(b"//")

    def node_at(self, line: int, column: int, types: frozenset[str] | set[str]) -> ts.Node | None:
        """The innermost node of one of `types` starting exactly at (line, column)."""
        off = self.offset(line, column)
        node = self.root.descendant_for_byte_range(off, off)
        best = None
        while node is not None:
            if node.type in types and node.start_byte == off:
                best = node
            if node.start_byte < off:
                break
            node = node.parent
        return best


class Refuse(Exception):
    """Raised inside a rewrite: the finding has no safe rewrite, for `reason`."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def child(node: ts.Node | None, name: str) -> ts.Node:
    """A node's field child; a missing one (the code does not parse as expected) refuses."""
    found = node.child_by_field_name(name) if node is not None else None
    if found is None:
        raise Refuse("unexpected-syntax", f"no {name} where one was expected (a parse error?)")
    return found


def ancestor(node: ts.Node | None, types: set[str] | frozenset[str]) -> ts.Node | None:
    node = node.parent if node is not None else None
    while node is not None and node.type not in types:
        node = node.parent
    return node


def function_of(node: ts.Node) -> ts.Node | None:
    return ancestor(node, {"function_definition"})


def statements(block: ts.Node) -> list[ts.Node]:
    """The children of a compound statement, comments included, braces not."""
    return [c for c in block.named_children]


def strip_parens(node: ts.Node | None) -> ts.Node | None:
    while node is not None and node.type == "parenthesized_expression" and node.named_children:
        node = node.named_children[0]
    return node


def call_name(src: Source, node: ts.Node | None) -> str:
    if node is None or node.type != "call_expression":
        return ""
    fn = node.child_by_field_name("function")
    return src.text(fn) if fn is not None and fn.type == "identifier" else ""


def call_args(node: ts.Node) -> list[ts.Node]:
    args = node.child_by_field_name("arguments")
    return [a for a in args.named_children if a.type != "comment"] if args is not None else []


def norm(text: str) -> str:
    return "".join(text.split())


def error_count(node: ts.Node) -> int:
    """ERROR and MISSING nodes under `node` (subtrees without errors are skipped)."""
    if not node.has_error and not node.is_missing:
        return 0
    n = 1 if node.is_error or node.is_missing else 0
    return n + sum(error_count(c) for c in node.children)


def identifiers(node: ts.Node, name: str) -> list[ts.Node]:
    """Every identifier node spelled `name` under `node`."""
    out = []
    stack = [node]
    target = name.encode()
    while stack:
        n = stack.pop()
        if n.type in ("identifier", "field_identifier", "statement_identifier") and n.text == target:
            if n.type == "identifier":
                out.append(n)
            continue
        stack.extend(n.children)
    return out


def words(text: str) -> set[str]:
    return set(_WORD.findall(_strip_comments_and_strings(text)))


def _strip_comments_and_strings(text: str) -> str:
    return re.sub(r'/\*.*?\*/|//[^\n]*|"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'', " ", text, flags=re.DOTALL)


TAB = 8


def visual_width(text: str) -> int:
    """Columns `text` takes on screen from the start of a line (tabs to 8)."""
    col = 0
    for ch in text:
        col = (col // TAB + 1) * TAB if ch == "\t" else col + 1
    return col


def shift_continuation(text: str, shift: int) -> str:
    """Move the lines after the first `shift` columns left, keeping kernel
    style: tabs, then spaces for alignment (the first line moves as a whole)."""
    if shift <= 0:
        return text
    lines = text.split("\n")
    out = [lines[0]]
    for ln in lines[1:]:
        body = ln.lstrip(" \t")
        lead = visual_width(ln[:len(ln) - len(body)])
        if not body or lead < shift:
            out.append(ln)
            continue
        width = lead - shift
        out.append("\t" * (width // TAB) + " " * (width % TAB) + body)
    return "\n".join(out)


def comments_in(src: Source, node, skip: tuple[ts.Node, ...] = ()) -> list[tuple[int, str]]:
    """(offset, text) of the comments under `node`, outside the `skip` subtrees, in order."""
    out = []
    stack = [node]
    while stack:
        n = stack.pop()
        if any(s.start_byte <= n.start_byte and n.end_byte <= s.end_byte for s in skip):
            continue
        if n.type == "comment":
            out.append((n.start_byte, src.text(n)))
            continue
        stack.extend(n.children)
    return sorted(out)
