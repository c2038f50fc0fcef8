"""Retry-loop shape analysis (part of extract; NF002 decides on allocators).

For each loop and each call inside it whose result is tested, imagine that the
call fails on every iteration ("persistent failure") and ask of every way out
of the loop whether it can then be taken. Each condition evaluates to:

  T  always true under persistent failure      (`!p` after `p = kmalloc()`)
  F  never true under persistent failure       (`p`)
  V  varies from one iteration to the next      (`--retries`, `fatal_signal_pending()`, jiffies)
  I  invariant: fixed before the loop starts    (`flags & KM_MAYFAIL`, a parameter)

A loop is an open-coded retry around the call when no exit can be taken on
persistent failure (every exit guard is F or I) and some exit depends on the
call's result (the loop leaves on success). An exit guarded only by an
invariant flag is a "conditional NOFAIL": it is reported.
A V anywhere on an exit (a counter, a signal, a timeout, a shrinking order, a
list walk) bounds the loop: loops over elements and bounded retries are quiet.
"""
from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol

import tree_sitter as ts
import tree_sitter_c as tsc

from .facts import CallSite, RetryLoop, Span
from .model import load_model
from .source import SourceText, decode, node_text


class FunctionNodes(Protocol):
    """What the loop analysis reads of a function that extract is working on."""

    node: ts.Node
    body: ts.Node
    params: tuple[str, ...]
    calls: list[tuple[ts.Node, ts.Node, ts.Node]]     # (call, function, arguments)
    assign_nodes: list[tuple[ts.Node, ts.Node]]       # (assignment, left side)


T, F, V, I = "T", "F", "V", "I"  # noqa: E741 -- the truth values of the docstring
_LOOP_TYPES = frozenset({"do_statement", "while_statement", "for_statement"})
_CONSTANT_TYPES = frozenset({"number_literal", "char_literal", "string_literal", "true", "false", "null",
                             "sizeof_expression"})
# names of the kernel's iterator macros (`list_for_each_entry`, `for_each_cpu`,
# `xa_for_each`, `for_each_set_bit`, ...): a loop over elements, not a retry
FOR_EACH_MACRO = re.compile(r"for_each|foreach|_for_\w*each|^for_\w+")
_TRANSPARENT_CALLS = frozenset({"likely", "unlikely", "READ_ONCE", "data_race", "__builtin_expect"})
_ERRPTR_TESTS = frozenset({"IS_ERR", "IS_ERR_OR_NULL", "IS_ERR_VALUE"})
_PTR_ERR = frozenset({b"PTR_ERR", b"PTR_ERR_OR_ZERO"})
_CONTAINER_OF = re.compile(r"^(?:container_of\w*|\w*_entry)$")
_VOLATILE_NAMES = frozenset({"jiffies", "jiffies_64", "current"})
_ERR_CONST = re.compile(r"^-\s*E[A-Z0-9_]+$")
_ZERO = frozenset({"0", "NULL", "false", "0UL", "0L", "0U"})
_ERR_DECL = re.compile(r"(?<!unsigned\s)\b(?:int|long|ssize_t|s32|s64|vm_fault_t|blk_status_t|errno_t)\s+([^;{}()]*);")
_ERRNO_TEST = re.compile(r"\s*(?:(?:==|!=)\s*-\s*E[A-Z]|<\s*0\b)")
_DECL_NAME = re.compile(r"(?:^|,)\s*([A-Za-z_]\w*)")
_MEMBER_CALL_BYTES = re.compile(rb"(?:->|\.)[ \t]*[A-Za-z_]\w*[ \t]*\(")
_MEMBER_CALL_QUERY = ts.Query(ts.Language(tsc.language()), """
(call_expression function: (field_expression field: (field_identifier)) arguments: (argument_list)) @mcall
""")
# `struct foo_ops *ops` (as extract._STRUCT_DECL): the struct a local or parameter points to
_STRUCT_DECL = r"\b(?:struct|union)\s+([A-Za-z_]\w*)\s*(?:\*\s*)*(?:const\s+)?{}\s*[,;=)\[]"
# a constant a function returns as its own status code: -EAGAIN, REPEAT_SEARCH, 2
_CODE_CONST = re.compile(r"^(?:-E[A-Z0-9_]+|[A-Z][A-Z0-9_]*|-?\d+)$")
_PARAM_FLAG_TEST = re.compile(r"\b([A-Za-z_]\w*)\s*&\s*\(?\s*([A-Z_][A-Z0-9_]*)\b")


def _norm(text: str) -> str:
    return "".join(text.split())


def _not(v: str) -> str:
    return {T: F, F: T}.get(v, v)


def _and(a: str, b: str) -> str:
    if F in (a, b):
        return F
    if a == T and b == T:
        return T
    if V in (a, b):
        return V
    return I


def _or(a: str, b: str) -> str:
    if T in (a, b):
        return T
    if a == F and b == F:
        return F
    if V in (a, b):
        return V
    return I


def _is_for_each_block(node: ts.Node) -> bool:
    """`list_for_each_entry(...) { ... }`: a macro loop tree-sitter sees as a call + block."""
    if node.type != "compound_statement":
        return False
    prev = node.prev_named_sibling
    if prev is None or prev.type != "expression_statement" or not prev.named_children:
        return False
    call = prev.named_children[0]
    if call.type != "call_expression":
        return False
    fn = call.child_by_field_name("function")
    return fn is not None and bool(FOR_EACH_MACRO.search(node_text(fn)))


def _is_test_call(fn: ts.Node) -> bool:
    """`IS_ERR(p)`, `likely(x)`: they test a result, they do not produce one."""
    return node_text(fn) in _TRANSPARENT_CALLS | _ERRPTR_TESTS


def _is_loop(node: ts.Node) -> bool:
    return node.type in _LOOP_TYPES or _is_for_each_block(node)


is_loop = _is_loop


class _Result:
    """The tested result of one call: an lvalue (`p`, `obj->buf`) or the call itself."""

    def __init__(self, key: str | None, call: ts.Node, errno: bool, count: bool = False):
        self.key = key
        self.call = call
        self.errno = errno
        self.count = count      # a bulk allocator's count of items: failing means no progress

    def matches(self, node: ts.Node | None) -> bool:
        if node is None:
            return False
        if node.type == "assignment_expression":
            right = node.child_by_field_name("right")
            return right is not None and \
                right.start_byte <= self.call.start_byte and self.call.end_byte <= right.end_byte
        if node.start_byte == self.call.start_byte and node.end_byte == self.call.end_byte:
            return True
        return self.key is not None and node.type in ("identifier", "field_expression", "subscript_expression") \
            and _norm(node_text(node)) == self.key


class _Candidate(NamedTuple):
    """A call inside a loop region whose tested result the loop may be retrying."""

    call: ts.Node
    fn: ts.Node
    result: _Result


class _Region(NamedTuple):
    """One loop, fixed before any candidate is judged: its shape, its ways out
    and what it writes."""

    kind: str                       # "do-while", "while", "for", "goto"
    anchor: ts.Node                 # the loop statement, or the retry label
    node: ts.Node                   # conditions are read from a statement up to this node
    start: int                      # the bytes that run again on each iteration
    end: int
    entered_at: int | None          # a goto loop's label: the back edge enters here
    back: ts.Node | None            # the loop condition, or the backward goto
    exits: tuple[ts.Node, ...]      # statements that leave the region
    conds: tuple[ts.Node | None, ...]   # the conditions on the exits (and the loop's own)
    tested: frozenset[str]          # lvalues those conditions read
    mods: tuple[tuple[str, ts.Node], ...]   # lvalues written in the region
    past_skip: bool                 # an exit reached only past `if (!p) continue;` is success-only
    candidates: tuple[_Candidate, ...]


class _Context(NamedTuple):
    """The per-candidate facts every condition of one judgement is evaluated
    against; made once (`LoopAnalyser._context`) and never changed."""

    result: _Result
    region: ts.Node                 # `_Region.node`
    entered_at: int | None          # `_Region.entered_at`
    varying: frozenset[str]         # lvalues that change on an iteration where the call failed
    success_only: frozenset[str]    # lvalues the region writes only when the call succeeded
    # the failure's value when it is one code the loop compares with
    # (`ret == REPEAT_SEARCH`): None means any error code, or NULL
    code: str | None = None


class _Truth:
    """The truth evaluator: a condition's value under persistent failure of
    the context's call (T/F/V/I), and whether it reads the call's result."""

    def __init__(self, ctx: _Context, copies_of: Callable[[str | None], set[str]]):
        self.ctx = ctx
        self.r = ctx.result
        self._copies_of = copies_of

    def cond(self, node: ts.Node | None) -> tuple[str, bool]:  # noqa: C901
        """Tri-valued truth of a condition under persistent failure, and whether it reads the result."""
        r = self.r
        if node is None:
            return T, False
        t = node.type
        if t in ("parenthesized_expression", "expression_statement", "comma_expression") or t == "condition_clause":
            kids = [c for c in node.named_children if c.type != "comment"]
            if not kids:
                return T, False
            return self.cond(kids[-1])
        if t == "cast_expression":
            return self.cond(node.child_by_field_name("value"))
        if r.matches(node):
            # a bare result in boolean context: NULL is false, an error code is
            # true, a count that made no progress may be anything
            return (V if r.count else T if r.errno or self.ctx.code else F), True
        if t == "unary_expression":
            v, d = self.cond(node.child_by_field_name("argument"))
            if node_text(node.child_by_field_name("operator")) == "!":
                return _not(v), d
            return v, d
        if t == "binary_expression":
            op = node_text(node.child_by_field_name("operator"))
            left, right = node.child_by_field_name("left"), node.child_by_field_name("right")
            if op in ("&&", "||"):
                (a, da), (b, db) = self.cond(left), self.cond(right)
                return (_and(a, b) if op == "&&" else _or(a, b)), da or db
            for this, other in ((left, right), (right, left)):
                if this is not None and r.matches(strip(this)):
                    if self.ctx.code is not None:
                        return _compare_code(op, other, self.ctx.code), True
                    if r.count:
                        return self._compare_count(op if this is left else _flip(op), other), True
                    return self._compare(op if this is left else _flip(op), other, r.errno), True
                if this is not None and self._errno_of_result(strip(this)):
                    # an allocation fails with -ENOMEM: `PTR_ERR(p) == -EBUSY` retries a race
                    if other is not None and _ERR_CONST.match(_norm(node_text(other))) \
                            and _norm(node_text(other)) != "-ENOMEM":
                        return V, True
                    return self._compare(op if this is left else _flip(op), other, True), True
            a, da = self.value(left)
            b, db = self.value(right)
            return (V if V in (a, b) else I), da or db
        if t == "call_expression":
            fn = node.child_by_field_name("function")
            name = node_text(fn) if fn is not None else ""
            args = node.child_by_field_name("arguments")
            first = args.named_children[0] if args is not None and args.named_children else None
            if name in _TRANSPARENT_CALLS and first is not None:
                return self.cond(first)
            if name in _ERRPTR_TESTS and first is not None and r.matches(strip(first)):
                return T, True
            return V, self._mentions(node)
        if t in ("true",):
            return T, False
        if t in ("false", "null"):
            return F, False
        if t == "number_literal":
            return (F if node_text(node).strip("uUlL") in ("0", "0x0") else T), False
        return self.value(node)

    def value(self, node: ts.Node | None) -> tuple[str, bool]:
        """A non-boolean operand: does it vary across iterations?"""
        if node is None:
            return I, False
        text = node_text(node)
        if node.type in _CONSTANT_TYPES:
            return I, False
        if self.r.matches(node):
            return V, True
        varying = self.ctx.varying
        if node.type in ("identifier", "field_expression", "subscript_expression") or (
                node.type == "pointer_expression" and text.startswith("*")):
            key = _norm(text)
            if _written(key, varying) or key in _VOLATILE_NAMES or (
                    node.type != "identifier" and _reads_written(node, varying)):
                return V, False
            # written only when the call succeeded: fixed under failure, but
            # an exit that reads it is a way out on success
            return I, key in self.ctx.success_only
        if node.type in ("call_expression", "update_expression", "assignment_expression"):
            return V, self._mentions(node)
        worst, dep = I, False
        for c in node.named_children:
            v, d = self.value(c)
            dep = dep or d
            if v == V:
                worst = V
        return worst, dep

    def _mentions(self, node: ts.Node) -> bool:
        return self.r.call.start_byte >= node.start_byte and self.r.call.end_byte <= node.end_byte

    def _errno_of_result(self, node: ts.Node | None) -> bool:
        """`PTR_ERR(p)` of an ERR_PTR result: the failure's error code."""
        if node is None or node.type != "call_expression":
            return False
        fn = node.child_by_field_name("function")
        args = node.child_by_field_name("arguments")
        if fn is None or fn.text not in _PTR_ERR or args is None or len(args.named_children) != 1:
            return False
        return self.r.matches(strip(args.named_children[0]))

    @staticmethod
    def _compare(op: str, other: ts.Node | None, errno: bool) -> str:
        """`result OP other` under failure (NULL pointer, or negative errno)."""
        other_text = _norm(node_text(other)) if other is not None else ""
        zero = other_text in _ZERO
        err = bool(_ERR_CONST.match(other_text))
        if errno:
            if zero:
                return {"==": F, "!=": T, "<": T, "<=": T, ">": F, ">=": F}.get(op, V)
            if err:
                return {"==": T, "!=": F}.get(op, V)
            return V
        if zero:
            return {"==": T, "!=": F}.get(op, V)
        return V

    def _compare_count(self, op: str, other: ts.Node | None) -> str:
        """`count OP other` when a bulk allocator keeps failing: it adds nothing,
        so the count equals a copy of its previous value (`last = filled;`)
        and never reaches the number asked for (any other non-zero operand)."""
        other_text = _norm(node_text(other)) if other is not None else ""
        if other_text in self._copies_of(self.r.key):
            return {"==": T, "!=": F, "<=": T, ">=": T, "<": F, ">": F}.get(op, V)
        if other_text in _ZERO or not other_text:
            return V
        return {"==": F, "!=": T}.get(op, V)


def _compare_code(op: str, other: ts.Node | None, code: str) -> str:
    """`result OP other` when the failure returns exactly `code` (not zero):
    equal to it, different from every other constant code."""
    other_text = _norm(node_text(other)) if other is not None else ""
    if other_text == code:
        return {"==": T, "!=": F}.get(op, V)
    if other_text in _ZERO or _CODE_CONST.match(other_text):
        return {"==": F, "!=": T}.get(op, V)
    return V


class _Paths:
    """The exit finder: which statements of a region run, and which exits can
    be taken, on an iteration where the context's call failed."""

    def __init__(self, ctx: _Context, truth: _Truth, labels: dict[str, ts.Node], gotos: Sequence[ts.Node],
                 landings: dict[tuple[int, int | None, int], int]):
        self.ctx = ctx
        self.truth = truth
        self.labels = labels
        self.gotos = gotos                    # the function's goto statements, in source order
        # the function's memo of _lowest_landing, by (region, retry label,
        # label): a function of the code alone, not of the candidate
        self.landings = landings
        self._taken: dict[int, bool] = {}     # memo: if-statement -> its condition holds on failure

    def guard(self, node: ts.Node) -> tuple[str, bool]:
        """Conjunction of the if-conditions that lead from the region down to `node`."""
        val, dep = T, False
        child, p = node, node.parent
        entered, stop = self.ctx.entered_at, self.ctx.region
        while p is not None and p != stop:
            if entered is not None and p.start_byte <= entered < p.end_byte:
                pass   # a backward goto jumps into this block: its condition was not re-tested
            elif p.type == "if_statement":
                cond = p.child_by_field_name("condition")
                if child == p.child_by_field_name("consequence"):
                    v, d = self.truth.cond(cond)
                elif child.type == "else_clause" or child == p.child_by_field_name("alternative"):
                    v, d = self.truth.cond(cond)
                    v = _not(v)
                else:
                    v, d = T, False   # inside the condition itself
                val, dep = _and(val, v), dep or d
            elif p.type in ("case_statement", "switch_statement") and self._switch_on_code(p):
                if p.type == "case_statement":    # `switch (ret) { case XX_AGAIN: ... }`
                    val, dep = _and(val, self._case_taken(p)), True
            elif p.type in ("case_statement", "switch_statement", "conditional_expression"):
                val = _and(val, V)
            child, p = p, p.parent
        return val, dep

    def _switch_on_code(self, node: ts.Node) -> bool:
        """A switch (or one of its cases) on the result, when the failure is one code."""
        switch = node if node.type == "switch_statement" else \
            node.parent.parent if node.parent is not None else None
        if self.ctx.code is None or switch is None or switch.type != "switch_statement":
            return False
        return self.ctx.result.matches(strip(switch.child_by_field_name("condition")))

    def _case_taken(self, case: ts.Node) -> str:
        """T if the case (with the empty cases falling into it) is the one for
        the failure's code, F if not; `default:` when no case names the code."""
        code = self.ctx.code
        values = []
        c: ts.Node | None = case
        while c is not None and c.type == "case_statement":
            value = c.child_by_field_name("value")
            values.append(_norm(node_text(value)) if value is not None else None)
            c = c.prev_named_sibling
            if c is not None and c.type == "case_statement" and \
                    any(k.type != "comment" for k in c.named_children[1 if c.child_by_field_name("value") else 0:]):
                break         # the case before has statements of its own
        if code in values:
            return T
        if None in values:    # default
            cases = case.parent.named_children if case.parent is not None else []
            named = {_norm(node_text(k.child_by_field_name("value"))) for k in cases
                     if k.type == "case_statement" and k.child_by_field_name("value") is not None}
            return F if code in named else T
        return F

    def exit_guard(self, node: ts.Node) -> tuple[str, bool]:
        """An exit's guard; an exit that only code after `if (!p) { ...; continue; }`
        reaches is never taken on failure (the loop's exit is on success)."""
        val, dep = self.guard(node)
        if val != F and node.start_byte > self.ctx.result.call.end_byte and not self.reachable_on_failure(node):
            return F, True
        return val, dep

    def reachable_on_failure(self, node: ts.Node) -> bool:
        if self.guard(node)[0] == F:
            return False
        stop, entered = self.ctx.region, self.ctx.entered_at
        child, p = node, node.parent
        # up to the region's node itself: a goto loop's scope is the block
        # that holds the label, and its statements are the iteration's
        while p is not None and child != stop:
            if p.type == "compound_statement":
                # a jump to a label reaches it whatever came before the label
                s = child.prev_named_sibling if child.type != "labeled_statement" else None
                while s is not None:
                    if entered is not None and s.end_byte <= entered:
                        break   # before the retry label: not run again
                    if s.type in _LEAVING and self._leaves_region(s, node.start_byte):
                        return False
                    if s.type == "if_statement" and self._if_leaves(s, node.start_byte):
                        return False
                    s = s.prev_named_sibling if s.type != "labeled_statement" else None
            child, p = p, p.parent
        return True

    def _if_leaves(self, s: ts.Node, pos: int) -> bool:
        """`if (!p) { ...; continue; }`: an if without else whose branch always
        leaves the iteration (or jumps past `pos`), taken whenever the call failed."""
        if s.child_by_field_name("alternative") is not None \
                or not self._always_leaves(s.child_by_field_name("consequence"), pos):
            return False
        taken = self._taken.get(s.id)
        if taken is None:
            taken = self._taken[s.id] = self.truth.cond(s.child_by_field_name("condition"))[0] == T
        return taken

    def _leaves_region(self, stmt: ts.Node, pos: int) -> bool:
        """continue/break/return, a goto to a label outside the region or to
        the region's own retry label, or a forward goto whose path never
        comes back to `pos` before the iteration ends (multi-hop: `if (!p)
        goto wait; ... wait: cond_resched(); goto again;`)."""
        if stmt.type != "goto_statement":
            return True
        label = self.labels.get(node_text(stmt.child_by_field_name("label")))
        return label is None or self._ends_iteration(label) or self._jumps_past(label, pos)

    def _ends_iteration(self, label: ts.Node) -> bool:
        """A jump to `label` leaves the region, or is the goto loop's back edge."""
        region = self.ctx.region
        return not (region.start_byte <= label.start_byte < region.end_byte) \
            or label.start_byte == self.ctx.entered_at

    def _jumps_past(self, label: ts.Node, pos: int) -> bool:
        """Every path from a forward `label` ends the iteration without coming
        back to `pos`: the code run from the label (up to its first
        unconditional jump) only jumps to labels that end the iteration or are
        past `pos` themselves, followed label by label (chains of labels)."""
        key = (self.ctx.region.id, self.ctx.entered_at, label.id)
        lowest = self.landings.get(key)
        if lowest is None:
            lowest = self.landings[key] = self._lowest_landing(label)
        return lowest > pos      # landing at or before `pos`: it may run again in this iteration

    def _lowest_landing(self, label: ts.Node) -> int:
        """The lowest start of the labels the code from `label` can reach
        without ending the iteration (`label` itself included)."""
        todo, seen, lowest = [label], set(), 1 << 62
        while todo:
            lab = todo.pop()
            if self._ends_iteration(lab) or lab.id in seen:
                continue
            seen.add(lab.id)
            lowest = min(lowest, lab.start_byte)
            for stmt in _run_from(lab):
                for g in _gotos_within(self.gotos, stmt):
                    target = self.labels.get(node_text(g.child_by_field_name("label")))
                    if target is not None:
                        todo.append(target)
        return lowest

    def _always_leaves(self, node: ts.Node | None, pos: int) -> bool:
        """A branch that ends by leaving the iteration whatever happens inside it."""
        if node is None:
            return False
        if node.type in _LEAVING:
            return self._leaves_region(node, pos)
        if node.type == "compound_statement":
            kids = [c for c in node.named_children if c.type != "comment"]
            return bool(kids) and kids[-1].type in _LEAVING and self._leaves_region(kids[-1], pos)
        return False


class LoopAnalyser:
    """The loops of one function: each loop becomes a `_Region`, each tested
    call in it a `_Candidate`, and one judge (`_judge`) decides every
    candidate of either loop kind against its own `_Context`."""

    def __init__(self, f: FunctionNodes, lines: SourceText, labels: dict[str, ts.Node], gotos: list[ts.Node],
                 exits: list[ts.Node], writes: list[ts.Node], addressed: list[ts.Node],
                 members: Sequence[tuple[str, str, str]] = ()):
        """`exits`, `writes`, `addressed`: the file's exit statements, written
        lvalues and `&x` operands, sorted by start byte (one query per file);
        `members`: the file's ops struct members and their functions (ops_members)."""
        self.f = f
        self.members = members
        self.all_exits = exits
        self.all_writes = writes
        self.all_addressed = addressed
        self.lines = lines
        self.labels = labels
        self.gotos = gotos
        self._gotos_sorted = sorted(gotos, key=lambda g: g.start_byte)
        self._landings: dict[tuple[int, int | None, int], int] = {}
        # (region start, end) -> the region's comparisons with constant codes (_comparisons)
        self._code_tests: dict[tuple[int, int], list[tuple[ts.Node, str]]] = {}
        self._int_names: set[str] | None = None     # the function's integer locals, read once
        self.fn_text = decode(lines.src[f.node.start_byte:f.body.end_byte])

    # ---------------------------------------------------------- loops

    def analyse_loop(self, loop: ts.Node) -> list[RetryLoop]:
        region = self._loop_region(loop)
        return self._judge_all(region) if region is not None else []

    def analyse_goto_loops(self) -> list[RetryLoop]:
        """Each backward goto is a region of its own; several gotos back to one
        label are one loop: a call retried through more than one of them is
        reported once (an unconditional verdict over a conditional one)."""
        found: dict[tuple[Span, Span], RetryLoop] = {}
        for g in self.gotos:
            region = self._goto_region(g)
            if region is None:
                continue
            for loop in self._judge_all(region):
                key = (loop.loop_span, loop.call.span)
                if key not in found or found[key].conditional_exit and not loop.conditional_exit:
                    found[key] = loop
        return list(found.values())

    def _loop_region(self, loop: ts.Node) -> _Region | None:
        if loop.type == "while_statement" and not self.lines.src.startswith(b"while", loop.start_byte):
            return None   # a brace-less macro loop rewritten by extract: one pass per element
        candidates = self._candidates(loop.start_byte, loop.end_byte,
                                      lambda call: self._innermost_loop(call, self.f.body) == loop)
        if not candidates:
            return None
        exits = self._exits(loop, loop.start_byte, loop.end_byte)
        # `if (!p) continue;`, or `if (!p) goto wait;` to a label in the body:
        # an exit reached only past such a branch is taken only on success
        skips = any(e.type == "continue_statement" or e.type == "goto_statement" and self._label_within(e, loop)
                    for e in self._in_range(self.all_exits, loop.start_byte, loop.end_byte))
        cond = loop.child_by_field_name("condition")
        conds = [cond] + self._exit_conditions(exits, loop)
        kind = {"do_statement": "do-while", "while_statement": "while", "for_statement": "for"}[loop.type]
        return _Region(kind, loop, loop, loop.start_byte, loop.end_byte, None, cond, tuple(exits), tuple(conds),
                       frozenset(self._tested(conds)), tuple(self._modifications(loop)), skips,
                       tuple(candidates))

    def _goto_region(self, g: ts.Node) -> _Region | None:
        """`label: ... goto label;`: the bytes from the label to the goto run again."""
        label = self.labels.get(node_text(g.child_by_field_name("label")))
        if label is None or label.start_byte >= g.start_byte:
            return None
        start, end = label.start_byte, g.end_byte
        scope = label.parent          # the block holding the label
        while scope is not None and not (scope.start_byte <= start and end <= scope.end_byte):
            scope = scope.parent
        if scope is None:
            return None
        def own(call: ts.Node) -> bool:
            """Not in a real loop inside the region, and before the goto."""
            inner = self._innermost_loop(call, scope)
            return not (inner is not None and start <= inner.start_byte) and call.start_byte <= g.start_byte

        candidates = self._candidates(start, end, own)
        if not candidates:
            return None
        exits = self._exits(scope, start, end, skip=g, continues=True)
        conds = self._exit_conditions(exits + [g], scope)
        mods = [(k, n) for k, n in self._modifications(scope) if start <= n.start_byte < end]
        return _Region("goto", label, scope, start, end, start, g, tuple(exits), tuple(conds),
                       frozenset(self._tested(conds)), tuple(mods), True, tuple(candidates))

    def _label_within(self, goto: ts.Node, node: ts.Node) -> bool:
        label = self.labels.get(node_text(goto.child_by_field_name("label")))
        return label is not None and node.start_byte <= label.start_byte < node.end_byte

    def _member_calls(self, start: int, end: int) -> list[tuple[ts.Node, ts.Node]]:
        """`ops->grab(...)` in [start, end): calls through an ops member,
        which extract's call list leaves out (looked for only in loops)."""
        if not _MEMBER_CALL_BYTES.search(self.lines.src, start, end):
            return []
        cursor = ts.QueryCursor(_MEMBER_CALL_QUERY)
        cursor.set_byte_range(start, end)
        calls = cursor.captures(self.f.body).get("mcall", [])
        out = []
        for c in sorted(calls, key=lambda c: c.start_byte):
            fn = c.child_by_field_name("function")
            if fn is not None and start <= c.start_byte and c.end_byte <= end:
                out.append((c, fn))
        return out

    def _candidates(self, start: int, end: int, own: Callable[[ts.Node], bool]) -> list[_Candidate]:
        """Calls in [start, end) that belong to this loop (`own`) and whose
        result is tested, unless the loop first looks the object up or
        retries with __GFP_NOFAIL."""
        out = []
        for call, fn in [*self._calls_in(start, end), *self._member_calls(start, end)]:
            if not own(call) or _is_test_call(fn):
                continue      # another loop's call, or one that only tests a value
            r = self._result_of(call)
            if r is not None and not self._looked_up_first(r, start) \
                    and not self._retried_with_nofail(call, start, end):
                out.append(_Candidate(call, fn, r))
        return out

    def _judge_all(self, region: _Region) -> list[RetryLoop]:
        return [found for c in region.candidates if (found := self._judge(region, c)) is not None]

    def _judge(self, region: _Region, cand: _Candidate) -> RetryLoop | None:
        """The one verdict for both loop kinds: is there a way out on
        persistent failure of `cand`, and one on its success?

        When failure in general has a way out but failure with one code the
        loop compares the result with does not (`while (ret == XX_AGAIN)`),
        the loop retries that code: a finding only if the callee returns it
        when an allocation fails (`RetryLoop.code_only`, decided by NF002)."""
        codes = self._compared_codes(region, cand.result)
        verdict = self._verdict(self._ways_out(region, self._context(region, cand.result)))
        code, code_only = (codes[0] if len(codes) == 1 else ""), False
        if verdict is None:
            for c in codes:
                verdict = self._verdict(self._ways_out(region, self._context(region, cand.result, c)))
                if verdict is not None:
                    code, code_only = c, True
                    break
        if verdict is None or verdict and self._honours_nofail(region.conds):
            return None
        found = self._retry(region, cand, verdict)
        if not codes and cand.result.errno and not found.retries_enomem \
                and not self._prepared_for(cand.call, region.start):
            code = "*"        # `while (err)`: any error code is retried, -ENOMEM too
        return found._replace(retries_code=code, code_only=code_only)

    def _ways_out(self, region: _Region, ctx: _Context) -> list[tuple[str, bool]]:
        """Each way out of the region (the loop condition or back edge not
        taken, each exit) under the context: its truth, and whether it reads the result."""
        truth = _Truth(ctx, self._copies_of)
        paths = _Paths(ctx, truth, self.labels, self._gotos_sorted, self._landings)
        if region.kind == "goto":
            stay, dep = paths.guard(region.back) if region.back is not None else (T, False)
        else:
            stay, dep = truth.cond(region.back)
        exit_guard = paths.exit_guard if region.past_skip else paths.guard
        return [(_not(stay), dep)] + [exit_guard(e) for e in region.exits]

    def _prepared_for(self, call: ts.Node, start: int) -> bool:
        """`if (err && !pre) pre = prealloc(true); err = op(..., pre);`: the
        region fills an argument of the call from another call before it, so
        a retry hands the call what it lacked (a preallocation) rather than
        repeating the same failing call."""
        args = call.child_by_field_name("arguments")
        names = {_norm(node_text(strip(a))) for a in (args.named_children if args is not None else ())}
        names |= {n.lstrip("&") for n in names}
        return any(start <= a.start_byte < call.start_byte and _norm(node_text(lhs)) in names
                   and (rhs := strip(_rhs(a))) is not None and rhs.type == "call_expression"
                   for a, lhs in self.f.assign_nodes)

    def _compared_codes(self, region: _Region, r: _Result) -> list[str]:
        """Constant codes other than 0 and -ENOMEM that the region compares
        the result with (`ret == REPEAT_SEARCH`, `err != -EAGAIN`, `case
        XX_AGAIN:` of a switch on it), in its exit conditions or in a test
        that skips the rest of an iteration."""
        key = (region.start, region.end)
        tests = self._code_tests.get(key)
        if tests is None:
            tests = self._code_tests[key] = self._comparisons(region)
        out: list[str] = []
        for this, code in tests:
            if code not in out and r.matches(strip(this)):
                out.append(code)
        return out

    @staticmethod
    def _comparisons(region: _Region) -> list[tuple[ts.Node, str]]:
        """(compared value, code) for every `==`/`!=` with a constant code and
        every case of a switch, in the region's bytes."""
        out: list[tuple[ts.Node, str]] = []
        stack = [region.node]
        while stack:
            n = stack.pop()
            if n.end_byte <= region.start or n.start_byte >= region.end:
                continue
            if n.type == "switch_statement":
                cond, body = n.child_by_field_name("condition"), n.child_by_field_name("body")
                for case in body.named_children if body is not None and cond is not None else ():
                    value = case.child_by_field_name("value") if case.type == "case_statement" else None
                    text = _norm(node_text(value)) if value is not None else ""
                    if cond is not None and _CODE_CONST.match(text) and text not in _ZERO and text != "-ENOMEM":
                        out.append((cond, text))
            if n.type == "binary_expression" and node_text(n.child_by_field_name("operator")) in ("==", "!="):
                left, right = n.child_by_field_name("left"), n.child_by_field_name("right")
                for this, other in ((left, right), (right, left)):
                    text = _norm(node_text(other))
                    if this is not None and _CODE_CONST.match(text) and text not in _ZERO and text != "-ENOMEM":
                        out.append((this, text))
            stack.extend(reversed(n.named_children))
        return out

    def _context(self, region: _Region, r: _Result, code: str | None = None) -> _Context:
        """Fix which lvalues change on an iteration where the call failed.

        A write reachable only on success (`ring->nr++` after `if (!p) continue;`)
        does not make a loop bounded. Only lvalues some exit condition reads
        (`tested`) matter; the others are taken as varying without a look.
        Reachability is decided with every written lvalue taken as varying.
        """
        base = frozenset(k for k, _ in region.mods if k != r.key)
        probe_ctx = _Context(r, region.node, region.entered_at, base, frozenset(), code)
        probe = _Paths(probe_ctx, _Truth(probe_ctx, self._copies_of), self.labels, self._gotos_sorted,
                       self._landings)
        varying: set[str] = set()
        for k, n in region.mods:
            if k == r.key or k in varying:
                continue
            if k in region.tested and self._invariant_write(n, base):
                continue
            if k not in region.tested or probe.reachable_on_failure(n):
                varying.add(k)
        return _Context(r, region.node, region.entered_at, frozenset(varying), base - varying, code)

    @staticmethod
    def _verdict(ways_out: list[tuple[str, bool]]) -> bool | None:
        """None if not a retry loop; else whether leaving on failure is flag-conditional."""
        if any(v in (T, V) for v, _ in ways_out):
            return None
        if not any(dep for _, dep in ways_out):
            return None
        return any(v == I for v, _ in ways_out)

    def _honours_nofail(self, conds: Sequence[ts.Node | None]) -> bool:
        """The flag that keeps the loop going is the caller's __GFP_NOFAIL
        (`if (nofail) goto again;` with `nofail = gfp & __GFP_NOFAIL`): the
        code implements NOFAIL for its caller rather than open-coding it."""
        for c in conds:
            if c is None:
                continue
            text = node_text(c)
            if "__GFP_NOFAIL" in text:
                return True
            for name in re.findall(r"[A-Za-z_]\w*", text):
                if re.search(r"\b" + re.escape(name) + r"\s*=[^;=][^;]*__GFP_NOFAIL", self.fn_text):
                    return True
        return False

    def _retry(self, region: _Region, cand: _Candidate, conditional: bool) -> RetryLoop:
        args = cand.call.child_by_field_name("arguments")
        arg_texts = tuple(node_text(a) for a in (args.named_children if args is not None else ())
                          if a.type != "comment")
        site = CallSite(node_text(cand.fn), self.lines.span(cand.fn, cand.call), arg_texts)
        return RetryLoop(site, region.kind, self.lines.span(region.anchor), conditional,
                         self._callees_in(region.start, region.end),
                         self._flag_exits(region.conds) if conditional else (),
                         any("ENOMEM" in node_text(c) for c in region.conds if c is not None),
                         callee_via=self._member_target(cand.fn))

    def _member_target(self, fn: ts.Node) -> str:
        """`ops->grab(...)` with `ops` declared `struct foo_ops *`: the one
        function this file's initialisers assign to `foo_ops.grab`, or "" (none
        or several). Only the file's own ops structs count, so a partial run
        sees exactly what a whole run sees."""
        if fn.type != "field_expression" or not self.members:
            return ""
        base, field = strip(fn.child_by_field_name("argument")), fn.child_by_field_name("field")
        if base is None or base.type != "identifier" or field is None:
            return ""
        m = re.search(_STRUCT_DECL.format(re.escape(node_text(base))), self.fn_text)
        member = node_text(field)
        targets = {target for kind, name, target in self.members if m and kind == m.group(1) and name == member}
        return targets.pop() if len(targets) == 1 else ""

    def _flag_exits(self, conds: Sequence[ts.Node | None]) -> tuple[tuple[int, str], ...]:
        """`flags & KM_MAYFAIL` on a parameter in the exit conditions: the
        caller's flag that lets the loop give up (xfs's old kmem_alloc())."""
        out = set()
        for c in conds:
            if c is None:
                continue
            for name, flag in _PARAM_FLAG_TEST.findall(node_text(c)):
                if name in self.f.params:
                    out.add((self.f.params.index(name), flag))
        return tuple(sorted(out))

    # ---------------------------------------------------------- structure

    def _copies_of(self, key: str | None) -> set[str]:
        """Variables assigned the plain value of `key` somewhere in the function."""
        out = set()
        for assign, lhs in self.f.assign_nodes:
            rhs = assign.child_by_field_name("value" if assign.type == "init_declarator" else "right")
            if key is not None and rhs is not None and _norm(node_text(rhs)) == key:
                out.add(_norm(node_text(lhs)))
        return out

    @staticmethod
    def _in_range(nodes: list[ts.Node], start: int, end: int):
        i = bisect.bisect_left([n.start_byte for n in nodes], start) if len(nodes) < 64 else \
            bisect.bisect_left(nodes, start, key=lambda n: n.start_byte)
        while i < len(nodes) and nodes[i].start_byte < end:
            if nodes[i].end_byte <= end:
                yield nodes[i]
            i += 1

    def _modifications(self, region: ts.Node) -> list[tuple[str, ts.Node]]:
        """Every lvalue written in the region (assigned, ++/--, or passed by address)."""
        out = []
        for n in self._in_range(self.all_writes, region.start_byte, region.end_byte):
            out.append((_norm(node_text(n)), n))
        for n in self._in_range(self.all_addressed, region.start_byte, region.end_byte):
            p = n.parent
            if p is not None and p.text.startswith(b"&") and not _compared(p):
                out.append((_norm(node_text(n)), n))
        # a pointer handed to a call may have its fields changed by the callee
        for call, _fn, args in self.f.calls:
            if region.start_byte <= call.start_byte and call.end_byte <= region.end_byte:
                for a in args.named_children:
                    if a.type == "identifier":
                        out.append((node_text(a) + "->*", a))
        return out

    def _tested(self, conds: list[ts.Node | None]) -> set[str]:
        """Lvalue texts read by the given conditions."""
        out = set()
        for c in conds:
            if c is None:
                continue
            stack = [c]
            while stack:
                n = stack.pop()
                if n.type in ("identifier", "field_expression", "subscript_expression"):
                    out.add(_norm(node_text(n)))
                    if n.type == "identifier":
                        continue
                stack.extend(n.named_children)
        return out

    def _exit_conditions(self, exits: list[ts.Node], stop: ts.Node) -> list[ts.Node | None]:
        out: list[ts.Node | None] = []
        for e in exits:
            p = e.parent
            while p is not None and p != stop:
                if p.type == "if_statement":
                    out.append(p.child_by_field_name("condition"))
                p = p.parent
        return out

    def _invariant_write(self, node: ts.Node, modified: frozenset[str]) -> bool:
        """`bool nofail = gfp & __GFP_NOFAIL;` inside the loop: the same value on
        every iteration (no call, reads nothing the loop writes)."""
        p = node.parent
        while p is not None and p.type == "pointer_declarator":
            p = p.parent
        # only a declaration in the loop: a plain `x = 1;` does change x the first time
        if p is None or p.type != "init_declarator":
            return False
        rhs = p.child_by_field_name("value")
        if rhs is None:
            return False
        stack = [rhs]
        while stack:
            n = stack.pop()
            if n.type in ("call_expression", "update_expression", "assignment_expression"):
                return False
            if n.type in ("identifier", "field_expression") and _written(_norm(node_text(n)), modified):
                return False
            stack.extend(n.named_children)
        return True

    def _exits(self, region: ts.Node, start: int, end: int, skip: ts.Node | None = None,
               continues: bool = False) -> list[ts.Node]:
        out = []
        for e in self._in_range(self.all_exits, region.start_byte, region.end_byte):
            if not (start <= e.start_byte and e.end_byte <= end) or e == skip:
                continue
            if e.type == "return_statement":
                out.append(e)
            elif e.type == "goto_statement":
                label = self.labels.get(node_text(e.child_by_field_name("label")))
                if label is None or not (start <= label.start_byte < end):
                    out.append(e)
            elif e.type == "continue_statement":
                # the next iteration of a loop around a backward-goto region leaves the region
                p = e.parent
                while p is not None and not _is_loop(p):
                    p = p.parent
                if continues and p is not None and p.start_byte < start:
                    out.append(e)
            else:  # break: leaves only if its target loop/switch is outside the region
                p = e.parent
                while p is not None and not (_is_loop(p) or p.type == "switch_statement"):
                    p = p.parent
                if p is None or p.start_byte < start or p.end_byte > end or p == region:
                    out.append(e)
        return out

    def _result_of(self, call: ts.Node) -> _Result | None:
        kind, key = result_key(call)
        if kind == "unused":
            return None
        if key is not None and self._used_unchecked(call, key):
            return None
        fn = call.child_by_field_name("function")
        api = load_model().allocator(node_text(fn)) if fn is not None else None
        return _Result(key, call, self._is_errno(key, call), count=api is not None and api.fails == "count")

    def _looked_up_first(self, r: _Result, start: int) -> bool:
        """`b = find(); if (!b) { b = create(); if (!b) goto retry; }`: the
        result variable is first filled by another call in the loop, so a NULL
        from the create step means a lost race (the next lookup finds the
        winner's object), not an allocation failure to retry."""
        if r.key is None:
            return False
        for assign, lhs in self.f.assign_nodes:
            if not (start <= assign.start_byte < r.call.start_byte):
                continue
            if _norm(node_text(lhs)) != r.key:
                continue
            rhs = strip(assign.child_by_field_name("value" if assign.type == "init_declarator" else "right"))
            if rhs is not None and rhs.type == "call_expression" and not (
                    rhs.start_byte <= r.call.start_byte < rhs.end_byte):
                fn = rhs.child_by_field_name("function")
                # kmalloc() then vmalloc(): a fallback between allocators, not a lookup
                if fn is None or load_model().allocator(node_text(fn)) is None:
                    if not self._fixed_pointer_step(rhs, start, r.call.start_byte):
                        return True
        return False

    def _fixed_pointer_step(self, call: ts.Node, start: int, end: int) -> bool:
        """`list_entry(entry, ...)` of a pointer read before the loop: pointer
        arithmetic on a value the loop never changes finds nothing new on the
        next iteration, so it is no lookup that a lost race could be about."""
        fn = call.child_by_field_name("function")
        args = call.child_by_field_name("arguments")
        if fn is None or not _CONTAINER_OF.match(node_text(fn)) or args is None:
            return False
        first = strip(args.named_children[0]) if args.named_children else None
        if first is None or first.type != "identifier":
            return False
        name = first.text
        return not any(w.text == name for w in self._in_range(self.all_writes, start, end))

    def _retried_with_nofail(self, call: ts.Node, start: int, end: int) -> bool:
        """`gfp |= __GFP_NOFAIL; goto retry;`: the loop adds NOFAIL to the mask
        the call takes before trying again, so the next try cannot fail: the
        allocator does the waiting, the loop runs at most twice."""
        args = call.child_by_field_name("arguments")
        if args is None or b"__GFP_NOFAIL" not in self.lines.src[start:end]:
            return False
        names = set(re.findall(r"[A-Za-z_]\w*", node_text(args)))
        assigns = [(a, lhs) for a, lhs in self.f.assign_nodes if start <= a.start_byte < end]
        tainted: set[str] = set()
        for _ in range(3):     # `new |= __GFP_NOFAIL; gfp = new;`
            for a, lhs in assigns:
                rhs = a.child_by_field_name("value" if a.type == "init_declarator" else "right")
                text = node_text(rhs) if rhs is not None else ""
                if "__GFP_NOFAIL" in text or any(re.search(r"\b" + re.escape(t) + r"\b", text) for t in tainted):
                    tainted.add(node_text(lhs))
        return bool(tainted & names)

    def _used_unchecked(self, call: ts.Node, key: str) -> bool:
        """The result is dereferenced before any test: its author assumes the
        call cannot fail, so the loop around it is not retrying a failure."""
        stmt = call
        while stmt.parent is not None and stmt.parent.type != "compound_statement":
            stmt = stmt.parent
            if stmt.type in _LOOP_TYPES or stmt.type == "if_statement":
                return False
        deref = (key + "->", key + "[", "*" + key)
        s = stmt.next_named_sibling
        while s is not None:
            text = _norm(node_text(s))
            if s.type != "expression_statement" and key in text:
                return False      # a test, a loop, a return: stop looking
            if any(d in text for d in deref):
                return True
            s = s.next_named_sibling
        return False

    def _is_errno(self, key: str | None, call: ts.Node) -> bool:
        if key is None:
            return False
        if self._int_names is None:
            self._int_names = set()
            for decl in _ERR_DECL.findall(self.fn_text):
                self._int_names.update(_DECL_NAME.findall(re.sub(r"=[^,]*", "", decl)))
        if key in self._int_names:
            return True
        # `key == -EFOO`, `key != -EFOO` or `key < 0` anywhere in the function
        text = self.fn_text
        at = text.find(key)
        while at >= 0:
            if _ERRNO_TEST.match(text, at + len(key)):
                return True
            at = text.find(key, at + 1)
        return False

    def _innermost_loop(self, node: ts.Node, limit: ts.Node) -> ts.Node | None:
        p = node.parent
        while p is not None:
            if _is_loop(p):
                return p
            if p == limit:
                return None
            p = p.parent
        return None

    def _calls_in(self, start: int, end: int):
        for call, fn, _args in self.f.calls:
            if start <= call.start_byte and call.end_byte <= end:
                yield call, fn

    def _callees_in(self, start: int, end: int) -> tuple[str, ...]:
        return tuple(sorted({node_text(fn) for _, fn in self._calls_in(start, end)}))


def _reads_written(node: ts.Node, modified: frozenset[str]) -> bool:
    """`ports[i]` with `i++` in the loop, `p->next` with `p` reassigned: the
    lvalue moves even though it is not itself written."""
    stack = list(node.named_children)
    while stack:
        n = stack.pop()
        if n.type == "identifier" and _norm(node_text(n)) in modified:
            return True
        stack.extend(n.named_children)
    return False


_LEAVING = frozenset({"continue_statement", "break_statement", "return_statement", "goto_statement"})


def _run_from(label: ts.Node):
    """The statements run from a label on by falling through: its own
    statement, then the following ones up to the first that always jumps."""
    stmt: ts.Node | None = label
    while stmt is not None:
        inner = stmt
        while inner.type == "labeled_statement" and inner.named_children:
            inner = inner.named_children[-1]      # `a: b: stmt;`
        yield inner
        if inner.type in _LEAVING:
            return
        stmt = stmt.next_named_sibling
        while stmt is not None and stmt.type == "comment":
            stmt = stmt.next_named_sibling


def _gotos_within(gotos: Sequence[ts.Node], node: ts.Node) -> list[ts.Node]:
    lo = bisect.bisect_left(gotos, node.start_byte, key=lambda g: g.start_byte)
    hi = bisect.bisect_left(gotos, node.end_byte, key=lambda g: g.start_byte)
    return list(gotos[lo:hi])


def _compared(node: ts.Node) -> bool:
    """`entry != &head`: an address taken only to compare it writes nothing."""
    p = node.parent
    while p is not None and p.type == "parenthesized_expression":
        p = p.parent
    return p is not None and p.type == "binary_expression" and \
        node_text(p.child_by_field_name("operator")) in ("==", "!=")


def _written(key: str, modified: frozenset[str] | set[str]) -> bool:
    """`key` or something it is part of was written (`notify` covers `notify.type`)."""
    if key in modified:
        return True
    if key.startswith("*"):
        return _written(key.lstrip("*("), modified)
    for sep in (".", "->", "["):
        i = key.find(sep)
        while i > 0:
            if key[:i] in modified or (sep == "->" and key[:i] + "->*" in modified):
                return True
            i = key.find(sep, i + 1)
    return False


def result_key(call: ts.Node) -> tuple[str, str | None]:
    """Where a call's result goes: ("var", lvalue text) when assigned with `=`
    or used to initialise a declaration, ("direct", None) when the call itself
    is tested or computed with, ("unused", None) otherwise."""
    p, child = call.parent, call
    while p is not None and p.type in ("parenthesized_expression", "cast_expression"):
        child, p = p, p.parent
    if p is not None and p.type == "assignment_expression" and p.child_by_field_name("right") == child:
        if node_text(p.child_by_field_name("operator")) != "=":
            return "unused", None
        return "var", _norm(node_text(p.child_by_field_name("left")))
    if p is not None and p.type == "init_declarator" and p.child_by_field_name("value") == child:
        d = p.child_by_field_name("declarator")
        while d is not None and d.type != "identifier":
            d = d.child_by_field_name("declarator")
        return ("var", node_text(d)) if d is not None else ("unused", None)
    if p is None or p.type in ("expression_statement", "compound_statement", "argument_list"):
        return "unused", None   # result unused, or passed on to another call
    return "direct", None


# Calls whose first argument is a condition they test and hand back
# (`if (WARN_ON(!p))`) or act on (`BUG_ON(!p);` stops the kernel when it
# holds). Debug-only assertions that document (`ASSERT`, `VM_BUG_ON`,
# `f2fs_bug_on`) are left out: they compile away in production builds.
NULL_TEST_CALLS = frozenset({"WARN_ON", "WARN_ON_ONCE", "WARN", "WARN_ONCE", "BUG_ON"})


def is_null_test(cond: ts.Node | None, key: str, whole: bool = True) -> bool:
    """Does `cond` test `key` for NULL: `!p`, `p == NULL`, `unlikely(!p)`,
    `WARN_ON(!p)`, `IS_ERR_OR_NULL(p)`, the assignment inside the test
    (`!(p = alloc(...))`), or one of those inside `||` / `&&`? As the whole
    condition, `p` and `p != NULL` test it too (the other branch is the NULL
    case)."""
    cond = _tested_value(cond)
    if cond is None:
        return False
    t = cond.type
    if t == "unary_expression" and node_text(cond.child_by_field_name("operator")) == "!":
        arg = _tested_value(cond.child_by_field_name("argument"))
        return arg is not None and _norm(node_text(arg)) == key
    if t == "binary_expression":
        op = node_text(cond.child_by_field_name("operator"))
        left, right = _tested_value(cond.child_by_field_name("left")), _tested_value(cond.child_by_field_name("right"))
        if op in ("||", "&&"):
            return is_null_test(left, key, False) or is_null_test(right, key, False)
        if (op == "==" or op == "!=" and whole) and left is not None and right is not None:
            texts = {_norm(node_text(left)), _norm(node_text(right))}
            return key in texts and bool(texts & _ZERO)
        return False
    if t == "call_expression":
        fn = cond.child_by_field_name("function")
        args = cond.child_by_field_name("arguments")
        name = node_text(fn) if fn is not None else ""
        first = args.named_children[0] if args is not None and args.named_children else None
        if name in _TRANSPARENT_CALLS:
            return is_null_test(first, key, whole)
        if name in NULL_TEST_CALLS:
            return is_null_test(first, key, False)
        if name == "IS_ERR_OR_NULL" and first is not None:
            return _norm(node_text(strip(first))) == key
    if whole and t in ("identifier", "field_expression"):
        return _norm(node_text(cond)) == key
    return False


def ops_members(decls: Sequence[ts.Node]) -> list[tuple[str, str, str]]:
    """`static const struct foo_ops ops = { .grab = foo_grab };` ->
    (foo_ops, grab, foo_grab): the functions the file's ops structs point
    their members to (LoopAnalyser follows a call through a member to them)."""
    out = []
    for decl in decls:
        spec = decl.child_by_field_name("type")
        kind = node_text(spec.child_by_field_name("name") if spec is not None else None)
        for d in decl.children_by_field_name("declarator") if kind else ():
            init = d.child_by_field_name("value") if d.type == "init_declarator" else None
            for pair in init.named_children if init is not None and init.type == "initializer_list" else ():
                designators = pair.children_by_field_name("designator") if pair.type == "initializer_pair" else []
                value = strip(pair.child_by_field_name("value"))
                if len(designators) == 1 and designators[0].type == "field_designator" and value is not None \
                        and value.type == "identifier" and not _CODE_CONST.match(node_text(value)):
                    out.append((kind, node_text(designators[0]).lstrip(". \t"), node_text(value)))
    return out


def errno_callees(f: FunctionNodes, returns: Sequence[ts.Node]) -> tuple[str, ...]:
    """Calls whose error pointer the function returns as an error code:
    `return PTR_ERR(p);`, `return PTR_ERR_OR_ZERO(p);`, or `ret = PTR_ERR(p);`
    returned later, with `p` assigned from the call before the return. An
    ERR_PTR(-ENOMEM) from an allocation travels on as -ENOMEM (NF002's
    -ENOMEM chain, link.enomem_sources)."""
    out: set[str] = set()
    for ret in returns:
        value = strip(ret.named_children[0] if ret.named_children else None)
        if value is None:
            continue
        values = [value] if value.type != "identifier" else \
            [_rhs(a) for a, lhs in f.assign_nodes if a.start_byte < ret.start_byte and lhs.text == value.text]
        for v in values:
            v = strip(v)
            callee = v.child_by_field_name("function") if v is not None and v.type == "call_expression" else None
            if v is None or callee is None or callee.text not in _PTR_ERR:
                continue
            args = v.child_by_field_name("arguments")
            ptr = strip(args.named_children[0]) if args is not None and len(args.named_children) == 1 else None
            if ptr is None:
                continue
            out.update(_assigned_callees(f, _norm(node_text(ptr)), ret.start_byte))
    return tuple(sorted(out))


def _assigned_callees(f: FunctionNodes, key: str, before: int) -> list[str]:
    """The functions whose result is assigned to `key` before byte `before`."""
    out = []
    for a, lhs in f.assign_nodes:
        rhs = strip(_rhs(a))
        if a.start_byte < before and _norm(node_text(lhs)) == key and rhs is not None \
                and rhs.type == "call_expression":
            fn = rhs.child_by_field_name("function")
            if fn is not None and fn.type == "identifier":
                out.append(node_text(fn))
    return out


def failure_codes(f: FunctionNodes, returns: Sequence[ts.Node]) -> tuple[tuple[str, str, str], ...]:
    """The constant codes the function returns when a call failed, as
    (code, callee, how): how is "null" (`if (!p) return XX_AGAIN;` after
    `p = callee()`, also IS_ERR), "err" (`if (err) return XX_AGAIN;` after
    `err = callee()`) or "pass" (`if (callee() == XX_AGAIN) return
    XX_AGAIN;`). The code is returned directly or stored in the variable the
    function returns (`ret = XX_AGAIN; goto out;`). NF002 decides which
    callees are allocations (link.TreeTables.code_chain)."""
    sites: list[tuple[ts.Node, str]] = []
    for ret in returns:
        value = strip(ret.named_children[0] if ret.named_children else None)
        if value is None:
            continue
        text = _norm(node_text(value))
        if _CODE_CONST.match(text) and text not in _ZERO:
            sites.append((ret, text))
        elif value.type == "identifier":
            for a, lhs in f.assign_nodes:
                rhs = strip(_rhs(a))
                code = _norm(node_text(rhs)) if rhs is not None else ""
                if a.type == "assignment_expression" and lhs.text == value.text and a.start_byte < ret.start_byte \
                        and _CODE_CONST.match(code) and code not in _ZERO:
                    sites.append((a, code))
    out: set[tuple[str, str, str]] = set()
    for site, code in sites:
        child, p = site, site.parent
        while p is not None and p != f.body:
            if p.type == "if_statement" and child == p.child_by_field_name("consequence"):
                failed = _failed_calls(f, p.child_by_field_name("condition"), code)
                out.update((code, callee, how) for callee, how in failed)
            child, p = p, p.parent
    return tuple(sorted(out))


def _failed_calls(f: FunctionNodes, cond: ts.Node | None, code: str) -> list[tuple[str, str]]:
    """The calls whose failure makes `cond` true: (callee, how) as in failure_codes."""
    cond = strip(cond)
    while cond is not None and cond.type == "call_expression" and node_text(cond.child_by_field_name("function")) in (
            "likely", "unlikely"):
        args = cond.child_by_field_name("arguments")
        cond = strip(args.named_children[0]) if args is not None and args.named_children else None
    if cond is None:
        return []
    if cond.type == "binary_expression" and node_text(cond.child_by_field_name("operator")) == "||":
        return _failed_calls(f, cond.child_by_field_name("left"), code) + \
            _failed_calls(f, cond.child_by_field_name("right"), code)
    out = []
    for value, how in _tested_results(cond, code):
        if value.type == "call_expression":
            fn = value.child_by_field_name("function")
            if fn is not None and fn.type == "identifier":
                out.append((node_text(fn), how))
            continue
        out.extend((name, how) for name in _assigned_callees(f, _norm(node_text(value)), cond.start_byte))
    return out


def _tested_results(cond: ts.Node, code: str) -> list[tuple[ts.Node, str]]:
    """What a condition tests for failure: `!p`, `p == NULL`, `IS_ERR(p)` ->
    (p, "null"); `err`, `err < 0`, `err != 0` -> (err, "err"); `x == CODE`
    with the returned code -> (x, "pass")."""
    t = cond.type
    if t == "unary_expression" and node_text(cond.child_by_field_name("operator")) == "!":
        arg = _tested_value(cond.child_by_field_name("argument"))
        return [(arg, "null")] if arg is not None else []
    if t == "call_expression":
        fn = node_text(cond.child_by_field_name("function"))
        args = cond.child_by_field_name("arguments")
        first = _tested_value(args.named_children[0]) if args is not None and args.named_children else None
        if fn in _ERRPTR_TESTS and first is not None:
            return [(first, "null")]
        return [(cond, "err")]        # `if (callee())`: a non-zero status
    if t in ("identifier", "field_expression", "assignment_expression"):
        value = _tested_value(cond)
        return [(value, "err")] if value is not None else []
    if t == "binary_expression":
        op = node_text(cond.child_by_field_name("operator"))
        left, right = _tested_value(cond.child_by_field_name("left")), _tested_value(cond.child_by_field_name("right"))
        if left is None or right is None:
            return []
        for this, other in ((left, right), (right, left)):
            other_text = _norm(node_text(other))
            if op == "==" and other_text == code:
                return [(this, "pass")]
            if other_text in _ZERO and op == "==":
                return [(this, "null")]
            if other_text in _ZERO and op in ("!=", "<") and this is left:
                return [(this, "err")]
    return []


def _rhs(assign: ts.Node) -> ts.Node | None:
    return assign.child_by_field_name("value" if assign.type == "init_declarator" else "right")


def strip(node: ts.Node | None) -> ts.Node | None:
    while node is not None and node.type in ("parenthesized_expression", "cast_expression"):
        node = node.child_by_field_name("value") if node.type == "cast_expression" else (
            node.named_children[0] if node.named_children else None)
    return node


def _tested_value(node: ts.Node | None) -> ts.Node | None:
    """`(p = alloc(...))` in a test stands for `p`."""
    node = strip(node)
    if node is not None and node.type == "assignment_expression" \
            and node_text(node.child_by_field_name("operator")) == "=":
        return strip(node.child_by_field_name("left"))
    return node


def _flip(op: str) -> str:
    return {"<": ">", ">": "<", "<=": ">=", ">=": "<="}.get(op, op)
