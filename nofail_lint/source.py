"""The source model: a file's bytes -> lines -> columns, and node text.

Every reader of source lines goes through here, so all of them agree with
tree-sitter on what a line is. A line ends at `\\n` only (a `\\r` before it
belongs to the line ending); a form feed, vertical tab or any other character
`str.splitlines()` would break on is ordinary text inside a line. Lines are
1-based, columns 1-based and counted in characters of the UTF-8 decoded line
(invalid bytes count as one replacement character each). After ruff's
`ruff_source_file` (line index and locator).

A leaf module: it imports only the facts data types.
"""
from __future__ import annotations

import bisect
import functools
import os
from typing import Protocol

from .facts import Span


def decode(data: bytes) -> str:
    """Source bytes as text; invalid UTF-8 becomes U+FFFD, never an error."""
    return data.decode("utf-8", "replace")


class _Node(Protocol):
    @property
    def text(self) -> bytes | None: ...


def node_text(node: _Node | None) -> str:
    """A tree-sitter node's source text; "" for a missing node (an optional
    field, or a part of the tree an ERROR node took)."""
    text = node.text if node is not None else None
    return decode(text) if text is not None else ""


class SourceText:
    """One file's bytes with the start offset of every line."""

    def __init__(self, src: bytes):
        self.src = src
        starts = [0]
        find = src.find
        i = find(b"\n")
        while i >= 0:
            starts.append(i + 1)
            i = find(b"\n", i + 1)
        self.starts = starts

    @property
    def line_count(self) -> int:
        """Lines, counting the text after the last newline (possibly empty) as one."""
        return len(self.starts)

    def line_bytes(self, row: int) -> bytes:
        """The bytes of 0-based `row`, without its `\\n` (a `\\r` before it is kept)."""
        start = self.starts[row]
        end = self.starts[row + 1] - 1 if row + 1 < len(self.starts) else len(self.src)
        return self.src[start:end]

    def line(self, line: int) -> str:
        """The text of 1-based `line` without its line ending; "" outside the file."""
        if not 1 <= line <= len(self.starts):
            return ""
        raw = self.line_bytes(line - 1)
        return decode(raw[:-1] if raw.endswith(b"\r") else raw)

    def point(self, offset: int) -> tuple[int, int]:
        """Byte offset -> (0-based row, byte column)."""
        row = bisect.bisect_right(self.starts, offset) - 1
        return row, offset - self.starts[row]

    def char_col(self, row: int, byte_col: int) -> int:
        """1-based character column of a byte column in 0-based `row`."""
        return len(decode(self.line_bytes(row)[:byte_col])) + 1

    def span(self, node, end_node=None) -> Span:
        """The span of a tree-sitter node (through the end of `end_node`, if given)."""
        (r0, c0), (r1, c1) = node.start_point, (end_node or node).end_point
        return Span(r0 + 1, self.char_col(r0, c0), r1 + 1, self.char_col(r1, c1))

    def text(self, span: Span) -> str | None:
        """The text a span covers (lines joined by `\\n`); None if it lies outside the file."""
        if not 1 <= span.line <= span.end_line <= len(self.starts):
            return None
        if span.line == span.end_line:
            return self.line(span.line)[span.column - 1:span.end_column - 1]
        parts = [self.line(span.line)[span.column - 1:]]
        parts += [self.line(n) for n in range(span.line + 1, span.end_line)]
        parts.append(self.line(span.end_line)[:span.end_column - 1])
        return "\n".join(parts)


@functools.lru_cache(maxsize=64)
def _read(path: str, mtime_ns: int, size: int) -> SourceText | None:
    try:
        with open(path, "rb") as fh:
            return SourceText(fh.read())
    except OSError:
        return None


def read_source(path: str | os.PathLike) -> SourceText | None:
    """The file's source model, or None if it cannot be read. Findings are
    few, so reporters read their lines back on demand; a file that changed
    since it was last read here is read again."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return _read(os.fspath(path), st.st_mtime_ns, st.st_size)


def source_line(path: str | os.PathLike, line: int) -> str:
    """The text of one line of a file; "" if the file or the line is missing."""
    src = read_source(path)
    return src.line(line) if src is not None else ""
