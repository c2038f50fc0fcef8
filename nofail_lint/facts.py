"""Per-file facts: the extract stage's output and the link stage's input.

Plain picklable data: produced in worker processes, cacheable by content hash.
Nothing here refers to tree-sitter objects. The classes are NamedTuples, not
dataclasses: a whole kernel tree has about a million of them, and tuples are
several times smaller and faster to unpickle (from the cache or a worker).
Snippets are not stored: check/common.location() reads the line when a
finding is made.
"""
from __future__ import annotations

from typing import NamedTuple


class Span(NamedTuple):
    line: int        # 1-based
    column: int      # 1-based, in characters
    end_line: int
    end_column: int


class NullTestVia(NamedTuple):
    """A test of a call's result spelt through a macro or helper whose meaning
    only the tree's definitions give (`drm_WARN_ON(dev, !p)`, `IS_ERR_OR_NULL(p)`).

    `text` is the condition's skeleton (cexpr syntax): the tested result is
    `__nfl_res`, the subexpressions that do not contain it are `__nfl_x` (or a
    literal 0/1). `stmt`: the call is a statement of its own (`M(!p);`),
    which tests its argument only if the definition acts on it."""

    span: Span
    text: str
    callees: tuple[str, ...]
    stmt: bool = False


class CallSite(NamedTuple):
    """A call whose arguments may carry a gfp mask or a vmalloc range.

    `args` are the argument texts with the function's local variables already
    substituted by their values at the call (see extract.LocalValues), so the
    link stage only has to resolve macros and parameters.
    """

    callee: str
    span: Span
    args: tuple[str, ...]
    null_tests: tuple[Span, ...] = ()   # later tests of the call's result for NULL
    # (parameter index, truth) the call needs: `if (!nofail) return ...;` before it -> ((i, True),)
    param_guards: tuple[tuple[int, bool], ...] = ()
    after_unlock: bool = False          # a lock/irq/RCU section was closed earlier in the function
    via_tests: tuple[NullTestVia, ...] = ()   # later tests through macros/helpers (link decides)
    # arguments of an `A * B overflows` model condition that are bounded here:
    # no runtime value in them (sizeof, macros), or every runtime value is
    # checked against an upper bound before the call
    bounded_args: tuple[int, ...] = ()


class RetryLoop(NamedTuple):
    """A loop that re-runs `call` while it fails and cannot leave on failure.

    Whether `call` is an allocator is decided tree-wide by the check stage.
    """

    call: CallSite
    loop_kind: str                 # "do-while", "while", "for", "goto"
    loop_span: Span
    conditional_exit: bool         # leaves on failure only if a loop-invariant flag says so
    callees_in_loop: tuple[str, ...]
    # for a conditional exit: (parameter index, flag) pairs whose `param & FLAG` lets it leave
    may_fail_if: tuple[tuple[int, str], ...] = ()
    retries_enomem: bool = False   # the retry is taken on `== -ENOMEM`
    # the one constant code the loop compares the result with (`ret == -EAGAIN`), or
    # "*" when it retries on any error code (`while (err)`)
    retries_code: str = ""
    code_only: bool = False        # a retry loop only if the call fails with retries_code (NF002 asks the callee)
    callee_via: str = ""           # `ops->grab()`: the one function the file's ops structs assign to the member


class ReturnedCall(NamedTuple):
    """`return callee(...)`, directly or through a local assigned from it."""

    callee: str
    span: Span
    args: tuple[str, ...] = ()     # argument texts, locals substituted (as CallSite.args)


class FunctionFacts(NamedTuple):
    name: str
    is_static: bool
    params: tuple[str, ...]
    span: Span
    calls: tuple[CallSite, ...]
    returns: tuple[ReturnedCall, ...]
    retry_loops: tuple[RetryLoop, ...]
    # non-sleepable regions: (opening call, start line, start column, end line, end column)
    atomic: tuple[tuple[str, int, int, int, int], ...] = ()
    other_returns: int = 0     # return statements that return no call's result (NULL, -ENOMEM...)
    mentions_enomem: bool = False   # `-ENOMEM` appears in the body (returned or assigned)
    # calls whose ERR_PTR it returns as an error code (`return PTR_ERR(p);`, loops.errno_callees)
    callees_errno: tuple[str, ...] = ()
    # (code, callee, "null" | "err" | "pass"): a constant status code it returns
    # when callee failed (`if (!p) return XX_AGAIN;`, loops.failure_codes)
    callees_codes: tuple[tuple[str, str, str], ...] = ()


class FileFacts(NamedTuple):
    path: str                                  # display path
    macros: tuple[tuple[str, str], ...]        # object-like (name, body)
    functions: tuple[FunctionFacts, ...]       # functions with at least one fact
    parse_errors: int = 0                      # ERROR/MISSING nodes seen
    # functions defined here with no facts at all (no kept call, returned
    # call, loop or lock region): only their names matter, because a call
    # from this file to one of them does not reach a global of the same name
    plain_functions: tuple[str, ...] = ()
    # (first line, last line) of parse-error regions outside every analysed
    # function that contain allocation-like calls: code the analysis lost
    lost_regions: tuple[tuple[int, int], ...] = ()
    # function-like #defines of a mask: (name, parameters, body), e.g.
    # `#define NO_SLEEP(g) ((g) & ~__GFP_DIRECT_RECLAIM)`
    mask_macros: tuple[tuple[str, tuple[str, ...], str], ...] = ()
    # masks stored in struct fields: (struct type, field, "=" | "|=" | "&=", value text),
    # from `x->gfp = ...` (x declared `struct type *x`) and `.gfp = ...` initialisers
    field_masks: tuple[tuple[str, str, str, str], ...] = ()
    # function-like macros and small functions whose value or statements test
    # their arguments' truth: (name, parameter count, value, acts), skeletons
    # as NullTestVia.text with parameter i spelt `__nfl_a<i>`; `value` is ""
    # when the definition has none, each act is "if:<condition>" or
    # "do:<call statement>"
    test_defs: tuple[tuple[str, int, str, tuple[str, ...]], ...] = ()
