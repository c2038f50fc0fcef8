"""Compiler-style text: quickfix lists and editors jump straight to each line.

    path:line:col: level: message [NF001]
    path:line:col: note: message          (one per PathStep, outermost first)
        note: text                        (one per Finding.notes entry)

The summary line is the CLI's job (on stderr), not this module's.
"""
from __future__ import annotations

from ..findings import RunResult


def render(result: RunResult) -> str:
    lines: list[str] = []
    for f in sorted(result.findings, key=lambda f: f.sort_key()):
        loc = f.location
        lines.append(f"{loc.path}:{loc.line}:{loc.column}: {f.level}: {f.message} [{f.rule_id}]")
        for step in f.path:
            s = step.location
            lines.append(f"{s.path}:{s.line}:{s.column}: note: {step.message}")
        for note in f.notes:
            lines.append(f"    note: {note}")
    return "".join(line + "\n" for line in lines)
