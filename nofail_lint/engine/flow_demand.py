"""Flow demand: from the seed files down to what their gfp masks reach.

Where a flag enters a mask (a `grep` site) depends on the call that supplies
it and, downwards, on the definitions that carry the mask to a kernel API:
the callee and, in it, the calls that pass one of its parameters on, and so
on; plus the macros the carried arguments name, and the assignments of the
struct fields they read (docs/architecture.md, "Partial and repeated runs").
This stage follows exactly those edges, instead of every name a reached
function mentions (demand.close_over):

- in a seed function, the calls (and returned calls) whose arguments name a
  seed name or read a seeded field;
- in a reached callee, the calls whose arguments name one of its parameters
  (locals are already substituted by extraction, so a mask copied into a
  local still names the parameter);
- every identifier of a followed call's arguments, as a possible macro, and
  through macro bodies; every field such an argument reads, through the
  files that assign it.

A field becomes *seeded* when a value naming a seed is stored in it; the
files that read it are then seed files too. Files are found through the scan
index (scan.py), so the set reached is a superset of what the sites need.
"""
from __future__ import annotations

import re
from typing import Callable, Iterable, Mapping

from ..demand import (
    C_WORDS,
    FIELD_READ,
    IDENTIFIER,
    DefinitionIndex,
    Extractor,
    definitions_named,
    field_key,
    text_names,
)
from ..facts import FileFacts, FunctionFacts

_FIELD = re.compile(re.escape(FIELD_READ) + r"\(\s*(\w+)\s*,\s*(\w+)\s*\)")

# readers(fields) -> files (display) that may read one of the fields ("type.field")
FieldReaders = Callable[[set[str]], set[str]]


def _carried(args: Iterable[str], carriers: frozenset[str], fields: set[str]) -> bool:
    for a in args:
        if not carriers.isdisjoint(IDENTIFIER.findall(a)):
            return True
        if fields and FIELD_READ in a and any(field_key(k, n) in fields for k, n in _FIELD.findall(a)):
            return True
    return False


def _followed(fn: FunctionFacts, carriers: frozenset[str], fields: set[str]) -> list[tuple[str, tuple[str, ...]]]:
    """(callee, argument texts) of the calls and returned calls that carry a mask in."""
    out = [(c.callee, c.args) for c in fn.calls if _carried(c.args, carriers, fields)]
    out += [(r.callee, r.args) for r in fn.returns if _carried(r.args, carriers, fields)]
    return out


class FlowDemand:
    """The closure itself; `outcomes` holds every file extracted on the way."""

    def __init__(self, index: DefinitionIndex, extract: Extractor, readers: FieldReaders,
                 is_model_allocator: Callable[[str], bool], is_atom: Callable[[str], bool]):
        self.index, self.extract, self.readers = index, extract, readers
        self.is_model_allocator, self.is_atom = is_model_allocator, is_atom
        self.outcomes: dict[str, object] = {}
        self.full: set[str] = set()
        self.seeded_fields: set[str] = set()
        self._reached: set[tuple[str, str]] = set()      # (file, function, "#" macro or "." field)
        self._looked_up: set[tuple[str, int]] = set()
        self._called: set[str] = set()
        self._named: set[str] = set()
        self._fields: set[str] = set()

    def run(self, seed_files: Iterable[str], seeds: frozenset[str]) -> dict[str, object]:
        """Close over `seed_files` (display paths) for the seed names `seeds`."""
        seed_set = set(seed_files)
        done_seeds: set[str] = set()
        while True:
            fresh = sorted(seed_set - done_seeds)
            if fresh:
                done_seeds.update(fresh)
                self._load(fresh, True)
                for display in fresh:
                    self._reach_seed(display, seeds)
            self._close()
            # stores of a seed into a struct field make its readers seed files too
            grown = self._seed_fields(seeds)
            if grown:
                seed_set |= self.readers(grown)
                for display in sorted(done_seeds):        # seed files read those fields too
                    self._reach_seed(display, seeds)
            if not grown and not (seed_set - done_seeds):
                break
        return self.outcomes

    # ------------------------------------------------------------ following

    def _load(self, displays: list[str], full: bool):
        wanted = [d for d in displays if d not in self.full] if full else \
            [d for d in displays if d not in self.outcomes]
        if not wanted:
            return
        if full:
            self.full.update(wanted)
        self.outcomes.update(self.extract(wanted, full))

    def _reach_seed(self, display: str, seeds: frozenset[str]):
        ff = self.outcomes.get(display)
        if not isinstance(ff, FileFacts):
            return
        for fn in ff.functions:
            self._follow(ff, fn, seeds)

    def _follow(self, ff: FileFacts, fn: FunctionFacts, carriers: frozenset[str]):
        """Collect what the carrying calls of `fn` name; a callee defined in the
        same file is followed at once (a call resolves there first)."""
        local = {f.name: f for f in ff.functions}
        todo = [(fn, carriers)]
        while todo:
            f, carry = todo.pop()
            for callee, args in _followed(f, carry, self.seeded_fields):
                key = (ff.path, callee)
                self._called.add(callee)
                for a in args:
                    text_names(a, (self._called, self._named, self._fields))
                if callee in local and key not in self._reached:
                    self._reached.add(key)
                    target = local[callee]
                    todo.append((target, frozenset(target.params)))
        self._named.difference_update(C_WORDS)
        self._called.difference_update(C_WORDS)

    def _reach(self, display: str, wanted: set[str]):
        """Follow what a file defines of `wanted`: functions (their parameters
        carry the mask), macros and field assignments (their text)."""
        ff = self.outcomes.get(display)
        if not isinstance(ff, FileFacts):
            return
        for fn in ff.functions:
            if fn.name in wanted and (display, fn.name) not in self._reached:
                self._reached.add((display, fn.name))
                self._follow(ff, fn, frozenset(fn.params))
        found = (self._called, self._named, self._fields)
        for name, text, alias in definitions_named(ff):
            if name in wanted and (display, "#" + name) not in self._reached:
                self._reached.add((display, "#" + name))
                text_names(text, found)
                self._named.difference_update(C_WORDS)
                if alias:                   # `#define my_alloc kmalloc` may name a function
                    self._called.update(IDENTIFIER.findall(text))

    def _close(self):
        """Round by round: look the collected names up, extract, follow."""
        while True:
            fresh = {(n, 0) for n in self._called} | {(n, 1) for n in self._named} | \
                {(n, 2) for n in self._fields}
            fresh -= self._looked_up
            self._called.clear()
            self._named.clear()
            self._fields.clear()
            if not fresh:
                return
            self._looked_up |= fresh
            called = {n for n, k in fresh if k == 0 and not self.is_atom(n) and not self.is_model_allocator(n)}
            named = {n for n, k in fresh if k < 2 and not self.is_atom(n)} - called
            fields = {n for n, k in fresh if k == 2}
            need, need_full = self.index.lookup(called, named, fields)
            self._load(sorted(need_full), True)
            self._load(sorted(d for d in need if d not in self.outcomes), False)
            for display in sorted(need):
                self._reach(display, need[display])

    def _seed_fields(self, seeds: frozenset[str]) -> set[str]:
        """Fields newly known to hold a seed: a stored value names a seed or
        reads a seeded field. Their assignments are looked up (all of them:
        the link stage unites them)."""
        grown: set[str] = set()
        changed = True
        while changed:
            changed = False
            for ff in self.outcomes.values():
                if not isinstance(ff, FileFacts):
                    continue
                for kind, name, _op, value in ff.field_masks:
                    key = field_key(kind, name)
                    if key in self.seeded_fields:
                        continue
                    if _carried((value,), seeds, self.seeded_fields):
                        self.seeded_fields.add(key)
                        grown.add(key)
                        changed = True
        if grown:
            self._fields.update(grown)
            self._close()
        return grown


def close_down(seed_files: Iterable[str], seeds: frozenset[str], index: DefinitionIndex, extract: Extractor,
               readers: FieldReaders, is_model_allocator: Callable[[str], bool],
               is_atom: Callable[[str], bool]) -> Mapping[str, object]:
    """Every outcome the seed files and what their masks reach need."""
    return FlowDemand(index, extract, readers, is_model_allocator, is_atom).run(seed_files, seeds)
