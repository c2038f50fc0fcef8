"""Inline suppression, applied after checking.

A comment containing `nofail-lint: ignore[NF002]` (several ids comma
separated, rule names accepted too) or a bare `nofail-lint: ignore` (every
rule) on a finding's primary line, or on the line directly above it, silences
that finding. Only the source lines of files that have findings are read.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from .findings import Finding
from .source import source_line

MARKER = re.compile(r"nofail-lint:\s*ignore\b(?:\[(?P<rules>[^\]]*)\])?")
ALL = "*"


def _in_comment(line: str, pos: int) -> bool:
    """The marker at `pos` is inside a comment (as far as one line can tell)."""
    before = line[:pos]
    return "//" in before or "/*" in before or line.lstrip().startswith("*")


def directives(line: str, names: dict[str, str] | None = None) -> set[str]:
    """Rule ids a line silences ({ALL} for a bare ignore); empty if none."""
    out: set[str] = set()
    for m in MARKER.finditer(line):
        if not _in_comment(line, m.start()):
            continue
        rules = m.group("rules")
        if rules is None:
            out.add(ALL)
            continue
        for r in rules.split(","):
            r = r.strip()
            if r:
                out.add((names or {}).get(r, r.upper()))
    return out


def split_suppressed(findings: list[Finding], cwd: Path | None = None,
                     names: dict[str, str] | None = None) -> tuple[list[Finding], list[Finding]]:
    """(kept, suppressed). names: rule name -> id, so `ignore[open-coded-retry-loop]` works."""
    root = Path(os.path.abspath(cwd or Path.cwd()))
    kept, suppressed = [], []
    for f in findings:
        loc = f.location
        path = root / loc.path
        silenced = directives(source_line(path, loc.line), names) | \
            directives(source_line(path, loc.line - 1), names)
        (suppressed if ALL in silenced or f.rule_id in silenced else kept).append(f)
    return kept, suppressed
