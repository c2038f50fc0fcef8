"""NF002 open-coded-retry-loop: a loop that repeats an allocation until it succeeds.

The loop shape (no exit on persistent failure, an exit on success) is found by
extract (loops.py); here we decide whether the repeated call is an allocator:
the model's, a tree function returning an allocator's result, a configured
one, or any call whose failure is followed by a retry-wait helper.
"""
from __future__ import annotations

from ..findings import Finding, PathStep
from ..link import TreeTables
from ..model import NOFAIL
from ..rules_catalog import RuleDoc
from .common import location, report

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
    model = tables.model
    waits = model.retry_wait | tables.extra_retry_wait
    out = []
    for ff in tables.files:
        for fn in ff.functions:
            for loop in fn.retry_loops:
                callee = loop.call.callee
                if _surely_nofail(tables, ff, loop.call.args):
                    continue   # already NOFAIL: the loop is not compensating for failure
                chain = tables.allocator_chain(ff.path, callee)
                waiting = sorted(waits.intersection(loop.callees_in_loop))
                if chain is None and not waiting:
                    continue
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
                elif chain is None:
                    notes.append(f"{callee}() is retried after {', '.join(w + '()' for w in waiting)}, "
                                 f"which waits for memory: the loop treats it as an allocation")
                if loop.conditional_exit:
                    notes.append("the loop leaves on failure only when a flag fixed before the loop allows it "
                                 "(conditional NOFAIL): callers that do not set it get an endless retry")
                notes.append(f"{shape} starting at line {loop.loop_span.line} has no exit on persistent "
                             f"failure: no bounding counter, signal check, timeout or error return")
                notes.append("fix: pass __GFP_NOFAIL to the allocator (and drop the loop), or let the "
                             "failure reach the caller")
                message = (f"open-coded retry loop around {callee}(): it repeats the allocation until it "
                           f"succeeds; use __GFP_NOFAIL instead")
                out.append(report(tables, rule, ff.path, loop.call.span, fn.name, message, notes,
                                  model.retry_wait_facts if waiting else (), tuple(steps),
                                  anchors=(loop.loop_span.line,)))
    return out
