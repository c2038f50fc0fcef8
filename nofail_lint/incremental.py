"""Incremental: a run after a few files changed re-checks only what they can affect.

A finding in a function depends on that function's facts and, downwards, on
the definitions its names reach (callees, wrappers, macros): link and check
never look upwards. So when some files change, the only findings that can
change are in the changed files and in functions that reach, by name and
transitively, a name the changed files define (before or after the change).

A whole run leaves a `RunRecord` in the cache: every file's fact key, the
findings, which names each file defines, and who mentions each name. The next
run of the same scope diffs the fact keys, walks the mentions upwards from the
changed files' names, and re-checks only the files found, on the facts of
their downward closure (demand.close_over with the exact definitions). The
other files keep their recorded findings. Past a limit (an edit to a header
every file reaches) it gives up and the caller runs everything.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Callable, NamedTuple

from .demand import _ALIAS, _C_WORDS, _IDENTIFIER, referenced_names
from .facts import FileFacts
from .findings import Finding, Incomplete, Skipped

# a re-check of more files than this costs about as much as a whole run
AFFECTED_LIMIT = 3000


class Defines(NamedTuple):
    functions: frozenset[str]      # functions with facts and fact-less ones (they shadow)
    macros: frozenset[str]         # object-like macros and function-like wrapper macros


class RunRecord(NamedTuple):
    keys: dict[str, bytes]                          # display -> fact key, every file of the run
    findings: list[Finding]
    skipped: dict[str, Skipped]                     # extraction's skipped inputs, by file
    defines: dict[str, Defines]                     # display -> what it defines
    calls: dict[str, list[tuple[str, str]]]         # name -> (display, definer) calling it
    uses: dict[str, list[tuple[str, str]]]          # name -> (display, definer) naming it otherwise
    incomplete: list[Incomplete]                    # parts not analysed (parse errors, limits)


def defines_of(ff: FileFacts) -> Defines:
    return Defines(frozenset(f.name for f in ff.functions) | frozenset(ff.plain_functions),
                   frozenset(name for name, _ in ff.macros))


def mentions_of(ff: FileFacts):
    """(name, definer, called) for every name a file's functions and macros mention."""
    for fn in ff.functions:
        called, others = referenced_names(fn)
        for name in called:
            yield name, fn.name, True
        for name in others:
            yield name, fn.name, False
    for name, body in ff.macros:
        mentioned = set(_IDENTIFIER.findall(body)) - _C_WORDS
        alias = _ALIAS.match(body) is not None
        for other in mentioned:
            yield other, "#" + name, alias


def build_record(keys: dict[str, bytes], facts: list[FileFacts], findings: list[Finding],
                 skipped: list[Skipped], incomplete: list[Incomplete]) -> RunRecord:
    calls: dict[str, list[tuple[str, str]]] = defaultdict(list)
    uses: dict[str, list[tuple[str, str]]] = defaultdict(list)
    defines = {}
    for ff in facts:
        defines[ff.path] = defines_of(ff)
        for name, definer, called in mentions_of(ff):
            (calls if called else uses)[name].append((ff.path, definer))
    bad = {s.path: s for s in skipped if s.path in keys}
    return RunRecord(dict(keys), list(findings), bad, defines, dict(calls), dict(uses), list(incomplete))


def affected_files(record: RunRecord, changed: set[str], new_defines: dict[str, Defines],
                   is_model_allocator: Callable[[str], bool], is_atom: Callable[[str], bool],
                   limit: int = AFFECTED_LIMIT) -> set[str] | None:
    """The changed files and every file with a function or macro that reaches,
    by name and transitively, a name they define (old or new). None past `limit`."""
    files = set(changed)
    functions: set[str] = set()
    macros: set[str] = set()
    for display in changed:
        for d in (record.defines.get(display), new_defines.get(display)):
            if d is not None:
                functions |= {n for n in d.functions if not is_model_allocator(n)}
                macros |= {n for n in d.macros if not is_atom(n)}
    seen: set[tuple[str, bool]] = set()
    work = [(n, True) for n in functions] + [(n, False) for n in macros]
    while work:
        name, is_function = work.pop()
        if (name, is_function) in seen:
            continue
        seen.add((name, is_function))
        mentioners = record.calls.get(name, [])
        if not is_function:         # a macro is expanded wherever it is named
            mentioners = mentioners + record.uses.get(name, [])
        for display, definer in mentioners:
            files.add(display)
            if definer.startswith("#"):
                work.append((definer[1:], False))
            else:
                work.append((definer, True))
        if len(files) > limit:
            return None
    return files


def updated(record: RunRecord, keys: dict[str, bytes], changed_facts: dict[str, object],
            findings: list[Finding], incomplete: list[Incomplete], recheck: set[str]) -> RunRecord:
    """The record after a partial re-check: new keys, spliced findings, the
    changed files' definitions and mentions replaced."""
    kept = [f for f in record.findings if f.location.path not in recheck and f.location.path in keys]
    merged = sorted(set(kept) | set(findings), key=Finding.sort_key)
    parts = [i for i in record.incomplete if i.path not in recheck and i.path in keys] + list(incomplete)
    parts.sort(key=lambda i: (i.path, i.line, i.kind, i.message))
    skipped = {p: s for p, s in record.skipped.items() if p in keys and p not in changed_facts}
    defines = {p: d for p, d in record.defines.items() if p in keys and p not in changed_facts}
    calls = {n: [m for m in ms if m[0] not in changed_facts] for n, ms in record.calls.items()}
    uses = {n: [m for m in ms if m[0] not in changed_facts] for n, ms in record.uses.items()}
    for display, outcome in changed_facts.items():
        if isinstance(outcome, Skipped):
            skipped[display] = outcome
        if not isinstance(outcome, FileFacts):
            continue
        defines[display] = defines_of(outcome)
        for name, definer, called in mentions_of(outcome):
            (calls if called else uses).setdefault(name, []).append((display, definer))
    return RunRecord(dict(keys), merged, skipped, defines, calls, uses, parts)
