"""One JSON document for scripts: indent 2, sorted keys, trailing newline.

Each finding carries `fingerprint`, the same content hash SARIF writes as
`partialFingerprints.primaryLocationLineHash` (and the baseline stores).
"""
from __future__ import annotations

import json

from ..findings import Finding, RunResult
from ..rules_catalog import RuleDoc
from .fingerprint import fingerprints


def _finding(f: Finding, rules: dict[str, RuleDoc], fingerprint: str) -> dict:
    loc = f.location
    rule = rules.get(f.rule_id)
    return {
        "rule_id": f.rule_id,
        "rule_name": rule.name if rule else "",
        "level": f.level,
        "message": f.message,
        "path": loc.path,
        "line": loc.line,
        "column": loc.column,
        "end_line": loc.end_line,
        "end_column": loc.end_column,
        "function": f.function,
        "notes": list(f.notes),
        "path_steps": [
            {"path": s.location.path, "line": s.location.line,
             "column": s.location.column, "message": s.message}
            for s in f.path
        ],
        "facts": list(f.facts),
        "fingerprint": fingerprint,
    }


def render(result: RunResult, rules: dict[str, RuleDoc], tool_version: str,
           show_suppressed: bool = False, statistics: dict | None = None) -> str:
    # fingerprints are numbered over the same list SARIF numbers them over
    silenced = set(result.suppressed) if show_suppressed else set()
    everything = sorted([*result.findings, *silenced], key=lambda f: f.sort_key())
    prints = dict(zip(everything, fingerprints(everything), strict=True))
    doc = {
        "tool": "nofail-lint",
        "version": tool_version,
        "kernel_version": result.kernel_version,
        "findings": [_finding(f, rules, prints[f])
                     for f in sorted(result.findings, key=lambda f: f.sort_key())],
        "skipped": [{"path": s.path, "reason": s.reason}
                    for s in sorted(result.skipped, key=lambda s: (s.path, s.reason))],
        "incomplete": [{"path": i.path, "line": i.line, "end_line": i.end_line, "kind": i.kind,
                        "message": i.message}
                       for i in sorted(result.incomplete, key=lambda i: (i.path, i.line, i.kind, i.message))],
        "files_scanned": result.files_scanned,
    }
    if show_suppressed:
        doc["suppressed"] = [_finding(f, rules, prints[f])
                             for f in sorted(result.suppressed, key=lambda f: f.sort_key())]
    if statistics is not None:
        doc["statistics"] = statistics
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"
