"""Demand: which files of the tree a partial run must extract besides its own.

A finding in the requested paths depends on the facts of the functions
there and, downwards, on every definition they reach: callees and the
functions their results come from (wrappers, across files), and the macros
their arguments name. This stage starts from the requested files and follows
those names through the scan index (scan.py) until nothing new is reached;
only files that may define a reached name are extracted. The link and check
stages then run on that closed set as they would on the whole tree, and only
findings in the requested paths are reported.

The scan index over-approximates definitions, so the closure is a superset
of what the findings need; tests/test_demand.py compares it against a
whole-tree run on the fixtures, and `pytest -m kernel` on real trees.
"""
from __future__ import annotations

import re
from typing import AbstractSet, Callable, Iterable, Mapping, Protocol

from . import cexpr
from .facts import FileFacts, FunctionFacts

IDENTIFIER = re.compile(r"[A-Za-z_]\w*")
FIELD_READ = getattr(cexpr, "FIELD_READ", "__nfl_field")
FIELD_CALL = re.compile(re.escape(FIELD_READ) + r"\(\s*(\w+)\s*,\s*(\w+)\s*\)")


def field_key(kind: str, name: str) -> str:
    """A struct field as the demand and incremental stages name it: "type.field"
    (link.TreeTables.field_mask unites assignments per struct type and field)."""
    return f"{kind}.{name}"
ALIAS = re.compile(r"^\(?\s*[A-Za-z_]\w*\s*\)?$")
# words of C that can never name a definition
C_WORDS = frozenset(
    "if else for while do switch case default return goto break continue sizeof typeof "
    "struct union enum const volatile static inline extern unsigned signed int long short "
    "char void bool true false NULL".split())


class Definitions(Protocol):
    @property
    def functions(self) -> frozenset[str]: ...
    @property
    def macros(self) -> frozenset[str]: ...
    @property
    def fn_macros(self) -> frozenset[str]: ...
    @property
    def fields(self) -> frozenset[str]: ...


class DefinitionIndex:
    """Which files may define which names, from per-file rows (scan.ScanRow, or
    incremental.Defines for exact definitions). Lookups go by batch: one pass
    of set intersections over the rows, no inverted index to build."""

    def __init__(self, rows: Mapping[str, Definitions],
                 find_fields: Callable[[set[str]], dict[str, set[str]]] | None = None):
        """`find_fields(fields)`: {file: the fields it assigns}, for rows that
        do not list their fields (scan.ScanRow)."""
        self.rows = [(display, rows[display]) for display in sorted(rows)
                     if rows[display].functions or rows[display].macros or rows[display].fn_macros
                     or rows[display].fields]
        self.find_fields = find_fields

    def lookup(self, called: set[str], named: set[str], fields: set[str],
               macro_calls_full: bool = True) -> tuple[dict[str, set[str]], set[str]]:
        """({file: what it may define of those names}, files to extract fully).

        A called name may be a function or any macro; another identifier of an
        argument or a macro body only a macro (object-like, or a function-like
        mask macro); a field (`FIELD_READ`) is found where it is assigned,
        returned as "." + name. Files that may define a called name as a
        function or function-like macro, or assign a field, need their
        functions; the others only their macros. With `macro_calls_full`
        False, a function-like macro alone does not make a file full: its
        macros-only reading gives its forwarding macros too."""
        found: dict[str, set[str]] = {}
        full: set[str] = set()
        any_name = called | named
        for display, row in self.rows:
            f = ((row.functions | row.fn_macros) if macro_calls_full else row.functions) & called \
                if called else frozenset()
            m = (row.macros | row.fn_macros) & any_name
            a = row.fields & fields if fields else frozenset()
            if f or a:
                full.add(display)
            if f or m or a:
                found[display] = set(f) | set(m) | {"." + n for n in a}
        if fields and self.find_fields is not None:
            for display, assigned in self.find_fields(fields).items():
                full.add(display)
                found.setdefault(display, set()).update("." + n for n in assigned)
        return found, full


def _names_in(value: object, field: str, out: tuple[set[str], set[str], set[str]]):
    """Walk a fact (NamedTuples and tuples, recursively): strings in a field
    named `callee*` are called names; in any other string (argument texts),
    field reads and identifiers a mask or a bound may expand as a macro."""
    if isinstance(value, str):
        if field.startswith("callee"):
            out[0].add(value)
        else:
            text_names(value, out)
    elif isinstance(value, tuple):
        fields = getattr(value, "_fields", None)
        if fields is not None:
            for name, item in zip(fields, value, strict=True):
                _names_in(item, name, out)
        else:
            for item in value:
                _names_in(item, field, out)


def text_names(text: str, out: tuple[set[str], set[str], set[str]]):
    """Identifiers (possible macros) and field reads of an expression text."""
    if FIELD_READ in text:
        out[2].update(field_key(m.group(1), m.group(2)) for m in FIELD_CALL.finditer(text))
    out[1].update(IDENTIFIER.findall(text))


def referenced_names(fn: FunctionFacts) -> tuple[set[str], set[str], set[str]]:
    """(called names, other identifiers, fields read) in a function's facts,
    its own name, parameters and span left out."""
    out: tuple[set[str], set[str], set[str]] = (set(), set(), set())
    for name, value in zip(fn._fields, fn, strict=True):
        if name not in ("name", "is_static", "params", "span"):
            _names_in(value, name, out)
    return out[0] - C_WORDS, out[1] - C_WORDS - set(fn.params), out[2]


def definitions_named(ff: FileFacts) -> Iterable[tuple[str, str, bool]]:
    """(name, text, alias) of every macro-like definition of a file: object-like
    macros, function-like mask macros, and field assignments as "." + field."""
    for name, body in ff.macros:
        yield name, body, ALIAS.match(body) is not None
    for name, _params, body in getattr(ff, "mask_macros", ()):
        yield name, body, False
    for kind, name, _op, value in getattr(ff, "field_masks", ()):
        yield "." + field_key(kind, name), value, False
    # a macro or helper that tests its arguments names what it calls (as an alias does)
    for name, nparams, value, acts in getattr(ff, "test_defs", ()):
        yield name, " ".join((str(nparams), value, *acts)), True


# extract(files, full): {file: outcome}; full=False needs only the file's macros
Extractor = Callable[[list[str], bool], Mapping[str, object]]


def close_over(targets: Iterable[str], index: DefinitionIndex, extract: Extractor,
               is_model_allocator: Callable[[str], bool], is_atom: Callable[[str], bool]) -> dict[str, object]:
    """Extract the targets, then every file that may define a name their
    reached functions (and reached macros and fields) mention, until nothing
    new is reached.

    `extract(displays, full)` returns {display: outcome} (FileFacts, Skipped
    or None); a file needed only for its macros is read for those alone
    (full=False), and extracted fully once a function or field of it is
    needed. Returns every outcome."""
    outcomes: dict[str, object] = {}
    reached: set[tuple[str, str]] = set()          # (file, function, "#" macro or "." field)
    looked_up: set[tuple[str, int]] = set()
    found: tuple[set[str], set[str], set[str]] = (set(), set(), set())   # called, named, fields

    def reach(display: str, wanted: AbstractSet[str] | None):
        """Follow the functions, macros and field assignments of one file (all,
        or those named in `wanted`, fields as "." + name)."""
        ff = outcomes.get(display)
        if not isinstance(ff, FileFacts):
            return
        local = {f.name for f in ff.functions}
        todo = [f for f in ff.functions if wanted is None or f.name in wanted]
        while todo:
            fn = todo.pop()
            if (display, fn.name) in reached:
                continue
            reached.add((display, fn.name))
            called, named, fields = referenced_names(fn)
            found[0].update(called)
            found[1].update(named)
            found[2].update(fields)
            # a call resolves to its own file's definition first (link.resolve)
            todo.extend(f for f in ff.functions if f.name in called and f.name in local)
        for name, text, alias in definitions_named(ff):
            if (wanted is None or name in wanted) and (display, "#" + name) not in reached:
                reached.add((display, "#" + name))
                text_names(text, found)
                found[1].difference_update(C_WORDS)
                if alias:                   # `#define my_alloc kmalloc` may name a function
                    found[0].update(IDENTIFIER.findall(text))

    full: set[str] = set(targets)
    first = extract(sorted(full), True)
    outcomes.update(first)
    for display in first:
        reach(display, None)
    while True:
        fresh = {(n, 0) for n in found[0]} | {(n, 1) for n in found[1]} | {(n, 2) for n in found[2]}
        fresh -= looked_up
        for kind in found:
            kind.clear()
        if not fresh:
            break
        looked_up |= fresh
        called = {n for n, k in fresh if k == 0 and not is_atom(n) and not is_model_allocator(n)}
        named = {n for n, k in fresh if k < 2 and not is_atom(n)} - called
        fields = {n for n, k in fresh if k == 2}
        need, need_full = index.lookup(called, named, fields)
        upgrade = sorted(need_full - full)
        if upgrade:
            full.update(upgrade)
            outcomes.update(extract(upgrade, True))
        macros_only = sorted(d for d in need if d not in outcomes)
        if macros_only:
            outcomes.update(extract(macros_only, False))
        for display in sorted(need):
            reach(display, need[display])
    return outcomes
