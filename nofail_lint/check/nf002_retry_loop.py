"""NF002 open-coded-retry-loop: a loop that repeats an allocation until it succeeds.

The loop shape (no exit on persistent failure, an exit on success) is found by
extract (loops.py); here we decide whether the repeated call is an allocator:
the model's, a tree function returning an allocator's result, a configured
one, any call whose failure is followed by a retry-wait helper, a call that
returns -ENOMEM from an allocation when the loop retries on -ENOMEM, or a
call that returns the very code the loop retries on when an allocation
failed (`return XX_AGAIN;` after `if (!p)`, `code_sources`).

That last family looks one level *up* from the allocation: the allocation
fails in the callee, the loop is the caller's. The finding is reported at the
caller's call in the loop, so it still depends only on the caller's facts and,
downwards, on the callee's `callees_codes` (docs/architecture.md, "Partial
and repeated runs"); tests/test_demand.py and tests/test_incremental.py hold
cases of this family.
"""
from __future__ import annotations

import re

from ..findings import Finding, PathStep
from ..link import TreeTables
from ..model import NOFAIL
from ..rules_catalog import RuleDoc
from .common import location, report

_GFP_ARG = re.compile(r"gfp|GFP")

_SHAPES = {
    "do-while": "do/while loop",
    "while": "while loop",
    "for": "for loop",
    "goto": "backward goto",
}


def _surely_nofail(tables: TreeTables, ff, args) -> bool:
    evaluator = tables.evaluator_for_file(ff.path)
    return any(NOFAIL in evaluator.eval_text(a).must for a in args)


def check(tables: TreeTables, rule: RuleDoc) -> list[Finding]:
    waits = tables.model.retry_wait | tables.extra_retry_wait
    loops: dict[tuple, list] = {}
    for ff in tables.files:
        for fn in ff.functions:
            for loop in fn.retry_loops:
                if _surely_nofail(tables, ff, loop.call.args):
                    continue   # already NOFAIL: the loop is not compensating for failure
                if loop.call.callee in tables.model.event_tests:
                    continue   # `while (!kthread_should_stop())`: the loop waits for an event
                # a call through an ops member: the one function the file assigns to it
                where, callee = ff.path, loop.callee_via or loop.call.callee
                if loop.code_only:
                    # a retry loop only if the call keeps failing with this code
                    chain, waiting, enomem = None, [], None
                else:
                    chain = tables.allocator_chain(where, callee)
                    waiting = sorted(waits.intersection(loop.callees_in_loop))
                    enomem = tables.enomem_chain(where, callee) \
                        if chain is None and loop.retries_enomem else None
                # a loop that retries on any error code but can leave on one is
                # not "until it succeeds": the code family needs no exit at all
                any_code_exit = loop.retries_code == "*" and loop.conditional_exit
                coded = code_chain(tables, where, callee, loop.retries_code) \
                    if chain is None and not waiting and enomem is None and loop.retries_code \
                    and not any_code_exit else None
                if chain is None and not waiting and enomem is None and coded is None:
                    continue
                loops.setdefault((ff.path, loop.loop_kind, loop.loop_span), []).append(
                    (ff, fn, loop, chain, waiting, enomem or coded))
    out = []
    for tries in loops.values():
        # a loop that tries several allocators (kmalloc, then a vmalloc
        # fallback) is one finding, at the first, naming the others
        tries.sort(key=lambda t: (t[2].call.span.line, t[2].call.span.column))
        ff, fn, loop, chain, waiting, enomem = tries[0]
        out.append(_finding(tables, rule, ff, fn, loop, chain, waiting, enomem, also=[t[2].call for t in tries[1:]]))
    return out


def _finding(tables: TreeTables, rule: RuleDoc, ff, fn, loop, chain, waiting, enomem, also) -> Finding:
    model = tables.model
    callee = loop.call.callee
    shape = _SHAPES.get(loop.loop_kind, loop.loop_kind)
    notes = []
    steps = []
    if chain:
        for link in chain:
            rc = link.returned
            steps.append(PathStep(location(link.ref.file.path, rc.span),
                                  f"{link.ref.fn.name}() returns the result of {rc.callee}()"))
        notes.append(f"{callee}() is an allocator: it returns the result of "
                     f"{chain[-1].returned.callee}()")
    elif enomem is not None and loop.retries_code == "*":
        notes.append(f"{callee}() returns an error code when an allocation fails: "
                     + " -> ".join(f"{c}()" for c in enomem) + "; the loop retries on any error code")
    elif enomem is not None and not loop.retries_enomem:
        notes.append(f"{callee}() returns {loop.retries_code} when an allocation fails: "
                     + " -> ".join(f"{c}()" for c in enomem) + f"; the loop retries while it sees {loop.retries_code}")
    elif enomem is not None:
        notes.append(f"{callee}() returns -ENOMEM when an allocation fails: "
                     + " -> ".join(f"{c}()" for c in enomem) + "; the loop retries on -ENOMEM")
    elif chain is None:
        notes.append(f"{callee}() is retried after {', '.join(w + '()' for w in waiting)}, "
                     f"which waits for memory: the loop treats it as an allocation")
    if also:
        notes.append("the same loop also retries " +
                     ", ".join(f"{c.callee}() (line {c.span.line})" for c in also))
    if loop.conditional_exit:
        notes.append("the loop leaves on failure only when a flag fixed before the loop allows it "
                     "(conditional NOFAIL): callers that do not set it get an endless retry")
    notes.append(f"{shape} starting at line {loop.loop_span.line} has no exit on persistent "
                 f"failure: no bounding counter, signal check, timeout or error return")
    if chain is not None or any(_GFP_ARG.search(a) for a in loop.call.args):
        notes.append("fix: pass __GFP_NOFAIL to the allocator (and drop the loop), or let the "
                     "failure reach the caller")
        advice = "use __GFP_NOFAIL instead"
    else:
        notes.append(f"{callee}() takes no gfp mask, so __GFP_NOFAIL cannot be passed to it: bound the "
                     "loop (a retry limit, a signal check), or let the failure reach the caller")
        advice = f"{callee}() takes no gfp mask: bound the loop or return the failure"
    message = (f"open-coded retry loop around {callee}(): it repeats the allocation until it "
               f"succeeds; {advice}")
    return report(tables, rule, ff.path, loop.call.span, fn.name, message, notes,
                  model.retry_wait_facts if waiting else (), tuple(steps),
                  anchors=(loop.loop_span.line,))


def code_chain(tables: TreeTables, caller_path: str, name: str, code: str) -> tuple[str, ...] | None:
    """How a call to `name` returns `code` when an allocation fails: the
    calls down to the allocation, or None. Code "*" is any error code:
    -ENOMEM from an allocation, or any code of `code_sources`."""
    if code == "*":
        enomem = tables.enomem_chain(caller_path, name)
        if enomem is not None:
            return enomem
    for r in tables.resolve(caller_path, name, True):
        found = code_sources(tables).get(r.key, {})
        if code in found:
            return found[code]
        if code == "*" and found:
            return found[min(found)]
    return None


def code_sources(tables: TreeTables) -> dict[tuple[str, str], dict[str, tuple[str, ...]]]:
    """(file, function) -> {code: the calls down to an allocation} for every
    constant code a function returns when an allocation failed: `if (!p)
    return code;` after `p = alloc()` (an allocator or a tree wrapper),
    `if (err) return code;` after `err = f()` where f returns -ENOMEM from an
    allocation, and `if (f() == code) return code;` or `return f();` where f
    returns code so; a fixpoint over callers, across files."""
    found = tables.derived.get("nf002_code_sources")
    if found is not None:
        return found
    out: dict[tuple[str, str], dict[str, tuple[str, ...]]] = {}
    users: dict[str, list[tuple]] = {}
    for ff in tables.files:
        for fn in ff.functions:
            for code, callee, how in fn.callees_codes:
                if how == "pass":
                    users.setdefault(callee, []).append((ff, fn, code))
                    continue
                down = tables.allocator_chain(ff.path, callee) if how == "null" else None
                steps = (callee,) + tuple(link.returned.callee for link in down) if down is not None else \
                    tables.enomem_chain(ff.path, callee) if how in ("err", "null") else None
                if steps is not None:
                    out.setdefault((ff.path, fn.name), {}).setdefault(code, (fn.name,) + steps)
            for rc in fn.returns:       # `return f();`: every code of f
                users.setdefault(rc.callee, []).append((ff, fn, None))
    work = sorted({name for _, name in out})
    while work:
        name = work.pop()
        for ff, fn, code in users.get(name, ()):
            for r in tables.resolve(ff.path, name, True):
                for c, steps in out.get(r.key, {}).items():
                    mine = out.setdefault((ff.path, fn.name), {})
                    if (code is None or c == code) and c not in mine and fn.name not in steps:
                        mine[c] = (fn.name,) + steps
                        work.append(fn.name)
    tables.derived["nf002_code_sources"] = out
    return out

