"""Compiler-style text: quickfix lists and editors jump straight to each line.

    path:line:col: level: message [NF001]
    path:line:col: note: message          (one per PathStep, outermost first)
        note: text                        (one per Finding.notes entry)

With show_suppressed, findings silenced inline are listed too, in line order,
their first line ending in " (suppressed)".

The summary line is the CLI's job (on stderr), not this module's.
"""
from __future__ import annotations

from ..findings import RunResult


def render(result: RunResult, show_suppressed: bool = False) -> str:
    lines: list[str] = []
    shown = [(f, False) for f in result.findings]
    if show_suppressed:
        shown += [(f, True) for f in result.suppressed]
    for f, suppressed in sorted(shown, key=lambda fs: fs[0].sort_key()):
        loc = f.location
        mark = " (suppressed)" if suppressed else ""
        lines.append(f"{loc.path}:{loc.line}:{loc.column}: {f.level}: {f.message} [{f.rule_id}]{mark}")
        for step in f.path:
            s = step.location
            lines.append(f"{s.path}:{s.line}:{s.column}: note: {step.message}")
        for note in f.notes:
            lines.append(f"    note: {note}")
    return "".join(line + "\n" for line in lines)
