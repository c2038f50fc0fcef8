"""NF008 nofail-atomic-context: a __GFP_NOFAIL allocation (it sleeps) between a
spin_lock / irq-off / preempt-off / RCU read-side opening call and its release,
on the straight-line path of the same function."""
from __future__ import annotations

from ..findings import Finding
from ..link import TreeTables
from ..model import NOFAIL
from ..rules_catalog import RuleDoc
from .common import flow_report
from .gfp_flow import flow_for


def _region(fn, span):
    here = (span.line, span.column)
    for opener, l0, c0, l1, c1 in fn.atomic:
        if (l0, c0) <= here <= (l1, c1):
            return opener, l0
    return None


def check(tables: TreeTables, rule: RuleDoc) -> list[Finding]:
    out = {}
    for site in flow_for(tables).sites:
        if not site.ref.fn.atomic or not site.sink.mask.may_include(NOFAIL) or site.below.released:
            continue   # (a callee that drops the lock before allocating is fine)
        region = _region(site.ref.fn, site.step.call.span)
        if region is None:
            continue
        opener, line = region
        if site.sink.mask.may_include("__GFP_DIRECT_RECLAIM"):
            why = "a NOFAIL allocation sleeps until it succeeds"
        else:
            why = "__GFP_NOFAIL must never be used in a non-sleepable context (without reclaim it can return NULL)"
        msg = f"__GFP_NOFAIL allocation via {site.step.call.callee}() inside {opener}() (line {line}): {why}"
        notes = [f"{opener}() at line {line} makes the section non-sleepable until its release; allocate "
                 f"before taking it, or use a non-sleeping mask and handle failure"]
        key = (site.step.path, site.step.call.span)
        if key not in out:
            out[key] = flow_report(tables, rule, site.step, site.sink, msg, notes, tables.model.atomic_facts)
    return list(out.values())
