"""Check: facts + tree tables + allocator model -> findings, one module per rule."""
from __future__ import annotations

from ..findings import Finding
from ..link import TreeTables
from . import nf001_vmalloc_range, nf002_retry_loop

RULES = {
    "NF001": nf001_vmalloc_range.check,
    "NF002": nf002_retry_loop.check,
}


def run_rules(tables: TreeTables, selected: set[str] | None = None) -> list[Finding]:
    findings: set[Finding] = set()
    for rule_id, check in RULES.items():
        if selected is None or rule_id in selected:
            findings.update(check(tables))
    return sorted(findings, key=Finding.sort_key)
