"""NF002 rewrite: an open-coded retry loop becomes one call with `__GFP_NOFAIL`.

Only loops whose body does nothing but allocate, wait or yield, and warn or
count for a log message are rewritten; anything else in the body (a state
change, a lock, a call that is neither a wait nor a log) means the loop is
more than a retry, and the finding is refused. Shapes:

    do { p = alloc(..); ... } while (!p);
    while (!(p = alloc(..))) wait();
    p = NULL; while (!p) { p = alloc(..); ... }
    for (;;) { p = alloc(..); if (p) break; wait(); }      (also while (1), do .. while (1))
    retry: p = alloc(..); if (!p) { wait(); goto retry; }   (label used by that goto only)

The new statement keeps the loop's indentation and the comments of the loop;
a counter or other local that only fed the removed code is dropped with it.
Whether NOFAIL is acceptable for the mask (reclaim, NORETRY, order, allocator
support) is not decided here: the verification re-runs the rules on the
patched tree and refuses the rewrite if NF003/NF004/NF005/NF007 appear.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import tree_sitter as ts

from ..findings import Finding
from .edit import Change, Refuse, Rewrite, drop_unused, splice, whole_lines
from .source import (
    Source,
    call_args,
    call_name,
    child,
    comments_in,
    function_of,
    identifiers,
    norm,
    shift_continuation,
    strip_parens,
    visual_width,
    words,
)

KIND = "nf002-nofail"
NOFAIL = "__GFP_NOFAIL"

# Waits and yields a rewritable loop may hold besides the model's retry-wait helpers.
WAITS = frozenset({
    "cond_resched", "memalloc_retry_wait", "congestion_wait", "msleep", "msleep_interruptible",
    "ssleep", "usleep_range", "udelay", "yield", "cpu_relax", "schedule", "io_schedule",
    "io_schedule_timeout", "blk_congestion_wait",
})
_WAIT_PREFIX = ("schedule_timeout",)
_LOG = re.compile(
    r"^(?:pr_\w+|printk\w*|dev_(?:err|warn|info|notice|dbg|crit|alert|emerg)\w*|WARN\w*|"
    r"[a-z0-9]+_(?:warn|warning|err|alert|notice|info|crit|emerg|msg|printk)(?:_ratelimited|_once|_rl)?|"
    r"net_\w+_ratelimited|dump_stack|show_mem|warn_alloc)$")
# calls a condition of a log or wait statement may hold
_QUIET_CONDITION_CALLS = frozenset({
    "likely", "unlikely", "__ratelimit", "printk_ratelimit", "net_ratelimit", "time_after",
    "time_after_eq", "time_before", "time_before_eq", "time_is_before_jiffies",
    "time_is_after_jiffies", "WARN_ON", "WARN_ON_ONCE", "WARN", "WARN_ONCE",
})
_TRUE = frozenset({"1", "true", "1U", "1UL"})
_NULLS = frozenset({"NULL", "0"})


def is_wait(name: str, extra: frozenset[str]) -> bool:
    return name in WAITS or name in extra or name.startswith(_WAIT_PREFIX)


class _Body:
    """Classifies loop-body statements as noise (wait, log, counter) or not."""

    def __init__(self, src: Source, waits: frozenset[str], loop_kind: str):
        self.src = src
        self.waits = waits
        self.counters: set[str] = set()
        self.continues_ok = loop_kind in ("do_statement", "while_statement", "for_statement")

    def fail(self, node: ts.Node, why: str):
        line = node.start_point[0] + 1
        raise Refuse("loop-body-not-only-retry",
                     f"the loop does more than allocate, wait and log (line {line}: {why})")

    def noise(self, node: ts.Node):
        t = node.type
        if t == "comment":
            return
        if t == "compound_statement":
            for c in node.named_children:
                self.noise(c)
            return
        if t == "expression_statement":
            if not node.named_children:
                return
            self.expression(node.named_children[0])
            return
        if t == "if_statement":
            self.condition(node.child_by_field_name("condition"))
            self.noise(child(node, "consequence"))
            alt = node.child_by_field_name("alternative")
            if alt is not None:
                for c in alt.named_children:
                    self.noise(c)
            return
        if t == "continue_statement" and self.continues_ok:
            return
        self.fail(node, self.src.text(node).split("\n")[0].strip())

    def expression(self, e: ts.Node):
        e = strip_parens(e) or e
        if e.type == "call_expression":
            name = call_name(self.src, e)
            if is_wait(name, self.waits) or _LOG.match(name):
                return
            self.fail(e, f"{name or self.src.text(e)}() is neither a wait nor a log call")
        if self.counter(e):
            return
        if e.type == "comma_expression":
            for c in e.named_children:
                self.expression(c)
            return
        self.fail(e, self.src.text(e).split("\n")[0].strip())

    def counter(self, e: ts.Node) -> bool:
        target = None
        if e.type == "update_expression":
            target = e.child_by_field_name("argument")
        elif e.type == "assignment_expression":
            op = self.src.text(e.child_by_field_name("operator"))
            right = e.child_by_field_name("right")
            if op in ("+=", "-=") and right is not None and right.type == "number_literal":
                target = e.child_by_field_name("left")
        if target is not None and target.type == "identifier":
            self.counters.add(self.src.text(target))
            return True
        return False

    def condition(self, c: ts.Node | None):
        stack = [c] if c is not None else []
        while stack:
            n = stack.pop()
            if n.type == "call_expression":
                name = call_name(self.src, n)
                if name not in _QUIET_CONDITION_CALLS:
                    self.fail(n, f"the condition calls {name or self.src.text(n)}()")
            elif n.type == "assignment_expression":
                self.fail(n, "the condition assigns")
            elif n.type == "update_expression":
                if not self.counter(n):
                    self.fail(n, "the condition updates something that is not a local counter")
                continue
            stack.extend(n.named_children)


def null_test(src: Source, cond: ts.Node | None, lhs: str) -> str | None:
    """'fail' for `!p` / `p == NULL`, 'ok' for `p` / `p != NULL`, else None."""
    cond = strip_parens(cond)
    while cond is not None and cond.type == "call_expression" and call_name(src, cond) in ("likely", "unlikely") \
            and len(call_args(cond)) == 1:
        cond = strip_parens(call_args(cond)[0])
    if cond is None:
        return None
    if cond.type == "unary_expression" and src.text(cond.child_by_field_name("operator")) == "!":
        return "fail" if norm(src.text(strip_parens(cond.child_by_field_name("argument")))) == lhs else None
    if cond.type == "binary_expression":
        op = src.text(cond.child_by_field_name("operator"))
        sides = {norm(src.text(strip_parens(cond.child_by_field_name(k)))) for k in ("left", "right")}
        if op in ("==", "!=") and lhs in sides and sides & _NULLS:
            return "fail" if op == "==" else "ok"
        return None
    return "ok" if norm(src.text(cond)) == lhs else None


def _assignment_of(src: Source, call: ts.Node) -> ts.Node:
    node = call.parent
    while node is not None and node.type in ("parenthesized_expression", "cast_expression"):
        node = node.parent
    if node is None or node.type != "assignment_expression" or src.text(node.child_by_field_name("operator")) != "=":
        raise Refuse("result-not-assigned", "the allocation's result is not assigned with '='")
    return node


def _with_nofail(src: Source, call: ts.Node, gfp_index: int | None, start: int, end: int) -> str:
    """Text of [start, end) (which holds `call`) with `| __GFP_NOFAIL` on the gfp argument."""
    args = call_args(call)
    if gfp_index is None or gfp_index >= len(args):
        raise Refuse("no-gfp-argument",
                     f"{call_name(src, call)}() takes no gfp mask the analysis can see at this call")
    arg = args[gfp_index]
    text = src.text(arg)
    if arg.type in ("identifier", "call_expression", "parenthesized_expression", "field_expression") or (
            arg.type == "binary_expression" and src.text(arg.child_by_field_name("operator")) == "|"):
        new = f"{text} | {NOFAIL}"
    else:
        new = f"({text}) | {NOFAIL}"
    return src.between(start, arg.start_byte) + new + src.between(arg.end_byte, end)


def _is_true(src: Source, cond: ts.Node | None) -> bool:
    return cond is not None and norm(src.text(strip_parens(cond))) in _TRUE


def _success_exit(src: Source, stmt: ts.Node, lhs: str) -> str | None:
    """`if (p) break;` -> '' ; `if (p) return X;` -> 'return X;' ; else None."""
    if stmt.type != "if_statement" or stmt.child_by_field_name("alternative") is not None:
        return None
    if null_test(src, stmt.child_by_field_name("condition"), lhs) != "ok":
        return None
    body = child(stmt, "consequence")
    inner = [c for c in body.named_children if c.type != "comment"] if body.type == "compound_statement" else [body]
    if len(inner) != 1:
        return None
    if inner[0].type == "break_statement":
        return ""
    if inner[0].type == "return_statement":
        return " ".join(src.text(inner[0]).split())
    return None


def rewrite(src: Source, finding: Finding, loop, gfp_index: int | None, waits: frozenset[str]) -> Rewrite:
    """The rewrite of the NF002 `finding` (whose facts are `loop`), or Refuse."""
    if loop.conditional_exit:
        raise Refuse("conditional-nofail", "the loop leaves on failure when a caller's flag allows it: "
                                           "a plain __GFP_NOFAIL would drop that choice")
    loc = finding.location
    call = src.node_at(loc.line, loc.column, {"call_expression"})
    if call is None:
        raise Refuse("not-found", "the allocation call is not where the finding says")
    assign = _assignment_of(src, call)
    lhs = norm(src.text(assign.child_by_field_name("left")))
    shape = (_goto_shape if loop.loop_kind == "goto" else _loop_shape)(src, loop, assign, lhs, waits)
    start, end = shape.region
    stmt_node = shape.stmt
    if not src.between(src.line_start(start), start).strip() == "":
        raise Refuse("layout", "the loop does not start its line")
    rest = src.between(end, src.line_end(end)).strip()
    if rest and not (rest.startswith("/*") and rest.endswith("*/")):
        raise Refuse("layout", "code follows the loop on its last line")
    new_stmt = _with_nofail(src, call, gfp_index, stmt_node[0], stmt_node[1]) + stmt_node[2]
    indent = shape.indent or src.indent_at(start)
    shift = visual_width(src.between(src.line_start(stmt_node[0]), stmt_node[0])) - visual_width(indent)
    new_stmt = shift_continuation(new_stmt, shift)
    loop_node = shape.container
    found = comments_in(src, loop_node)
    call_lines = {src.line_start(stmt_node[0]), src.line_start(stmt_node[1])}
    trailing = [t for o, t in found if src.line_start(o) in call_lines and not stmt_node[0] <= o < stmt_node[1]
                and o > stmt_node[0]]
    comments = [t for o, t in found if t not in trailing and not stmt_node[0] <= o < stmt_node[1]]
    if rest:
        trailing.append(rest)
    lines = [indent + c.replace("\n", "\n" + indent) if "\n" not in c else indent + c for c in comments]
    stmt_line = indent + new_stmt + (" " + " ".join(trailing) if trailing else "")
    lines.append(stmt_line)
    if shape.trailing_exit:
        lines.append(indent + shape.trailing_exit)
    lo, hi = whole_lines(src, start, end)
    removed = src.between(lo, hi)
    new_text = "\n".join(lines) + "\n"
    text = splice(src, [(lo, hi, new_text)])
    counters = shape.counters
    names = words(removed) - words(new_text)
    text = drop_unused(text, src.path, lo, names, set())
    _check_counters(text, src.path, lo, counters)
    callee = call_name(src, call)
    return Rewrite(finding, KIND, True, f"use __GFP_NOFAIL instead of a retry loop around {callee}()",
                   src.path, src.between(0, len(src.data)), text,
                   about=_change(src, call, callee, loop.loop_kind, gfp_index, removed, new_text, counters, text))


def _change(src: Source, call: ts.Node, callee: str, loop_kind: str, gfp_index: int | None, removed: str,
            kept: str, counters: set[str], text: str) -> Change:
    """What the rewrite removed, from the removed text: the waits and log calls
    the loop made (the kept call excluded), its counters, and the locals that
    went with it."""
    calls = [m.group(1) for m in _CALL.finditer(_strip_comments(removed))]
    kept_calls = {m.group(1) for m in _CALL.finditer(_strip_comments(kept))}
    waits = tuple(dict.fromkeys(c for c in calls if is_wait(c, frozenset()) and c not in kept_calls))
    logs = tuple(dict.fromkeys(c for c in calls if _LOG.match(c) and c not in kept_calls))
    gone = words(src.between(0, len(src.data))) - words(text)
    args = call_args(call)
    gfp = src.text(args[gfp_index]) if gfp_index is not None and gfp_index < len(args) else ""
    size, size_kind = "", ""
    from ..model import load_model
    api = load_model().allocator(callee)
    for kind in ("order", "size"):
        pos = getattr(api, kind, None) if api is not None else None
        if isinstance(pos, int) and pos < len(args):
            size, size_kind = " ".join(src.text(args[pos]).split()), kind
            break
    return Change(callee, " ".join(gfp.split()), loop_kind, waits, logs,
                  tuple(sorted(c for c in counters if c in gone)),
                  tuple(sorted(gone - counters - set(calls) - _KEYWORDS)), size, size_kind)


_KEYWORDS = frozenset({"do", "while", "for", "goto", "if", "else", "break", "continue", "return", "NULL",
                       "true", "false", "int", "unsigned", "long", "char", "void", "static", "const"})
_CALL = re.compile(r"\b([A-Za-z_]\w*)\s*\(")


def _strip_comments(text: str) -> str:
    return re.sub(r"/\*.*?\*/|//[^\n]*", " ", text, flags=re.DOTALL)


@dataclass
class _Shape:
    region: tuple[int, int]           # bytes the rewrite replaces (whole lines are taken)
    indent: str                       # indentation of the new statement ("" = the region's)
    stmt: tuple[int, int, str]        # the assignment to keep: start, end, text to append
    container: object                 # node (or _Region) whose comments are kept
    trailing_exit: str                # `return p;` after the new statement, or ""
    counters: set[str]


def _check_counters(text: str, path: str, anchor: int, counters: set[str]):
    if not counters:
        return
    src = Source(path, text.encode("utf-8", "surrogateescape"))
    node = src.root.descendant_for_byte_range(anchor, anchor)
    fn = function_of(node) if node is not None else None
    if fn is None:
        return
    for name in sorted(counters):
        if identifiers(child(fn, "body"), name):
            raise Refuse("counter-used-elsewhere",
                         f"'{name}' counts the retries and is used outside the loop")


def _statement_of(node: ts.Node) -> ts.Node:
    while node.parent is not None and node.type != "expression_statement":
        node = node.parent
    return node


def _loop_shape(src: Source, loop, assign: ts.Node, lhs: str, waits: frozenset[str]):
    node = assign
    types = {"do-while": "do_statement", "while": "while_statement", "for": "for_statement"}
    want = types.get(loop.loop_kind)
    while node is not None and not (node.type == want and node.start_point[0] + 1 == loop.loop_span.line):
        node = node.parent  # type: ignore[assignment]
    if node is None:
        raise Refuse("not-found", "the loop is not where the facts say")
    body = child(node, "body")
    cond = node.child_by_field_name("condition")
    classify = _Body(src, waits, node.type)
    trailing_exit = ""
    if node.type == "while_statement" and _inside_node(assign, cond):
        if null_test_assign(src, child(node, "condition"), assign) != "fail":
            raise Refuse("not-a-null-retry", "the loop condition is not a NULL test of the allocation")
        classify.noise(body)
        stmt = (assign.start_byte, assign.end_byte, ";")
    else:
        stmt_node = _statement_of(assign)
        parent = stmt_node.parent
        if parent is None or parent.start_byte != body.start_byte or body.type != "compound_statement":
            raise Refuse("loop-body-not-only-retry", "the allocation is not a statement of the loop body")
        infinite = (node.type == "for_statement" and (cond is None or _is_true(src, cond))
                    and _counting_only(src, node, classify)) \
            or (node.type in ("while_statement", "do_statement") and _is_true(src, cond))
        others = [c for c in body.named_children if c.start_byte != stmt_node.start_byte]
        if infinite:
            exits = [(c, _success_exit(src, c, lhs)) for c in others if c.start_byte > stmt_node.start_byte]
            exits = [(c, e) for c, e in exits if e is not None]
            if len(exits) != 1:
                raise Refuse("not-a-null-retry", "the loop has no single `if (p) break;` or `if (p) return ..;`")
            exit_node, trailing_exit = exits[0][0], exits[0][1] or ""
            others = [c for c in others if c.start_byte != exit_node.start_byte]
        elif node.type == "do_statement":
            if null_test(src, cond, lhs) != "fail":
                raise Refuse("not-a-null-retry", "the loop condition is not a NULL test of the allocation")
        elif node.type == "while_statement" and null_test(src, cond, lhs) == "fail":
            if not _null_before(src, node, lhs):
                raise Refuse("not-a-null-retry", f"`while (!{lhs})` runs only if {lhs} is NULL before it, "
                                                 "and nothing right before the loop says so")
        else:
            raise Refuse("not-a-null-retry", "only do/while (!p), while (!(p = ..)) and endless loops "
                                             "with `if (p) break;` are rewritten")
        for c in others:
            classify.noise(c)
        stmt = (stmt_node.start_byte, stmt_node.end_byte, "")
    return _Shape((node.start_byte, node.end_byte), "", stmt, node, trailing_exit, classify.counters)


def _counting_only(src: Source, loop: ts.Node, classify: _Body) -> bool:
    """A `for` loop's initialiser and update only set and step counters
    (`for (tries = 0; ; tries++)`, `for (int i = 0; ; i++)`), which go with it."""
    init, update = loop.child_by_field_name("initializer"), loop.child_by_field_name("update")
    if init is not None:
        if init.type == "declaration":
            for d in init.children_by_field_name("declarator"):
                value = d.child_by_field_name("value") if d.type == "init_declarator" else None
                if value is not None and value.type != "number_literal":
                    return False
                classify.counters.add(src.text(d.child_by_field_name("declarator") if value is not None else d))
        else:
            e = strip_parens(init)
            left = e.child_by_field_name("left") if e is not None and e.type == "assignment_expression" else None
            right = e.child_by_field_name("right") if e is not None else None
            if left is None or left.type != "identifier" or right is None or right.type != "number_literal":
                return False
            classify.counters.add(src.text(left))
    if update is not None:
        e = strip_parens(update)
        if e is None or not classify.counter(e):
            return False
    return True


def _null_before(src: Source, loop: ts.Node, lhs: str) -> bool:
    """The statement right before `loop` sets `lhs` to NULL (`p = NULL;` or
    `T *p = NULL;`), so a `while (!p)` loop runs at least once."""
    prev = loop.prev_named_sibling
    while prev is not None and prev.type == "comment":
        prev = prev.prev_named_sibling
    if prev is None:
        return False
    if prev.type == "expression_statement" and prev.named_children:
        e = strip_parens(prev.named_children[0])
        return e is not None and e.type == "assignment_expression" \
            and norm(src.text(e.child_by_field_name("left"))) == lhs \
            and norm(src.text(e.child_by_field_name("right"))) in _NULLS
    if prev.type == "declaration":
        for d in prev.children_by_field_name("declarator"):
            if d.type == "init_declarator" and norm(src.text(d.child_by_field_name("value"))) in _NULLS:
                name = d.child_by_field_name("declarator")
                while name is not None and name.type == "pointer_declarator":
                    name = name.child_by_field_name("declarator")
                if norm(src.text(name)) == lhs:
                    return True
    return False


def _inside_node(inner: ts.Node, outer: ts.Node | None) -> bool:
    return outer is not None and outer.start_byte <= inner.start_byte and inner.end_byte <= outer.end_byte


def null_test_assign(src: Source, cond: ts.Node, assign: ts.Node) -> str | None:
    """`!(p = alloc())` / `(p = alloc()) == NULL` -> 'fail'."""
    c = strip_parens(cond)
    while c is not None and c.type == "call_expression" and call_name(src, c) in ("likely", "unlikely"):
        c = strip_parens(call_args(c)[0]) if call_args(c) else None
    if c is None:
        return None
    if c.type == "unary_expression" and src.text(c.child_by_field_name("operator")) == "!":
        arg = strip_parens(c.child_by_field_name("argument"))
        return "fail" if arg is not None and arg.start_byte == assign.start_byte else None
    if c.type == "binary_expression" and src.text(c.child_by_field_name("operator")) == "==":
        left, right = (strip_parens(c.child_by_field_name(k)) for k in ("left", "right"))
        if left is None or right is None:
            return None
        if left.start_byte == assign.start_byte and norm(src.text(right)) in _NULLS:
            return "fail"
        if right.start_byte == assign.start_byte and norm(src.text(left)) in _NULLS:
            return "fail"
    return None


def _goto_shape(src: Source, loop, assign: ts.Node, lhs: str, waits: frozenset[str]):
    stmt_node = _statement_of(assign)
    label = stmt_node.parent
    if label is None or label.type != "labeled_statement":
        raise Refuse("not-a-null-retry", "the label does not directly precede the allocation")
    name = src.text(label.child_by_field_name("label"))
    after = label.next_named_sibling
    while after is not None and after.type == "comment":
        after = after.next_named_sibling
    if after is None or after.type != "if_statement" or after.child_by_field_name("alternative") is not None \
            or null_test(src, after.child_by_field_name("condition"), lhs) != "fail":
        raise Refuse("not-a-null-retry", "the allocation is not followed by `if (!p) { ..; goto "
                                         f"{name}; }}`")
    body = child(after, "consequence")
    inner: list[ts.Node] = body.named_children if body.type == "compound_statement" else [body]
    inner = [c for c in inner if c.type != "comment"]
    if not inner or inner[-1].type != "goto_statement" or src.text(child(inner[-1], "label")) != name:
        raise Refuse("not-a-null-retry", f"the failure branch does not end with `goto {name};`")
    fn = function_of(label)
    gotos = [g for g in (_all(fn, "goto_statement") if fn is not None else [])
             if src.text(g.child_by_field_name("label")) == name]
    if len(gotos) != 1:
        raise Refuse("label-used-elsewhere", f"label '{name}' has other uses")
    classify = _Body(src, waits, "goto")
    for c in inner[:-1]:
        classify.noise(c)
    indent = src.indent_at(stmt_node.start_byte) if src.starts_line(stmt_node) \
        else src.indent_at(label.start_byte) + "\t"
    return _Shape((label.start_byte, after.end_byte), indent, (stmt_node.start_byte, stmt_node.end_byte, ""),
                  _Region(label, after), "", classify.counters)


class _Region:
    """Two sibling statements seen as one node (for comment collection)."""

    def __init__(self, first: ts.Node, last: ts.Node):
        self.first, self.last = first, last
        self.start_byte, self.end_byte = first.start_byte, last.end_byte
        node = first
        kids = []
        while node is not None and node.start_byte <= last.start_byte:
            kids.append(node)
            node = node.next_sibling  # type: ignore[assignment]
        self.children = kids
        self.type = "region"


def _all(node: ts.Node, type_: str) -> list[ts.Node]:
    out = []
    stack = [node]
    while stack:
        n = stack.pop()
        if n.type == type_:
            out.append(n)
        stack.extend(n.children)
    return out
