"""Inline suppression, applied after checking.

A comment containing `nofail-lint: ignore[NF002]` (several ids comma
separated, rule names accepted too) or a bare `nofail-lint: ignore` (every
rule) on a finding's primary line, or on the line directly above it, silences
that finding. A finding's anchors (NF002: the loop head -- `do {`, `while`,
`for`, the retry label) work the same way, so the comment can sit above the
loop instead of the allocation. Only the source lines of files that have
findings are read (and, for --report-unused-suppressions, of every input
that mentions the marker). An unknown rule id in a comment is a warning.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable, Iterable

from .findings import Finding
from .source import read_source

MARKER = re.compile(r"nofail-lint:\s*ignore\b(?:\[(?P<rules>[^\]]*)\])?")
ALL = "*"


def _in_comment(line: str, pos: int) -> bool:
    """The marker at `pos` is inside a comment (as far as one line can tell)."""
    before = line[:pos]
    return "//" in before or "/*" in before or line.lstrip().startswith("*")


def directives(line: str, names: dict[str, str] | None = None,
               unknown: Callable[[str], None] | None = None) -> set[str]:
    """Rule ids a line silences ({ALL} for a bare ignore); empty if none.
    `unknown(text)` is called for each entry that names no rule (when `names`,
    rule name -> id, is given, ids not among its values are unknown)."""
    out: set[str] = set()
    known = set(names.values()) if names else None
    for m in MARKER.finditer(line):
        if not _in_comment(line, m.start()):
            continue
        rules = m.group("rules")
        if rules is None:
            out.add(ALL)
            continue
        for r in rules.split(","):
            r = r.strip()
            if not r:
                continue
            rid = (names or {}).get(r.lower(), r.upper())
            if known is not None and rid not in known:
                if unknown is not None:
                    unknown(r)
                continue
            out.add(rid)
    return out


class _Lines:
    """Lines as the source model numbers them (a form feed is no line end)."""

    def __init__(self, cwd: Path):
        self.cwd = cwd

    def count(self, path: str) -> int:
        src = read_source(self.cwd / path)
        return src.line_count if src is not None else 0

    def get(self, path: str, line: int) -> str:
        src = read_source(self.cwd / path)
        return src.line(line) if src is not None else ""


class Suppressions:
    """Applies the comments to findings and remembers which comments were used."""

    def __init__(self, cwd: Path | None = None, names: dict[str, str] | None = None,
                 warn: Callable[[str], None] | None = None):
        self.lines = _Lines(Path(os.path.abspath(cwd or Path.cwd())))
        self.names = {k.lower(): v for k, v in (names or {}).items()} or None
        self.warn = warn
        self.used: set[tuple[str, int]] = set()
        self._seen: dict[tuple[str, int], set[str]] = {}

    def at(self, path: str, line: int) -> set[str]:
        key = (path, line)
        if key not in self._seen:
            def unknown(text: str):
                if self.warn is not None:
                    self.warn(f"{path}:{line}: unknown rule {text!r} in a nofail-lint: ignore comment")
            self._seen[key] = directives(self.lines.get(path, line), self.names, unknown)
        return self._seen[key]

    def split(self, findings: list[Finding]) -> tuple[list[Finding], list[Finding]]:
        """(kept, suppressed)."""
        kept, suppressed = [], []
        for f in findings:
            path = f.location.path
            hit = None
            for anchor in (f.location.line, *f.anchors):
                for line in (anchor, anchor - 1):
                    ids = self.at(path, line)
                    if ALL in ids or f.rule_id in ids:
                        hit = line
                        break
                if hit is not None:
                    break
            if hit is None:
                kept.append(f)
            else:
                self.used.add((path, hit))
                suppressed.append(f)
        return kept, suppressed

    def unused(self, paths: Iterable[str]) -> list[tuple[str, int, tuple[str, ...]]]:
        """(path, line, ids) of every comment in `paths` that silenced nothing; ids () for a bare ignore."""
        out = []
        for path in paths:
            for n in range(1, self.lines.count(path) + 1):
                if "nofail-lint" not in self.lines.get(path, n) or (path, n) in self.used:
                    continue
                ids = self.at(path, n)
                if ids:
                    out.append((path, n, () if ALL in ids else tuple(sorted(ids))))
        return out


def split_suppressed(findings: list[Finding], cwd: Path | None = None,
                     names: dict[str, str] | None = None) -> tuple[list[Finding], list[Finding]]:
    """(kept, suppressed). names: rule name -> id, so `ignore[open-coded-retry-loop]` works."""
    return Suppressions(cwd, names).split(findings)
