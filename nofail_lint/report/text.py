"""Compiler-style text: quickfix lists and editors jump straight to each line.

    path:line:col: level: message [NF001]
    path:line:col: note: message          (one per PathStep, outermost first)
        note: text                        (one per Finding.notes entry)

With show_suppressed, findings silenced inline are listed too, in line order,
their first line ending in " (suppressed)". `notes=False` drops the indented
note lines, `terse=True` keeps only the first line of each finding. `color`
wraps the level and rule id in ANSI colours (the CLI decides: --color, NO_COLOR,
whether stdout is a terminal).

The summary line is the CLI's job (on stderr), not this module's.
"""
from __future__ import annotations

from ..findings import RunResult

_RESET = "\033[0m"
_BOLD = "\033[1m"
_LEVEL_COLOURS = {"error": "\033[1;31m", "warning": "\033[1;35m", "note": "\033[1;36m"}
_DIM = "\033[2m"


def _paint(text: str, code: str, color: bool) -> str:
    return f"{code}{text}{_RESET}" if color else text


def render(result: RunResult, show_suppressed: bool = False, *, notes: bool = True, terse: bool = False,
           color: bool = False) -> str:
    lines: list[str] = []
    shown = [(f, False) for f in result.findings]
    if show_suppressed:
        shown += [(f, True) for f in result.suppressed]
    for f, suppressed in sorted(shown, key=lambda fs: fs[0].sort_key()):
        loc = f.location
        mark = " (suppressed)" if suppressed else ""
        where = _paint(f"{loc.path}:{loc.line}:{loc.column}:", _BOLD, color)
        level = _paint(f"{f.level}:", _LEVEL_COLOURS.get(f.level, _BOLD), color)
        lines.append(f"{where} {level} {f.message} {_paint(f'[{f.rule_id}]', _DIM, color)}{mark}")
        if terse:
            continue
        for step in f.path:
            s = step.location
            lines.append(f"{_paint(f'{s.path}:{s.line}:{s.column}:', _BOLD, color)} "
                         f"{_paint('note:', _LEVEL_COLOURS['note'], color)} {step.message}")
        if notes:
            for note in f.notes:
                lines.append(f"    {_paint('note:', _LEVEL_COLOURS['note'], color)} {note}")
    return "".join(line + "\n" for line in lines)
