"""NF005 nofail-high-order: a page-allocator call with __GFP_NOFAIL and a
constant order > 1 (literal, macro, or get_order(constant)). The page
allocator warns on it ("not supported"); kvmalloc() is the suggested way."""
from __future__ import annotations

from ..findings import Finding
from ..link import TreeTables
from ..model import NOFAIL
from ..rules_catalog import RuleDoc
from .common import findings_where_true


def _high_order(sink) -> bool:
    order = sink.role("order")
    return (sink.api.family == "page" and sink.mask.may_include(NOFAIL)
            and order is not None and order[0] == "const" and order[1] > 1)


def check(tables: TreeTables, rule: RuleDoc) -> list[Finding]:
    def message(site) -> str:
        order = site.sink.role("order")[1]
        return (f"__GFP_NOFAIL with order {order} ({1 << order} pages) in {site.sink.api.name}(): "
                f"the page allocator does not support NOFAIL above order 1")
    notes = ["use kvmalloc()/kvzalloc() with __GFP_NOFAIL for large buffers, or allocate order-0 pages"]
    return findings_where_true(tables, rule, _high_order, message, notes)
