"""NF006 rewrites, both ways out of a dead NULL check of a NOFAIL result.

drop-check: remove the dead branch. `if (!p) return -ENOMEM;`, `if (!p) goto
err;`, `if (WARN_ON(!p)) return;` go away; `if (p) { body }` becomes its
body; an `else` of a failure test becomes its body. A label or a local that
only the removed branch used goes too; a local whose initialiser calls a
function is left alone and the fix refused.

drop-nofail: keep the check and take `__GFP_NOFAIL` out of the mask at the
call, when it is written there as one `|` operand (a mask built elsewhere is
not edited: other calls may share it).

Both are unsafe fixes: the first trusts the allocator model (the call cannot
fail), the second changes behaviour (the call may now fail, and the check
becomes live). Upstream resolutions of such checks went both ways.
"""
from __future__ import annotations

import re

import tree_sitter as ts

from ..findings import Finding
from .edit import Refuse, Rewrite, drop_unused, splice, whole_lines
from .retry_loop import null_test
from .source import Source, ancestor, call_args, call_name, child, function_of, identifiers, norm, strip_parens, words

DROP_CHECK, DROP_NOFAIL = "drop-check", "drop-nofail"
WAYS = (DROP_CHECK, DROP_NOFAIL)
NOFAIL = "__GFP_NOFAIL"
_WRAPPERS = frozenset({"likely", "unlikely", "WARN_ON", "WARN_ON_ONCE"})


def _tested(src: Source, cond: ts.Node | None) -> tuple[str, str] | None:
    """(polarity, tested text) for a plain NULL test, seen through likely/unlikely/WARN_ON."""
    c = strip_parens(cond)
    while c is not None and c.type == "call_expression" and call_name(src, c) in _WRAPPERS \
            and len(call_args(c)) == 1:
        c = strip_parens(call_args(c)[0])
    if c is None:
        return None
    if c.type == "call_expression" and call_name(src, c) == "IS_ERR_OR_NULL" and len(call_args(c)) == 1:
        return "fail", norm(src.text(strip_parens(call_args(c)[0])))
    if c.type == "unary_expression":
        arg = strip_parens(c.child_by_field_name("argument"))
        if arg is not None and arg.type in ("identifier", "field_expression", "subscript_expression",
                                            "pointer_expression"):
            name = norm(src.text(arg))
            pol = null_test(src, c, name)
            return (pol, name) if pol else None
        return None
    if c.type == "binary_expression":
        op = src.text(c.child_by_field_name("operator"))
        if op not in ("==", "!="):
            return None
        for k in ("left", "right"):
            side = norm(src.text(strip_parens(c.child_by_field_name(k))))
            if side not in ("NULL", "0"):
                pol = null_test(src, c, side)
                return (pol, side) if pol else None
        return None
    if c.type in ("identifier", "field_expression"):
        return "ok", norm(src.text(c))
    return None


def _body_text(src: Source, body: ts.Node, indent: str) -> str:
    """A branch's statements as lines at `indent` (its braces dropped)."""
    stmts = body.named_children if body.type == "compound_statement" else [body]
    # a comment on the line of `{` belongs to the removed `if (..) {` line
    stmts = [s for s in stmts if not (s.type == "comment" and s.start_point[0] == body.start_point[0])]
    if any(s.type == "declaration" for s in stmts):
        raise Refuse("unwrapped-block-declares", "the kept branch declares variables of its own")
    if not stmts:
        return ""
    first, last = stmts[0], stmts[-1]
    if not src.starts_line(first):
        raise Refuse("layout", "the kept branch does not start on its own line")
    lo = src.line_start(first.start_byte)
    text = src.between(lo, last.end_byte)
    inner = src.indent_at(first.start_byte)
    if not inner.startswith(indent):
        raise Refuse("layout", "the kept branch is not indented deeper than the if")
    extra = inner[len(indent):]
    lines = text.split("\n")
    out = [ln[len(extra):] if ln.startswith(extra) else ln for ln in lines]
    return "\n".join(out) + "\n"


def drop_check(src: Source, finding: Finding) -> Rewrite:
    loc = finding.location
    off = src.offset(loc.line, loc.column)
    node = src.root.descendant_for_byte_range(off, off)
    stmt = node if node is not None and node.type == "if_statement" else ancestor(node, {"if_statement",
                                                                                       "expression_statement"})
    if stmt is None:
        raise Refuse("not-an-if", "the NULL test is not the condition of an if statement")
    if stmt.type == "expression_statement":
        e = strip_parens(stmt.named_children[0]) if stmt.named_children else None
        if e is None or call_name(src, e) not in ("WARN_ON", "WARN_ON_ONCE", "BUG_ON") or _tested(src, e) is None:
            raise Refuse("not-an-if", "the NULL test is not the condition of an if statement")
        return _finish(src, finding, stmt, "", "remove a WARN/BUG on NULL")
    cond = stmt.child_by_field_name("condition")
    if cond is None or not (cond.start_byte <= off < cond.end_byte):
        raise Refuse("not-an-if", "the NULL test is not the condition of an if statement")
    tested = _tested(src, cond)
    if tested is None:
        raise Refuse("compound-condition", "the condition tests more than the allocation's result")
    if stmt.parent is not None and stmt.parent.type == "else_clause":
        raise Refuse("layout", "the test is an `else if`")
    if not src.starts_line(stmt):
        raise Refuse("layout", "the if statement does not start its line")
    polarity, _name = tested
    indent = src.indent_at(stmt.start_byte)
    alt = stmt.child_by_field_name("alternative")
    if polarity == "fail":
        kept = _body_text(src, alt.named_children[-1], indent) if alt is not None else ""
        title = "remove a NULL check that cannot fire"
    else:
        kept = _body_text(src, child(stmt, "consequence"), indent)
        title = "unwrap a NULL check that always passes"
    return _finish(src, finding, stmt, kept, title)


def _finish(src: Source, finding: Finding, stmt: ts.Node, kept: str, title: str) -> Rewrite:
    rest = src.between(stmt.end_byte, src.line_end(stmt.end_byte)).strip()
    if rest and not rest.startswith(("/*", "//")):
        raise Refuse("layout", "code follows the if statement on its last line")
    lo, hi = whole_lines(src, stmt.start_byte, stmt.end_byte)
    removed = src.between(lo, hi)
    text = splice(src, [(lo, hi, kept)])
    labels = set()
    for part in removed.split("goto")[1:]:
        name = part.strip().split(";")[0].strip()
        if name.isidentifier():
            labels.add(name)
    names = words(removed) - words(kept)
    text = drop_unused(text, src.path, lo, names, labels)
    _no_dead_error_path(text, src.path, lo, set(_ASSIGNED.findall(removed)))
    return Rewrite(finding, "nf006-" + DROP_CHECK, False, title, src.path, src.between(0, len(src.data)), text)


_ASSIGNED = re.compile(r"\b([A-Za-z_]\w*)\s*(?:[-+*/|&^]?=(?!=)|\+\+|--)")
_WRITES = frozenset({"assignment_expression", "update_expression"})


def _function_body(text: str, path: str, anchor: int) -> tuple[Source, ts.Node | None]:
    """`text` parsed, and the body of the function holding byte `anchor` (None if there is none)."""
    src = Source(path, text.encode("utf-8", "surrogateescape"))
    node = src.root.descendant_for_byte_range(anchor, anchor)
    fn = function_of(node) if node is not None else None
    return src, fn.child_by_field_name("body") if fn is not None else None


def _in_condition(node: ts.Node) -> bool:
    """Is `node` inside the condition of an if, a loop or a `?:`?"""
    while node.parent is not None:
        parent = node.parent
        if parent.type in ("if_statement", "while_statement", "do_statement", "conditional_expression"):
            return parent.child_by_field_name("condition") == node
        if parent.type in ("compound_statement", "function_definition"):
            return False
        node = parent
    return False


def _no_dead_error_path(text: str, path: str, anchor: int, assigned: set[str]):
    """Refuse when the removed code was the only place that set a local
    (`err = -ENOMEM; goto exit;`) which code left behind still tests
    (`exit: if (err && mru) kfree(mru);`): that cleanup is now dead, and
    removing it is a rewrite of its own."""
    if not assigned:
        return
    body = _function_body(text, path, anchor)[1]
    if body is None:
        return
    for name in sorted(assigned):
        uses = identifiers(body, name)
        if not uses or not any(u.parent is not None and u.parent.type == "init_declarator" for u in uses):
            continue                # not a local of this function, or gone with the check
        written = any(u.parent is not None and (u.parent.type in _WRITES and u.parent.child_by_field_name(
            "left" if u.parent.type == "assignment_expression" else "argument") == u
            or u.parent.type == "pointer_expression") for u in uses)
        tested = [u for u in uses if _in_condition(u)]
        if not written and tested:
            line = tested[0].start_point[0] + 1
            raise Refuse("leaves-dead-error-path",
                         f"'{name}' was set only in the removed error path; the code that still tests it "
                         f"(line {line} after the fix) would be dead: remove that by hand")


def drop_nofail(src: Source, finding: Finding, call_span, gfp_index: int | None) -> Rewrite:
    """Take `__GFP_NOFAIL` out of the gfp argument of the call at `call_span`."""
    call = src.node_at(call_span.line, call_span.column, {"call_expression"})
    if call is None:
        raise Refuse("not-found", "the allocation call is not where the facts say")
    args = call_args(call)
    if gfp_index is None or gfp_index >= len(args):
        raise Refuse("no-gfp-argument", f"{call_name(src, call)}() has no gfp argument the analysis can see")
    edit = nofail_operand_removal(src, args[gfp_index])
    text = splice(src, [edit])
    title = f"drop __GFP_NOFAIL from {call_name(src, call)}(): the caller handles failure"
    return Rewrite(finding, "nf006-" + DROP_NOFAIL, False, title, src.path, src.between(0, len(src.data)), text)


def nofail_operand_removal(src: Source, arg: ts.Node, flag: str = NOFAIL) -> tuple[int, int, str]:
    """The edit that removes `flag` where it is one operand of the `|` chain `arg`."""
    stack = [arg]
    while stack:
        n = stack.pop()
        if n.type == "parenthesized_expression":
            stack.extend(n.named_children)
            continue
        if n.type != "binary_expression" or src.text(n.child_by_field_name("operator")) != "|":
            continue
        left, right = child(n, "left"), child(n, "right")
        if right.type == "identifier" and src.text(right) == flag:
            return left.end_byte, right.end_byte, ""
        if left.type == "identifier" and src.text(left) == flag:
            return left.start_byte, right.start_byte, ""
        stack.extend([left, right])
    raise Refuse("flag-not-written-at-call", f"{flag} is not written as one `|` operand of the mask "
                                             "at the call (it comes from a variable or a macro)")


def check_combined(text: str, path: str, anchor: int, removed: str):
    """Several checks removed from one function (`text` has all of them
    applied; `removed` is what they took out): refuse (Refuse) when the
    function is left with a label nothing jumps to, or with an error path
    only the removed code could enter. Each rewrite alone keeps both alive."""
    _no_dead_error_path(text, path, anchor, set(_ASSIGNED.findall(removed)))
    after, body = _function_body(text, path, anchor)
    if body is None:
        return
    jumped = set(re.findall(r"\bgoto\s+([A-Za-z_]\w*)\s*;", after.text(body)))
    for name in sorted(set(re.findall(r"\bgoto\s+([A-Za-z_]\w*)\s*;", removed)) - jumped):
        if re.search(rf"(?m)^\s*{re.escape(name)}\s*:(?!:)", after.text(body)):
            raise Refuse("leaves-unused-label", f"with every dead check of the function removed, nothing "
                                                f"jumps to '{name}' any more: remove it and its cleanup by hand")
