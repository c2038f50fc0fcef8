"""NULL tests spelt through macros and helpers (extract side).

`drm_WARN_ON(dev, !p)`, `IS_ERR_OR_NULL(p)`, `foo_missing(p)`: whether such a
condition tests `p` for NULL depends on the definitions of the names it
calls, which may live in any file. Extraction therefore keeps two things,
both as *skeletons* in cexpr syntax, so that the link stage can decide with
the tree's definitions (cexpr.null_polarity):

- at a use, the condition with the tested result spelt `__nfl_res`
  (facts.NullTestVia);
- for every function-like macro and small function, what its value is and
  which conditions its statements act on, in terms of its parameters
  `__nfl_a0`, `__nfl_a1`, ... (FileFacts.test_defs).

A skeleton keeps only what a NULL test needs: `!`, `||`, `&&`, `==`/`!=`,
`?:`, calls, literal zeros; anything else that involves the result or a
parameter (a field read, arithmetic) is `__nfl_x`, and so is everything
that involves neither. docs/architecture.md, "NULL tests through
definitions".
"""
from __future__ import annotations

import re

import tree_sitter as ts

from .cexpr import TEST_ARG, TEST_RES, TEST_UNKNOWN, TestDef
from .loops import _TRANSPARENT_CALLS, NULL_TEST_CALLS
from .source import decode, node_text

# The kernel's own test primitives, as loops.is_null_test reads them (their
# headers define them in ways the byte prefilter never parses): a warning
# or BUG_ON tests its condition (inside, a bare pointer is not a NULL test),
# likely()/unlikely() are their argument, IS_ERR_OR_NULL() tests for NULL.
BUILTIN_TEST_DEFS: dict[str, list[TestDef]] = {
    **{name: [(1, f"({TEST_ARG}0) || 0", (f"if:({TEST_ARG}0) || 0",))] for name in NULL_TEST_CALLS},
    **{name: [(1, f"{TEST_ARG}0", ())] for name in _TRANSPARENT_CALLS},
    "IS_ERR_OR_NULL": [(1, f"!({TEST_ARG}0) || 0", ())],
}

_ZERO_WORDS = frozenset({"NULL", "false"})
_TRUE_WORDS = frozenset({"true"})
_KEEP_BINARY = frozenset({"||", "&&", "==", "!="})
_NUMBER = re.compile(r"^(?:0[xX][0-9a-fA-F]+|\d+)[uUlL]*$")
_WRAPPERS = ("parenthesized_expression", "cast_expression")


def _c_int(text: str) -> int:
    """A C integer literal (decimal, 0x hex, 0 octal, with u/l suffixes)."""
    digits = text.rstrip("uUlL")
    if digits[:2] in ("0x", "0X"):
        return int(digits, 16)
    return int(digits, 8) if len(digits) > 1 and digits[0] == "0" else int(digits)


def _norm(text: str) -> str:
    return "".join(text.split())


class Skeleton:
    """Builds skeletons of expressions under one naming: `names` maps
    identifiers to their skeleton (parameters, locals), `key` is the
    whitespace-free text of the tested result at a use (or None)."""

    def __init__(self, names: dict[str, str], key: str | None = None):
        self.names = names
        self.key = key
        self.callees: set[str] = set()
        self.res_in_call = False      # a call takes the result (or a test of it) as an argument

    def _mentions(self, node: ts.Node) -> bool:
        text = node_text(node)
        if self.key is not None and self.key in _norm(text):
            return True
        return any(n in text for n in self.names) and any(
            w in self.names for w in re.findall(r"[A-Za-z_]\w*", text))

    def of(self, node: ts.Node | None) -> str:
        if node is None:
            return TEST_UNKNOWN
        if self.key is not None and _norm(node_text(node)) == self.key:
            return TEST_RES
        leaf = self._leaf(node)
        if leaf is not None:
            return leaf
        if not self._mentions(node):
            return TEST_UNKNOWN
        compound = self._COMPOUND.get(node.type)
        return compound(self, node) if compound is not None else TEST_UNKNOWN

    def _leaf(self, node: ts.Node) -> str | None:
        t = node.type
        if t == "identifier":
            name = node_text(node)
            if name in self.names:
                return self.names[name]
            return "0" if name in _ZERO_WORDS else "1" if name in _TRUE_WORDS else TEST_UNKNOWN
        if t in ("null", "false"):
            return "0"
        if t == "true":
            return "1"
        if t == "number_literal":
            text = node_text(node)
            return text if _NUMBER.match(text) else TEST_UNKNOWN
        return None

    def _paren(self, node: ts.Node) -> str:
        inner = [c for c in node.named_children if c.type != "comment"]
        return f"({self.of(inner[-1])})" if len(inner) == 1 else TEST_UNKNOWN

    def _cast(self, node: ts.Node) -> str:
        return self.of(node.child_by_field_name("value"))

    def _assign(self, node: ts.Node) -> str:
        # `!(p = alloc(...))` tests p; `(__ret = !!(c))` has the value of its right side
        left = node.child_by_field_name("left")
        if node_text(node.child_by_field_name("operator")) != "=":
            return TEST_UNKNOWN
        if self.key is not None and left is not None and _norm(node_text(left)) == self.key:
            return TEST_RES
        return self.of(node.child_by_field_name("right"))

    def _unary(self, node: ts.Node) -> str:
        if node_text(node.child_by_field_name("operator")) != "!":
            return TEST_UNKNOWN
        return f"!({self.of(node.child_by_field_name('argument'))})"

    def _binary(self, node: ts.Node) -> str:
        op = node_text(node.child_by_field_name("operator"))
        if op not in _KEEP_BINARY:
            return TEST_UNKNOWN
        return f"({self.of(node.child_by_field_name('left'))} {op} {self.of(node.child_by_field_name('right'))})"

    def _ternary(self, node: ts.Node) -> str:
        return (f"({self.of(node.child_by_field_name('condition'))} ? "
                f"{self.of(node.child_by_field_name('consequence'))} : "
                f"{self.of(node.child_by_field_name('alternative'))})")

    def _call(self, node: ts.Node) -> str:
        fn = node.child_by_field_name("function")
        args = node.child_by_field_name("arguments")
        if fn is None or fn.type != "identifier" or args is None:
            return TEST_UNKNOWN
        name = node_text(fn)
        self.callees.add(name)
        parts = [self.of(a) for a in args.named_children if a.type not in ("comment", "ERROR")]
        self.res_in_call = self.res_in_call or any(TEST_RES in p for p in parts)
        return f"{name}({', '.join(parts)})"

    _COMPOUND = {
        "parenthesized_expression": _paren, "cast_expression": _cast, "assignment_expression": _assign,
        "unary_expression": _unary, "binary_expression": _binary, "conditional_expression": _ternary,
        "call_expression": _call,
    }


# ------------------------------------------------------------ definitions

def _statements(node: ts.Node) -> list[ts.Node]:
    return [c for c in node.named_children if c.type not in ("comment", "ERROR")]


def _declare_locals(stmt: ts.Node, sk: Skeleton) -> bool:
    """`int __ret = !!(cond);` / `__ret = x;`: the local's skeleton; True if handled."""
    if stmt.type == "declaration":
        for d in stmt.children_by_field_name("declarator"):
            if d.type == "init_declarator":
                name = d.child_by_field_name("declarator")
                while name is not None and name.type == "pointer_declarator":
                    name = name.child_by_field_name("declarator")
                if name is not None and name.type == "identifier":
                    sk.names[node_text(name)] = f"({sk.of(d.child_by_field_name('value'))})"
        return True
    if stmt.type == "expression_statement":
        e = stmt.named_children[0] if stmt.named_children else None
        if e is not None and e.type == "assignment_expression" \
                and node_text(e.child_by_field_name("operator")) == "=":
            left = e.child_by_field_name("left")
            if left is not None and left.type == "identifier":
                sk.names[node_text(left)] = f"({sk.of(e.child_by_field_name('right'))})"
                return True
    return False


def _acts(stmts: list[ts.Node], sk: Skeleton, out: list[str], depth: int = 0) -> None:
    """The conditions a block's `if`s test and the calls it makes as
    statements, in terms of the parameters (those that mention one)."""
    if depth > 6:
        return
    for s in stmts:
        if _declare_locals(s, sk):
            continue
        if s.type == "if_statement":
            cond = sk.of(s.child_by_field_name("condition"))
            if TEST_ARG in cond:
                out.append("if:" + cond)
            for part in ("consequence", "alternative"):
                sub = s.child_by_field_name(part)
                if sub is not None:
                    _acts([sub] if sub.type != "compound_statement" else _statements(sub), sk, out, depth + 1)
        elif s.type == "else_clause":
            _acts(_statements(s), sk, out, depth + 1)
        elif s.type == "compound_statement":
            _acts(_statements(s), sk, out, depth + 1)
        elif s.type == "do_statement":
            body = s.child_by_field_name("body")
            if body is not None:
                _acts(_statements(body) if body.type == "compound_statement" else [body], sk, out, depth + 1)
        elif s.type == "expression_statement" and s.named_children \
                and s.named_children[0].type == "call_expression":
            call = sk.of(s.named_children[0])
            if TEST_ARG in call:
                out.append("do:" + call)


def _returned_value(stmts: list[ts.Node], sk: Skeleton) -> str:
    """A function's value in terms of its parameters: `return E;` after
    locals, and `if (C) return K;` early exits folded in (`C || E` for a
    true K, `!C && E` for a false one). "" if the body is anything else."""
    exits: list[tuple[str, bool]] = []
    for i, s in enumerate(stmts):
        if _declare_locals(s, sk):
            continue
        if s.type == "return_statement":
            if i != len(stmts) - 1 or not s.named_children:
                return ""
            value = sk.of(s.named_children[0])
            for cond, truth in reversed(exits):
                value = f"(({cond}) || {value})" if truth else f"(!({cond}) && {value})"
            return value
        if s.type == "if_statement" and s.child_by_field_name("alternative") is None:
            cons = s.child_by_field_name("consequence")
            inner = _statements(cons) if cons is not None and cons.type == "compound_statement" else [cons]
            if len(inner) == 1 and inner[0] is not None and inner[0].type == "return_statement" \
                    and inner[0].named_children:
                k = sk.of(inner[0].named_children[0])
                if _NUMBER.match(k):
                    exits.append((sk.of(s.child_by_field_name("condition")), _c_int(k) != 0))
                    continue
        return ""
    return ""


def _definition(name: str, params: tuple[str, ...], stmts: list[ts.Node],
                is_macro: bool) -> tuple[str, int, str, tuple[str, ...]] | None:
    sk = Skeleton({p: f"{TEST_ARG}{i}" for i, p in enumerate(params) if p})
    value = ""
    if is_macro:
        if len(stmts) == 1 and stmts[0].type == "expression_statement" and stmts[0].named_children:
            expr = stmts[0].named_children[0]
            inner = expr.named_children[0] if expr.type == "parenthesized_expression" and expr.named_children \
                else None
            if inner is not None and inner.type == "compound_statement":     # `({ ...; value; })`
                body = _statements(inner)
                acts: list[str] = []
                _acts(body[:-1], sk, acts)
                last = body[-1] if body else None
                if last is not None and last.type == "expression_statement" and last.named_children:
                    value = sk.of(last.named_children[0])
            else:
                acts = []
                value = sk.of(expr)
                if expr.type == "call_expression" and TEST_ARG in value:
                    acts.append("do:" + value)      # used as a statement, the macro is that call
        else:
            acts = []
            _acts(stmts, sk, acts)
    else:
        acts = []
        _acts(stmts, Skeleton(dict(sk.names)), acts)
        value = _returned_value(stmts, sk)
    if TEST_ARG not in value:
        value = ""
    if not value and not acts:
        return None
    return name, len(params), value, tuple(dict.fromkeys(acts))


_DEFINE_FN = re.compile(
    rb"^[ \t]*#[ \t]*define[ \t]+([A-Za-z_]\w*)\(([^()\n]*)\)[ \t]*((?:[^\n\\]|\\.|\\\n)*)",
    re.MULTILINE,
)
_COMMENT = re.compile(rb"/\*.*?\*/|//[^\n]*", re.DOTALL)
_TESTISH = re.compile(rb"[!?|&=]|\bif\b|\w\s*\(")
MAX_BODY = 2000


def macro_test_defs(src: bytes, parser: ts.Parser) -> list[tuple[str, int, str, tuple[str, ...]]]:
    """Test definitions of the file's function-like macros: every body is
    parsed once, together, as the body of a function of its own."""
    chunks: list[bytes] = []
    meta: list[tuple[str, tuple[str, ...]]] = []
    for m in _DEFINE_FN.finditer(src):
        body = _COMMENT.sub(b" ", m.group(3).replace(b"\\\n", b" ")).strip()
        params = [p.strip() for p in decode(m.group(2)).split(",") if p.strip()]
        fixed = [p for p in params if p.isidentifier()]
        if not body or len(body) > MAX_BODY or not fixed or not _TESTISH.search(body) \
                or not any(p.encode() in body for p in fixed):
            continue
        if params and not params[-1].isidentifier():
            params = params[:-1]       # a variadic tail: never a tested argument of its own
        if any(not p.isidentifier() for p in params):
            continue
        meta.append((decode(m.group(1)), tuple(params)))
        chunks.append(b"void __nfl_def(void)\n{\n" + body + b"\n;}\n")
    if not chunks:
        return []
    tree = parser.parse(b"".join(chunks))
    out = []
    defs = [n for n in tree.root_node.named_children if n.type == "function_definition"]
    if len(defs) != len(meta):
        # a body that broke the function frame: parse each alone
        defs = [parser.parse(c).root_node.named_children[0] for c in chunks]
    for (name, names), fn in zip(meta, defs, strict=True):
        frame = fn.child_by_field_name("body") if fn.type == "function_definition" else None
        if frame is None:
            continue
        out.append(_definition(name, names, _statements(frame), True) or (name, len(names), "", ()))
    return out


MAX_FUNCTION_STATEMENTS = 6


def function_test_def(name: str, params: tuple[str, ...], body: ts.Node
                      ) -> tuple[str, int, str, tuple[str, ...]] | None:
    """A function with parameters as a test definition: what its value or
    its statements test (nothing, for a large body: (name, n, "", ())).
    extract keeps a definition that tests nothing only beside one of the
    same name that does (`#ifdef CONFIG_X ... #else` stubs), so that the
    link stage sees they disagree."""
    if not params:
        return None
    if body.end_byte - body.start_byte > MAX_BODY:
        return name, len(params), "", ()
    stmts = _statements(body)
    if len(stmts) > MAX_FUNCTION_STATEMENTS:
        return name, len(params), "", ()
    return _definition(name, params, stmts, False) or (name, len(params), "", ())


def kept_test_defs(defs: list[tuple[str, int, str, tuple[str, ...]]]) -> tuple:
    """The definitions a file records: those that test, and those that do not
    whose name also has one that does (config alternatives)."""
    testing = {d[0] for d in defs if d[2] or d[3]}
    return tuple(dict.fromkeys(d for d in defs if d[0] in testing))


# ------------------------------------------------------------ uses

def via_test(cond: ts.Node, key: str) -> tuple[str, tuple[str, ...]] | None:
    """The skeleton of a condition (or a call statement) that mentions the
    result `key` inside a call, and the names it calls; None if no call
    takes the result (then only a direct test could be one)."""
    sk = Skeleton({}, key)
    text = sk.of(cond)
    if not sk.res_in_call:
        return None
    return text, tuple(sorted(sk.callees))


# ------------------------------------------------------------ bounded counts

_OVERFLOW_OPERAND = re.compile(r"[A-Za-z_]\w*")
_EXITS = frozenset({"return_statement", "goto_statement", "break_statement", "continue_statement"})
# `n > MAX`, `MAX < n`: n is bounded above when false; `n < MAX`: when true
_UPPER = {">": "left", ">=": "left", "<": "right", "<=": "right"}
_BELOW = {"<": "left", "<=": "left", ">": "right", ">=": "right"}


def overflow_params(null_under_nofail: tuple[str, ...], params: tuple[str, ...]) -> list[int]:
    """Argument positions named in the model's `A * B overflows` conditions."""
    out: list[int] = []
    for cond in null_under_nofail:
        if cond.endswith("overflows"):
            out.extend(params.index(w) for w in _OVERFLOW_OPERAND.findall(cond) if w in params)
    return sorted(set(out))


def runtime_values(node: ts.Node, variables: frozenset[str]) -> set[str] | None:
    """The runtime values an argument reads (whitespace-free texts):
    variables of the function, fields and subscripts; sizeof and the names
    of called macros or functions are not values. None for a call with no
    argument (its result is a runtime value of its own)."""
    out: set[str] = set()
    stack = [node]
    while stack:
        n = stack.pop()
        t = n.type
        if t in ("sizeof_expression", "alignof_expression", "string_literal"):
            continue
        if t == "identifier":
            if node_text(n) in variables:
                out.add(node_text(n))
        elif t in ("field_expression", "subscript_expression", "pointer_expression"):
            out.add(_norm(node_text(n)))
        elif t == "call_expression":
            args = n.child_by_field_name("arguments")
            if args is None or not args.named_children:
                return None
            stack.extend(args.named_children)
        else:
            stack.extend(n.named_children)
    return out


def _comparisons(cond: ts.Node):
    stack = [cond]
    while stack:
        n = stack.pop()
        if n.type == "binary_expression":
            op = node_text(n.child_by_field_name("operator"))
            if op in _UPPER:
                yield op, n
        stack.extend(n.named_children)


def _compares(cond: ts.Node, value: str, sides: dict[str, str]) -> bool:
    return any(_norm(node_text(n.child_by_field_name(sides[op]))) == value for op, n in _comparisons(cond))


def _leaves_or_clamps(branch: ts.Node | None, value: str) -> bool:
    """The branch exits (return, goto, break, continue) or sets the value."""
    if branch is None:
        return False
    stmts = _statements(branch) if branch.type == "compound_statement" else [branch]
    for s in stmts:
        if s.type in _EXITS:
            return True
        e = s.named_children[0] if s.type == "expression_statement" and s.named_children else None
        if e is not None and e.type == "assignment_expression" \
                and _norm(node_text(e.child_by_field_name("left"))) == value:
            return True
    return False


def bounded_before(call: ts.Node, value: str, conds: list[ts.Node]) -> bool:
    """Is `value` checked against an upper bound before `call`: an earlier
    `if (value > LIMIT) <exit or clamp>;`, or an `if (value <= LIMIT)`
    whose branch holds the call."""
    for c in conds:
        if c.start_byte >= call.start_byte:
            break
        stmt = c.parent
        if stmt is None or stmt.type != "if_statement" or stmt.child_by_field_name("condition") != c:
            continue
        cons = stmt.child_by_field_name("consequence")
        if cons is not None and cons.start_byte <= call.start_byte < cons.end_byte:
            if _compares(c, value, _BELOW):
                return True
        elif stmt.end_byte <= call.start_byte and _compares(c, value, _UPPER) and _leaves_or_clamps(cons, value):
            return True
    return False
