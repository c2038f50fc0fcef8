"""NF005 nofail-high-order: a page-allocator call with __GFP_NOFAIL and a
constant order > 1 (literal, macro, or get_order(constant)). The page
allocator warns on it ("not supported"); kvmalloc() is the suggested way."""
from __future__ import annotations

from ..findings import Finding
from ..link import TreeTables
from ..model import NOFAIL
from .common import became_true, site_finding
from .gfp_flow import flow_for

RULE_ID = "NF005"
LEVEL = "warning"
FACTS = ("gfp.nofail-high-order-unsupported", "page.nofail-order-gt-1-warns")


def _high_order(sink) -> bool:
    order = sink.role("order")
    return (sink.api.family == "page" and sink.mask.may_include(NOFAIL)
            and order is not None and order[0] == "const" and order[1] > 1)


def check(tables: TreeTables) -> list[Finding]:
    out = {}
    for site in flow_for(tables).sites:
        if not became_true(site, _high_order):
            continue
        order = site.sink.role("order")[1]
        msg = (f"__GFP_NOFAIL with order {order} ({1 << order} pages) in {site.sink.api.name}(): "
               f"the page allocator does not support NOFAIL above order 1")
        notes = ["use kvmalloc()/kvzalloc() with __GFP_NOFAIL for large buffers, or allocate order-0 pages"]
        key = (site.step.path, site.step.call.span)
        out.setdefault(key, site_finding(tables, site, RULE_ID, LEVEL, msg, notes, FACTS))
    return list(out.values())
