"""From findings to verified rewrites: which finding gets which rewrite, which
is refused and why, and which only gets suggestions (NF003, and the NF006
way not chosen)."""
from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ..check import run_rules
from ..check.gfp_flow import flow_for
from ..check.nf003_contradictory_flags import MAY_FAIL
from ..facts import CallSite, FunctionFacts, RetryLoop
from ..findings import Finding, FixProposal, Replacement
from ..link import FunctionRef, TreeTables
from . import dead_check, retry_loop
from .edit import Change, Refusal, Refuse, Rewrite, apply_hunks, new_errors, overlaps
from .patch import apply_unified, unified_diff
from .source import Source
from .verify import Verifier

# the rules `fix` knows something for: a rewrite (NF002, NF006) or suggestions (NF003)
HANDLED = ("NF002", "NF003", "NF006")


@dataclass
class FixOptions:
    rules: set[str] | None = None       # rules whose findings are fixed (None: all)
    unsafe: bool = False                # also the unsafe rewrites (NF006)
    nf006: str = dead_check.DROP_CHECK  # which way out of a dead NULL check


@dataclass
class Plan:
    rewrites: list[Rewrite] = field(default_factory=list)       # verified, to apply
    refusals: list[Refusal] = field(default_factory=list)
    suggestions: list[Rewrite] = field(default_factory=list)    # shown, never applied
    verify_runs: int = 0

    def files(self) -> dict[str, tuple[str, str]]:
        """display path -> (old text, new text) with every rewrite of the file applied."""
        by_path: dict[str, list[Rewrite]] = defaultdict(list)
        for rw in self.rewrites:
            by_path[rw.path].append(rw)
        return {p: (rws[0].old, apply_hunks(rws[0].old, [h for rw in rws for h in rw.hunks]))
                for p, rws in sorted(by_path.items())}


class Facts:
    """Lookups into the analysis for one finding: its loop, its call, the gfp argument."""

    def __init__(self, tables: TreeTables):
        self.tables = tables

    def _function(self, f: Finding) -> tuple[FunctionRef, FunctionFacts] | None:
        ref = self.tables.file_functions.get(f.location.path, {}).get(f.function)
        return (ref, ref.fn) if ref is not None else None

    def retry_loop(self, f: Finding) -> RetryLoop | None:
        found = self._function(f)
        if found is None:
            return None
        for loop in found[1].retry_loops:
            s = loop.call.span
            if (s.line, s.column) == (f.location.line, f.location.column):
                return loop
        return None

    def call_at(self, f: Finding) -> CallSite | None:
        found = self._function(f)
        if found is None:
            return None
        for call in found[1].calls:
            if (call.span.line, call.span.column) == (f.location.line, f.location.column):
                return call
        return None

    def tested_call(self, f: Finding) -> CallSite | None:
        """The call whose result the NULL test at `f` tests."""
        found = self._function(f)
        if found is None:
            return None
        for call in found[1].calls:
            if any((t.line, t.column) == (f.location.line, f.location.column) for t in call.null_tests):
                return call
        return None

    def gfp_index(self, f: Finding, callee: str) -> int | None:
        """Which argument of a call to `callee` is its gfp mask: the model's
        position for a kernel API, else the one parameter a tree wrapper
        passes on to an allocator's mask (from the gfp flow)."""
        api = self.tables.model.allocator_for(callee, self.tables.kernel_version)
        if api is not None:
            return api.gfp
        found = self._function(f)
        if found is None:
            return None
        flow = flow_for(self.tables)
        idx = {i for sink in flow.sinks_of_callee(found[0], callee) for i, _ in sink.mask.params}
        return idx.pop() if len(idx) == 1 else None


def _read(path: str, cwd: Path) -> Source | None:
    try:
        return Source(path, (cwd / path).read_bytes())
    except OSError:
        return None


def make_plan(tables: TreeTables, findings: list[Finding], before: list[Finding], options: FixOptions,
              cwd: Path, waits: frozenset[str]) -> Plan:
    """`findings`: the ones to fix (selected, not suppressed); `before`: every
    finding of every rule on the unpatched tree (the verification baseline)."""
    plan = Plan()
    facts = Facts(tables)
    sources: dict[str, Source | None] = {}
    candidates: list[Rewrite] = []
    for f in findings:
        if options.rules is not None and f.rule_id not in options.rules:
            continue
        path = f.location.path
        if path not in sources:
            sources[path] = _read(path, cwd)
        src = sources[path]
        if src is None:
            plan.refusals.append(Refusal(f, "unreadable", "the file cannot be read"))
            continue
        try:
            rw = _rewrite(src, f, facts, options, plan, waits)
        except Refuse as r:
            plan.refusals.append(Refusal(f, r.reason, r.detail))
            continue
        candidates.append(rw)
    kept: list[Rewrite] = []
    for rw in candidates:
        src = sources[rw.path]
        assert src is not None      # a rewrite exists only for a file that was read
        if not rw.hunks:
            plan.refusals.append(Refusal(rw.finding, "no-change", "the rewrite changes nothing"))
            continue
        anchor = src.line_starts[min(rw.hunks[0].start, len(src.line_starts) - 1)]
        if new_errors(src, rw.new, anchor) > 0:
            plan.refusals.append(Refusal(rw.finding, "parse-error", "the patched function does not parse cleanly"))
            continue
        clash = next((k for k in kept if k.path == rw.path and any(overlaps(a, b) for a in k.hunks
                                                                    for b in rw.hunks)), None)
        if clash is not None:
            plan.refusals.append(Refusal(rw.finding, "overlaps-another-fix",
                                         f"touches the lines of the fix for line {clash.finding.location.line}"))
            continue
        kept.append(rw)
    kept = _combined_checks(kept, plan)
    verifier = Verifier(tables, before)
    plan.rewrites, refused = verifier.verify(kept)
    plan.refusals += refused
    for path, (old, new) in plan.files().items():     # the diff we print must give the text we verified
        if apply_unified(old, unified_diff(path, old, new)) != new:
            plan.refusals += [Refusal(rw.finding, "diff-does-not-apply", "the unified diff does not reproduce "
                                      "the verified text") for rw in plan.rewrites if rw.path == path]
            plan.rewrites = [rw for rw in plan.rewrites if rw.path != path]
    plan.verify_runs = verifier.runs
    plan.refusals.sort(key=lambda r: r.finding.sort_key())
    plan.rewrites.sort(key=lambda r: r.finding.sort_key())
    return plan


def _combined_checks(kept: list[Rewrite], plan: Plan) -> list[Rewrite]:
    """Dead checks removed together from one function must leave no dead
    label or error path behind (each alone may): else all of them are refused."""
    by_function: dict[tuple[str, str], list[Rewrite]] = defaultdict(list)
    for rw in kept:
        if rw.kind == "nf006-" + dead_check.DROP_CHECK and rw.finding.function:
            by_function[(rw.path, rw.finding.function)].append(rw)
    refused: set[int] = set()
    for (path, _fn), rws in by_function.items():
        if len(rws) < 2:
            continue
        old = rws[0].old
        lines = old.splitlines(keepends=True)
        hunks = [h for rw in rws for h in rw.hunks]
        removed = "".join("".join(lines[h.start:h.end]) for h in hunks)
        first = min(h.start for h in hunks)
        anchor = len("".join(lines[:first]).encode("utf-8", "surrogateescape"))
        try:
            dead_check.check_combined(apply_hunks(old, hunks), path, anchor, removed)
        except Refuse as r:
            plan.refusals += [Refusal(rw.finding, r.reason, r.detail) for rw in rws]
            refused |= {id(rw) for rw in rws}
    return [rw for rw in kept if id(rw) not in refused]


def _rewrite(src: Source, f: Finding, facts: Facts, options: FixOptions, plan: Plan,
             waits: frozenset[str]) -> Rewrite:
    """The rewrite for one finding (suggestions go to `plan`), or Refuse."""
    if f.rule_id == "NF002":
        loop = facts.retry_loop(f)
        if loop is None:
            raise Refuse("not-found", "the loop's facts are not where the finding says")
        return retry_loop.rewrite(src, f, loop, facts.gfp_index(f, loop.call.callee), waits)
    if f.rule_id == "NF006":
        ways = _nf006(src, f, facts)
        chosen = ways.get(options.nf006)
        plan.suggestions += [rw for way, rw in ways.items() if way != options.nf006 and isinstance(rw, Rewrite)]
        if isinstance(chosen, Refuse):
            raise chosen
        assert chosen is not None
        if not options.unsafe:
            plan.suggestions.append(chosen)
            raise Refuse("unsafe-fix", "removing the check trusts the allocator model; "
                         "pass --unsafe-fixes to apply it" if options.nf006 == dead_check.DROP_CHECK else
                         "dropping __GFP_NOFAIL lets the call fail; pass --unsafe-fixes to apply it")
        return chosen
    if f.rule_id == "NF003":
        plan.suggestions += suggestions_nf003(src, f, facts)
        raise Refuse("no-automatic-fix", "NOFAIL and a 'may fail' flag: drop one of them, whichever "
                                         "the caller means (see the suggestions)")
    raise Refuse("no-rewrite", f"{f.rule_id} has no automatic rewrite")


def _nf006(src: Source, f: Finding, facts: Facts) -> dict[str, Rewrite | Refuse]:
    out: dict[str, Rewrite | Refuse] = {}
    try:
        out[dead_check.DROP_CHECK] = dead_check.drop_check(src, f)
    except Refuse as r:
        out[dead_check.DROP_CHECK] = r
    call = facts.tested_call(f)
    try:
        if call is None:
            raise Refuse("not-found", "the tested call is not in the facts")
        out[dead_check.DROP_NOFAIL] = dead_check.drop_nofail(src, f, call.span, facts.gfp_index(f, call.callee))
    except Refuse as r:
        out[dead_check.DROP_NOFAIL] = r
    if call is not None:
        about = Change(call.callee, _gfp_text(src, call, facts.gfp_index(f, call.callee)))
        out = {k: dataclasses.replace(v, about=about) if isinstance(v, Rewrite) else v for k, v in out.items()}
    return out


def _gfp_text(src: Source, call: CallSite, index: int | None) -> str:
    """The call's gfp argument as written ("" when it is not there to read)."""
    from .source import call_args
    node = src.node_at(call.span.line, call.span.column, {"call_expression"})
    args = call_args(node) if node is not None else []
    return " ".join(src.text(args[index]).split()) if index is not None and index < len(args) else ""


def suggestions_nf003(src: Source, f: Finding, facts: Facts) -> list[Rewrite]:
    """Both ways out of NOFAIL + NORETRY/RETRY_MAYFAIL, where the flags are written at the call."""
    call = facts.call_at(f)
    if call is None:
        return []
    node = src.node_at(call.span.line, call.span.column, {"call_expression"})
    idx = facts.gfp_index(f, call.callee)
    from .source import call_args
    args = call_args(node) if node is not None else []
    if idx is None or idx >= len(args):
        return []
    out = []
    whole = src.between(0, len(src.data))
    from .edit import splice
    for flag, kind, title in [(dead_check.NOFAIL, "nf003-drop-nofail",
                               f"drop __GFP_NOFAIL from {call.callee}(): the caller can handle failure")] + \
            [(m, "nf003-drop-mayfail", f"drop {m} from {call.callee}(): the allocation must not fail")
             for m in MAY_FAIL]:
        try:
            edit = dead_check.nofail_operand_removal(src, args[idx], flag)
        except Refuse:
            continue
        out.append(Rewrite(f, kind, False, title, src.path, whole, splice(src, [edit])))
    return out


def proposals(tables: TreeTables, findings: list[Finding], cwd: Path,
              waits: frozenset[str]) -> dict[Finding, list[FixProposal]]:
    """Every way out `fix` knows for each finding, for SARIF `fixes`: the
    verified NF002 rewrite, both NF006 ways (drop-check verified), NF003's two
    suggestions."""
    before = run_rules(tables, None)
    wanted = [f for f in findings if f.rule_id in HANDLED]
    plan = make_plan(tables, wanted, before, FixOptions(set(HANDLED), True), cwd, waits)
    out: dict[Finding, list[FixProposal]] = defaultdict(list)
    for rw in plan.rewrites + sorted(plan.suggestions, key=lambda r: r.kind):
        out[rw.finding].append(FixProposal(
            rw.title, rw.path, tuple(Replacement(h.start + 1, h.end + 1, "".join(h.lines)) for h in rw.hunks),
            rw.safe))
    return dict(out)
