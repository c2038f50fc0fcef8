"""NF006 nofail-dead-null-check: the result of a __GFP_NOFAIL allocation that
cannot return NULL is tested for NULL. The test is dead code that suggests
the author expected failure; the allocator model says when NULL is still
possible (then nothing is reported)."""
from __future__ import annotations

import re

from ..cexpr import parse_expr
from ..findings import Finding
from ..link import TreeTables
from ..model import NOFAIL
from ..rules_catalog import RuleDoc
from .common import report
from .gfp_flow import PAGE_SIZE, flow_for

WRAPPER_FACTS = ("gfp.nofail-preferred-over-loop",)
RECLAIM = "__GFP_DIRECT_RECLAIM"
# null_under_nofail conditions that a sane call never meets: hard size limits
_HARD_LIMITS = ("KMALLOC_MAX_SIZE", "MAX_PAGE_ORDER", "MAX_ORDER")
_OPERAND = re.compile(r"[A-Za-z_]\w*")


def null_tests(tables: TreeTables, path: str, call) -> tuple:
    """The call's NULL tests: those extraction saw directly, and those spelt
    through macros or helpers that the tree's definitions make tests."""
    if not call.via_tests:
        return call.null_tests
    return call.null_tests + tuple(v.span for v in call.via_tests if tables.tests_null(path, v))


def _bounded(tables: TreeTables, sink) -> set[str]:
    """The API's parameters that are bounded at its call: a constant there,
    or bounded by the calling function (CallSite.bounded_args)."""
    if not sink.steps:
        return set()
    last = sink.steps[-1]
    out = set()
    for i, name in enumerate(sink.api.params):
        if i < len(last.call.args) and (i in last.call.bounded_args or tables.const_int(
                last.path, parse_expr(last.call.args[i]), {"PAGE_SIZE": PAGE_SIZE}) is not None):
            out.add(name)
    return out


def _cannot_return_null(api, mask, size, limit: int, bounded: set[str]) -> bool:
    """Under this mask and size, none of the model's NULL-despite-NOFAIL
    conditions can hold. A size that is not a constant is taken to be within
    the hard limits (see the rule's documentation); `A * B overflows` cannot
    hold only when A and B are `bounded` (slab.array-overflow-null)."""
    if api.fails != "null" or api.nofail not in ("retry-loop", "mempool-wait"):
        return False
    for cond in api.null_under_nofail:
        if cond.endswith("overflows"):
            if not all(w in bounded for w in _OPERAND.findall(cond) if w in api.params):
                return False
        elif RECLAIM in cond:
            if RECLAIM not in mask.must:
                return False
        elif cond.startswith("size > KMALLOC_MAX_SIZE"):
            if size is not None and size[0] == "const" and size[1] > limit:
                return False
        elif not any(limit_name in cond for limit_name in _HARD_LIMITS):
            return False
    return True


def _returns_result(tables: TreeTables, sink) -> bool:
    """The tested value is the API's own result: a direct call, or wrappers
    that each return the result of the next call down and nothing else."""
    for st in sink.steps[1:]:
        link = tables.wrappers.get((st.path, st.function))
        if link is None or link.returned.callee != st.call.callee or link.ref.fn.other_returns:
            return False
    return True


def _wrapper_chain(w) -> list:
    """The NofailWrapper hops from the called function down to the retry loop."""
    chain = [w]
    while chain[-1].via is not None and len(chain) < 10:
        chain.append(chain[-1].via[1])
    return chain


def _looping_wrapper_findings(tables: TreeTables, rule: RuleDoc, out: dict) -> None:
    """NULL tests of a call to a function that cannot return NULL because of
    its own retry loop (or returns such a function's result), with flags
    that do not include the loop's may-fail flag."""
    wrappers = tables.nofail_wrappers
    if not wrappers:
        return
    for ff in tables.files:
        for fn in ff.functions:
            for call in fn.calls:
                tests = null_tests(tables, ff.path, call)
                if not tests:
                    continue
                w = next((wrappers[r.key] for r in tables.resolve(ff.path, call.callee, True)
                          if r.key in wrappers), None)
                if w is None or tables.flags_passed(ff.path, fn.params, call.args, w.may_fail_if) != set():
                    continue
                chain = _wrapper_chain(w)
                loop = chain[-1].loop
                inner = chain[-1].ref
                flags = sorted({flag for _, flag in w.may_fail_if})
                notes = []
                if len(chain) > 1:
                    notes.append("call chain: " + " -> ".join(f"{c.ref.fn.name}()" for c in chain))
                unless = f" unless the flags include {', '.join(flags)}" if flags else ""
                notes.append(f"{inner.fn.name}() ({inner.file.path}:{loop.loop_span.line}) retries "
                             f"{loop.call.callee}() until it succeeds{unless}; drop the check, or pass the "
                             f"may-fail flag if failure can be handled")
                msg = (f"dead NULL check: {call.callee}() (line {call.span.line}) cannot return NULL: "
                       f"{inner.fn.name}() loops until the allocation succeeds")
                for test in tests:
                    key = (ff.path, test.line, test.column)
                    if key not in out:
                        out[key] = report(tables, rule, ff.path, test, fn.name, msg, notes, WRAPPER_FACTS)


def check(tables: TreeTables, rule: RuleDoc) -> list[Finding]:
    out: dict[tuple, Finding] = {}
    _looping_wrapper_findings(tables, rule, out)
    for site in flow_for(tables).sites:
        sink = site.sink
        tests = null_tests(tables, site.step.path, site.step.call)
        if not tests or NOFAIL not in sink.mask.must or not _returns_result(tables, sink):
            continue
        order = sink.role("order")
        if order is not None and (order[0] != "const" or order[1] > 1):
            continue
        if not _cannot_return_null(sink.api, sink.mask, sink.role("size"), tables.model.kmalloc_max_size,
                                   _bounded(tables, sink)):
            continue
        call = site.step.call
        for test in tests:
            msg = (f"dead NULL check: {call.callee}() with __GFP_NOFAIL (line {call.span.line}) "
                   f"cannot return NULL")
            notes = [f"{call.callee}() retries until it succeeds under this mask; drop the check "
                     f"(or drop __GFP_NOFAIL if failure can be handled)"]
            key = (site.step.path, test.line, test.column)
            if key not in out:
                out[key] = report(tables, rule, site.step.path, test, site.step.function, msg, notes)
    return list(out.values())
