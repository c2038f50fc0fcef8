"""NF001 nofail-vmalloc-range: __GFP_NOFAIL reaching a vmalloc range API with a
start/end other than VMALLOC_START/VMALLOC_END.

On top of the gfp flow (gfp_flow.py): a site whose mask surely carries NOFAIL
and whose start/end are bound to something other than the API's default range
is a finding at the call where NOFAIL entered (DESIGN.md sections 3, 3.1).
"""
from __future__ import annotations

from ..findings import Finding, PathStep
from ..link import TreeTables
from ..model import NOFAIL
from .common import fact_notes, location, short
from .gfp_flow import Sink, flow_for

RULE_ID = "NF001"
LEVEL = "error"


def _bound_text(bound: tuple) -> str:
    return str(bound[1]) if bound[0] != "param" else f"parameter #{bound[1] + 1}"


def _is_default(sink: Sink) -> bool:
    d = sink.api.range_default
    return d is not None and sink.role("start") == ("default", d[0]) and sink.role("end") == ("default", d[1])


def _finding(tables: TreeTables, sink: Sink) -> Finding:
    origin = sink.nofail_origin
    api = sink.api
    start, end = _bound_text(sink.role("start")), _bound_text(sink.role("end"))
    path_steps = []
    for i, st in enumerate(sink.steps):
        if i + 1 == len(sink.steps):
            msg = (f"{st.call.callee}() gets start={short(start, 40)}, end={short(end, 40)} "
                   f"and a mask that may include __GFP_NOFAIL")
        else:
            msg = f"{st.function}() calls {st.call.callee}(), which passes its gfp and range on to {api.name}()"
        path_steps.append(PathStep(location(st.path, st.call.span), msg))
    via = sink.steps[-1].call.callee if sink.steps else api.name
    message = (f"__GFP_NOFAIL reaches {via}() with the non-default vmalloc range "
               f"{short(start, 40)}..{short(end, 40)}: it retries forever once that window is full")
    notes = []
    if len(sink.steps) > 1:
        notes.append("call chain: " + " -> ".join(f"{s.call.callee}()" for s in sink.steps))
    default = api.range_default or ("VMALLOC_START", "VMALLOC_END")
    notes.append(f"only {default[0]}..{default[1]} (the whole vmalloc space) is safe with __GFP_NOFAIL; "
                 f"drop __GFP_NOFAIL and handle failure, or allocate from the default range")
    notes.extend(fact_notes(tables, api.facts))
    return Finding(
        rule_id=RULE_ID, level=LEVEL, message=message,
        location=location(origin.path, origin.call.span), function=origin.function,
        notes=tuple(notes), path=tuple(path_steps) if len(path_steps) > 1 else (),
        facts=api.facts)


def check(tables: TreeTables) -> list[Finding]:
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
            findings[key] = _finding(tables, sink)
    return list(findings.values())
