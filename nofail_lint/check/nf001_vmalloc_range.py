"""NF001 nofail-vmalloc-range: __GFP_NOFAIL reaching a vmalloc range API with a
start/end other than VMALLOC_START/VMALLOC_END.

Each function gets "range sinks": a range API call reachable from it, with the
gfp mask and the start/end expressed in terms of the function's parameters.
A model range API is the seed (its own parameters); a call to a function with
sinks binds that function's parameters to the call's arguments. The fixpoint
runs over a worklist of callers. A sink whose mask surely carries NOFAIL and
whose range is bound to something other than the whole vmalloc space is a
finding at the call where NOFAIL entered (DESIGN.md section 3 and 3.1).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..cexpr import Mask, mask_clear, mask_or, parse_expr
from ..facts import CallSite
from ..findings import Finding, PathStep
from ..link import FunctionRef, TreeTables
from ..model import NOFAIL, Allocator
from .common import fact_notes, location, short

RULE_ID = "NF001"
LEVEL = "error"
MAX_SINKS_PER_FUNCTION = 32
MAX_DEPTH = 10

# range bound kinds: ("default", name) | ("param", index) | ("other", text)


@dataclass(frozen=True)
class Step:
    path: str
    call: CallSite
    function: str


@dataclass(frozen=True)
class Sink:
    api: Allocator
    mask: Mask
    start: tuple
    end: tuple
    origin: Step | None          # where NOFAIL became part of the mask
    steps: tuple[Step, ...]      # from this function's call down to the API

    def signature(self):
        return (self.api.name, self.mask, self.start, self.end,
                (self.origin.path, self.origin.call.span) if self.origin else None)


def _api_seed(api: Allocator) -> Sink:
    return Sink(api, Mask(params=((api.gfp, frozenset()),)), ("param", api.start), ("param", api.end), None, ())


def _resolve_bound(tables: TreeTables, ref: FunctionRef, text: str, depth: int = 0) -> tuple:
    e = parse_expr(text)
    while e[0] == "cast":
        e = e[1]
    if e[0] != "id":
        return ("other", " ".join(text.split()))
    name = e[1]
    for api in tables.model.range_apis().values():
        if api.range_default and name in api.range_default:
            return ("default", name)
    if name in ref.fn.params:
        return ("param", ref.fn.params.index(name))
    bodies = tables.macro_bodies(ref.file.path, name)
    if len(bodies) == 1 and depth < 8:
        inner = _resolve_bound(tables, ref, bodies[0], depth + 1)
        if inner[0] != "param":
            return inner if inner[0] == "default" else ("other", name)
    return ("other", name)


def _is_default(api: Allocator, start: tuple, end: tuple) -> bool:
    return (api.range_default is not None and start == ("default", api.range_default[0])
            and end == ("default", api.range_default[1]))


def _bind(tables: TreeTables, ref: FunctionRef, call: CallSite, sink: Sink, evaluator) -> Sink | None:
    """The sink as seen from `ref`, which calls the sink's owner at `call`."""
    mask = Mask(sink.mask.flags, sink.mask.must)
    for idx, cleared in sink.mask.params:
        if idx < len(call.args):
            mask = mask_or(mask, mask_clear(evaluator.eval(parse_expr(call.args[idx])), cleared))
    bounds = []
    for bound in (sink.start, sink.end):
        if bound[0] == "param":
            idx = bound[1]
            bound = _resolve_bound(tables, ref, call.args[idx]) if idx < len(call.args) else ("other", "?")
        bounds.append(bound)
    start, end = bounds
    if _is_default(sink.api, start, end):
        return None
    step = Step(ref.file.path, call, ref.fn.name)
    origin = sink.origin
    if origin is None and mask.may_include(NOFAIL):
        origin = step
    if origin is None and not mask.param_may_carry(NOFAIL):
        return None
    return Sink(sink.api, mask, start, end, origin, (step,) + sink.steps)


def _bound_text(bound: tuple) -> str:
    return bound[1] if bound[0] != "param" else f"parameter #{bound[1] + 1}"


def _finding(tables: TreeTables, sink: Sink) -> Finding:
    origin = sink.origin
    api = sink.api
    path_steps = []
    for i, st in enumerate(sink.steps):
        nxt = sink.steps[i + 1].call.callee if i + 1 < len(sink.steps) else None
        gfp = st.call.args
        if nxt is None:
            msg = (f"{st.call.callee}() gets start={short(_bound_text(sink.start), 40)}, "
                   f"end={short(_bound_text(sink.end), 40)} and a mask that may include __GFP_NOFAIL")
        else:
            msg = f"{st.function}() calls {st.call.callee}(), which passes its gfp and range on to {api.name}()"
        path_steps.append(PathStep(location(st.path, st.call.span), msg))
    via = sink.steps[-1].call.callee if sink.steps else api.name
    chain = " -> ".join(f"{s.call.callee}()" for s in sink.steps)
    message = (f"__GFP_NOFAIL reaches {via}() with the non-default vmalloc range "
               f"{short(_bound_text(sink.start), 40)}..{short(_bound_text(sink.end), 40)}: "
               f"it retries forever once that window is full")
    notes = []
    if len(sink.steps) > 1:
        notes.append(f"call chain: {chain}")
    default = api.range_default or ("VMALLOC_START", "VMALLOC_END")
    notes.append(f"only {default[0]}..{default[1]} (the whole vmalloc space) is safe with __GFP_NOFAIL; "
                 f"drop __GFP_NOFAIL and handle failure, or allocate from the default range")
    notes.extend(fact_notes(tables.model, api.facts))
    return Finding(
        rule_id=RULE_ID, level=LEVEL, message=message,
        location=location(origin.path, origin.call.span), function=origin.function,
        notes=tuple(notes), path=tuple(path_steps) if len(path_steps) > 1 else (),
        facts=api.facts)


def check(tables: TreeTables) -> list[Finding]:
    range_apis = tables.model.range_apis()
    sinks: dict[tuple[str, str], dict] = {}       # function key -> {signature: Sink}
    refs: dict[tuple[str, str], FunctionRef] = {}
    findings: dict[tuple, Finding] = {}

    def sinks_of_callee(ref: FunctionRef, callee: str) -> list[Sink]:
        api = range_apis.get(callee)
        if api is not None:
            return [_api_seed(api)]
        out = []
        for target in tables.resolve(ref.file.path, callee):
            out.extend(sinks.get(target.key, {}).values())
        return out

    # seed: every function calling a range API directly
    work = []
    for name in range_apis:
        for ref, _call in tables.callers.get(name, ()):
            work.append(ref)
    queued = {r.key for r in work}
    rounds = 0
    while work and rounds < 100000:
        rounds += 1
        ref = work.pop()
        queued.discard(ref.key)
        refs[ref.key] = ref
        evaluator = tables.evaluator(ref)
        mine = sinks.setdefault(ref.key, {})
        grew = False
        for call in ref.fn.calls:
            for sink in sinks_of_callee(ref, call.callee):
                if len(sink.steps) >= MAX_DEPTH:
                    continue
                bound = _bind(tables, ref, call, sink, evaluator)
                if bound is None:
                    continue
                complete = bound.start[0] != "param" and bound.end[0] != "param"
                if complete and bound.origin is not None:
                    key = (bound.origin.path, bound.origin.call.span.line, bound.origin.call.span.column)
                    if key not in findings:
                        findings[key] = _finding(tables, bound)
                    continue
                if not bound.mask.param_may_carry(NOFAIL) and bound.origin is None:
                    continue
                sig = bound.signature()
                if sig not in mine and len(mine) < MAX_SINKS_PER_FUNCTION:
                    mine[sig] = bound
                    grew = True
        if grew:
            for caller, _call in tables.callers.get(ref.fn.name, ()):
                if caller.key not in queued and any(
                        t.key == ref.key for t in tables.resolve(caller.file.path, ref.fn.name)):
                    queued.add(caller.key)
                    work.append(caller)
    return list(findings.values())
