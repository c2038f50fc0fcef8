"""Small helpers shared by the rule modules."""
from __future__ import annotations

from ..facts import Span
from ..findings import Finding, PathStep
from ..findings import Location
from ..link import TreeTables
from ..source import source_line


def location(path: str, span: Span) -> Location:
    """A finding's location. Facts carry positions only (a tree's worth of
    snippets would be most of their size); findings are few, so the reported
    line is read back from the file the path names."""
    return Location(path, span.line, span.column, span.end_line, span.end_column, source_line(path, span.line))


def fact_notes(tables: TreeTables, fact_ids) -> tuple[str, ...]:
    """One `note:` line per model fact valid for the target kernel: what holds, and where."""
    return tuple(f"allocator model [{fact.id}]: {fact.summary} ({fact.citation()})"
                 for fact in tables.model.facts_for(dict.fromkeys(fact_ids), tables.kernel_version))


def short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def chain_steps(sink, last_message: str):
    """PathSteps for a gfp-flow sink: each wrapper hop, then the kernel API call."""
    steps = []
    for i, st in enumerate(sink.steps):
        msg = last_message if i + 1 == len(sink.steps) else \
            f"{st.function}() calls {st.call.callee}(), which passes the mask on to {sink.api.name}()"
        steps.append(PathStep(location(st.path, st.call.span), msg))
    return tuple(steps) if len(steps) > 1 else ()


def site_finding(tables: TreeTables, site, rule_id: str, level: str, message: str,
                 notes: list[str], facts) -> Finding:
    """A finding at a gfp-flow site, carrying the wrapper path and the model facts."""
    sink = site.sink
    if len(sink.steps) > 1:
        notes = ["call chain: " + " -> ".join(f"{s.call.callee}()" for s in sink.steps)] + notes
    facts = tuple(dict.fromkeys(facts))
    return Finding(
        rule_id=rule_id, level=level, message=message,
        location=location(site.step.path, site.step.call.span), function=site.step.function,
        notes=tuple(notes) + fact_notes(tables, facts),
        path=chain_steps(sink, f"{sink.api.name}() gets the mask"),
        facts=tuple(f.id for f in tables.model.facts_for(facts, tables.kernel_version)))


def became_true(site, predicate) -> bool:
    """True at the call where `predicate` first holds, walking up from the API."""
    return predicate(site.sink) and not predicate(site.below)


def findings_where_true(tables: TreeTables, predicate, rule_id: str, level: str, message, notes, facts):
    """One finding per call where `predicate` first holds on the gfp flow;
    `message(site)` words it, `notes` and `facts` explain it."""
    from .gfp_flow import flow_for
    out = {}
    for site in flow_for(tables).sites:
        if became_true(site, predicate):
            key = (site.step.path, site.step.call.span)
            if key not in out:
                out[key] = site_finding(tables, site, rule_id, level, message(site), list(notes), facts)
    return list(out.values())
