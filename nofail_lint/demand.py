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

from .facts import FileFacts, FunctionFacts

_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")
_ALIAS = re.compile(r"^\(?\s*[A-Za-z_]\w*\s*\)?$")
# words of C that can never name a definition
_C_WORDS = frozenset(
    "if else for while do switch case default return goto break continue sizeof typeof "
    "struct union enum const volatile static inline extern unsigned signed int long short "
    "char void bool true false NULL".split())


class Definitions(Protocol):
    @property
    def functions(self) -> frozenset[str]: ...
    @property
    def macros(self) -> frozenset[str]: ...


class DefinitionIndex:
    """Which files may define which names, from per-file rows (scan.ScanRow, or
    incremental.Defines for exact definitions). Lookups go by batch: one pass
    of set intersections over the rows, no inverted index to build."""

    def __init__(self, rows: Mapping[str, Definitions]):
        self.rows = [(display, rows[display]) for display in sorted(rows)
                     if rows[display].functions or rows[display].macros]

    def lookup(self, functions: set[str], macros: set[str]) -> tuple[dict[str, frozenset[str]], set[str]]:
        """({file: the names it may define}, files that may define one of
        `functions` as a function). A function name is looked up among macros too."""
        found: dict[str, frozenset[str]] = {}
        as_function: set[str] = set()
        names = functions | macros
        for display, row in self.rows:
            f = row.functions & functions if functions else frozenset()
            m = row.macros & names
            if f:
                as_function.add(display)
                m = m | f
            if m:
                found[display] = m
        return found, as_function


def _names_in(value: object, field: str, callees: set[str], others: set[str]):
    """Walk a fact (NamedTuples and tuples, recursively): strings in a field
    named `callee*` are called names; identifiers in any other string (argument
    texts) are names a mask or a bound may expand as a macro."""
    if isinstance(value, str):
        if field.startswith("callee"):
            callees.add(value)
        else:
            others.update(_IDENTIFIER.findall(value))
    elif isinstance(value, tuple):
        fields = getattr(value, "_fields", None)
        if fields is not None:
            for name, item in zip(fields, value, strict=True):
                _names_in(item, name, callees, others)
        else:
            for item in value:
                _names_in(item, field, callees, others)


def referenced_names(fn: FunctionFacts) -> tuple[set[str], set[str]]:
    """(called names, other identifiers) in a function's facts, its own name,
    parameters and span left out."""
    callees: set[str] = set()
    others: set[str] = set()
    for name, value in zip(fn._fields, fn, strict=True):
        if name not in ("name", "is_static", "params", "span"):
            _names_in(value, name, callees, others)
    return callees - _C_WORDS, others - _C_WORDS - set(fn.params)


# extract(files, full): {file: outcome}; full=False needs only the file's macros
Extractor = Callable[[list[str], bool], Mapping[str, object]]


def close_over(targets: Iterable[str], index: DefinitionIndex, extract: Extractor,
               is_model_allocator: Callable[[str], bool], is_atom: Callable[[str], bool]) -> dict[str, object]:
    """Extract the targets, then every file that may define a name their
    reached functions (and reached macros) mention, until nothing new is reached.

    `extract(displays, full)` returns {display: outcome} (FileFacts, Skipped
    or None); a file needed only for its object-like macros is read for those
    alone (full=False), and extracted fully once a function of it is needed.
    Returns every outcome."""
    outcomes: dict[str, object] = {}
    reached: set[tuple[str, str]] = set()          # (file, function or macro name)
    looked_up: set[tuple[str, bool]] = set()
    callees: set[str] = set()                      # called names
    names: set[str] = set()                        # other identifiers (possible macros)

    def reach(display: str, wanted: AbstractSet[str] | None):
        """Follow the functions (all, or those named in `wanted`) and macros of one file."""
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
            called, mentioned = referenced_names(fn)
            callees.update(called)
            names.update(mentioned)
            # a call resolves to its own file's definition first (link.resolve)
            todo.extend(f for f in ff.functions if f.name in called and f.name in local)
        for name, body in ff.macros:
            if (wanted is None or name in wanted) and (display, "#" + name) not in reached:
                reached.add((display, "#" + name))
                mentioned = set(_IDENTIFIER.findall(body)) - _C_WORDS
                names.update(mentioned)
                if _ALIAS.match(body):          # `#define my_alloc kmalloc` may name a function
                    callees.update(mentioned)

    full: set[str] = set(targets)
    first = extract(sorted(full), True)
    outcomes.update(first)
    for display in first:
        reach(display, None)
    while True:
        fresh = {(n, True) for n in callees} | {(n, False) for n in names}
        fresh -= looked_up
        callees.clear()
        names.clear()
        if not fresh:
            break
        looked_up |= fresh
        fn_names = {n for n, called in fresh if called and not is_atom(n) and not is_model_allocator(n)}
        macro_names = {n for n, called in fresh if not is_atom(n)} - fn_names
        need, need_full = index.lookup(fn_names, macro_names)
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
