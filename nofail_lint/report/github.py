"""GitHub Actions workflow commands: one annotation per finding.

    ::error file=P,line=L,col=C,endLine=EL,endColumn=EC,title=NF001 nofail-vmalloc-range::message

Levels map error -> error, warning -> warning, note -> notice. The message
carries the path steps and notes on further lines (encoded as %0A); the
model facts are named by id (`nofail-lint explain RULE` prints them). Columns
are 1-based; endColumn is the last character of the range (inclusive).
Skipped inputs and parts the analysis did not cover become `::warning file=P::` lines. Paths are as reported
(relative to the current directory): run from the repository root.
"""
from __future__ import annotations

from ..findings import Finding, RunResult
from ..rules_catalog import RuleDoc

COMMANDS = {"error": "error", "warning": "warning", "note": "notice"}


def _data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _prop(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def _annotation(f: Finding, rules: dict[str, RuleDoc], suppressed: bool) -> str:
    loc = f.location
    rule = rules.get(f.rule_id)
    title = f"{f.rule_id} {rule.name}" if rule else f.rule_id
    if suppressed:
        title += " (suppressed)"
    end_line = max(loc.end_line, loc.line)
    end_col = loc.end_column - 1                  # our end is exclusive, GitHub's inclusive
    if end_line == loc.line:
        end_col = max(end_col, loc.column)
    props = [f"file={_prop(loc.path)}", f"line={loc.line}", f"col={loc.column}",
             f"endLine={end_line}", f"endColumn={max(end_col, 1)}", f"title={_prop(title)}"]
    body = [f.message]
    body += [f"{s.location.path}:{s.location.line}:{s.location.column}: {s.message}" for s in f.path]
    body += [n for n in f.notes if not n.startswith("allocator model [")]
    if f.facts:
        body.append(f"allocator model facts: {', '.join(f.facts)} (nofail-lint explain {f.rule_id})")
    command = "notice" if suppressed else COMMANDS.get(f.level, "warning")
    return f"::{command} {','.join(props)}::{_data(chr(10).join(body))}"


def render(result: RunResult, rules: dict[str, RuleDoc], show_suppressed: bool = False) -> str:
    shown = [(f, False) for f in result.findings]
    if show_suppressed:
        shown += [(f, True) for f in result.suppressed]
    lines = [_annotation(f, rules, s) for f, s in sorted(shown, key=lambda fs: fs[0].sort_key())]
    lines += [f"::warning file={_prop(s.path)},title=nofail-lint skipped::{_data(s.reason)}"
              for s in sorted(result.skipped, key=lambda s: (s.path, s.reason))]
    lines += [f"::warning file={_prop(i.path)}"
              + (f",line={i.line},endLine={max(i.end_line, i.line)}" if i.line else "")
              + f",title=nofail-lint incomplete ({i.kind})::{_data(i.message)}"
              for i in sorted(result.incomplete, key=lambda i: (i.path, i.line, i.kind, i.message))]
    return "".join(line + "\n" for line in lines)
