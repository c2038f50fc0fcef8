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
from collections import defaultdict
from typing import Callable, Iterable

from .facts import FileFacts, FunctionFacts
from .scan import ScanRow

_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")
# words of C that can never name a definition
_C_WORDS = frozenset(
    "if else for while do switch case default return goto break continue sizeof typeof "
    "struct union enum const volatile static inline extern unsigned signed int long short "
    "char void bool true false NULL".split())


class DefinitionIndex:
    """name -> files that may define it (as a function or a macro), from scan rows."""

    def __init__(self, rows: dict[str, ScanRow]):
        self.functions: dict[str, list[str]] = defaultdict(list)
        self.macros: dict[str, list[str]] = defaultdict(list)
        for display in sorted(rows):
            row = rows[display]
            for name in row.functions:
                self.functions[name].append(display)
            for name in row.macros:
                self.macros[name].append(display)

    def files_defining(self, name: str, as_function: bool) -> list[str]:
        found = self.macros.get(name, [])
        if as_function:
            found = found + self.functions.get(name, [])
        return found


def _names_in(value: object, out: set[str]):
    """Every identifier in the strings of a fact (NamedTuples and tuples, recursively)."""
    if isinstance(value, str):
        out.update(_IDENTIFIER.findall(value))
    elif isinstance(value, tuple):
        for item in value:
            _names_in(item, out)


def referenced_names(fn: FunctionFacts) -> set[str]:
    """Names a function's facts mention: callees, returned callees, loop
    calls and every identifier in argument texts (possible macros)."""
    out: set[str] = set()
    _names_in(fn.calls, out)
    _names_in(fn.returns, out)
    _names_in(fn.retry_loops, out)
    _names_in(fn.atomic, out)
    for field in fn._fields[9:]:          # facts added after `other_returns`, whatever they are
        _names_in(getattr(fn, field), out)
    return out - _C_WORDS


Extractor = Callable[[list[str]], dict[str, object]]


def close_over(targets: Iterable[str], index: DefinitionIndex, extract: Extractor,
               is_model_allocator: Callable[[str], bool], is_atom: Callable[[str], bool]) -> dict[str, object]:
    """Extract the targets, then every file that may define a name their
    reached functions (and reached macros) mention, until nothing new is reached.

    `extract(displays)` returns {display: outcome} (FileFacts, Skipped or
    None). Returns every outcome extracted."""
    outcomes: dict[str, object] = {}
    reached: set[tuple[str, str]] = set()          # (file, function or macro name)
    looked_up: set[str] = set()
    names: set[str] = set()                        # mentioned, not yet looked up

    def reach(display: str, wanted: set[str] | None):
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
            mentioned = referenced_names(fn)
            names.update(mentioned)
            # a call resolves to its own file's definition first (link.resolve)
            todo.extend(f for f in ff.functions if f.name in mentioned and f.name in local)
        for name, body in ff.macros:
            if (wanted is None or name in wanted) and (display, "#" + name) not in reached:
                reached.add((display, "#" + name))
                names.update(set(_IDENTIFIER.findall(body)) - _C_WORDS)

    first = extract(sorted(set(targets)))
    outcomes.update(first)
    for display in first:
        reach(display, None)
    while names - looked_up:
        fresh = names - looked_up
        looked_up |= fresh
        need: dict[str, set[str]] = defaultdict(set)
        for name in fresh:
            if is_atom(name):
                continue
            for display in index.files_defining(name, as_function=not is_model_allocator(name)):
                need[display].add(name)
        new_files = sorted(d for d in need if d not in outcomes)
        if new_files:
            outcomes.update(extract(new_files))
        for display in sorted(need):
            reach(display, need[display])
    return outcomes
