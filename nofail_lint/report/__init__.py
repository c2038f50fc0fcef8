"""Report stage: findings -> text | json | sarif | github (docs/architecture.md, Outputs).

Every renderer returns the whole document as a str. The same input always gives
the same bytes: findings are sorted by Finding.sort_key(), skipped inputs by
path, and there are no timestamps or timings.
"""
from __future__ import annotations

import pathlib

from ..findings import RunResult
from ..rules_catalog import RuleDoc

FORMATS = ("text", "json", "sarif", "github")


def render(result: RunResult, fmt: str, rules: dict[str, RuleDoc],
           facts: dict[str, str], root: pathlib.Path, tool_version: str,
           show_suppressed: bool = False, *, notes: bool = True, terse: bool = False,
           color: bool = False, statistics: dict | None = None, fixes=None) -> str:
    """Render `result` in format `fmt` (one of FORMATS).

    rules: from rules_catalog.load_rules(); facts: model fact id -> one line
    "summary (kernel file, function, versions)"; root: the directory finding
    paths are relative to (normally the current directory). Findings silenced
    inline (result.suppressed) are left out unless `show_suppressed`; then
    they are marked as such (SARIF `suppressions`). `notes`, `terse` and
    `color` shape the text format; `statistics` (report.statistics) goes
    into the JSON document. `fixes`: finding -> FixProposals, written as
    SARIF `fixes` (other formats ignore them).
    """
    if fmt == "text":
        from . import text
        return text.render(result, show_suppressed, notes=notes, terse=terse, color=color)
    if fmt == "json":
        from . import json_report
        return json_report.render(result, rules, tool_version, show_suppressed, statistics)
    if fmt == "sarif":
        from . import sarif
        return sarif.render(result, rules, facts, root, tool_version, show_suppressed, fixes)
    if fmt == "github":
        from . import github
        return github.render(result, rules, show_suppressed)
    raise ValueError(f"unknown report format {fmt!r}; expected one of {', '.join(FORMATS)}")


__all__ = ["FORMATS", "render"]
