"""NF006 nofail-dead-null-check: the result of a __GFP_NOFAIL allocation that
cannot return NULL is tested for NULL. The test is dead code that suggests
the author expected failure; the allocator model says when NULL is still
possible (then nothing is reported)."""
from __future__ import annotations

from ..findings import Finding
from ..link import TreeTables
from ..model import NOFAIL
from ..rules_catalog import RuleDoc
from .common import report
from .gfp_flow import flow_for

RECLAIM = "__GFP_DIRECT_RECLAIM"
# null_under_nofail conditions that a sane call never meets: hard size limits
_HARD_LIMITS = ("KMALLOC_MAX_SIZE", "MAX_PAGE_ORDER", "MAX_ORDER", "overflows")


def _cannot_return_null(api, mask) -> bool:
    if api.fails != "null" or api.nofail not in ("retry-loop", "mempool-wait"):
        return False
    for cond in api.null_under_nofail:
        if RECLAIM in cond:
            if RECLAIM not in mask.must:
                return False
        elif not any(limit in cond for limit in _HARD_LIMITS):
            return False
    return True


def _returns_result(tables: TreeTables, sink) -> bool:
    """The tested value is the API's own result: a direct call, or wrappers
    that each return the result of the next call down and nothing else."""
    for st in sink.steps[1:]:
        link = tables.wrappers.get((st.path, st.function))
        if link is None or link.returned.callee != st.call.callee or link.ref.fn.other_returns:
            return False
    return True


def check(tables: TreeTables, rule: RuleDoc) -> list[Finding]:
    out = {}
    for site in flow_for(tables).sites:
        sink = site.sink
        if not site.step.call.null_tests or NOFAIL not in sink.mask.must or not _returns_result(tables, sink):
            continue
        order = sink.role("order")
        if order is not None and (order[0] != "const" or order[1] > 1):
            continue
        if not _cannot_return_null(sink.api, sink.mask):
            continue
        call = site.step.call
        for test in call.null_tests:
            msg = (f"dead NULL check: {call.callee}() with __GFP_NOFAIL (line {call.span.line}) "
                   f"cannot return NULL")
            notes = [f"{call.callee}() retries until it succeeds under this mask; drop the check "
                     f"(or drop __GFP_NOFAIL if failure can be handled)"]
            key = (site.step.path, test.line, test.column)
            if key not in out:
                out[key] = report(tables, rule, site.step.path, test, site.step.function, msg, notes)
    return list(out.values())
