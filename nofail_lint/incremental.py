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
from typing import Any, Callable, NamedTuple, cast

from .demand import C_WORDS, definitions_named, field_key, referenced_names, text_names
from .facts import FileFacts, FunctionFacts, Span
from .findings import Finding, Incomplete, Skipped

# a re-check of more files than this costs about as much as a whole run
AFFECTED_LIMIT = 3000


class Defines(NamedTuple):
    functions: frozenset[str]      # functions with facts and fact-less ones (they shadow),
                                   # function-like wrapper macros among them
    macros: frozenset[str]         # object-like macros
    exported: frozenset[str]       # functions other files' calls can reach (link.resolve):
                                   # not static, or static inline in a header
    fn_macros: frozenset[str]      # function-like mask macros
    fields: frozenset[str]         # struct fields it assigns a mask to


class RunRecord:
    """What a whole run leaves for the next one, in three parts stored apart
    (cache.store_run): the state (every file's fact key, the findings, skipped
    inputs and parts not analysed), the definitions per file, and the
    mentions index (name -> who calls it, who names it otherwise). An edit
    that changes no file's interface loads and rewrites only the state and
    the definitions."""

    PARTS = ("state", "defines", "mentions")

    def __init__(self, keys: dict[str, bytes], findings: list[Finding], skipped: dict[str, Skipped],
                 incomplete: list[Incomplete], defines: dict[str, Defines] | None = None,
                 mentions: tuple[dict, dict] | None = None, load: Callable[[str], object] | None = None):
        self.keys = keys
        self.findings = findings
        self.skipped = skipped
        self.incomplete = incomplete
        self._defines = defines
        self._mentions = mentions
        self._load = load
        self.changed_parts = {"state"} | ({"defines"} if defines is not None else set()) \
            | ({"mentions"} if mentions is not None else set())

    @classmethod
    def loaded(cls, state: object, load: Callable[[str], object]) -> RunRecord | None:
        if not (isinstance(state, tuple) and len(state) == 4):
            return None
        record = cls(*state, load=load)
        record.changed_parts = set()
        return record

    def _part(self, name: str) -> object:
        value = self._load(name) if self._load is not None else None
        if value is None:
            raise LookupError(f"run record part {name!r} is missing")
        return value

    @property
    def defines(self) -> dict[str, Defines]:
        """display -> what it defines"""
        if self._defines is None:
            self._defines = cast(dict, self._part("defines"))
        return self._defines

    @property
    def calls(self) -> dict[str, list[tuple[str, str]]]:
        """name -> (display, definer) calling it"""
        if self._mentions is None:
            self._mentions = cast(tuple, self._part("mentions"))
        return self._mentions[0]

    @property
    def uses(self) -> dict[str, list[tuple[str, str]]]:
        """name -> (display, definer) naming it otherwise (an argument, a macro body)"""
        if self._mentions is None:
            self._mentions = cast(tuple, self._part("mentions"))
        return self._mentions[1]

    def parts(self) -> dict[str, object]:
        """The parts to store: those this run changed."""
        out: dict[str, object] = {}
        if "state" in self.changed_parts:
            out["state"] = (self.keys, self.findings, self.skipped, self.incomplete)
        if "defines" in self.changed_parts:
            out["defines"] = self._defines
        if "mentions" in self.changed_parts:
            out["mentions"] = self._mentions
        return out


def defines_of(ff: FileFacts) -> Defines:
    header = ff.path.endswith(".h")
    return Defines(frozenset(f.name for f in ff.functions) | frozenset(ff.plain_functions),
                   frozenset(name for name, _ in ff.macros),
                   frozenset(f.name for f in ff.functions if header or not f.is_static),
                   frozenset(name for name, _, _ in getattr(ff, "mask_macros", ())),
                   frozenset(field_key(kind, name) for kind, name, _, _ in getattr(ff, "field_masks", ())))


def mentions_of(ff: FileFacts):
    """(name, definer, called) for every name a file's functions, macros and
    field assignments mention; a field read is the name "." + field, a macro
    definer "#" + name, a field assignment's definer "#." + field."""
    for fn in ff.functions:
        called, named, fields = referenced_names(fn)
        for name in called:
            yield name, fn.name, True
        for name in named:
            yield name, fn.name, False
        for name in fields:
            yield "." + name, fn.name, False
    for name, text, alias in definitions_named(ff):
        found: tuple[set[str], set[str], set[str]] = (set(), set(), set())
        text_names(text, found)
        for other in found[1] - C_WORDS:
            yield other, "#" + name, alias
        for other in found[2]:
            yield "." + other, "#" + name, False


def _shape(value: object) -> object:
    """A fact with every position left out (Spans, and the lines and columns of
    lock regions): what callers in other files depend on."""
    if isinstance(value, Span):
        return None
    if isinstance(value, FunctionFacts):
        value = value._replace(atomic=cast(Any, tuple(region[0] for region in value.atomic)))
    if isinstance(value, tuple):
        items = tuple(_shape(v) for v in value)
        return cast(Any, type(value))(*items) if hasattr(value, "_fields") else items
    return value


def interface_changes(old: object, new: object) -> tuple[set[str], set[str], bool]:
    """(functions, macro-like names) whose facts other files can see changed
    between two outcomes of one file, and whether anything moved (spans
    only). Macro-like names are object-like and mask macros, and fields as
    "." + name (definitions_named)."""
    def functions(o: object) -> dict[str, list[object]]:
        out: dict[str, list[object]] = defaultdict(list)
        if isinstance(o, FileFacts):
            for fn in o.functions:
                out[fn.name].append(_shape(fn))
        return out

    def named(o: object) -> dict[str, list[str]]:
        out: dict[str, list[str]] = defaultdict(list)
        if isinstance(o, FileFacts):
            for name, text, _alias in definitions_named(o):
                out[name].append(text)
            for kind, name, op, value in getattr(o, "field_masks", ()):
                out["." + field_key(kind, name)].append(f"{op} {value}")
        return out
    before, after = functions(old), functions(new)
    changed_fns = {n for n in before.keys() | after.keys() if before.get(n) != after.get(n)}
    nb, na = named(old), named(new)
    changed_named = {n for n in nb.keys() | na.keys() if nb.get(n) != na.get(n)}
    return changed_fns, changed_named, old != new


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
    return RunRecord(dict(keys), list(findings), bad, list(incomplete), defines, (dict(calls), dict(uses)))


def affected_files(record: RunRecord, changed: dict[str, tuple[set[str], set[str], bool]],
                   new_defines: dict[str, Defines], is_model_allocator: Callable[[str], bool],
                   is_atom: Callable[[str], bool], limit: int = AFFECTED_LIMIT) -> set[str] | None:
    """The changed files and every file whose findings they can change.

    `changed`: per changed file, the functions and macros whose facts other
    files see changed (interface_changes), and whether anything at all moved.
    Files with a function or macro that reaches such a name, by name and
    transitively, are affected; a function other files cannot call (static in
    a .c file) is followed only within its file. A file whose facts only
    moved (lines shifted) affects the recorded findings that point into it.
    None past `limit`."""
    files = set(changed)
    # (name, is a function, the only file whose calls reach it, or None: any file)
    work: list[tuple[str, bool, str | None]] = []
    moved = set()
    for display, (functions, named, anything) in changed.items():
        if anything:
            moved.add(display)
        exported: frozenset[str] = frozenset()
        for d in (record.defines.get(display), new_defines.get(display)):
            if d is not None:
                exported |= d.exported
        work += [(n, True, None if n in exported else display) for n in functions if not is_model_allocator(n)]
        work += [(n, False, None) for n in named if not is_atom(n)]
    for finding in record.findings:
        if finding.location.path not in files and any(m in repr(finding) for m in moved):
            files.add(finding.location.path)
    seen: set[tuple[str, bool, str | None]] = set()
    while work:
        item = work.pop()
        if item in seen:
            continue
        seen.add(item)
        name, is_function, scope = item
        mentioners = record.calls.get(name, [])
        if not is_function:         # a macro is expanded, a field read, wherever it is named
            mentioners = mentioners + record.uses.get(name, [])
        for display, definer in mentioners:
            if scope is not None and display != scope:
                continue
            files.add(display)
            if definer.startswith("#"):
                work.append((definer[1:], False, None))
            else:
                d = record.defines.get(display)
                work.append((definer, True, None if d is None or definer in d.exported else display))
        if len(files) > limit:
            return None
    return files


def updated(record: RunRecord, keys: dict[str, bytes], changed_facts: dict[str, object],
            findings: list[Finding], incomplete: list[Incomplete], recheck: set[str],
            interface_changed: bool) -> RunRecord:
    """The record after a partial re-check: new keys, spliced findings; the
    changed files' definitions and mentions replaced when their interface
    changed (otherwise those parts are kept as they are, not even loaded)."""
    kept = [f for f in record.findings if f.location.path not in recheck and f.location.path in keys]
    merged = sorted(set(kept) | set(findings), key=Finding.sort_key)
    parts = [i for i in record.incomplete if i.path not in recheck and i.path in keys] + list(incomplete)
    parts.sort(key=lambda i: (i.path, i.line, i.kind, i.message))
    skipped = {p: s for p, s in record.skipped.items() if p in keys and p not in changed_facts}
    for display, outcome in changed_facts.items():
        if isinstance(outcome, Skipped):
            skipped[display] = outcome
    if not interface_changed:
        out = RunRecord(dict(keys), merged, skipped, parts, load=record._load)
        out._defines, out._mentions = record._defines, record._mentions
        out.changed_parts = {"state"}
        return out
    defines = {p: d for p, d in record.defines.items() if p in keys and p not in changed_facts}
    calls = {n: [m for m in ms if m[0] not in changed_facts] for n, ms in record.calls.items()}
    uses = {n: [m for m in ms if m[0] not in changed_facts] for n, ms in record.uses.items()}
    for display, outcome in changed_facts.items():
        if not isinstance(outcome, FileFacts):
            continue
        defines[display] = defines_of(outcome)
        for name, definer, called in mentions_of(outcome):
            (calls if called else uses).setdefault(name, []).append((display, definer))
    return RunRecord(dict(keys), merged, skipped, parts, defines, (calls, uses))
