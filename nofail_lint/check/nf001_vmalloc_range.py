"""NF001 nofail-vmalloc-range: __GFP_NOFAIL reaching a vmalloc range API with a
start/end other than VMALLOC_START/VMALLOC_END.

On top of the gfp flow (gfp_flow.py): a site whose mask surely carries NOFAIL
and whose start/end are bound to something other than the API's default range
is a finding at the call where NOFAIL entered (docs/architecture.md, Across functions).
"""
from __future__ import annotations

from ..findings import Finding
from ..link import TreeTables
from ..model import NOFAIL
from ..rules_catalog import RuleDoc
from .common import flow_report, short
from .gfp_flow import Sink, flow_for


def _bound_text(bound: tuple) -> str:
    return str(bound[1]) if bound[0] != "param" else f"parameter #{bound[1] + 1}"


def _is_default(sink: Sink) -> bool:
    d = sink.api.range_default
    return d is not None and sink.role("start") == ("default", d[0]) and sink.role("end") == ("default", d[1])


def _finding(tables: TreeTables, rule: RuleDoc, sink: Sink, start_bound: tuple, end_bound: tuple) -> Finding:
    api = sink.api
    start, end = _bound_text(start_bound), _bound_text(end_bound)
    via = sink.steps[-1].call.callee if sink.steps else api.name
    message = (f"__GFP_NOFAIL reaches {via}() with the non-default vmalloc range "
               f"{short(start, 40)}..{short(end, 40)}: it retries forever once that window is full")
    default = api.range_default or ("VMALLOC_START", "VMALLOC_END")
    notes = [f"only {default[0]}..{default[1]} (the whole vmalloc space) is safe with __GFP_NOFAIL; "
             f"drop __GFP_NOFAIL and handle failure, or allocate from the default range"]
    last_hop = (f"{via}() gets start={short(start, 40)}, end={short(end, 40)} "
                f"and a mask that may include __GFP_NOFAIL")
    return flow_report(tables, rule, sink.nofail_origin, sink, message, notes, api.facts,
                       last_hop=last_hop, passes="its gfp and range")


def check(tables: TreeTables, rule: RuleDoc) -> list[Finding]:
    findings: dict[tuple, Finding] = {}
    for site in flow_for(tables).sites:
        sink = site.sink
        if not sink.api.is_range_api or sink.nofail_origin is None or not sink.mask.may_include(NOFAIL):
            continue
        start, end = sink.role("start"), sink.role("end")
        if start is None or end is None or start[0] == "param" or end[0] == "param" or _is_default(sink):
            continue
        o = sink.nofail_origin
        key = (o.path, o.call.span.line, o.call.span.column)
        if key not in findings:
            findings[key] = _finding(tables, rule, sink, start, end)
    return list(findings.values())
