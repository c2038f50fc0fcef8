"""Runs that analyse less than every file of a tree.

`DemandRun`: a partial run (`check fs/xfs`) in a kernel tree: every file of
the tree scanned, the targets and what they reach extracted (demand.py).
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable, Mapping

from ..cache import FactsCache
from ..demand import DefinitionIndex, close_over
from ..discover import SourceFile, discover
from ..model import load_model
from ..scan import assigns_field
from .store import Extraction, _macros_only, extract_all, scan_all
from .workers import Outcome, Progress


class DemandRun:
    """A partial run in a kernel tree (demand.py): every file of the tree
    scanned, the targets and what they reach extracted on first use."""

    def __init__(self, targets: list[SourceFile], root: Path, cwd: Path | None, jobs: int,
                 progress: Progress | None, extra_names: frozenset[str], cache: FactsCache | None,
                 version: str, warn: Callable[[str], None] | None):
        self.targets, self.root, self.jobs, self.progress, self.warn = targets, root, jobs, progress, warn
        self.extra_names, self.cache, self.version = extra_names, cache, version
        context, _unlisted = discover([str(root)], cwd)
        by_absolute = {f.absolute: f for f in targets}
        self.context = [by_absolute.pop(f.absolute, f) for f in context] + list(by_absolute.values())
        self.scan = scan_all(self.context, jobs, extra_names, cache)
        self.extraction = Extraction({}, {}, cache)
        self.closed = False

    def inputs_key(self, *parts: object) -> bytes:
        """Every file of the tree (path and content) and `parts`: the run's inputs."""
        h = hashlib.blake2b(digest_size=16)
        h.update(repr(parts).encode())
        for display in sorted(self.scan.keys):
            h.update(display.encode() + b"\0" + self.scan.keys[display])
        return h.digest()

    def close_over(self):
        """Extract the targets and, round by round, the files they reach."""
        if self.closed:
            return
        self.closed = True
        by_display = {f.display: f for f in self.context}
        model = load_model()
        atoms = model.algebra(self.version).atoms
        stored = frozenset(self.cache.stored_hashes()) if self.cache is not None else None
        rounds = [0]

        def extract(displays: list[str], full: bool) -> Mapping[str, Outcome]:
            wanted = [by_display[d] for d in displays if d in by_display]
            if not full:
                part = _macros_only(wanted, self.scan.context)
            else:
                part = extract_all(wanted, self.jobs, self.progress if rounds[0] == 0 else None,
                                   self.extra_names, self.cache, self.warn if rounds[0] == 0 else None,
                                   self.scan.known, stored)
                rounds[0] += 1
            self.extraction.merge(part)
            return part.load()

        rows = self.scan.rows()

        def find_fields(fields: set[str]) -> dict[str, set[str]]:
            """Files (worth parsing) that may assign one of `fields` (scan.assigns_field)."""
            # "type.field": a file can assign it only if it names the struct type
            wanted = [(key, kind.encode(), name.encode())
                      for key in sorted(fields) for kind, _, name in [key.partition(".")]]
            out: dict[str, set[str]] = {}
            kinds = {key.partition(".")[0] for key in fields}
            for display, row in rows.items():
                if not row.parsed or row.structs.isdisjoint(kinds):
                    continue
                try:
                    with open(by_display[display].path, "rb") as fh:
                        src = fh.read()
                except OSError:
                    continue
                hit = {key for key, kind, name in wanted if kind in src and assigns_field(src, name)}
                if hit:
                    out[display] = hit
            return out

        close_over([f.display for f in self.targets], DefinitionIndex(rows, find_fields), extract,
                   lambda n: model.allocator(n) is not None or n in self.extra_names, atoms.__contains__)

