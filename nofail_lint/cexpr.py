"""A small C expression parser and the gfp-mask algebra over it.

The check stage needs the *effective gfp mask* of an argument: `|`, `&`, `~`,
parentheses, casts, ternaries, object-like macros, parameters. Arguments are
kept as source text in FileFacts (picklable, cache-friendly) and parsed here,
which also serves macro bodies that tree-sitter leaves as raw text.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<num>0[xX][0-9a-fA-F]+[uUlL]*|\d+[uUlL]*)
      | (?P<id>[A-Za-z_]\w*)
      | (?P<str>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*')
      | (?P<op>->|<<=|>>=|<<|>>|<=|>=|==|!=|&&|\|\||\+\+|--|[-+*/%&|^~!<>?:(),.\[\]=])
    )""",
    re.VERBOSE,
)

# Expression nodes are tuples so they hash, pickle and compare cheaply:
#   ("id", name) ("num", int|None) ("un", op, x) ("bin", op, a, b)
#   ("cond", c, a, b) ("call", name, args) ("cast", x) ("other", text)
Expr = tuple

_BINARY_PREC = {
    "||": 1, "&&": 2, "|": 3, "^": 4, "&": 5, "==": 6, "!=": 6,
    "<": 7, ">": 7, "<=": 7, ">=": 7, "<<": 8, ">>": 8,
    "+": 9, "-": 9, "*": 10, "/": 10, "%": 10,
}
_TYPE_WORDS = {
    "unsigned", "signed", "int", "long", "short", "char", "void", "const",
    "volatile", "struct", "union", "enum", "bool", "_Bool", "__force",
    "__bitwise", "size_t", "gfp_t", "u8", "u16", "u32", "u64", "s32", "s64",
}


def _tokenize(text: str) -> list[tuple[str, str]]:
    out = []
    pos, n = 0, len(text)
    while pos < n:
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            if text[pos:].strip() == "":
                break
            raise ValueError(f"cannot tokenize at {text[pos:pos + 20]!r}")
        pos = m.end()
        kind = m.lastgroup
        assert kind is not None      # every alternative of _TOKEN is a named group
        out.append((kind, m.group(kind)))
    return out


def _c_int(literal: str) -> int | None:
    """A C integer literal's value (decimal, 0x hex, 0 octal, suffixes), or None."""
    digits = literal.rstrip("uUlL")
    try:
        if len(digits) > 1 and digits[0] == "0" and digits[1] not in "xXbB":
            return int(digits, 8)
        return int(digits, 0) if digits else None
    except ValueError:
        return None


class _Parser:
    def __init__(self, tokens):
        self.t = tokens
        self.i = 0

    def peek(self, k=0):
        j = self.i + k
        return self.t[j] if j < len(self.t) else ("eof", "")

    def take(self):
        tok = self.peek()
        self.i += 1
        return tok

    def expect(self, op):
        tok = self.take()
        if tok[1] != op:
            raise ValueError(f"expected {op!r}, got {tok[1]!r}")

    def parse(self) -> Expr:
        e = self.ternary()
        # a comma expression at top level: the last value wins
        while self.peek()[1] == ",":
            self.take()
            e = self.ternary()
        if self.peek()[0] != "eof":
            raise ValueError(f"trailing tokens at {self.peek()[1]!r}")
        return e

    def ternary(self) -> Expr:
        c = self.binary(1)
        if self.peek()[1] == "?":
            self.take()
            a = self.ternary()
            self.expect(":")
            b = self.ternary()
            return ("cond", c, a, b)
        if self.peek()[1] in ("=", "|=", "&="):
            self.take()
            return self.ternary()  # `(x = y)` has the value of y
        return c

    def binary(self, min_prec) -> Expr:
        left = self.unary()
        while True:
            op = self.peek()[1]
            prec = _BINARY_PREC.get(op)
            if prec is None or prec < min_prec or self.peek()[0] != "op":
                return left
            self.take()
            right = self.binary(prec + 1)
            left = ("bin", op, left, right)

    def _looks_like_cast(self) -> bool:
        # "(" type-words [*...] ")" followed by an operand
        j = self.i + 1
        words = 0
        while self.peek(j - self.i)[0] == "id" and (
            self.peek(j - self.i)[1] in _TYPE_WORDS or self.peek(j - self.i)[1].endswith("_t")
            or words == 1 and self.peek(j - self.i - 1)[1] in ("struct", "union", "enum")
        ):
            j += 1
            words += 1
        while self.peek(j - self.i)[1] == "*":
            j += 1
        if words == 0 or self.peek(j - self.i)[1] != ")":
            return False
        nxt = self.peek(j - self.i + 1)
        return nxt[0] in ("id", "num") or nxt[1] in ("(", "~", "!", "-")

    def unary(self) -> Expr:
        kind, val = self.peek()
        if kind == "op" and val in ("~", "!", "-", "+", "*", "&"):
            self.take()
            return ("un", val, self.unary())
        if kind == "op" and val in ("++", "--"):
            self.take()
            return ("un", val, self.unary())
        if val == "(" and self._looks_like_cast():
            self.take()
            while self.peek()[1] != ")":
                self.take()
            self.take()
            return ("cast", self.unary())
        if kind == "id" and val == "sizeof":
            self.take()
            if self.peek()[1] == "(":
                self._skip_group()
            else:
                self.unary()
            return ("num", None)
        return self.postfix(self.primary())

    def _skip_group(self):
        depth = 0
        while True:
            tok = self.take()
            if tok[0] == "eof":
                raise ValueError("unbalanced parentheses")
            if tok[1] in ("(", "["):
                depth += 1
            elif tok[1] in (")", "]"):
                depth -= 1
                if depth == 0:
                    return

    def primary(self) -> Expr:
        kind, val = self.take()
        if kind == "num":
            return ("num", _c_int(val))
        if kind == "id":
            return ("id", val)
        if kind == "str":
            while self.peek()[0] == "str":
                self.take()
            return ("other", "string")
        if val == "(":
            e = self.ternary()
            while self.peek()[1] == ",":
                self.take()
                e = self.ternary()
            self.expect(")")
            return e
        raise ValueError(f"unexpected {val!r}")

    def postfix(self, e: Expr) -> Expr:
        while True:
            val = self.peek()[1]
            if val == "(":
                self.take()
                args = []
                if self.peek()[1] != ")":
                    args.append(self.ternary())
                    while self.peek()[1] == ",":
                        self.take()
                        args.append(self.ternary())
                self.expect(")")
                name = e[1] if e[0] == "id" else ""
                e = ("call", name, tuple(args))
            elif val in (".", "->"):
                self.take()
                field = self.take()[1]
                e = ("other", f"member:{field}")
            elif val == "[":
                self._skip_group()
                e = ("other", "subscript")
            elif val in ("++", "--"):
                self.take()
            else:
                return e


# a struct field read, as extract rewrites it: `__nfl_field(struct type, field)`
FIELD_READ = "__nfl_field"

_C_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.DOTALL)


def literal_end(text: str, i: int) -> int:
    """Index just past the string or char literal whose quote is at `i`."""
    quote, j, n = text[i], i + 1, len(text)
    while j < n and text[j] != quote:
        j += 2 if text[j] == "\\" else 1
    return j + 1


def _skip(text: str, i: int) -> int:
    """Index just past a string/char literal or comment starting at `i`; `i` if none does."""
    c = text[i]
    if c in "\"'":
        return literal_end(text, i)
    if text.startswith("/*", i):
        j = text.find("*/", i + 2)
        return len(text) if j < 0 else j + 2
    if text.startswith("//", i):
        j = text.find("\n", i)
        return len(text) if j < 0 else j
    return i


def close_paren(text: str, i: int) -> int | None:
    """Index of the `)` matching the `(` at `i`, skipping literals and comments."""
    depth, n = 0, len(text)
    while i < n:
        j = _skip(text, i)
        if j != i:
            i = j
            continue
        c = text[i]
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return None


def split_args(text: str) -> list[str] | None:
    """Top-level comma split of a call's argument text (what its parentheses
    hold), white space folded, literals kept whole and comments dropped;
    None if the brackets do not balance."""
    args, cur, depth, i, n = [], [], 0, 0, len(text)
    while i < n:
        j = _skip(text, i)
        if j != i:
            if text[i] in "\"'":
                cur.append(text[i:j])
            else:
                cur.append(" ")
            i = j
            continue
        c = text[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth < 0:
                return None
        elif c == "," and depth == 0:
            args.append("".join(cur))
            cur = []
            i += 1
            continue
        cur.append(c)
        i += 1
    if depth:
        return None
    args.append("".join(cur))
    out = [" ".join(a.split()) for a in args]
    return [] if out == [""] else out


def call_args(text: str) -> list[str] | None:
    """The arguments of the first parenthesised list in `text` (see split_args)."""
    start = text.find("(")
    close = close_paren(text, start) if start >= 0 else None
    return None if close is None else split_args(text[start + 1:close])


@lru_cache(maxsize=65536)
def parse_expr(text: str) -> Expr:
    """Parse a C expression; anything unparseable becomes ("other", text)."""
    if "/" in text:
        text = _C_COMMENT.sub(" ", text)
    try:
        return _Parser(_tokenize(text)).parse()
    except (ValueError, RecursionError, IndexError):
        return ("other", text)


# ---------------------------------------------------------------- masks

MAX_ALTERNATIVES = 16
_NONE: frozenset[frozenset[str]] = frozenset({frozenset()})


@dataclass(frozen=True)
class Mask:
    """What a gfp expression may contain.

    `alts`: the sets of atoms the paths the analysis sees can produce (a
    ternary or an if/else gives several; capped, beyond which they merge).
    `flags` (their union) says what *some* path sets, `must` (their
    intersection) what *every* path sets. `params`: parameters of the
    enclosing function that flow in, each with the atoms cleared on the way.
    """

    alts: frozenset = _NONE
    params: tuple = ()          # ((index, frozenset_cleared), ...), sorted
    known: bool = True          # False when something did not resolve

    @property
    def flags(self) -> frozenset:
        return frozenset(a for a in frozenset().union(*self.alts) if not is_tag(a))

    @property
    def must(self) -> frozenset:
        return frozenset.intersection(*self.alts) if self.alts else frozenset()

    def may_include(self, atom: str) -> bool:
        return any(atom in a for a in self.alts)

    def some_path(self, present: tuple = (), absent: tuple = ()) -> bool:
        """Does one path set every flag of `present` and none of `absent`?"""
        return any(all(p in a for p in present) and not any(x in a for x in absent) for a in self.alts)

    def param_may_carry(self, atom: str) -> list[int]:
        return [i for i, cleared in self.params if atom not in cleared]


# A path that exists only if a parameter's mask has (or lacks) a flag:
# `if (gfp & __GFP_DIRECT_RECLAIM) mask |= __GFP_NOFAIL;` makes the NOFAIL path
# of `mask` carry the tag "?<param>+__GFP_DIRECT_RECLAIM". A tag is an element
# of the path's set like an atom; the gfp flow resolves it where the
# parameter is bound (check/gfp_flow.py) and drops the paths a caller's mask
# cannot take.
def tag(param: int, has: bool, atom: str) -> str:
    return f"?{param}{'+' if has else '-'}{atom}"


def is_tag(element: str) -> bool:
    return element.startswith("?")


def parse_tag(element: str) -> tuple[int, bool, str]:
    i = 1
    while element[i].isdigit():
        i += 1
    return int(element[1:i]), element[i] == "+", element[i + 1:]


def flag_test(e: Expr) -> tuple[Expr, Expr, bool] | None:
    """`x & F`, `!(x & F)`, `(x & F) == 0`, `(x & F) != 0`: (x, F, whether
    the test is true when x has F); None for any other condition."""
    if e[0] == "un" and e[1] == "!":
        inner = flag_test(e[2])
        return None if inner is None else (inner[0], inner[1], not inner[2])
    if e[0] == "bin" and e[1] in ("==", "!=") and e[3] == ("num", 0):
        inner = flag_test(e[2])
        return None if inner is None else (inner[0], inner[1], inner[2] == (e[1] == "!="))
    if e[0] == "bin" and e[1] == "&" and e[3][0] == "id":
        return (e[2], e[3], True)
    return None


def atoms_mask(atoms) -> Mask:
    return Mask(frozenset({frozenset(atoms)}))


EMPTY = Mask()
UNKNOWN = Mask(known=False)


def _cap(alts: set) -> frozenset:
    if len(alts) <= MAX_ALTERNATIVES:
        return frozenset(alts)
    # too many paths: keep what some path sets (their conditions no longer apply)
    return frozenset({frozenset(a for a in frozenset().union(*alts) if not is_tag(a))})


def _merge_params(a, b):
    out = dict(a)
    for i, cl in b:
        out[i] = out[i] & cl if i in out else cl
    return tuple(sorted(out.items()))


def mask_or(a: Mask, b: Mask) -> Mask:
    return Mask(_cap({x | y for x in a.alts for y in b.alts}), _merge_params(a.params, b.params),
                a.known and b.known)


def mask_union(a: Mask, b: Mask) -> Mask:
    """Either a or b (a ternary, or two branches)."""
    return Mask(_cap(set(a.alts) | set(b.alts)), _merge_params(a.params, b.params), a.known and b.known)


def mask_clear(a: Mask, cleared: frozenset) -> Mask:
    params = tuple((i, cl | cleared) for i, cl in a.params)
    return Mask(_cap({x - cleared for x in a.alts}), params, a.known)


def mask_restrict(a: Mask, keep: frozenset, universe: frozenset) -> Mask:
    """a & K where K is a known constant mask: keep only K's atoms."""
    return mask_clear(a, universe - keep)


class MaskEvaluator:
    """Evaluates expressions to Masks given name resolution callbacks.

    `resolve_macro(name)` returns the macro bodies (texts) known for a name,
    `param_index(name)` the parameter index or None. Atoms come from the
    model's algebra; `___GFP_X` spells the atom `__GFP_X`.
    """

    def __init__(self, atoms: frozenset, composites: dict[str, str],
                 resolve_macro: Callable[[str], list[str]],
                 param_index: Callable[[str], int | None] = lambda n: None,
                 resolve_fn_macro: Callable[[str], list[tuple[tuple[str, ...], str]]] = lambda n: [],
                 resolve_field: Callable[[str, str], Mask | None] = lambda t, f: None):
        self.atoms = atoms
        self.composites = composites
        self.resolve_macro = resolve_macro
        self.param_index = param_index
        self.resolve_fn_macro = resolve_fn_macro
        self.resolve_field = resolve_field
        self._active: set[str] = set()
        self._cache: dict[str, Mask] = {}
        self._bound: list[dict[str, Mask]] = []    # arguments of the function-like macros being expanded

    def expand(self, name: str, args: tuple) -> Mask:
        """`NO_SLEEP(gfp)`: a function-like mask macro, its parameters bound
        to the arguments' masks (evaluated where the macro is used)."""
        bodies = [(params, body) for params, body in self.resolve_fn_macro(name) if len(params) == len(args)]
        if not bodies or name in self._active or len(self._bound) > 8:
            return UNKNOWN
        values = [self.eval(a) for a in args]
        result: Mask | None = None
        self._active.add(name)
        try:
            for params, body in bodies:
                self._bound.append(dict(zip(params, values, strict=True)))
                try:
                    m = self.eval(parse_expr(body))
                finally:
                    self._bound.pop()
                result = m if result is None else mask_union(result, m)
        finally:
            self._active.discard(name)
        return UNKNOWN if result is None else result     # bodies is not empty: never UNKNOWN

    def atom_of(self, name: str) -> str | None:
        if name in self.atoms:
            return name
        if name.startswith("___GFP_") and name[1:] in self.atoms:
            return name[1:]
        return None

    def eval_text(self, text: str) -> Mask:
        return self.eval(parse_expr(text))

    def name(self, name: str) -> Mask:
        atom = self.atom_of(name)
        if atom:
            return atoms_mask([atom])
        if self._bound and name in self._bound[-1]:
            return self._bound[-1][name]
        idx = self.param_index(name)
        if idx is not None:
            return Mask(params=((idx, frozenset()),))
        if name in self._cache and not self._bound:
            return self._cache[name]
        if name in self._active:
            return UNKNOWN
        # the kernel's own masks come from the model (verified against each
        # tree by `model verify`), never from a user-space shim of the tree
        # (`# define GFP_KERNEL 0` in include/linux/raid/pq.h, tools/)
        bodies = [self.composites[name]] if name in self.composites else self.resolve_macro(name)
        if not bodies:
            return UNKNOWN
        self._active.add(name)
        try:
            result = self.eval(parse_expr(bodies[0]))
            for body in bodies[1:]:
                result = mask_union(result, self.eval(parse_expr(body)))
        finally:
            self._active.discard(name)
        if not self._bound:
            self._cache[name] = result
        return result

    def conditional(self, cond: Expr, then: Mask, other: Mask) -> Mask:
        """`cond ? then : other`. When `cond` tests one flag of a mask: only
        the arms the mask allows, and an arm that depends on a parameter's
        flag tagged with that condition (see `tag`); otherwise both arms."""
        test = flag_test(cond)
        flag = self.eval(test[1]) if test is not None else UNKNOWN
        if test is None or not flag.known or flag.params or len(flag.alts) != 1 or len(flag.must) != 1:
            return mask_union(then, other)
        atom = next(iter(flag.must))
        tested = self.eval(test[0])
        if not tested.known:
            return mask_union(then, other)
        yes, no = (then, other) if test[2] else (other, then)
        carriers = tested.param_may_carry(atom)
        with_flag = any(atom in a for a in tested.alts)
        without = any(atom not in a for a in tested.alts)
        if carriers and without:
            if with_flag or len(carriers) > 1:
                return mask_union(then, other)      # more than one way to the flag: no tag
            i = carriers[0]
            if not with_flag:
                yes = Mask(frozenset(a | {tag(i, True, atom)} for a in yes.alts), yes.params, yes.known)
                no = Mask(frozenset(a | {tag(i, False, atom)} for a in no.alts), no.params, no.known)
            return mask_union(yes, no)
        if not without:
            return yes
        return mask_union(yes, no) if with_flag else no

    def eval(self, e: Expr) -> Mask:
        kind = e[0]
        if kind == "id":
            return self.name(e[1])
        if kind == "num":
            return EMPTY if e[1] == 0 else UNKNOWN
        if kind == "cast":
            return self.eval(e[1])
        if kind == "cond":
            return self.conditional(e[1], self.eval(e[2]), self.eval(e[3]))
        if kind == "call":
            if e[1] == FIELD_READ and len(e[2]) == 2 and e[2][0][0] == "id" and e[2][1][0] == "id":
                found = self.resolve_field(e[2][0][1], e[2][1][1])
                return UNKNOWN if found is None else found
            return self.expand(e[1], tuple(e[2]))
        if kind == "bin":
            op, a, b = e[1], e[2], e[3]
            if op in ("|", "^", "+"):
                return mask_or(self.eval(a), self.eval(b))
            if op == "&":
                for x, y in ((a, b), (b, a)):
                    if y[0] == "un" and y[1] == "~":
                        return mask_clear(self.eval(x), self.eval(y[2]).must)
                ma, mb = self.eval(a), self.eval(b)
                if mb.known and not mb.params:
                    return mask_restrict(ma, mb.flags, self.atoms)
                if ma.known and not ma.params:
                    return mask_restrict(mb, ma.flags, self.atoms)
                return mask_or(ma, mb)
            if op == "-":
                # (X - Y) as a way of writing X & ~Y in flag arithmetic
                return mask_clear(self.eval(a), self.eval(b).must)
            return UNKNOWN
        return UNKNOWN


_INT_OPS = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
    "<<": lambda a, b: a << b if 0 <= b < 64 else None, ">>": lambda a, b: a >> b if 0 <= b < 64 else None,
    "|": lambda a, b: a | b, "&": lambda a, b: a & b,
    "/": lambda a, b: a // b if b else None,
}


def const_value(e: Expr, resolve_macro: Callable[[str], list[str]], known: dict[str, int] | None = None,
                depth: int = 0) -> int | None:
    """The integer value of a constant expression (literals, macros, arithmetic), or None."""
    if depth > 16:
        return None
    kind = e[0]
    if kind == "num":
        return e[1]
    if kind == "cast":
        return const_value(e[1], resolve_macro, known, depth + 1)
    if kind == "id":
        if known and e[1] in known:
            return known[e[1]]
        if e[1].startswith("SZ_") and e[1][3:-1].isdigit() and e[1][-1] in "KMG":
            return int(e[1][3:-1]) << {"K": 10, "M": 20, "G": 30}[e[1][-1]]
        bodies = resolve_macro(e[1])
        if len(bodies) != 1:
            return None
        return const_value(parse_expr(bodies[0]), resolve_macro, known, depth + 1)
    if kind == "un" and e[1] in ("-", "+"):
        v = const_value(e[2], resolve_macro, known, depth + 1)
        return None if v is None else (-v if e[1] == "-" else v)
    if kind == "bin" and e[1] in _INT_OPS:
        a = const_value(e[2], resolve_macro, known, depth + 1)
        b = const_value(e[3], resolve_macro, known, depth + 1) if a is not None else None
        return None if a is None or b is None else _INT_OPS[e[1]](a, b)
    return None


# ---------------------------------------------------------------- NULL tests through definitions

# skeleton names (nulltest.py): the tested result, a definition's parameter i, anything else
TEST_RES = "__nfl_res"
TEST_ARG = "__nfl_a"
TEST_UNKNOWN = "__nfl_x"
NULL, NONNULL = "null", "nonnull"
_FLIP = {NULL: NONNULL, NONNULL: NULL, None: None}

# A test definition as the link stage hands it to null_polarity: (parameter
# count, value skeleton or "", acts) -- see FileFacts.test_defs.
TestDef = tuple[int, str, tuple[str, ...]]


class NullTests:
    """Is a skeleton (nulltest.py) a NULL test of `__nfl_res`?

    `definitions(name)` gives every definition the tree has of a called name
    (or the built-in ones). A call's value is its definitions' value with
    the parameters bound to the arguments; when a name has several
    definitions (per config, per file) all of them must agree, so a macro
    that tests only in debug builds does not count. Polarity: NULL when the
    expression is true if the result is NULL (`!p`, `p == NULL`), NONNULL
    when it is true if the result is set (`p`). Inside `||`/`&&` only a
    NULL-true side makes the whole a test (as loops.is_null_test)."""

    MAX_DEPTH = 12

    def __init__(self, definitions: Callable[[str], list[TestDef]]):
        self.definitions = definitions

    def is_test(self, text: str, stmt: bool = False) -> bool:
        e = parse_expr(text)
        if stmt:
            return e[0] == "call" and self._acts(e, {}, 0)
        return self.tests(e, {}, True, 0)

    def tests(self, e: Expr, env: dict, whole: bool, depth: int) -> bool:
        pol = self.polarity(e, env, depth)
        return pol == NULL or (whole and pol == NONNULL)

    def _bind(self, e: Expr, env: dict) -> tuple[Expr, dict]:
        while e[0] == "id" and e[1] in env:
            e, env = env[e[1]]
        while e[0] == "cast":
            e = e[1]
        return e, env

    def polarity(self, e: Expr, env: dict, depth: int) -> str | None:
        if depth > self.MAX_DEPTH:
            return None
        e, env = self._bind(e, env)
        kind = e[0]
        if kind == "id":
            return NONNULL if e[1] == TEST_RES else None
        if kind == "un" and e[1] == "!":
            return _FLIP[self.polarity(e[2], env, depth + 1)]
        if kind == "bin" and e[1] in ("==", "!="):
            for x, y in ((e[2], e[3]), (e[3], e[2])):
                y, _ = self._bind(y, env)
                if y == ("num", 0):
                    pol = self.polarity(x, env, depth + 1)
                    return _FLIP[pol] if e[1] == "==" else pol
            return None
        if kind == "bin" and e[1] in ("||", "&&"):
            if self.tests(e[2], env, False, depth + 1) or self.tests(e[3], env, False, depth + 1):
                return NULL
            return None
        if kind == "call":
            if e[1] == "__builtin_expect":      # GCC: its value is its first argument's
                return self.polarity(e[2][0], env, depth + 1) if e[2] else None
            found = set()
            for nparams, value, _acts in self._definitions(e):
                if not value:
                    return None
                found.add(self.polarity(parse_expr(value), self._env(e, nparams, env), depth + 1))
            return found.pop() if len(found) == 1 else None
        return None

    def _definitions(self, call: Expr) -> list[TestDef]:
        return [d for d in self.definitions(call[1]) if d[0] <= len(call[2])] if call[1] else []

    @staticmethod
    def _env(call: Expr, nparams: int, env: dict) -> dict:
        return {f"{TEST_ARG}{i}": (call[2][i], env) for i in range(nparams)}

    def _acts(self, call: Expr, env: dict, depth: int) -> bool:
        """Does the statement `call;` test its arguments: every definition
        has an `if` on a NULL test of them, or a call statement that does."""
        defs = self._definitions(call)
        if not defs or depth > self.MAX_DEPTH:
            return False
        for nparams, _value, acts in defs:
            inner = self._env(call, nparams, env)
            if not any(self.tests(parse_expr(act[3:]), inner, True, depth + 1) if act.startswith("if:")
                       else self._acts_text(act[3:], inner, depth + 1) for act in acts):
                return False
        return True

    def _acts_text(self, text: str, env: dict, depth: int) -> bool:
        e = parse_expr(text)
        return e[0] == "call" and self._acts(e, env, depth)
