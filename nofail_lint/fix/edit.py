"""Rewrites as data: what a fix changes in one file, and what a refused fix says.

A rewrite holds the whole file before and after; its hunks (line ranges of
the original replaced by new lines) are what get combined with the other
rewrites of the same file, mapped for verification, and written as diffs.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

import tree_sitter as ts

from ..findings import Finding
from .source import Refuse, Source, error_count, function_of, identifiers


@dataclass(frozen=True)
class Hunk:
    start: int                 # first replaced line of the original (0-based)
    end: int                   # one past the last replaced line
    lines: tuple[str, ...]     # the new lines, each with its newline


@dataclass(frozen=True)
class Change:
    """What a rewrite does, in the terms a commit message uses."""

    callee: str                          # the allocation call kept ("alloc_skb")
    gfp: str = ""                        # its gfp argument as written before the rewrite
    loop: str = ""                       # NF002: "do-while", "while", "for", "goto"
    waits: tuple[str, ...] = ()          # NF002: wait/yield calls the loop made on failure
    logs: tuple[str, ...] = ()           # NF002: log/warn calls the loop made
    counters: tuple[str, ...] = ()       # locals that counted retries and went with the loop
    dropped: tuple[str, ...] = ()        # other locals and labels left unused and removed
    size: str = ""                       # the size or order argument as written ("" if none)
    size_kind: str = ""                  # "size" or "order"


@dataclass
class Rewrite:
    finding: Finding
    kind: str                  # "nf002-nofail", "nf006-drop-check", "nf006-drop-nofail", ...
    safe: bool                 # unsafe fixes trust the allocator model (opt-in)
    title: str                 # one line, imperative: what the patch does
    path: str                  # display path of the file
    old: str
    new: str
    about: Change | None = None    # what the rewrite changes, for a patch's message
    _hunks: tuple[Hunk, ...] | None = field(default=None, repr=False)

    @property
    def hunks(self) -> tuple[Hunk, ...]:
        if self._hunks is None:
            self._hunks = diff_hunks(self.old, self.new)
        return self._hunks


@dataclass(frozen=True)
class Refusal:
    finding: Finding
    reason: str                # stable id, e.g. "would-create-NF004"
    detail: str                # one line for humans

    def line(self, path: str | None = None) -> str:
        loc = self.finding.location
        return (f"{path or loc.path}:{loc.line}:{loc.column}: {self.finding.rule_id} not fixed "
                f"({self.reason}): {self.detail}")


def diff_hunks(old: str, new: str) -> tuple[Hunk, ...]:
    a, b = old.splitlines(keepends=True), new.splitlines(keepends=True)
    out = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag != "equal":
            out.append(Hunk(i1, i2, tuple(b[j1:j2])))
    return tuple(out)


def overlaps(a: Hunk, b: Hunk) -> bool:
    """Hunks that touch the same original lines (or insert at the same place)."""
    return a.start < b.end and b.start < a.end or a.start == b.start or \
        (a.start == a.end and b.start <= a.start <= b.end) or (b.start == b.end and a.start <= b.start <= a.end)


def apply_hunks(old: str, hunks: list[Hunk]) -> str:
    lines = old.splitlines(keepends=True)
    for h in sorted(hunks, key=lambda h: h.start, reverse=True):
        lines[h.start:h.end] = list(h.lines)
    return "".join(lines)


def line_map(hunks: list[Hunk]):
    """old 1-based line -> new 1-based line, or None for a replaced line."""
    ordered = sorted(hunks, key=lambda h: h.start)

    def mapped(line: int) -> int | None:
        shift = 0
        for h in ordered:
            if line - 1 < h.start:
                break
            if line - 1 < h.end:
                return None
            shift += len(h.lines) - (h.end - h.start)
        return line + shift
    return mapped


def new_ranges(hunks: list[Hunk]) -> list[tuple[int, int]]:
    """The 1-based line ranges (inclusive) the hunks occupy in the new text."""
    out = []
    shift = 0
    for h in sorted(hunks, key=lambda h: h.start):
        first = h.start + shift + 1
        out.append((first, max(first, first + len(h.lines) - 1)))
        shift += len(h.lines) - (h.end - h.start)
    return out


def splice(src: Source, edits: list[tuple[int, int, str]]) -> str:
    """The file's text with byte ranges replaced (edits must not overlap)."""
    data = src.data
    out = []
    pos = 0
    for start, end, text in sorted(edits):
        if start < pos:
            raise Refuse("overlap", "two edits of one rewrite overlap")
        out.append(data[pos:start].decode("utf-8", "surrogateescape"))
        out.append(text)
        pos = end
    out.append(data[pos:].decode("utf-8", "surrogateescape"))
    return "".join(out)


def whole_lines(src: Source, node_start: int, node_end: int) -> tuple[int, int]:
    """The byte range of the lines [node_start, node_end] occupy, newline included."""
    return src.line_start(node_start), src.line_end(max(node_end - 1, node_start))


# ------------------------------------------------------------------ tidying

def _declarator_ident(decl: ts.Node | None) -> ts.Node | None:
    while decl is not None and decl.type != "identifier":
        decl = decl.child_by_field_name("declarator")
    return decl


def _has_call(node: ts.Node | None) -> bool:
    if node is None:
        return False
    if node.type == "call_expression":
        return True
    if node.type in ("sizeof_expression", "alignof_expression"):
        return False
    return any(_has_call(c) for c in node.children)


def _removal(src: Source, node: ts.Node) -> tuple[int, int, str]:
    """Delete `node`; when it is alone on its lines, delete the lines too, and a
    blank line it leaves right after an opening brace."""
    rest = src.data[node.end_byte:src.line_end(node.end_byte)]
    if src.starts_line(node) and not rest.strip():
        start, end = whole_lines(src, node.start_byte, node.end_byte)
        before = src.data[:start].rstrip(b" \t")
        if before.endswith(b"{\n") and src.data[end:src.line_end(end)].strip() == b"":
            end = src.line_end(end)
        return start, end, ""
    return node.start_byte, node.end_byte, ""


def drop_unused(text: str, path: str, anchor: int, names: set[str], labels: set[str]) -> str:
    """Remove locals among `names` and labels among `labels` that nothing in the
    function at byte `anchor` uses any more (with the code after such a label
    that only a jump could reach). Refuses (Refuse) when a variable left
    unused has an initialiser with side effects."""
    from .source import words
    names, labels = set(names), set(labels)
    for _ in range(16):
        src = Source(path, text.encode("utf-8", "surrogateescape"))
        node = src.root.descendant_for_byte_range(anchor, anchor)
        fn = function_of(node) if node is not None else None
        if fn is None:
            return text
        body = fn.child_by_field_name("body")
        if body is None:
            return text
        edit = _unused_label(src, body, labels) or _unused_local(src, body, names)
        if edit is None:
            return text
        removed = src.data[edit[0]:edit[1]].decode("utf-8", "surrogateescape")
        names |= words(removed)
        labels |= set(_GOTO.findall(removed))
        text = splice(src, [edit])
        if edit[0] < anchor:
            anchor -= len(src.data[edit[0]:edit[1]]) - len(edit[2].encode("utf-8", "surrogateescape"))
    return text


_GOTO = re.compile(r"\bgoto\s+([A-Za-z_]\w*)\s*;")
_JUMPS = frozenset({"return_statement", "goto_statement", "break_statement", "continue_statement"})


def _unused_label(src: Source, body: ts.Node, labels: set[str]):
    if not labels:
        return None
    used = set()
    found: dict[str, ts.Node] = {}
    stack = [body]
    while stack:
        n = stack.pop()
        if n.type == "goto_statement":
            lab = n.child_by_field_name("label")
            if lab is not None:
                used.add(src.text(lab))
        elif n.type == "labeled_statement":
            lab = n.child_by_field_name("label")
            if lab is not None:
                found.setdefault(src.text(lab), n)
        stack.extend(n.children)
    for name in sorted(labels):
        if name in found and name not in used:
            return _label_removal(src, found[name])
    return None


def _label_removal(src: Source, stmt: ts.Node) -> tuple[int, int, str]:
    """Remove an unused label; when only a jump precedes it, also the statements
    after it up to the next label or the end of the block (nothing reaches them)."""
    prev = stmt.prev_named_sibling
    while prev is not None and prev.type == "comment":
        prev = prev.prev_named_sibling
    if prev is not None and prev.type in _JUMPS and src.starts_line(stmt):
        last = stmt
        nxt = stmt.next_named_sibling
        while nxt is not None and nxt.type != "labeled_statement":
            last = nxt
            nxt = nxt.next_named_sibling
        if nxt is not None or (stmt.parent is not None and stmt.parent.type == "compound_statement"):
            start, end = whole_lines(src, stmt.start_byte, last.end_byte)
            if not src.data[last.end_byte:end].strip():
                return start, end, ""
    inner = stmt.named_children[-1] if len(stmt.named_children) > 1 else None
    if inner is None:
        return _removal(src, stmt)
    lab_line_end = src.line_end(stmt.start_byte)
    if src.starts_line(stmt) and inner.start_byte >= lab_line_end:
        return src.line_start(stmt.start_byte), lab_line_end, ""
    return stmt.start_byte, inner.start_byte, ""


def _unused_local(src: Source, body: ts.Node, names: set[str]):
    for name in sorted(names):
        decls = []
        stack = [body]
        while stack:
            n = stack.pop()
            if n.type == "declaration":
                for d in n.children_by_field_name("declarator"):
                    ident = _declarator_ident(d)
                    if ident is not None and src.text(ident) == name:
                        decls.append((n, d, ident))
            stack.extend(n.children)
        if len(decls) != 1:
            continue
        decl, declarator, ident = decls[0]
        uses = [i for i in identifiers(body, name) if i.start_byte != ident.start_byte]
        if uses:
            continue
        value = declarator.child_by_field_name("value") if declarator.type == "init_declarator" else None
        if _has_call(value):
            raise Refuse("unused-variable-initialised-by-call",
                         f"'{name}' would be left unused, but its initialiser calls a function")
        declarators = decl.children_by_field_name("declarator")
        if len(declarators) == 1:
            return _removal(src, decl)
        i = [d.start_byte for d in declarators].index(declarator.start_byte)
        if i + 1 < len(declarators):
            return declarator.start_byte, declarators[i + 1].start_byte, ""
        prev = declarators[i - 1]
        return prev.end_byte, declarator.end_byte, ""
    return None


def new_errors(old: Source, new_text: str, anchor: int) -> int:
    """ERROR/MISSING nodes the edit added: in the function at `anchor` of the
    new text compared with the function at the same place before (the whole
    file when there is none)."""
    new = Source(old.path, new_text.encode("utf-8", "surrogateescape"))
    a = old.root.descendant_for_byte_range(anchor, anchor)
    b = new.root.descendant_for_byte_range(anchor, anchor)
    fa = function_of(a) if a is not None else None
    fb = function_of(b) if b is not None else None
    before = error_count(fa if fa is not None else old.root)
    after = error_count(fb if fb is not None else new.root)
    whole = error_count(new.root) - error_count(old.root)
    return max(after - before, whole)
