"""Extract: one file's bytes -> FileFacts. The only stage that touches tree-sitter.

Kernel annotations (`__init`, `__must_check`, `__attribute__((...))`, ...) are
blanked with spaces of the same length before parsing, so every byte offset
and column stays put while far fewer functions end up inside ERROR nodes.
Candidates are found with tree-sitter queries (run in C); Python only looks at
what they return: function headers, calls, assignments and loops.
"""
from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field

import tree_sitter as ts
import tree_sitter_c as tsc

from .cexpr import FIELD_READ, TEST_RES, close_paren, flag_test, parse_expr, split_args
from .facts import CallSite, FileFacts, FunctionFacts, NullTestVia, ReturnedCall, Span
from .loops import (
    FOR_EACH_MACRO,
    NULL_TEST_CALLS,
    LoopAnalyser,
    errno_callees,
    failure_codes,
    is_loop,
    is_null_test,
    ops_members,
    result_key,
    strip,
)
from .model import load_model
from .nulltest import (
    bounded_before,
    function_test_def,
    kept_test_defs,
    macro_test_defs,
    overflow_params,
    runtime_values,
    via_test,
)
from .relevance import INTERESTING_MACRO, RELEVANT_ARG
from .source import SourceText, decode, node_text

LANGUAGE = ts.Language(tsc.language())

# ------------------------------------------------------------ preprocessing

_ANNOTATION_WORDS = (
    "__init __exit __initdata __exitdata __initconst __ref __refdata __cold __hot "
    "__always_inline noinline __noinline __must_check __maybe_unused __used notrace "
    "__weak __visible asmlinkage __latent_entropy __force __user __iomem __rcu __percpu "
    "__kernel __bitwise __private __safe __nocast __sched __flatten __noreturn __pure "
    "__malloc __meminit __meminitdata __init_or_module __always_unused __nocfi noinstr "
    "__noclone __randomize_layout __packed ____cacheline_aligned "
    "____cacheline_aligned_in_smp __cacheline_aligned __cacheline_aligned_in_smp "
    "__read_mostly __ro_after_init __head __cpuidle __kprobes __irq_entry __noendbr "
    "__fastpath_inline __no_kcsan __no_sanitize_address __init_memblock __net_init "
    "__net_exit __devinit __devexit __nostackprotector"
).split()
_ANNOTATION_CALLS = (
    "__releases __acquires __must_hold __printf __scanf __aligned __section "
    "__counted_by __alloc_size __realloc_size __cond_acquires __cond_releases "
    "__assume_aligned __nonstring __no_context_analysis"
).split()
_ANNOTATIONS = re.compile(
    rb"\b(?:" + b"|".join(re.escape(w.encode()) for w in _ANNOTATION_WORDS) + rb")\b"
    rb"|\b(?:" + b"|".join(re.escape(w.encode()) for w in _ANNOTATION_CALLS) + rb")\s*\([^()\n]*\)"
    rb"|\b__attribute__\s*\(\((?:[^()]|\((?:[^()]|\([^()]*\))*\))*\)\)"
)


def blank_annotations(src: bytes) -> bytes:
    """Replace kernel annotations by spaces of the same length (newlines kept)."""
    def spaces(m: re.Match) -> bytes:
        return re.sub(rb"[^\n]", b" ", m.group(0))
    return _ANNOTATIONS.sub(spaces, src)


# `list_for_each_entry(pos, head, member)` on its own line, the loop body on
# the next line without braces: tree-sitter takes the macro for a type and the
# rest of the function (and the functions after it) for a broken definition.
_BARE_MACRO_LOOP = re.compile(
    rb"^([ \t]*)([A-Za-z_]\w*)(\((?:[^()]|\((?:[^()]|\((?:[^()]|\([^()]*\))*\))*\))*\))[ \t]*(?=\n[ \t]*[^\s{#\\])",
    re.MULTILINE,
)
_STATEMENT_END = re.compile(rb"(?:[;{}):]|\belse|\bdo)$")


def rewrite_bare_macro_loops(src: bytes) -> bytes:
    """Brace-less macro loops become `while (args)` of the same length: the
    name is replaced by `while` and spaces, so offsets and columns hold. The
    loop analysis recognises the rewritten loop (its source does not start
    with `while`) and treats it as a per-element loop."""
    def rewrite(m: re.Match) -> bytes:
        name = m.group(2)
        if not FOR_EACH_MACRO.search(name.decode("ascii")) or len(name) < 5:
            return m.group(0)
        before = src[:m.start()].rstrip()
        if before.endswith(b"*/"):
            start = before.rfind(b"/*")
            before = before[:start].rstrip() if start >= 0 else before
        if not _STATEMENT_END.search(before[-8:]):
            return m.group(0)
        return m.group(0).replace(name, b"while" + b" " * (len(name) - 5), 1)
    return _BARE_MACRO_LOOP.sub(rewrite, src)


# `#ifdef CONFIG_X` / `label:` / `#endif`: a label with no statement before
# `#endif` is an ERROR for tree-sitter, which then loses the rest of the
# function. Conditionals that hold nothing but labels are unwrapped (their
# directive lines blanked): the labels stay where they are.
_LABEL_ONLY_CONDITIONAL = re.compile(
    rb"^[ \t]*#[ \t]*if(?:def|ndef)?\b[^\n]*\n"
    rb"(?:[ \t]*(?:[A-Za-z_]\w*[ \t]*:(?!:)[ \t]*(?:/\*[^\n]*?\*/[ \t]*)?)?\n)+"
    rb"[ \t]*#[ \t]*endif\b[^\n]*",
    re.MULTILINE,
)


def unwrap_label_conditionals(src: bytes) -> bytes:
    def blank(m: re.Match) -> bytes:
        text = m.group(0)
        first = text.index(b"\n")
        last = text.rindex(b"\n")
        return b" " * first + text[first:last + 1] + b" " * (len(text) - last - 1)
    return _LABEL_ONLY_CONDITIONAL.sub(blank, src)


def prepare_source(src: bytes) -> bytes:
    """The bytes tree-sitter parses: `src` with the rewrites above, same length."""
    return unwrap_label_conditionals(rewrite_bare_macro_loops(blank_annotations(src)))


_DEFINE = re.compile(
    rb"^[ \t]*#[ \t]*define[ \t]+([A-Za-z_]\w*)(?![\w(])[ \t]*((?:[^\n\\]|\\.|\\\n)*)",
    re.MULTILINE,
)
_COMMENT = re.compile(rb"/\*.*?\*/|//[^\n]*", re.DOTALL)
_INTERESTING_MACRO = INTERESTING_MACRO   # relevance.py: shape, or a name of the tree's mask macros
_ALIAS_BODY = re.compile(rb"^\(?\s*[A-Za-z_]\w*\s*\)?$")
# integer constants (page orders, sizes, counts, range bounds), whatever their name
_NUMERIC_BODY = re.compile(rb"^\(?\s*(?:0[xX][0-9a-fA-F]+|\d+)[uUlL]*\s*\)?$")
# constant arithmetic over numbers and names (`(SZ_1M * 8)`, `(1 << RING_SHIFT)`, `(BASE + 1)`)
_CONST_ARITH_BODY = re.compile(rb"^[\s()]*(?:[A-Za-z_]\w*|\d+[uUlL]*|0[xX][0-9a-fA-F]+[uUlL]*)"
                               rb"(?:[\s()]*(?:<<|>>|[-+*/|])[\s()]*(?:[A-Za-z_]\w*|\d+[uUlL]*|0[xX][0-9a-fA-F]+[uUlL]*))*"
                               rb"[\s()]*$")
# a file the byte prefilter leaves out (a driver's header of constants)
# gives its integer constants, unless it holds more than this many (register maps)
MAX_CONSTANTS_UNPARSED = 64


_DEFINE_FN = re.compile(
    rb"^[ \t]*#[ \t]*define[ \t]+([A-Za-z_]\w*)\(([^()\n]*)\)[ \t]*((?:[^\n\\]|\\.|\\\n)*)",
    re.MULTILINE,
)
_CALL_BODY = re.compile(r"^\(*\s*(?:\([\w\s*]+\)\s*)?([A-Za-z_]\w*)\s*\((.*)\)\s*\)*$", re.DOTALL)
_GFP_PARAM = re.compile(r"gfp|flags|mask", re.IGNORECASE)


_MACRO_CALL = re.compile(r"(?<![\w.])(?<!->)([A-Za-z_]\w*)\s*\(")
_NOT_CALLS = frozenset(
    "if while for switch return sizeof typeof __typeof__ __typeof _Generic do else case "
    "defined alignof _Alignof __alignof__ __builtin_choose_expr __builtin_constant_p "
    "__builtin_types_compatible_p offsetof".split())
# kernel macros whose value is their one argument's: 6.10+ allocation
# profiling spells `#define foo(...) alloc_hooks(foo_noprof(__VA_ARGS__))`
_TRANSPARENT_MACROS = frozenset({"alloc_hooks"})
_VA_SLOTS = 8       # `...` stands for this many trailing parameters
_VA_ARG = re.compile(r"^(?:##\s*)?([A-Za-z_]\w*)$")


def _macro_params(text: str) -> tuple[tuple[str, ...], str | None]:
    """Parameter names with a variadic tail expanded into `_VA_SLOTS` names,
    and the name the body uses for the tail (`__VA_ARGS__`, or `args` for `args...`)."""
    params = [p.strip() for p in text.split(",") if p.strip()]
    if not params or not params[-1].endswith("..."):
        return tuple(params), None
    tail = params.pop()[:-3].strip() or "__VA_ARGS__"
    return tuple(params) + tuple(f"__nfl_va{i}" for i in range(_VA_SLOTS)), tail


def call_macros(src: bytes, lines: "SourceText") -> list[FunctionFacts]:
    """Function-like macros that pass a gfp parameter on, as wrapper functions.

    Every call in the body is looked at, so one-call bodies
    (`#define alloc_inode_sb(_sb, _cache, _gfp) kmem_cache_alloc_lru(_cache, ..., _gfp)`),
    statement expressions (`({ int _ret = grow(_d, 1, _gfp); ...; _ret; })`),
    conditionals and `do { } while (0)` bodies all forward their mask like a
    function would. A variadic tail forwarded whole (`foo_noprof(__VA_ARGS__)`)
    binds position by position. Only a one-call body (through `alloc_hooks()`)
    returns its call's result."""
    out = []
    for m in _DEFINE_FN.finditer(src):
        raw = m.group(3)
        if len(raw) > 4000 or b"(" not in raw:
            continue
        # same length as the source: comments and line continuations blanked
        body = decode(_COMMENT.sub(lambda c: re.sub(rb"[^\n]", b" ", c.group(0)), raw).replace(b"\\\n", b" \n"))
        params, tail = _macro_params(decode(m.group(2)))
        fixed = [p for p in params if not p.startswith("__nfl_va")]
        gfp_params = [p for p in fixed if _GFP_PARAM.search(p)]
        base = m.start(3)
        sites: list[CallSite] = []
        whole: CallSite | str | None = None      # the call the macro's value is, or "transparent"
        stripped = body.strip()
        for call in _MACRO_CALL.finditer(body):
            name = call.group(1)
            if name in _NOT_CALLS:
                continue
            close = close_paren(body, call.end() - 1)
            if close is None:
                break
            args = split_args(body[call.end():close])
            if args is None:
                continue
            forwards = False
            if tail is not None and args and (va := _VA_ARG.match(args[-1])) and va.group(1) == tail:
                args = args[:-1] + [p for p in params if p.startswith("__nfl_va")]
                # an alias (every fixed parameter passed on as it is), not a printk-style wrapper
                forwards = all(p in (a.strip("() ") for a in args) for p in fixed)
            if name in _TRANSPARENT_MACROS:
                if call.start() == body.index(stripped) and body[close + 1:].strip() == "":
                    whole = "transparent"
                continue
            if not (forwards or any(_RELEVANT_ARG.search(a) or not set(gfp_params).isdisjoint(_WORD.findall(a))
                                    for a in args)):
                continue
            row, col = lines.point(base + len(body[:call.start()].encode("utf-8")))
            text = decode(lines.line_bytes(row))
            span = Span(row + 1, lines.char_col(row, col), row + 1, len(text) + 1)
            sites.append(CallSite(name, span, tuple(args)))
            if whole == "transparent" or (whole is None and (one := _CALL_BODY.match(stripped))
                                          and one.group(1) == name and body[close + 1:].strip(") \n") == ""):
                whole = sites[-1]
        if not sites:
            continue
        row = src.count(b"\n", 0, m.start())
        text = decode(lines.line_bytes(row))
        header = Span(row + 1, 1, row + 1, len(text) + 1)
        returns = (ReturnedCall(whole.callee, whole.span, whole.args),) if isinstance(whole, CallSite) else ()
        out.append(FunctionFacts(
            name=m.group(1).decode("ascii"), is_static=False, params=params,
            span=header, calls=tuple(sites), returns=returns, retry_loops=()))
    return out


def mask_macros(src: bytes) -> list[tuple[str, tuple[str, ...], str]]:
    """Function-like #defines whose body computes a gfp mask from their
    arguments (`#define NO_SLEEP(g) ((g) & ~__GFP_DIRECT_RECLAIM)`)."""
    out = []
    for m in _DEFINE_FN.finditer(src):
        body = _COMMENT.sub(b" ", m.group(3).replace(b"\\\n", b" ")).strip()
        if not body or len(body) > 400 or not _INTERESTING_MACRO.search(body) or b";" in body:
            continue
        params = tuple(p.strip() for p in m.group(2).decode("utf-8", "replace").split(",") if p.strip())
        if any(not p.isidentifier() for p in params):
            continue     # variadic: not a mask computation
        out.append((m.group(1).decode("ascii"), params, body.decode("utf-8", "replace")))
    return out


def object_like_macros(src: bytes) -> list[tuple[str, str]]:
    """Object-like #defines that can matter for a gfp mask or a vmalloc range.

    Kept: bodies that mention GFP/NOFAIL/VMALLOC, plain aliases
    (`#define A B`) through which such a body can be reached, and integer
    constants and constant arithmetic (`#define RING_ORDER 4`,
    `#define RING_LEVELS (RING_BASE + 1)`): orders, sizes and bounds.
    """
    out = []
    for m in _DEFINE.finditer(src):
        body = m.group(2).replace(b"\\\n", b" ")
        body = _COMMENT.sub(b" ", body).strip()
        if not body or len(body) > 400:
            continue
        if _INTERESTING_MACRO.search(body) or _ALIAS_BODY.match(body) or \
                _NUMERIC_BODY.match(body) or _CONST_ARITH_BODY.match(body):
            out.append((m.group(1).decode("ascii"), decode(body)))
    return out


def unparsed_constants(src: bytes) -> list[tuple[str, str]]:
    """The integer constants of a file the byte prefilter leaves out: the
    constant macros object_like_macros keeps (aliases included, a constant
    may be spelt through one), none if there are more than
    MAX_CONSTANTS_UNPARSED (a register map, not a driver's own header)."""
    if b"define" not in src:
        return []
    found = object_like_macros(src)
    return found if len(found) <= MAX_CONSTANTS_UNPARSED else []


# ------------------------------------------------------------ queries

def _query(text: str) -> ts.Query:
    return ts.Query(LANGUAGE, text)


# One query, one pass over the tree: every node kind later stages look at.
_Q_FILE = _query("""
(function_definition body: (compound_statement)) @fn
(call_expression function: (identifier) arguments: (argument_list)) @call
(assignment_expression left: (identifier)) @assign
(init_declarator declarator: (identifier)) @assign
(init_declarator declarator: (pointer_declarator declarator: (identifier))) @assign
[(do_statement) (while_statement) (for_statement)] @loop
(goto_statement label: (statement_identifier)) @goto
(labeled_statement label: (statement_identifier)) @label
(return_statement) @ret
(break_statement) @brk
(continue_statement) @cont
(update_expression argument: (_) @write)
(assignment_expression left: (_) @write)
(init_declarator declarator: (identifier) @write)
(init_declarator declarator: (pointer_declarator declarator: (identifier) @write))
(pointer_expression argument: (_) @addr)
(ERROR) @err
(assignment_expression left: (field_expression field: (field_identifier))) @fassign
(declaration type: (struct_specifier name: (type_identifier))
             declarator: (init_declarator value: (initializer_list))) @initdecl
(translation_unit (declaration type: (struct_specifier name: (type_identifier))) @globaldecl)
(struct_specifier name: (type_identifier) body: (field_declaration_list)) @structdef
(if_statement condition: (_) @cond)
(while_statement condition: (_) @cond)
(do_statement condition: (_) @cond)
(conditional_expression condition: (_) @cond)
""")

_CONDITIONAL_TYPES = frozenset({
    "if_statement", "else_clause", "switch_statement", "case_statement",
    "conditional_expression", "while_statement", "for_statement", "do_statement",
})
# A call is kept only if an argument can carry a gfp mask or a vmalloc bound:
# it names a GFP flag or macro, a gfp_t variable, or a *start/*end/VADDR value.
_RELEVANT_ARG = RELEVANT_ARG      # relevance.py: shared with the tree scan
_WORD = re.compile(r"\w+")
_ENOMEM = re.compile(r"-\s*ENOMEM\b")
_GFP_T_NAMES = re.compile(r"\bgfp_t\s+(?:const\s+)?([A-Za-z_]\w*)")
# `ctx->gfp`, `ctx.gfp`: a field read off a plain variable
_FIELD_READ = re.compile(r"(?<![\w.>])([A-Za-z_]\w*)\s*(?:->|\.)\s*([A-Za-z_]\w*)\b(?!\s*(?:->|\.|\(|\[))")
# `(&obj)->gfp`, `objs[i].gfp`, `(&objs[i])->gfp`: a field of a named object
# (a local pointer to a global object, substituted by its value, reads so)
_NOT_FOLLOWED = r"\b(?!\s*(?:->|\.|\(|\[))"
_OBJECT_FIELD_READ = re.compile(
    r"\(\s*&\s*([A-Za-z_]\w*)\s*(?:\[[^\[\]]*\]\s*)?\)\s*->\s*([A-Za-z_]\w*)" + _NOT_FOLLOWED
    + r"|(?<![\w.>])([A-Za-z_]\w*)\s*\[[^\[\]]*\]\s*\.\s*([A-Za-z_]\w*)" + _NOT_FOLLOWED)
_STRUCT_DECL = r"\b(?:struct|union)\s+([A-Za-z_]\w*)\s*(?:\*\s*)*(?:const\s+)?{}\s*[,;=)\[]"


def _struct_type(fn_text: str, name: str, cache: dict[str, str | None]) -> str | None:
    """The struct a local or parameter is declared as (`struct foo *name`)."""
    if name not in cache:
        m = re.search(_STRUCT_DECL.format(re.escape(name)), fn_text)
        cache[name] = m.group(1) if m else None
    return cache[name]


def field_reads(text: str, fn_text: str, cache: dict[str, str | None],
                objects: dict[str, dict[str, str]] | None = None) -> str:
    """`ctx->gfp` -> `__nfl_field(foo, gfp)` when ctx is a `struct foo`, so
    the link stage can give the field the masks assigned to it tree-wide.
    `fn_text` holds the declarations to look in: the function's, then the
    file-scope ones (global objects, `static const struct foo cfg = {...}`).
    A field of a const object of `objects` reads as its initialiser's value."""
    if "->" not in text and "." not in text:
        return text

    def rewrite(m: re.Match) -> str:
        name, field = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
        if objects and name in objects and field in objects[name]:
            return f"({objects[name][field]})"
        kind = _struct_type(fn_text, name, cache)
        return f"{FIELD_READ}({kind}, {field})" if kind else m.group(0)
    return _FIELD_READ.sub(rewrite, _OBJECT_FIELD_READ.sub(rewrite, text))


# ------------------------------------------------------------ local values

@dataclass
class _Event:
    start: int
    end: int
    op: str                          # "=", "|=", "&=", ...
    rhs: str
    cond_ranges: list[tuple[int, int]] = field(default_factory=list)
    arm: tuple[int, str] | None = None      # (if-chain start, branch) for if/else-if exclusivity
    implied: tuple[str, ...] = ()           # flags the guarding `if (x & FLAG)` proves set
    guard: str = ""                         # the guarding `if` condition, parentheses and spaces removed
    cond: str = ""                          # that condition as written, when it tests one flag of a mask

    def unconditional_for(self, use: int) -> bool:
        return all(s <= use < e for s, e in self.cond_ranges)


class LocalValues:
    """The value a local variable (or reassigned parameter) holds at a use.

    Assignments are folded in source order: an unconditional `=` replaces,
    `|=` adds, an unconditional `&=` masks; a conditional `=`/`|=` joins as an
    alternative (the mask *may* hold either). The result is expression text.
    """

    MAX_DEPTH = 4
    MAX_LEN = 4000

    _WORD = re.compile(r"(?<![\w.>])[A-Za-z_]\w*")

    def __init__(self, events: dict[str, list[_Event]]):
        self.events = events

    def value_at(self, name: str, use: int, depth: int = 0, clear_guards: frozenset[str] = frozenset()) -> str:
        """`clear_guards`: conditions under which a guarded `&=` counts as
        unconditional at this use (see `range_guards`)."""
        value = name
        chains: dict[int, tuple[str, str]] = {}     # if-chain -> (value before it, last branch)
        for ev in self.events.get(name, ()):
            if ev.start >= use:
                break
            if ev.start <= use < ev.end:
                continue            # the use is inside this assignment's RHS
            unconditional = ev.unconditional_for(use) or (ev.op == "&=" and ev.guard in clear_guards)
            base = value
            if not unconditional and ev.arm is not None:
                chain, branch = ev.arm
                before = chains.get(chain)
                if before is None:
                    chains[chain] = (value, branch)
                elif before[1] != branch:
                    base = before[0]   # another branch of the same if/else chain: they never combine
                    chains[chain] = (before[0], branch)
            rhs = self.substitute(ev.rhs, ev.start, depth + 1, clear_guards)
            if ev.op == "=":
                new = rhs
            elif ev.op == "&=":
                if not unconditional:
                    continue
                new = f"({base}) & ({rhs})"
            else:
                new = f"({base}) | ({rhs})"
            if ev.implied and not unconditional:
                new = f"({new}) | " + " | ".join(ev.implied)
            if unconditional:
                value = new
            elif ev.cond:       # the mask's own flag test: the evaluator keeps the arms apart by it
                cond = self.substitute(ev.cond, ev.start, depth + 1, clear_guards)
                value = f"(({cond}) ? ({new}) : ({value}))"
            else:
                value = f"(__nfl_either ? ({value}) : ({new}))"
            if len(value) > self.MAX_LEN:
                return name
        return value

    def substitute(self, text: str, use: int, depth: int = 0, clear_guards: frozenset[str] = frozenset()) -> str:
        if not self.events or depth > self.MAX_DEPTH:
            return text
        events = self.events

        def value(m: re.Match) -> str:
            name = m.group(0)
            return "(" + self.value_at(name, use, depth, clear_guards) + ")" if name in events else name
        out = self._WORD.sub(value, text)
        return out if len(out) <= self.MAX_LEN else text


def range_guards(start: str, end: str, default: tuple[str, str]) -> frozenset[str]:
    """Conditions that hold exactly when a range call's start/end are not the
    default range. A mask cleared under one of them (`if (start !=
    VMALLOC_START || end != VMALLOC_END) gfp &= ~__GFP_NOFAIL;`) is cleared
    on every path that reaches the call with a narrow range, so for that
    call the clear counts as unconditional."""
    s, e = ("".join(x.split()).strip("()") for x in (start, end))
    ds, de = default
    return frozenset({f"{s}!={ds}||{e}!={de}", f"{e}!={de}||{s}!={ds}",
                      f"!{s}=={ds}&&{e}=={de}", f"!{e}=={de}&&{s}=={ds}"})


def _guard_condition(node: ts.Node, stop: ts.Node) -> str:
    """The condition of the `if` whose then-branch holds `node` directly."""
    child, p = node, node.parent
    while p is not None and p != stop and p.type in ("expression_statement", "compound_statement"):
        child, p = p, p.parent
    if p is None or p.type != "if_statement" or child != p.child_by_field_name("consequence"):
        return ""
    return node_text(p.child_by_field_name("condition"))


def _guard_text(node: ts.Node, stop: ts.Node) -> str:
    return re.sub(r"[\s()]", "", _guard_condition(node, stop))


def _flag_test_condition(node: ts.Node, stop: ts.Node) -> str:
    """The guarding condition when it tests one flag of a mask (`gfp & F`,
    `!(gfp & F)`, `(gfp & F) == 0`; cexpr.flag_test), else ""."""
    cond = _guard_condition(node, stop)
    return cond if cond and "&" in cond and flag_test(parse_expr(cond)) is not None else ""


# ------------------------------------------------------------ functions

def _declarator_name(decl: ts.Node | None) -> tuple[str, ts.Node | None]:
    """Name and function_declarator of a (possibly pointer-wrapped) declarator."""
    while decl is not None:
        if decl.type == "function_declarator":
            inner = decl.child_by_field_name("declarator")
            while inner is not None and inner.type in ("pointer_declarator", "parenthesized_declarator"):
                inner = inner.child_by_field_name("declarator") or \
                    (inner.named_children[0] if inner.named_children else None)
            return (node_text(inner) if inner is not None and inner.type == "identifier" else "", decl)
        decl = decl.child_by_field_name("declarator")
    return "", None


def _param_names(fdecl: ts.Node) -> tuple[str, ...]:
    params = fdecl.child_by_field_name("parameters")
    names = []
    if params is None:
        return ()
    for p in params.named_children:
        if p.type != "parameter_declaration":
            if p.type == "variadic_parameter":
                names.append("...")
            continue
        d = p.child_by_field_name("declarator")
        while d is not None and d.type not in ("identifier",):
            d = d.child_by_field_name("declarator")
        names.append(node_text(d) if d is not None else "")
    if names == [""]:
        return ()  # (void)
    return tuple(names)


def _is_static(fn: ts.Node) -> bool:
    for c in fn.children:
        if c.type == "storage_class_specifier" and c.text == b"static":
            return True
    return False


def _cond_ranges(node: ts.Node, stop: ts.Node) -> list[tuple[int, int]]:
    out = []
    p = node.parent
    while p is not None and p != stop:
        if p.type in _CONDITIONAL_TYPES:
            out.append((p.start_byte, p.end_byte))
        p = p.parent
    return out


_FLAG_TEST = re.compile(r"&\s*\(?\s*(__GFP_[A-Z_]+)\b")


def _branch_of(node: ts.Node, stop: ts.Node) -> tuple[tuple[int, str] | None, tuple[str, ...]]:
    """The if/else-if chain arm an assignment sits in, and the gfp flags its
    guard proves set (`if (gfp & __GFP_DIRECT_RECLAIM) mask |= __GFP_NOFAIL;`)."""
    child, p = node, node.parent
    while p is not None and p != stop and p.type != "if_statement":
        if p.type in ("while_statement", "for_statement", "do_statement", "switch_statement"):
            return None, ()
        child, p = p, p.parent
    if p is None or p == stop:
        return None, ()
    implied: tuple[str, ...] = ()
    if child == p.child_by_field_name("consequence"):
        branch = "then"
        cond = node_text(p.child_by_field_name("condition"))
        if not cond.lstrip("( ").startswith("!") and "||" not in cond:
            implied = tuple(_FLAG_TEST.findall(cond))
            if "gfpflags_allow_blocking(" in cond:
                implied += ("__GFP_DIRECT_RECLAIM",)
    else:
        branch = "else"
    # climb an else-if chain to its first `if`
    while p.parent is not None and p.parent.type == "else_clause" and p.parent.parent is not None \
            and p.parent.parent.type == "if_statement":
        branch = "else/" + branch
        p = p.parent.parent
    return (p.start_byte, branch), implied


class _Function:
    """Working state for one function (or macro-headed block) while extracting."""

    def __init__(self, node: ts.Node, body: ts.Node, name: str, params: tuple[str, ...],
                 static: bool, header: ts.Node):
        self.node = node
        self.body = body
        self.name = name
        self.params = params
        self.static = static
        self.header = header
        self.calls: list[tuple[ts.Node, ts.Node, ts.Node]] = []   # (call, fn, args)
        self.events: dict[str, list[_Event]] = {}
        self.assign_nodes: list[tuple[ts.Node, ts.Node]] = []      # (assign, lhs)
        self.field_assigns: list[tuple[ts.Node, ts.Node]] = []     # (assign, lhs) with a field lhs


_SYSCALL_LIKE = re.compile(r"^(?:COMPAT_)?SYSCALL_DEFINE\d$")
_TOP_CONTAINERS = frozenset({"preproc_if", "preproc_ifdef", "preproc_else", "preproc_elif", "ERROR"})


def _macro_headed_functions(root: ts.Node) -> list["_Function"]:
    """`SYSCALL_DEFINE3(open, ...) { ... }` and the like, at file scope.

    tree-sitter sees a call statement followed by a bare block; treat the pair
    as a function named by the macro's first argument. Only file-scope nodes
    (and those inside top-level #if blocks) are looked at, so a
    `list_for_each_entry(...) { }` inside a function is never mistaken for one.
    """
    out = []
    stack = [root]
    while stack:
        container = stack.pop()
        prev = None
        for node in container.named_children:
            if node.type in _TOP_CONTAINERS:
                stack.append(node)
            elif node.type == "compound_statement" and prev is not None and prev.type == "expression_statement":
                call = prev.named_children[0] if prev.named_children else None
                if call is not None and call.type == "call_expression":
                    macro = call.child_by_field_name("function")
                    args = call.child_by_field_name("arguments")
                    if macro is not None and macro.type == "identifier" and args is not None:
                        idents = [node_text(a) for a in args.named_children if a.type == "identifier"]
                        name = idents[0] if idents else node_text(macro)
                        if _SYSCALL_LIKE.match(node_text(macro)):
                            name = "sys_" + name
                        out.append(_Function(prev, node, name, tuple(idents[1:]), True, prev))
            if node.type != "comment":
                prev = node
    return out


def _function_index(functions: list[_Function]):
    starts = [f.node.start_byte for f in functions]

    def owner(node: ts.Node) -> _Function | None:
        i = bisect.bisect_right(starts, node.start_byte) - 1
        # nested definitions do not happen in C; the innermost start wins
        while i >= 0:
            f = functions[i]
            if f.node.start_byte <= node.start_byte and node.end_byte <= f.body.end_byte:
                return f
            i -= 1
        return None
    return owner


def extract(src: bytes, path: str, parser: ts.Parser | None = None) -> FileFacts:
    """All facts the later stages need from one file."""
    parser = parser or ts.Parser(LANGUAGE)
    clean = prepare_source(src)
    lines = SourceText(src)
    tree = parser.parse(clean)
    found, errors, field_masks = _function_facts(tree.root_node, src, lines)
    if tree.root_node.has_error:
        found = _recover_lost_functions(parser, clean, src, lines, found, field_masks)
    out = []
    plain = []     # names of functions with no facts
    named: set[str] = set()
    for fn in sorted(found, key=lambda x: x.start):
        first = fn.name not in named
        named.add(fn.name)
        if fn.facts is not None:
            out.append(fn.facts)
        elif first:     # only the first definition of a name is found by a call (link.resolve)
            plain.append(fn.name)
    out.extend(call_macros(src, lines))
    lost = _lost_regions(tree.root_node, clean, found) if tree.root_node.has_error else ()
    test_defs = [fn.test_def for fn in sorted(found, key=lambda x: x.start) if fn.test_def is not None]
    test_defs.extend(macro_test_defs(src, parser))
    return FileFacts(path=path, macros=tuple(object_like_macros(src)), functions=tuple(out),
                     parse_errors=errors, plain_functions=tuple(plain), lost_regions=lost,
                     mask_macros=tuple(mask_macros(src)), field_masks=tuple(dict.fromkeys(field_masks)),
                     test_defs=kept_test_defs(test_defs))


# an identifier that names what the rules look at (discover.PREFILTER_WORDS), called
_RELEVANT_CALL = re.compile(rb"\b\w*(?:alloc|gfp|GFP|nofail|NOFAIL|retry_wait|get_free_page|mempool)\w*\s*\(")


def _lost_regions(root: ts.Node, clean: bytes, found: list[_Found]) -> tuple[tuple[int, int], ...]:
    """Parse errors that cost analysis: the outermost ERROR nodes, minus the
    functions analysed anyway (parsed inside them or recovered one by one),
    whose remaining code (comments blanked) still calls something the rules
    look at. Errors inside a function that was analysed are ordinary
    tree-sitter recovery from kernel macros (most files have some) and are
    not reported."""
    errors = []
    stack = [root]
    while stack:
        node = stack.pop()
        if node.type == "ERROR":
            errors.append(node)
        elif node.has_error:
            stack.extend(node.children)
    spans = [(f.start, f.end) for f in found]
    out = []
    for err in sorted(errors, key=lambda n: n.start_byte):
        a, b = err.start_byte, err.end_byte
        text = bytearray(clean[a:b])
        for s, t in spans:
            lo, hi = max(s, a), min(t, b)
            if lo < hi:
                text[lo - a:hi - a] = b" " * (hi - lo)
        rest = _COMMENT.sub(lambda c: re.sub(rb"[^\n]", b" ", c.group(0)), bytes(text))
        if _RELEVANT_CALL.search(rest):
            out.append((err.start_point[0] + 1, err.end_point[0] + 1))
    return tuple(out)


@dataclass
class _Found:
    """One function definition seen in a parse tree, with its facts (None: it has none)."""

    start: int                  # byte offsets: the definition, and its body's braces
    end: int
    body: tuple[int, int]
    name: str
    facts: FunctionFacts | None
    test_def: tuple | None = None    # the function as a test helper (nulltest.function_test_def)


# kernel style: a function body opens and closes with a brace in column 0
_BODY_OPEN = re.compile(rb"^\{[ \t]*(?:/\*.*?\*/[ \t]*)?$", re.MULTILINE)
_BODY_CLOSE = re.compile(rb"^\}", re.MULTILINE)
_HEADER_STOP = re.compile(rb"(?:^[ \t]*$|[;}][ \t]*$|\*/[ \t]*$|^[ \t]*#.*$)")


def _kernel_style_bodies(clean: bytes) -> list[tuple[int, int, int]]:
    """(definition start, `{`, end after `}`) of every column-0 function body:
    the header starts after the last blank line, `;`, `}`, comment or
    preprocessor line above the brace."""
    out = []
    for m in _BODY_OPEN.finditer(clean):
        close = _BODY_CLOSE.search(clean, m.end())
        if close is None:
            break
        start = m.start()
        while start > 0:
            above = clean.rfind(b"\n", 0, start - 1) + 1      # start of the line above
            if _HEADER_STOP.search(clean[above:start - 1]):
                break
            start = above
        out.append((start, m.start(), close.end()))
    return out


def _recover_lost_functions(parser: ts.Parser, clean: bytes, src: bytes, lines: SourceText,
                            found: list[_Found], field_masks: list) -> list[_Found]:
    """Functions a parse error swallowed, parsed again one by one.

    tree-sitter's error recovery can turn one damaged statement into an ERROR
    node that runs to the end of the file, taking every later function with
    it. Each column-0 function body that did not come out as a function of
    its own is parsed alone (same byte offsets, through the parser's included
    ranges) and replaces whatever the whole-file parse made of that stretch.
    """
    parsed = {f.body for f in found}
    lost = [(s, o, e) for s, o, e in _kernel_style_bodies(clean) if (o, e) not in parsed]
    if not lost:
        return found
    kept = [f for f in found if not any(f.start < e and s < f.end for s, _, e in lost)]
    try:
        for start, _, end in lost:
            r0, c0 = lines.point(start)
            r1, c1 = lines.point(end)
            parser.included_ranges = [ts.Range(ts.Point(r0, c0), ts.Point(r1, c1), start, end)]
            again, _, more_fields = _function_facts(parser.parse(clean).root_node, src, lines)
            kept.extend(f for f in again if start <= f.start and f.end <= end)
            field_masks.extend(m for m in more_fields if m not in field_masks)
    finally:
        parser.included_ranges = []
    return kept


def _function_facts(root: ts.Node, src: bytes, lines: SourceText) -> tuple[list[_Found], int, list]:  # noqa: C901
    """Every function definition under `root` with its facts, the number of
    ERROR nodes, and the masks assigned to struct fields."""
    caps = ts.QueryCursor(_Q_FILE).captures(root)
    by_start = lambda n: n.start_byte  # noqa: E731
    errors = len(caps.get("err", ()))

    functions = []
    for n in caps.get("fn", ()):
        decl = n.child_by_field_name("declarator")
        name, fdecl = _declarator_name(decl)
        body = n.child_by_field_name("body")
        if name and body is not None and decl is not None:
            params = _param_names(fdecl) if fdecl is not None else ()
            functions.append(_Function(n, body, name, params, _is_static(n), decl))
    functions.extend(_macro_headed_functions(root))
    functions.sort(key=lambda f: f.node.start_byte)
    owner = _function_index(functions)

    for call in sorted(caps.get("call", ()), key=by_start):
        f = owner(call)
        if f is not None:
            f.calls.append((call, call.child_by_field_name("function"), call.child_by_field_name("arguments")))

    for node in sorted(caps.get("assign", ()), key=by_start):
        f = owner(node)
        if f is None:
            continue
        if node.type == "init_declarator":
            lhs = node.child_by_field_name("declarator")
            if lhs is not None and lhs.type == "pointer_declarator":
                lhs = lhs.child_by_field_name("declarator")
            op, rhs = "=", node.child_by_field_name("value")
        else:
            lhs = node.child_by_field_name("left")
            op_node = node.child_by_field_name("operator")
            op, rhs = (node_text(op_node) if op_node else "="), node.child_by_field_name("right")
        f.assign_nodes.append((node, lhs))
        if rhs is None or rhs.type == "initializer_list":
            continue
        arm, implied = _branch_of(node, f.body)
        f.events.setdefault(node_text(lhs), []).append(
            _Event(node.start_byte, node.end_byte, op, node_text(rhs), _cond_ranges(node, f.body), arm, implied,
                   _guard_text(node, f.body), _flag_test_condition(node, f.body)))

    conds_by_fn: dict[int, list[ts.Node]] = {}
    for n in sorted([*caps.get("cond", ()), *_asserted_conditions(caps.get("call", ()))], key=by_start):
        f = owner(n)
        if f is not None:
            conds_by_fn.setdefault(id(f), []).append(n)

    stmts_by_fn: dict[int, list[ts.Node]] = {}
    for n in sorted(_test_statements(caps.get("call", ())), key=by_start):
        f = owner(n)
        if f is not None:
            stmts_by_fn.setdefault(id(f), []).append(n)

    loops_by_fn: dict[int, list[ts.Node]] = {}
    for n in caps.get("loop", ()):
        f = owner(n)
        if f is not None:
            loops_by_fn.setdefault(id(f), []).append(n)
    labels_by_fn: dict[int, dict[str, ts.Node]] = {}
    for n in caps.get("label", ()):
        f = owner(n)
        if f is not None:
            labels_by_fn.setdefault(id(f), {})[node_text(n.child_by_field_name("label"))] = n
    gotos_by_fn: dict[int, list[ts.Node]] = {}
    for n in caps.get("goto", ()):
        f = owner(n)
        if f is not None:
            gotos_by_fn.setdefault(id(f), []).append(n)
    exits = sorted([*caps.get("goto", ()), *caps.get("ret", ()), *caps.get("brk", ()), *caps.get("cont", ())],
                   key=by_start)
    writes = sorted(caps.get("write", ()), key=by_start)
    addressed = sorted(caps.get("addr", ()), key=by_start)
    returns_by_fn: dict[int, list[ts.Node]] = {}
    # in source order: the query's capture order is not, and the first returned
    # allocator call is the one a wrapper's notes cite
    for n in sorted(caps.get("ret", ()), key=by_start):
        f = owner(n)
        if f is not None:
            returns_by_fn.setdefault(id(f), []).append(n)

    fassigns_by_fn: dict[int, list[ts.Node]] = {}
    for n in caps.get("fassign", ()):
        f = owner(n)
        if f is not None:
            fassigns_by_fn.setdefault(id(f), []).append(n)
            f.field_assigns.append((n, n.child_by_field_name("left")))
    gfp_fields = _gfp_fields(caps.get("structdef", ()))
    inits = [(n, _object_inits(n, gfp_fields)) for n in caps.get("initdecl", ())]
    field_masks = _initialised_fields(inits)
    objects = _const_objects([(n, found) for n, found in inits if owner(n) is None])
    # file-scope declarations, as `struct foo *name;`: where a field read off a
    # global object finds its type
    file_decls = "\n".join(_declared_objects([n for n in (*caps.get("initdecl", ()), *caps.get("globaldecl", ()))
                                               if owner(n) is None]))
    members = ops_members(caps.get("initdecl", ()))
    model = load_model()

    out = []
    for f in functions:
        for evs in f.events.values():
            evs.sort(key=lambda e: e.start)
        values = LocalValues(f.events)
        fn_text = decode(src[f.node.start_byte:f.body.end_byte])
        decl_text = fn_text + "\n" + file_decls
        # the file's const objects, unless the function declares a local of the name
        seen = {name: fields for name, fields in objects.items()
                if name in fn_text and not re.search(_STRUCT_DECL.format(re.escape(name)), fn_text)}
        gfp_names = set(_GFP_T_NAMES.findall(fn_text))
        # an argument naming a gfp_t local or parameter (whole identifiers, as `\bname\b`)
        carries = (lambda a, names=gfp_names: not names.isdisjoint(_WORD.findall(a))) if gfp_names else None
        regions = _atomic_byte_ranges(f)
        types: dict[str, str | None] = {}
        for node in fassigns_by_fn.get(id(f), ()):
            lhs, rhs = node.child_by_field_name("left"), node.child_by_field_name("right")
            if lhs is None:
                continue
            base = strip(lhs.child_by_field_name("argument"))
            text = node_text(rhs)
            if base is None or base.type != "identifier" or not (
                    _RELEVANT_ARG.search(text) or (carries and carries(text))):
                continue
            kind = _struct_type(decl_text, node_text(base), types)
            op = node_text(node.child_by_field_name("operator"))
            if kind and op in ("=", "|=", "&="):
                value = field_reads(values.substitute(text, node.start_byte), decl_text, types, seen)
                field_masks.append((kind, node_text(lhs.child_by_field_name("field")), op, value))
        conds = _Conditions(conds_by_fn.get(id(f), ()))
        stmts = _Conditions(stmts_by_fn.get(id(f), ()))
        call_sites = []
        for call, fn, args in f.calls:
            arg_texts = tuple(node_text(a) for a in args.named_children if a.type != "comment")
            tests, via = _null_tests(f, call, conds, stmts, lines, labels_by_fn.get(id(f), {}))
            # kept when an argument can carry a mask or a bound, or when a
            # wrapper's own NOFAIL would matter here: its result is tested for
            # NULL (NF006), or it runs in a non-sleepable region (NF008)
            if not (any(_RELEVANT_ARG.search(a) or (carries and carries(a)) for a in arg_texts)
                    or (model.allocator(node_text(fn)) is not None and any("->" in a or "." in a for a in arg_texts))
                    or tests or via or any(s <= call.start_byte < e for s, e, _ in regions)):
                continue
            api = model.allocator(node_text(fn))
            guards: frozenset = frozenset()
            if api is not None and api.range_default and api.start is not None and api.end is not None \
                    and max(api.start, api.end) < len(arg_texts):
                guards = range_guards(arg_texts[api.start], arg_texts[api.end], api.range_default)
            substituted = tuple(field_reads(values.substitute(a, call.start_byte, 0, guards), decl_text, types, seen)
                                for a in arg_texts)
            bounded: tuple[int, ...] = ()
            if api is not None and (counts := overflow_params(api.null_under_nofail, api.params)):
                bounded = _bounded_args(f, call, args, counts, conds.nodes)
            call_sites.append(CallSite(node_text(fn), lines.span(fn, call), substituted, tests,
                                       _param_guards(f, call), _after_unlock(f, call), via, bounded))

        returns, other_returns = _returned_calls(f, returns_by_fn.get(id(f), ()), lines, values)
        errno_from = errno_callees(f, returns_by_fn.get(id(f), ()))
        codes = failure_codes(f, returns_by_fn.get(id(f), ()))
        analyser = LoopAnalyser(f, lines, labels_by_fn.get(id(f), {}), gotos_by_fn.get(id(f), []),
                                exits, writes, addressed, members)
        retry_loops = []
        try:
            for loop in loops_by_fn.get(id(f), ()):
                retry_loops.extend(analyser.analyse_loop(loop))
            retry_loops.extend(analyser.analyse_goto_loops())
        except RecursionError:
            retry_loops = []   # absurdly deep conditions: give up on this function's loops only
        facts = None
        if call_sites or returns or retry_loops or regions or errno_from or codes:
            facts = FunctionFacts(
                name=f.name, is_static=f.static, params=f.params, span=lines.span(f.header),
                calls=tuple(call_sites), returns=tuple(returns), retry_loops=tuple(retry_loops),
                other_returns=other_returns,
                atomic=_atomic_regions(regions, lines),
                mentions_enomem=bool(_ENOMEM.search(fn_text)), callees_errno=errno_from,
                callees_codes=codes)
        # test helpers are static: a .c file's own, or a header's static inlines
        test_def = function_test_def(f.name, f.params, f.body) \
            if f.node.type == "function_definition" and f.static else None
        out.append(_Found(f.node.start_byte, f.body.end_byte, (f.body.start_byte, f.body.end_byte), f.name, facts,
                          test_def))
    return out, errors, field_masks


def _gfp_fields(structs) -> set[tuple[str, str]]:
    """(struct, field) of the fields this file's struct definitions declare gfp_t."""
    out: set[tuple[str, str]] = set()
    for st in structs:
        kind = node_text(st.child_by_field_name("name"))
        for decl in st.child_by_field_name("body").named_children:
            if decl.type == "field_declaration" and node_text(decl.child_by_field_name("type")) == "gfp_t":
                out.update((kind, node_text(d)) for d in decl.children_by_field_name("declarator")
                           if d.type == "field_identifier")
    return out


def _object_inits(decl, gfp_fields: set[tuple[str, str]]) -> list[tuple[str, list[dict[str, str]]]]:
    """(object name, [{field: value} per element]) of a declaration with
    initialisers: one element for `struct foo x = { .gfp = ... }`, one per
    element of an array of such structs (`{ { .gfp = ... }, [1] = { ... } }`).
    A value is kept when it names a mask, or when the field is declared gfp_t
    in this file."""
    kind = node_text(decl.child_by_field_name("type").child_by_field_name("name"))
    out: list[tuple[str, list[dict[str, str]]]] = []
    if not any(k == kind for k, _ in gfp_fields) and not _RELEVANT_ARG.search(node_text(decl)):
        return out      # no value in it can be kept: skip the walk (large tables)
    for d in decl.children_by_field_name("declarator"):
        if d.type != "init_declarator":
            continue
        name = d.child_by_field_name("declarator")
        while name is not None and name.type != "identifier":
            name = name.child_by_field_name("declarator")
        elements: list[dict[str, str]] = []
        lists = [d.child_by_field_name("value")]
        while lists:
            fields = _element_fields(lists.pop(0), kind, gfp_fields, lists)
            if fields:
                elements.append(fields)
        if elements:
            out.append((node_text(name) if name is not None else "", elements))
    return out


def _element_fields(init, kind: str, gfp_fields: set[tuple[str, str]], nested: list) -> dict[str, str]:
    """{field: value text} of one `{ .f = v, ... }`; nested element lists go to `nested`."""
    fields: dict[str, str] = {}
    if init is None or init.type != "initializer_list":
        return fields
    for pair in init.named_children:
        if pair.type == "initializer_list":
            nested.append(pair)
            continue
        if pair.type != "initializer_pair":
            continue
        designators = pair.children_by_field_name("designator")
        value = pair.child_by_field_name("value")
        if value is None:
            continue
        if value.type == "initializer_list":
            if all(x.type == "subscript_designator" for x in designators):
                nested.append(value)      # `[IDX] = { ... }`
            continue
        if len(designators) != 1 or designators[0].type != "field_designator":
            continue
        field_name = node_text(designators[0]).lstrip(". \t")
        text = node_text(value)
        if _RELEVANT_ARG.search(text) or (kind, field_name) in gfp_fields:
            fields[field_name] = text
    return fields


def _declared_objects(decls) -> list[str]:
    """`struct foo *name;` for each object a file-scope declaration declares."""
    out = []
    for decl in decls:
        kind = node_text(decl.child_by_field_name("type").child_by_field_name("name"))
        for d in decl.children_by_field_name("declarator"):
            stars = ""
            while d is not None and d.type != "identifier":
                stars += "*" if d.type == "pointer_declarator" else ""
                d = d.child_by_field_name("declarator")
            if d is not None:
                out.append(f"struct {kind} {stars}{node_text(d)};")
    return out


def _initialised_fields(inits) -> list[tuple[str, str, str, str]]:
    """`struct foo x = { .gfp = GFP_NOFS | __GFP_NOFAIL };` -> (foo, gfp, "=", value),
    for each element of an array of such structs too; `inits`: (declaration,
    its _object_inits)."""
    out: list[tuple[str, str, str, str]] = []
    for decl, found in inits:
        kind = node_text(decl.child_by_field_name("type").child_by_field_name("name"))
        for _name, elements in found:
            out.extend((kind, f, "=", v) for fields in elements for f, v in fields.items())
    return out


def _const_objects(inits) -> dict[str, dict[str, str]]:
    """File-scope `const` objects and arrays of structs -> {field: the value a
    read of it has}: one element's value, or the alternatives of an array's
    (an element that does not set the field holds 0)."""
    out: dict[str, dict[str, str]] = {}
    for decl, found in inits:
        if not found or not any(c.type == "type_qualifier" and node_text(c) == "const" for c in decl.children):
            continue
        for name, elements in found:
            fields = {f for e in elements for f in e}
            out[name] = {}
            for f in fields:
                values = [f"({e.get(f, '0')})" for e in elements]
                value = values[0]
                for other in values[1:]:
                    value = f"(__nfl_either ? {value} : {other})"
                out[name][f] = value
    return out


_NULL_TEST_CALL_NAMES = frozenset(n.encode() for n in NULL_TEST_CALLS)


def _asserted_conditions(calls) -> list[ts.Node]:
    """The condition of each `BUG_ON(cond);` / `WARN_ON(cond);` statement."""
    out = []
    for call in calls:
        parent = call.parent
        if parent is None or parent.type != "expression_statement":
            continue
        if call.child_by_field_name("function").text not in _NULL_TEST_CALL_NAMES:
            continue
        args = [a for a in call.child_by_field_name("arguments").named_children if a.type != "comment"]
        if args:
            out.append(args[0])
    return out


_RES = re.escape(TEST_RES)
_TEST_SHAPE = re.compile(rf"!\({_RES}\)|{_RES} [!=]=|[!=]= {_RES}")


def _test_statements(calls) -> list[ts.Node]:
    """Call statements other than the kernel's own assertions (which
    _asserted_conditions reads): `drm_WARN_ON(dev, !p);` may test through
    its definition."""
    return [call for call in calls
            if call.parent is not None and call.parent.type == "expression_statement"
            and call.child_by_field_name("function").text not in _NULL_TEST_CALL_NAMES
            and (b"!" in call.text or b"==" in call.text)]


def _via_candidates(conds: _Conditions, stmts: _Conditions, call: ts.Node, key: str
                    ) -> tuple[list[ts.Node], list[tuple[ts.Node, NullTestVia]]]:
    """Later conditions that test `key` directly, and later conditions and
    call statements that may test it through a macro or helper."""
    direct: list[ts.Node] = []
    via: list[tuple[ts.Node, NullTestVia]] = []
    first = bisect.bisect_left(conds.starts, call.end_byte)
    for c, text in zip(conds.nodes[first:], conds.texts[first:], strict=True):
        if key not in text:
            continue
        if is_null_test(c, key):
            direct.append(c)
        elif (found := via_test(c, key)) is not None:
            via.append((c, NullTestVia(_NO_SPAN, found[0], found[1])))
    first = bisect.bisect_left(stmts.starts, call.end_byte)
    for c, text in zip(stmts.nodes[first:], stmts.texts[first:], strict=True):
        if key in text and (found := via_test(c, key)) is not None and _TEST_SHAPE.search(found[0]):
            args = c.child_by_field_name("arguments")
            at = next((a for a in args.named_children if key in _norm_text(a)), c) if args is not None else c
            via.append((at, NullTestVia(_NO_SPAN, found[0], found[1], True)))
    return direct, via


_NO_SPAN = Span(0, 0, 0, 0)


def _null_tests(f: _Function, call: ts.Node, conds: _Conditions, stmts: _Conditions, lines: SourceText,
                labels: dict[str, ts.Node]) -> tuple[tuple[Span, ...], tuple[NullTestVia, ...]]:
    """Conditions that test the call's result for NULL: the one the call sits
    in (`if (!(p = alloc(...)))`) and later ones, until the variable is
    assigned again or a label (a goto from before the call may reach the test
    with the old value: `out: if (p) kfree(p);`). Runs for every call, so the
    cheap text check comes first and the rest only when some condition names
    the result. Second: the tests that call macros or helpers on the result,
    which the link stage decides (NullTestVia)."""
    kind, key = result_key(call)
    if kind != "var" or key is None:
        return (), ()
    later, via = _via_candidates(conds, stmts, call, key)
    around = _enclosing_condition(call, f.body)
    if around is not None:
        if is_null_test(around, key):
            later.insert(0, around)
        elif (found := via_test(around, key)) is not None:
            via.insert(0, (around, NullTestVia(_NO_SPAN, found[0], found[1])))
    if not later and not via:
        return (), ()
    stop = f.body.end_byte
    others = [a for a, lhs in f.assign_nodes + f.field_assigns
              if "".join(node_text(lhs).split()) == key and not (a.start_byte <= call.start_byte < a.end_byte)]
    for assign in others:
        if assign.start_byte > call.end_byte:
            stop = min(stop, assign.start_byte)
    for label in labels.values():
        if label.start_byte > call.end_byte:
            stop = min(stop, label.start_byte)
    # only tests the allocation dominates: a test outside an `if` that guards
    # the call may see the variable's earlier value, unless that `if` runs
    # exactly when the earlier value was NULL (the fallback
    # `if (!p) p = alloc(... | __GFP_NOFAIL);`): then no path reaches the
    # test with NULL either
    guards = [(s, e) for s, e, fallback in _guard_ranges(call, f.body, key) if not fallback]

    # nor tests in a loop that the call is outside of and that assigns the
    # variable elsewhere: the next iteration reaches the test with that value
    def kept(c: ts.Node) -> bool:
        return c.start_byte < stop and all(s <= c.start_byte < e for s, e in guards) \
            and not _reassigned_in_loop(c, call, f.body, others)
    return (tuple(lines.span(c) for c in later if kept(c)),
            tuple(v._replace(span=lines.span(c)) for c, v in via if kept(c)))


def _declared(f: _Function) -> frozenset[str]:
    """The function's parameters and local variables (declared or assigned)."""
    names = set(f.params) | set(f.events)
    stack = [f.body]
    while stack:
        n = stack.pop()
        if n.type == "declaration":
            for decl in n.children_by_field_name("declarator"):
                d: ts.Node | None = decl
                while d is not None and d.type != "identifier":
                    d = d.child_by_field_name("declarator")
                if d is not None:
                    names.add(node_text(d))
        else:
            stack.extend(n.named_children)
    return frozenset(names)


def _bounded_args(f: _Function, call: ts.Node, args: ts.Node, indices: list[int],
                  conds: list[ts.Node]) -> tuple[int, ...]:
    """Which of the arguments at `indices` are bounded at the call
    (CallSite.bounded_args)."""
    nodes = [a for a in args.named_children if a.type != "comment"]
    variables = _declared(f)
    out = []
    for i in indices:
        if i >= len(nodes):
            continue
        values = runtime_values(nodes[i], variables)
        if values is not None and all(bounded_before(call, v, conds) for v in values):
            out.append(i)
    return tuple(out)


def _reassigned_in_loop(node: ts.Node, call: ts.Node, stop: ts.Node, assigns: list[ts.Node]) -> bool:
    p = node.parent
    while p is not None and p != stop:
        if p.start_byte <= call.start_byte < p.end_byte:
            return False     # the loops around both: the call runs again before the test
        if is_loop(p) and any(p.start_byte <= a.start_byte < p.end_byte for a in assigns):
            return True
        p = p.parent
    return False


def _enclosing_condition(call: ts.Node, stop: ts.Node) -> ts.Node | None:
    """The if/while/ternary condition (or BUG_ON argument) the call is part of."""
    child, p = call, call.parent
    while p is not None and p != stop:
        if p.type in ("if_statement", "while_statement", "do_statement", "conditional_expression"):
            return child if child == p.child_by_field_name("condition") else None
        if p.type == "call_expression" and node_text(p.child_by_field_name("function")) in NULL_TEST_CALLS \
                and p.parent is not None and p.parent.type == "expression_statement":
            return child
        if p.type in ("compound_statement", "expression_statement"):
            return None
        child, p = p, p.parent
    return None


def _guard_ranges(call: ts.Node, stop: ts.Node, key: str) -> list[tuple[int, int, bool]]:
    """(start, end, is-fallback) of each conditional construct around `call`;
    a fallback is an else-less `if` whose condition holds whenever `key` is
    NULL and whose branch holds the call."""
    out = []
    child, p = call, call.parent
    while p is not None and p != stop:
        if p.type == "if_statement" and child == p.child_by_field_name("condition"):
            pass    # `if (!(p = alloc(...)))`: the call runs whatever the condition says
        elif p.type in _CONDITIONAL_TYPES:
            fallback = (p.type == "if_statement" and p.child_by_field_name("alternative") is None
                        and child == p.child_by_field_name("consequence")
                        and _true_when_null(p.child_by_field_name("condition"), key))
            out.append((p.start_byte, p.end_byte, fallback))
        child, p = p, p.parent
    return out


def _true_when_null(cond: ts.Node | None, key: str) -> bool:
    """`!p`, `p == NULL`, `unlikely(!p)`, `!p || x`: holds whenever `key` is NULL."""
    cond = strip(cond)
    if cond is None:
        return False
    if cond.type == "unary_expression" and node_text(cond.child_by_field_name("operator")) == "!":
        arg = strip(cond.child_by_field_name("argument"))
        return arg is not None and "".join(node_text(arg).split()) == key
    if cond.type == "binary_expression":
        op = node_text(cond.child_by_field_name("operator"))
        left, right = strip(cond.child_by_field_name("left")), strip(cond.child_by_field_name("right"))
        if op == "||":
            return _true_when_null(left, key) or _true_when_null(right, key)
        if op == "==" and left is not None and right is not None:
            texts = {"".join(node_text(left).split()), "".join(node_text(right).split())}
            return key in texts and bool(texts & {"NULL", "0"})
        return False
    if cond.type == "call_expression" and node_text(cond.child_by_field_name("function")) in ("unlikely", "likely"):
        arguments = cond.child_by_field_name("arguments")
        args = arguments.named_children if arguments is not None else []
        return bool(args) and _true_when_null(args[0], key)
    return False


class _Conditions:
    """A function's if/while conditions in source order, with their texts
    whitespace-free (computed once, not once per call that looks at them)."""

    def __init__(self, nodes):
        self.nodes = list(nodes)
        self.starts = [c.start_byte for c in self.nodes]
        self.texts = [_norm_text(c) for c in self.nodes]


def _norm_text(node: ts.Node) -> str:
    return "".join(node_text(node).split())


def _bare_param(f: _Function, cond: ts.Node | None) -> tuple[int, bool] | None:
    """`nofail`, `!nofail`, `unlikely(!nofail)` on a parameter -> (index, truth)."""
    truth = True
    cond = strip(cond)
    while cond is not None:
        if cond.type == "unary_expression" and node_text(cond.child_by_field_name("operator")) == "!":
            truth = not truth
            cond = strip(cond.child_by_field_name("argument"))
        elif cond.type == "call_expression" and \
                node_text(cond.child_by_field_name("function")) in ("likely", "unlikely"):
            arguments = cond.child_by_field_name("arguments")
            args = arguments.named_children if arguments is not None else []
            cond = strip(args[0]) if args else None
        else:
            break
    if cond is not None and cond.type == "identifier" and node_text(cond) in f.params:
        return f.params.index(node_text(cond)), truth
    return None


def _param_guards(f: _Function, call: ts.Node) -> tuple[tuple[int, bool], ...]:
    """Conditions on bare parameters the call runs under: enclosing `if (p)`
    arms, and earlier `if (!p) return ...;` exits in the blocks around it."""
    out = []
    child, p = call, call.parent
    while p is not None and p != f.body.parent:
        if p.type == "if_statement" and child != p.child_by_field_name("condition"):
            g = _bare_param(f, p.child_by_field_name("condition"))
            if g is not None:
                out.append(g if child == p.child_by_field_name("consequence") else (g[0], not g[1]))
        if p.type == "compound_statement":
            s = child.prev_named_sibling
            while s is not None:
                if s.type == "if_statement" and s.child_by_field_name("alternative") is None:
                    cons = s.child_by_field_name("consequence")
                    kids = [] if cons is None else [c for c in cons.named_children if c.type != "comment"] \
                        if cons.type == "compound_statement" else [cons]
                    if kids and kids[-1].type == "return_statement":
                        g = _bare_param(f, s.child_by_field_name("condition"))
                        if g is not None:
                            out.append((g[0], not g[1]))
                s = s.prev_named_sibling
        child, p = p, p.parent
    return tuple(sorted(set(out)))


def _after_unlock(f: _Function, call: ts.Node) -> bool:
    """The last lock-ish call before `call` in this function closes a section."""
    model = load_model()
    sections, closers = model.atomic_sections, model.atomic_closers
    last = None
    for c, fn, _ in f.calls:
        if c.start_byte >= call.start_byte:
            break
        name = node_text(fn)
        if name in sections:
            last = "open"
        elif name in closers:
            last = "close"
    return last == "close"


def _atomic_byte_ranges(f: _Function) -> list[tuple[int, int, ts.Node]]:
    """(start, end, opening call) from each lock/irq-off/RCU call to its release."""
    sections = load_model().atomic_sections
    if not any(node_text(fn) in sections for _, fn, _ in f.calls):
        return []
    trylocks = load_model().trylocks
    out = []
    calls = sorted(f.calls, key=lambda c: c[0].start_byte)
    for i, (call, fn, _args) in enumerate(calls):
        unlocks = sections.get(node_text(fn))
        if not unlocks:
            continue
        start = call.end_byte
        if node_text(fn) in trylocks:
            success = _trylock_success_start(call, f.body)
            if success is None:
                continue
            start = success
        end = f.body.end_byte
        for later, lfn, _ in calls[i + 1:]:
            if later.start_byte >= start and node_text(lfn) in unlocks:
                end = later.start_byte
                break
        out.append((start, end, fn))
    return out


def _trylock_success_start(call: ts.Node, body: ts.Node) -> int | None:
    """Where a trylock's success path starts: the `if (spin_trylock(l))`
    branch, or what follows `if (!spin_trylock(l)) <leave>;`. None when the
    result is kept for later (`locked = spin_trylock(l)`): not followed."""
    p, negated = call.parent, False
    while p is not None and p.type in ("parenthesized_expression", "unary_expression", "call_expression",
                                        "argument_list"):
        if p.type == "unary_expression":
            if node_text(p.child_by_field_name("operator")) != "!":
                return None
            negated = not negated
        elif p.type == "call_expression" and node_text(p.child_by_field_name("function")) not in ("likely", "unlikely"):
            return None
        p = p.parent
    if p is None or p.type != "if_statement":
        return None
    cons = p.child_by_field_name("consequence")
    if cons is None:
        return None
    if not negated:
        return cons.start_byte
    kids = [c for c in cons.named_children if c.type != "comment"] if cons.type == "compound_statement" else [cons]
    if not kids or kids[-1].type not in ("return_statement", "goto_statement", "break_statement", "continue_statement"):
        return None
    return p.end_byte


def _atomic_regions(regions: list[tuple[int, int, ts.Node]],
                    lines: SourceText) -> tuple[tuple[str, int, int, int, int], ...]:
    """The same regions as (opening call, start line, column, end line, column)."""
    out = []
    for start, end, fn in regions:
        r0, c0 = lines.point(start)
        r1, c1 = lines.point(end)
        out.append((node_text(fn), r0 + 1, lines.char_col(r0, c0), r1 + 1, lines.char_col(r1, c1)))
    return tuple(out)


def _call_args(call: ts.Node, values: LocalValues) -> tuple[str, ...]:
    args = call.child_by_field_name("arguments")
    if args is None:
        return ()
    return tuple(values.substitute(node_text(a), call.start_byte) for a in args.named_children if a.type != "comment")


def _returned_calls(f: _Function, returns, lines: SourceText, values: LocalValues) -> tuple[list[ReturnedCall], int]:
    """Calls whose result the function returns (directly or through a local),
    and how many return statements return something else (NULL, an error...)."""
    out = []
    others = 0
    for r in returns:
        value = strip(r.named_children[0] if r.named_children else None)
        if value is None:
            continue
        found = False
        if value.type == "call_expression":
            fn = value.child_by_field_name("function")
            if fn is not None and fn.type == "identifier":
                out.append(ReturnedCall(node_text(fn), lines.span(fn, value), _call_args(value, values)))
                found = True
        elif value.type == "identifier":
            name = node_text(value)
            for assign, lhs in f.assign_nodes:
                if node_text(lhs) != name or assign.start_byte > r.start_byte:
                    continue
                rhs = assign.child_by_field_name("value" if assign.type == "init_declarator" else "right")
                rhs = strip(rhs)
                if rhs is not None and rhs.type == "call_expression":
                    fn = rhs.child_by_field_name("function")
                    if fn is not None and fn.type == "identifier":
                        out.append(ReturnedCall(node_text(fn), lines.span(fn, rhs), _call_args(rhs, values)))
                        found = True
        others += not found
    return out, others
