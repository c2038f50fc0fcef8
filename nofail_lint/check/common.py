"""Small helpers shared by the rule modules, and the one way they make findings."""
from __future__ import annotations

from ..facts import Span
from ..findings import Finding, Location, PathStep
from ..link import TreeTables
from ..rules_catalog import RuleDoc
from ..source import source_line


def location(path: str, span: Span) -> Location:
    """A finding's location. Facts carry positions only (a tree's worth of
    snippets would be most of their size); findings are few, so the reported
    line is read back from the file the path names."""
    return Location(path, span.line, span.column, span.end_line, span.end_column, source_line(path, span.line))


def short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def report(tables: TreeTables, rule: RuleDoc, path: str, span: Span, function: str, message: str,
           notes=(), facts=(), steps: tuple[PathStep, ...] = (), anchors: tuple[int, ...] = ()) -> Finding:
    """A finding of `rule` (id and level from its rule file) at `span` of `path`.

    The notes end with one line per cited model fact that holds for the target
    kernel: the rule's `cites`, then `facts` particular to this finding.
    `anchors`: more lines whose suppression comment applies (Finding.anchors)."""
    cited = tables.model.facts_for(dict.fromkeys((*rule.cites, *facts)), tables.kernel_version)
    fact_notes = tuple(f"allocator model [{fact.id}]: {fact.summary} ({fact.citation()})" for fact in cited)
    return Finding(
        rule_id=rule.id, level=rule.level, message=message, location=location(path, span),
        function=function, notes=tuple(notes) + fact_notes, path=steps,
        facts=tuple(fact.id for fact in cited), anchors=anchors)


def flow_report(tables: TreeTables, rule: RuleDoc, step, sink, message: str, notes=(), facts=(),
                last_hop: str | None = None, passes: str = "the mask") -> Finding:
    """A finding at the call `step` of the gfp flow, whose mask reaches the
    kernel API through `sink`: across functions, the notes start with the
    call chain and the finding carries each hop (`passes` says what a wrapper
    passes on; `last_hop` what the API gets)."""
    hops: tuple[PathStep, ...] = ()
    if len(sink.steps) > 1:
        notes = ("call chain: " + " -> ".join(f"{s.call.callee}()" for s in sink.steps), *notes)
        hops = tuple(
            PathStep(location(st.path, st.call.span),
                     (last_hop or f"{sink.api.name}() gets the mask") if i + 1 == len(sink.steps) else
                     f"{st.function}() calls {st.call.callee}(), which passes {passes} on to {sink.api.name}()")
            for i, st in enumerate(sink.steps))
    return report(tables, rule, step.path, step.call.span, step.function, message, notes, facts, hops)


def became_true(site, predicate) -> bool:
    """True at the call where `predicate` first holds, walking up from the API."""
    return predicate(site.sink) and not predicate(site.below)


def findings_where_true(tables: TreeTables, rule: RuleDoc, predicate, message, notes, facts=()):
    """One finding per call where `predicate` first holds on the gfp flow;
    `message(site)` words it, `notes` and `facts` explain it."""
    from .gfp_flow import flow_for
    out = {}
    for site in flow_for(tables).sites:
        if became_true(site, predicate):
            key = (site.step.path, site.step.call.span)
            if key not in out:
                out[key] = flow_report(tables, rule, site.step, site.sink, message(site), notes, facts)
    return list(out.values())
