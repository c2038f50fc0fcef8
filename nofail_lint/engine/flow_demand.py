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

from ..cexpr import close_paren
from ..demand import (
    C_WORDS,
    FIELD_CALL,
    FIELD_READ,
    IDENTIFIER,
    DefinitionIndex,
    Extractor,
    definitions_named,
    field_key,
    text_names,
)
from ..facts import FileFacts, FunctionFacts

# readers(fields) -> files (display) that may read one of the fields ("type.field")
FieldReaders = Callable[[set[str]], set[str]]


_CALL = re.compile(r"([A-Za-z_]\w*)\s*\(")


def mask_text(arg: str, is_fn_macro: Callable[[str], bool]) -> str:
    """The part of an argument a mask can come from: the mask evaluator
    (cexpr.MaskEvaluator) reads a call's value only for a function-like
    macro (and a field read); any other call is an unknown value, whatever
    its arguments (`ASSERT(p->x)` with `p` a local holding `kzalloc(..., gfp)`
    carries no mask). Those arguments are left out."""
    if "(" not in arg:
        return arg
    out = []
    i = 0
    for m in _CALL.finditer(arg):
        if m.start() < i:
            continue                       # inside a call already left out
        name = m.group(1)
        if name == FIELD_READ or is_fn_macro(name):
            continue
        close = close_paren(arg, m.end() - 1)
        if close is None:
            break
        out.append(arg[i:m.end()])
        i = close
    out.append(arg[i:])
    return "".join(out)


def _carries(arg: str, carriers: frozenset[str], fields: set[str], is_fn_macro: Callable[[str], bool]) -> bool:
    if carriers.isdisjoint(IDENTIFIER.findall(arg)) and not (fields and FIELD_READ in arg):
        return False
    arg = mask_text(arg, is_fn_macro)
    if not carriers.isdisjoint(IDENTIFIER.findall(arg)):
        return True
    return bool(fields) and FIELD_READ in arg and any(field_key(k, n) in fields for k, n in FIELD_CALL.findall(arg))


def _followed(fn: FunctionFacts, carriers: frozenset[str], fields: set[str],
              is_fn_macro: Callable[[str], bool]) -> list[tuple[str, tuple[str, ...], frozenset[int]]]:
    """(callee, argument texts, positions of the arguments that carry the
    mask) of the calls and returned calls that carry a mask in."""
    out = []
    for callee, args in [(c.callee, c.args) for c in fn.calls] + [(r.callee, r.args) for r in fn.returns]:
        positions = frozenset(i for i, a in enumerate(args) if _carries(a, carriers, fields, is_fn_macro))
        if positions:
            out.append((callee, args, positions))
    return out


class FlowDemand:
    """The closure itself; `outcomes` holds every file extracted on the way."""

    def __init__(self, index: DefinitionIndex, extract: Extractor, readers: FieldReaders,
                 is_model_allocator: Callable[[str], bool], is_atom: Callable[[str], bool],
                 is_fn_macro: Callable[[str], bool]):
        self.index, self.extract, self.readers, self.is_fn_macro = index, extract, readers, is_fn_macro
        self.is_model_allocator, self.is_atom = is_model_allocator, is_atom
        self.outcomes: dict[str, object] = {}
        self.full: set[str] = set()
        self.seeded_fields: set[str] = set()
        self._positions: dict[str, set[int]] = {}          # callee -> argument positions a mask arrives at
        self._done: dict[tuple[str, str], frozenset[int]] = {}   # (file, function) -> positions followed
        self._defined_in: dict[str, set[str]] = {}         # callee -> files found that may define it
        self._dirty: set[str] = set()                      # callees reached at new positions
        self._reached: set[tuple[str, str]] = set()        # (file, "#" macro or "." field) followed
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
        """Collect what the carrying calls of `fn` name, and the positions the
        mask arrives at in each callee; a callee defined in the same file is
        followed at once (a call resolves there first)."""
        local = {f.name: f for f in ff.functions}
        todo = [(fn, carriers)]
        while todo:
            f, carry = todo.pop()
            for callee, args, positions in _followed(f, carry, self.seeded_fields, self.is_fn_macro):
                self._called.add(callee)
                ignored: set[str] = set()
                for i, a in enumerate(args):
                    # identifiers of every argument may be macros the flow evaluates
                    # (guards, bounds); fields matter only where the mask is
                    text_names(a, (self._called, self._named, self._fields if i in positions else ignored))
                known = self._positions.setdefault(callee, set())
                if not positions <= known:
                    known |= positions
                    self._dirty.add(callee)
                target = local.get(callee)
                if target is not None:
                    more = self._carriers(ff.path, target)
                    if more is not None:
                        todo.append((target, more))
        self._named.difference_update(C_WORDS)
        self._called.difference_update(C_WORDS)

    def _carriers(self, display: str, fn: FunctionFacts) -> frozenset[str] | None:
        """The parameters of `fn` a mask arrives at that were not followed yet."""
        positions = frozenset(self._positions.get(fn.name, ()))
        done = self._done.get((display, fn.name), frozenset())
        if positions <= done:
            return None
        self._done[(display, fn.name)] = positions | done
        return frozenset(fn.params[i] for i in positions - done if i < len(fn.params) and fn.params[i])

    def _reach(self, display: str, wanted: set[str]):
        """Follow what a file defines of `wanted`: functions (the parameters a
        mask arrives at carry it), macros and field assignments (their text)."""
        ff = self.outcomes.get(display)
        if not isinstance(ff, FileFacts):
            return
        for fn in ff.functions:
            if fn.name in wanted:
                carriers = self._carriers(display, fn)
                if carriers is not None:
                    self._follow(ff, fn, carriers)
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
            dirty = {n for n in self._dirty if (n, 0) in self._looked_up}
            self._dirty -= dirty
            if not fresh and not dirty:
                return
            self._looked_up |= fresh
            called = {n for n, k in fresh if k == 0 and not self.is_atom(n) and not self.is_model_allocator(n)}
            named = {n for n, k in fresh if k < 2 and not self.is_atom(n)} - called
            fields = {n for n, k in fresh if k == 2}
            need, need_full = self.index.lookup(called, named, fields, macro_calls_full=False) \
                if fresh else ({}, set())
            self._load(sorted(need_full), True)
            self._load(sorted(d for d in need if d not in self.outcomes), False)
            for display, names in need.items():
                for name in names:
                    self._defined_in.setdefault(name, set()).add(display)
            for name in sorted(dirty):              # reached again, at new positions
                for display in sorted(self._defined_in.get(name, ())):
                    need.setdefault(display, set()).add(name)
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
                    if key not in self.seeded_fields and _carries(value, seeds, self.seeded_fields, self.is_fn_macro):
                        self.seeded_fields.add(key)
                        grown.add(key)
                        changed = True
        if grown:
            self._fields.update(grown)
            self._close()
        return grown


def close_down(seed_files: Iterable[str], seeds: frozenset[str], index: DefinitionIndex, extract: Extractor,
               readers: FieldReaders, is_model_allocator: Callable[[str], bool],
               is_atom: Callable[[str], bool], is_fn_macro: Callable[[str], bool]) -> Mapping[str, object]:
    """Every outcome the seed files and what their masks reach need.
    `is_fn_macro(name)`: may the tree define `name` as a function-like macro."""
    return FlowDemand(index, extract, readers, is_model_allocator, is_atom, is_fn_macro).run(seed_files, seeds)
