"""Where gfp masks flow: every allocator call, bound up through wrappers.

A *sink* is an allocator call reachable from a function, described in terms
of that function's parameters: the gfp mask (constant flags plus parameters
that flow in), and the API's other interesting arguments (start/end of a
range API, the order of a page allocation), each either bound to a value or
still a parameter. A model allocator is the seed (all its arguments are its
own parameters); a call to a function that has sinks binds the callee's
parameters to the call's arguments. The fixpoint runs over a worklist of
callers, across files (docs/architecture.md, Across functions).

A sink is known by its signature (API, mask, roles, where NOFAIL entered,
guards), not by its path, so the length of a wrapper chain needs no cap: a
recursive cycle adds no new signature once its masks are stable, and each
function keeps, per signature, the shortest path down to the API (a shorter
one found later replaces it and is passed on to the callers).

Each binding is a *site*: the call, the mask as seen there, and the path down
to the kernel API. Rules look at sites (and at the sink one level down, to
tell where a flag first entered) and decide; this module holds no rule.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..cexpr import UNKNOWN, Mask, is_tag, mask_clear, mask_or, parse_expr, parse_tag, tag
from ..facts import CallSite
from ..findings import Incomplete
from ..link import FunctionRef, TreeTables
from ..model import NOFAIL, Allocator

MAX_SINKS_PER_FUNCTION = 32
MAX_ROUNDS = 200_000
LIMITS = "limits"          # TreeTables.derived key: (path, what) -> Incomplete
PAGE_SIZE = 4096          # for get_order(constant): the common 4 KiB page
_ROLES = ("start", "end", "order", "size")
SMALL_SIZE = 1 << 20      # constant sizes up to this are one "small" value (fewer distinct sinks)

_TRUTH = {"true": True, "false": False, "NULL": False}

# bound argument kinds: ("param", i) | ("default", name) | ("const", int) | ("other", text)


@dataclass(frozen=True)
class Step:
    path: str
    call: CallSite
    function: str


@dataclass(frozen=True)
class Sink:
    api: Allocator
    mask: Mask
    roles: tuple[tuple[str, tuple], ...]     # (role, bound) for start/end/order/size
    steps: tuple[Step, ...] = ()             # from the owner's call down to the API
    nofail_origin: Step | None = None        # the call where NOFAIL became constant
    guards: tuple[tuple[int, bool], ...] = ()   # owner's parameters the path needs true/false
    released: bool = False                   # a lock was dropped on the way, before the allocation

    def role(self, name: str) -> tuple | None:
        for r, bound in self.roles:
            if r == name:
                return bound
        return None

    def signature(self):
        origin = (self.nofail_origin.path, self.nofail_origin.call.span) if self.nofail_origin else None
        return (self.api.name, self.mask, self.roles, origin, self.guards, self.released)

    @property
    def open(self) -> bool:
        """Still depends on the owner's parameters."""
        return bool(self.mask.params) or any(b[0] == "param" for r, b in self.roles if r != "size")


@dataclass(frozen=True)
class Site:
    """One binding: `sink` as seen at `step.call`, `below` as the callee had it."""

    step: Step
    ref: FunctionRef
    sink: Sink
    below: Sink

    @property
    def path(self) -> tuple[Step, ...]:
        return self.sink.steps


def _bind_tags(alt: frozenset, arg) -> frozenset | None:
    """A path whose tags (cexpr.tag: "only if parameter i has/lacks flag F")
    are checked against the call's arguments: None if the argument's mask
    cannot pass the test, the tag dropped if it always does, moved to the
    caller's parameter if that alone decides, else dropped (both possible)."""
    out = set()
    for element in alt:
        if not is_tag(element):
            out.add(element)
            continue
        idx, has, atom = parse_tag(element)
        am = arg(idx)
        if not am.known:
            continue
        with_flag = any(atom in a for a in am.alts)
        without = any(atom not in a for a in am.alts)
        carriers = am.param_may_carry(atom)
        if has and not with_flag and not carriers:
            return None
        if not has and not without:
            return None
        if not with_flag and len(carriers) == 1 and without:
            out.add(tag(carriers[0], has, atom))
    return frozenset(out)


def seed(api: Allocator) -> Sink:
    roles = tuple((r, ("param", getattr(api, r))) for r in _ROLES if getattr(api, r) is not None)
    return Sink(api, Mask(params=((api.gfp, frozenset()),)), roles)


class GfpFlow:
    """Computes the sites once per run; rules iterate over `sites`.

    Only sites whose mask may include `flag` are kept (every NOFAIL rule needs
    NOFAIL in the mask); the fixpoint itself still runs over every mask.
    """

    def __init__(self, tables: TreeTables, flag: str = NOFAIL):
        self.tables = tables
        self.flag = flag
        self.version = tables.kernel_version
        self.sites: list[Site] = []
        self._site_at: dict[tuple, int] = {}     # site key -> index in `sites`
        self._sinks: dict[tuple[str, str], dict] = {}
        # where a cap cut the search short (reported as incomplete analysis)
        self.limits: dict[tuple[str, str], Incomplete] = {}
        self._run()
        tables.derived.setdefault(LIMITS, {}).update(self.limits)

    def _limit(self, ref: FunctionRef, call: CallSite | None, what: str):
        key = (ref.file.path, ref.fn.name + "\0" + what)
        if key not in self.limits:
            span = call.span if call is not None else ref.fn.span
            self.limits[key] = Incomplete(ref.file.path, span.line, span.end_line, "limit",
                                          f"{ref.fn.name}(): {what}")

    # ---------------------------------------------------------------- binding

    def _api(self, name: str) -> Allocator | None:
        api = self.tables.model.allocator_for(name, self.version)
        if api is None or api.gfp is None:
            return None
        return api

    def sinks_of_callee(self, ref: FunctionRef, callee: str) -> list[Sink]:
        api = self._api(callee)
        if api is not None:
            return [seed(api)]
        out: list[Sink] = []
        for target in self.tables.resolve(ref.file.path, callee):
            out.extend(self._sinks.get(target.key, {}).values())
        return out

    def _guards(self, ref: FunctionRef, call: CallSite, sink: Sink) -> tuple | None:
        """The sink's parameter conditions seen from `call`: None if an argument
        contradicts one (`__alloc_pending(false)` never reaches the NOFAIL branch)."""
        out = set(call.param_guards)
        for idx, truth in sink.guards:
            if idx >= len(call.args):
                continue
            arg = " ".join(call.args[idx].split())
            value = _TRUTH.get(arg)
            if value is None:
                n = self.tables.const_int(ref.file.path, parse_expr(arg))
                value = None if n is None else n != 0
            if value is not None:
                if value != truth:
                    return None
            elif arg in ref.fn.params:
                out.add((ref.fn.params.index(arg), truth))
        return tuple(sorted(out))

    def _bind(self, ref: FunctionRef, call: CallSite, sink: Sink, evaluator) -> Sink | None:
        guards = self._guards(ref, call, sink)
        if guards is None:
            return None
        args: dict[int, Mask] = {}

        def arg(idx: int) -> Mask:
            if idx not in args:
                args[idx] = evaluator.eval(parse_expr(call.args[idx])) if idx < len(call.args) else UNKNOWN
            return args[idx]

        alts = set()
        for alt in sink.mask.alts:
            bound_alt = _bind_tags(alt, arg) if any(is_tag(a) for a in alt) else alt
            if bound_alt is not None:
                alts.add(bound_alt)
        if not alts:
            return None         # every path needs a flag test the caller's mask cannot pass
        mask = Mask(frozenset(alts), known=sink.mask.known)
        for idx, cleared in sink.mask.params:
            if idx < len(call.args):
                mask = mask_or(mask, mask_clear(arg(idx), cleared))
        roles = []
        for role, bound in sink.roles:
            if bound[0] == "param":
                idx = bound[1]
                text = call.args[idx] if idx < len(call.args) else ""
                bound = self.resolve_order(ref, text) if role == "order" else \
                    self.resolve_size(ref, text) if role == "size" else self.resolve_bound(ref, text)
            roles.append((role, bound))
        step = Step(ref.file.path, call, ref.fn.name)
        origin = sink.nofail_origin
        if origin is None and mask.may_include(NOFAIL):
            origin = step
        return Sink(sink.api, mask, tuple(roles), (step,) + sink.steps, origin, guards,
                    sink.released or call.after_unlock)

    def resolve_bound(self, ref: FunctionRef, text: str, depth: int = 0) -> tuple:
        """A range bound: a parameter, the default name, or something else."""
        e = parse_expr(text)
        while e[0] == "cast":
            e = e[1]
        if e[0] != "id":
            return ("other", " ".join(text.split()))
        name = e[1]
        for api in self.tables.model.range_apis().values():
            if api.range_default and name in api.range_default:
                return ("default", name)
        if name in ref.fn.params:
            return ("param", ref.fn.params.index(name))
        bodies = self.tables.macro_bodies(ref.file.path, name)
        if len(bodies) == 1 and depth < 8:
            inner = self.resolve_bound(ref, bodies[0], depth + 1)
            if inner[0] == "default":
                return inner
        return ("other", name)

    def resolve_size(self, ref: FunctionRef, text: str) -> tuple:
        """A size: a parameter, a large constant, or ("other", "") for
        anything else (small constants included: only limits matter)."""
        e = parse_expr(text)
        while e[0] == "cast":
            e = e[1]
        if e[0] == "id" and e[1] in ref.fn.params:
            return ("param", ref.fn.params.index(e[1]))
        value = self.tables.const_int(ref.file.path, e, {"PAGE_SIZE": PAGE_SIZE, "PAGE_SHIFT": 12})
        if value is not None and value > SMALL_SIZE:
            return ("const", value)
        return ("other", "")

    def resolve_order(self, ref: FunctionRef, text: str) -> tuple:
        """A page order: a parameter, a constant (literal, macro, get_order(constant)), or unknown."""
        e = parse_expr(text)
        while e[0] == "cast":
            e = e[1]
        if e[0] == "id" and e[1] in ref.fn.params:
            return ("param", ref.fn.params.index(e[1]))
        value = self.tables.const_int(ref.file.path, e)
        if value is not None:
            return ("const", value)
        if e[0] == "call" and e[1] == "get_order" and len(e[2]) == 1:
            size = self.tables.const_int(ref.file.path, e[2][0], {"PAGE_SIZE": PAGE_SIZE, "PAGE_SHIFT": 12})
            if size is not None and size > 0:
                order, pages = 0, -(-size // PAGE_SIZE)
                while (1 << order) < pages:
                    order += 1
                return ("const", order)
        return ("other", " ".join(text.split()))

    # ---------------------------------------------------------------- fixpoint

    def _visit(self, ref: FunctionRef) -> bool:
        """Bind every sink below `ref`'s calls; True if `ref` gained a sink."""
        evaluator = self.tables.evaluator(ref)
        mine = self._sinks.setdefault(ref.key, {})
        grew = False
        for call in ref.fn.calls:
            for below in self.sinks_of_callee(ref, call.callee):
                bound = self._bind(ref, call, below, evaluator)
                if bound is None:
                    continue
                sig = bound.signature()
                if bound.mask.may_include(self.flag):
                    self._add_site(Site(Step(ref.file.path, call, ref.fn.name), ref, bound, below),
                                   (ref.file.path, call.span, sig, below.signature()))
                if not (bound.open or bound.mask.may_include(self.flag)):
                    continue     # nothing a caller could add or be told
                known = mine.get(sig)
                if known is not None:
                    if len(bound.steps) < len(known.steps):
                        mine[sig] = bound       # the same sink by a shorter path
                        grew = True
                    continue
                if len(mine) < MAX_SINKS_PER_FUNCTION:
                    mine[sig] = bound
                    grew = True
                else:
                    self._limit(ref, None, f"more than {MAX_SINKS_PER_FUNCTION} distinct gfp paths "
                                           "lead through this function; its callers see only the first")
        return grew

    def _add_site(self, site: Site, key: tuple) -> None:
        """Record `site`, or let it replace the same site reached by a longer path."""
        at = self._site_at.get(key)
        if at is None:
            self._site_at[key] = len(self.sites)
            self.sites.append(site)
        elif len(site.sink.steps) < len(self.sites[at].sink.steps):
            self.sites[at] = site

    def _run(self):
        tables = self.tables
        work: list[FunctionRef] = []
        for name, api in tables.model.allocators.items():
            if api.gfp is None:
                continue
            for ref, _call in tables.callers.get(name, ()):
                work.append(ref)
        queued = {r.key for r in work}
        rounds = 0
        while work and rounds < MAX_ROUNDS:
            rounds += 1
            ref = work.pop()
            queued.discard(ref.key)
            if self._visit(ref):
                for caller, _call in tables.callers.get(ref.fn.name, ()):
                    if caller.key not in queued and any(
                            t.key == ref.key for t in tables.resolve(caller.file.path, ref.fn.name)):
                        queued.add(caller.key)
                        work.append(caller)
        if work:
            ref = work[-1]
            self._limit(ref, None, f"the gfp flow stopped after {MAX_ROUNDS} rounds; "
                                   f"{len(work)} function(s) were not revisited")
        self.sites.sort(key=lambda s: (s.step.path, s.step.call.span.line, s.step.call.span.column))


def flow_for(tables: TreeTables, flag: str = NOFAIL) -> GfpFlow:
    """One GfpFlow per TreeTables and flag (the rules share the NOFAIL one)."""
    key = "gfp_flow:" + flag
    flow = tables.derived.get(key)
    if not isinstance(flow, GfpFlow):
        flow = tables.derived[key] = GfpFlow(tables, flag)
    return flow
