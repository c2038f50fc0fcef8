"""Check: facts + tree tables + allocator model -> findings, one module per rule."""
from __future__ import annotations

from ..findings import Finding
from ..link import TreeTables
from . import (nf001_vmalloc_range, nf002_retry_loop, nf003_contradictory_flags,
               nf004_nofail_without_reclaim, nf005_high_order, nf006_dead_null_check,
               nf007_unsupported, nf008_atomic_context)

RULES = {
    "NF001": nf001_vmalloc_range.check,
    "NF002": nf002_retry_loop.check,
    "NF003": nf003_contradictory_flags.check,
    "NF004": nf004_nofail_without_reclaim.check,
    "NF005": nf005_high_order.check,
    "NF006": nf006_dead_null_check.check,
    "NF007": nf007_unsupported.check,
    "NF008": nf008_atomic_context.check,
}


def run_rules(tables: TreeTables, selected: set[str] | None = None) -> list[Finding]:
    findings: set[Finding] = set()
    for rule_id, check in RULES.items():
        if selected is None or rule_id in selected:
            findings.update(check(tables))
    return sorted(findings, key=Finding.sort_key)
