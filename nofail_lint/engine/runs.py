"""Runs that analyse less than every file of a tree.

Both kinds scan every file of the tree (scan.py: cheap, cached by content)
and extract only what their closure reaches; link and check then run on
that set as on a whole tree, and only what lies in the requested files is
reported.

- `DemandRun`: a partial run (`check fs/xfs`): the targets and every
  definition their functions name (demand.close_over).
- `SeedRun`: where a gfp flag enters a mask (`grep`): the files that mention
  the flag or its macro closure (seeds.py) and what their masks reach
  downwards (flow_demand.py). Any scope, the whole tree included.
"""
from __future__ import annotations

import abc
import hashlib
import re
from pathlib import Path
from typing import Callable, Mapping

from ..cache import FactsCache
from ..demand import DefinitionIndex, close_over
from ..discover import SourceFile, discover
from ..model import NOFAIL, load_model
from ..scan import ScanRow, stored_fields, used_fields
from .flow_demand import close_down
from .seeds import Seeds, unshaped
from .store import Extraction, _macros_only, extract_all, scan_all
from .workers import Outcome, Progress, WorkerContext


class TreeRun(abc.ABC):
    """The tree's files and their scan rows; extraction on demand."""

    macro_calls = False     # a file read for its macros also gives its forwarding macros (SeedRun)

    def __init__(self, targets: list[SourceFile], root: Path | None, cwd: Path | None, jobs: int,
                 progress: Progress | None, extra_names: frozenset[str], cache: FactsCache | None,
                 version: str, warn: Callable[[str], None] | None):
        self.targets, self.root, self.jobs, self.progress, self.warn = targets, root, jobs, progress, warn
        self.extra_names, self.cache, self.version = extra_names, cache, version
        by_absolute = {f.absolute: f for f in targets}
        if root is not None:
            # the same SourceFile for a target however it was named: the
            # context is a function of the request alone, not of the cwd
            tree, _unlisted = discover([str(root)], cwd)
            self.context = [by_absolute.pop(f.absolute, f) for f in tree] + list(by_absolute.values())
        else:
            self.context = list(targets)
        self.by_display = {f.display: f for f in self.context}
        self.scan = scan_all(self.context, jobs, extra_names, cache)
        self.extraction = Extraction({}, {}, cache)
        self.closed = False
        self._stored: dict[str, frozenset[bytes]] = {}
        self._used: dict[str, frozenset[bytes]] = {}
        self._rounds = 0
        self.relevant: frozenset[str] = frozenset()     # relevance.py: set before anything is extracted

    def inputs_key(self, *parts: object) -> bytes:
        """Every file of the tree (path and content) and `parts`: the run's inputs."""
        h = hashlib.blake2b(digest_size=16)
        h.update(repr(parts).encode())
        for display in sorted(self.scan.keys):
            h.update(display.encode() + b"\0" + self.scan.keys[display])
        return h.digest()

    @property
    def rows(self) -> dict[str, ScanRow]:
        return self.scan.rows()

    def extract(self, displays: list[str], full: bool) -> Mapping[str, Outcome]:
        """Outcomes of `displays`: extracted (full) or their macros only."""
        wanted = [self.by_display[d] for d in displays if d in self.by_display]
        if not full:
            part = _macros_only(wanted, WorkerContext.make(self.extra_names, relevant=self.relevant),
                                with_calls=self.macro_calls)
        else:
            stored = frozenset(self.cache.stored_hashes()) if self.cache is not None else None
            first = self._rounds == 0
            part = extract_all(wanted, self.jobs, self.progress if first else None, self.extra_names,
                               self.cache, self.warn if first else None, self.scan.known, stored, self.relevant)
            self._rounds += 1
        self.extraction.merge(part)
        return part.load()

    def _text(self, display: str) -> bytes | None:
        try:
            with open(self.by_display[display].path, "rb") as fh:
                return fh.read()
        except OSError:
            return None

    def _fields_of(self, display: str, memo: dict[str, frozenset[bytes]], scan) -> frozenset[bytes]:
        found = memo.get(display)
        if found is None:
            src = self._text(display)
            found = memo[display] = scan(src) if src is not None else frozenset()
        return found

    def _naming(self, fields: set[str]) -> list[tuple[str, set[tuple[str, bytes]]]]:
        """Files (worth parsing) that name the struct type of one of `fields`
        ("type.field"), with the (key, field) pairs they could touch."""
        wanted = [(key, kind, name.encode()) for key in sorted(fields) for kind, _, name in [key.partition(".")]]
        out = []
        for display, row in self.rows.items():
            if not row.parsed or row.structs.isdisjoint(kind for _, kind, _ in wanted):
                continue
            out.append((display, {(key, name) for key, kind, name in wanted if kind in row.structs}))
        return out

    def find_fields(self, fields: set[str]) -> dict[str, set[str]]:
        """Files that may assign one of `fields` (scan.stored_fields: the
        assignments of a file are indexed once per run, whatever the rounds)."""
        out: dict[str, set[str]] = {}
        for display, pairs in self._naming(fields):
            stored = self._fields_of(display, self._stored, stored_fields)
            hit = {key for key, name in pairs if name in stored}
            if hit:
                out[display] = hit
        return out

    def field_readers(self, fields: set[str], within: frozenset[str] | None = None) -> set[str]:
        """Files (of `within`, if given) that may read one of `fields`."""
        out = set()
        for display, pairs in self._naming(fields):
            if within is not None and display not in within:
                continue
            used = self._fields_of(display, self._used, used_fields)
            if any(name in used for _, name in pairs):
                out.add(display)
        return out

    def nofail_names(self) -> Seeds:
        """__GFP_NOFAIL's macro closure over the tree; its names of no mask
        shape become relevant to extraction (relevance.py)."""
        seeds = self.scan.seeds(NOFAIL, load_model().algebra(self.version).composites)
        self.relevant = unshaped(seeds.names)
        return seeds

    @abc.abstractmethod
    def close_over(self):
        """Extract what the run needs (once)."""

    def note(self, target_set: frozenset[str]) -> str:
        extra = len(set(self.extraction.keys) - target_set)
        return f", with {extra} of the {len(self.context)} file(s) of {self.root} as context"


class DemandRun(TreeRun):
    """A partial run in a kernel tree (demand.py): every file of the tree
    scanned, the targets and what they reach extracted on first use."""

    def close_over(self):
        """Extract the targets and, round by round, the files they reach."""
        if self.closed:
            return
        self.closed = True
        self.nofail_names()
        model = load_model()
        atoms = model.algebra(self.version).atoms
        close_over([f.display for f in self.targets], DefinitionIndex(self.rows, self.find_fields), self.extract,
                   lambda n: model.allocator(n) is not None or n in self.extra_names, atoms.__contains__)


_STORE = re.compile(rb"(?:\.|->)[ \t]*[A-Za-z_]\w*[ \t]*(?:\[[^\]\n]*\][ \t]*)?(?:=(?!=)|\|=|&=)")


def stores_seed(src: bytes, names: frozenset[str]) -> bool:
    """Can a seed name be part of a value stored into a struct field here?
    Some statement (or initialiser) that holds a seed name assigns a field
    before it: a superset of extraction's field_masks."""
    for name in names:
        needle = name.encode()
        i = src.find(needle)
        while i != -1:
            start = max(src.rfind(b";", 0, i), src.rfind(b"{", 0, i), src.rfind(b"}", 0, i)) + 1
            if _STORE.search(src, start, i):
                return True
            i = src.find(needle, i + len(needle))
    return False


class SeedRun(TreeRun):
    """Where `flag` enters a mask, over any scope: the seed files (seeds.py)
    in the requested files and what their masks reach (flow_demand.py)."""

    macro_calls = True      # flow_demand looks a callee that is only such a macro up without parsing

    def __init__(self, targets: list[SourceFile], root: Path | None, cwd: Path | None, jobs: int,
                 progress: Progress | None, extra_names: frozenset[str], cache: FactsCache | None,
                 version: str, warn: Callable[[str], None] | None, flag: str):
        super().__init__(targets, root, cwd, jobs, progress, extra_names, cache, version, warn)
        self.flag = flag
        self.seeds: Seeds | None = None

    def close_over(self):
        if self.closed:
            return
        self.closed = True
        model = load_model()
        algebra = model.algebra(self.version)
        self.seeds = seeds = self.scan.seeds(self.flag, algebra.composites)
        # extraction keeps what names the flag's macros, and NOFAIL's (every rule's flag: the
        # facts are shared with `check` through the cache)
        nofail = seeds if self.flag == NOFAIL else self.nofail_names()
        self.relevant = unshaped(seeds.names) | unshaped(nofail.names)
        requested = frozenset(f.display for f in self.targets)
        start = set(seeds.files & requested)
        # a seed stored into a struct field elsewhere reaches readers here
        for display in sorted(seeds.files - requested):
            src = self._text(display)
            if src is not None and stores_seed(src, seeds.names):
                start.add(display)
        close_down(sorted(start), seeds.names, DefinitionIndex(self.rows, self.find_fields), self.extract,
                   lambda fields: self.field_readers(fields, requested),
                   lambda n: model.allocator(n) is not None or n in self.extra_names, algebra.atoms.__contains__,
                   self.fn_macros.__contains__)

    @property
    def fn_macros(self) -> frozenset[str]:
        """Every name the tree may define as a function-like macro."""
        return frozenset().union(*(row.fn_macros for row in self.rows.values()))

    def note(self, target_set: frozenset[str]) -> str:
        seeds = self.seeds
        if seeds is None:
            return ""
        return (f", {len(self.extraction.keys)} of {len(self.context)} file(s) analysed "
                f"({len(seeds.files)} naming {self.flag} or one of {len(seeds.names) - 1} macro(s) expanding to it)")
