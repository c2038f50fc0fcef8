"""The facts store: every file's fact key and outcome.

`extract_all` extracts what the cache does not hold (in workers) and
`Extraction` loads the rest on demand; `scan_all` does the same for the tree
scan's rows (scan.py). Facts and rows are stored by content hash, so an
unchanged file costs a stat.
"""
from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, cast

from ..cache import FactsCache, content_hash, seal, unseal
from ..discover import SourceFile, worth_parsing
from ..facts import FileFacts
from ..findings import Skipped
from ..relevance import extra_names
from ..scan import ScanRow, scan_source
from .seeds import Seeds, find_seeds
from .workers import (
    NOTHING_SCANNED,
    Answer,
    Outcome,
    Progress,
    WorkerContext,
    _analyse_source,
    _run_workers,
    _scan_batch,
    _scan_one,
    unparsed,
)


@dataclass
class Extraction:
    """Every file's fact key and outcome; outcomes the cache holds are loaded on demand."""

    keys: dict[str, bytes]                  # display -> fact key, for every file that could be read
    outcomes: dict[str, Outcome]            # display -> outcome computed (or loaded) this run
    cache: FactsCache | None
    context: WorkerContext = field(default_factory=WorkerContext)
    paths: dict[str, str] = field(default_factory=dict)    # display -> path to open
    reused: int = 0                         # files whose facts came from the cache, not extraction

    def result_key(self, *parts: object) -> bytes:
        """A digest of every file's content and `parts`: names a whole run's inputs."""
        h = hashlib.blake2b(digest_size=16)
        h.update(repr(parts).encode())
        for display in sorted(self.keys):
            h.update(display.encode() + b"\0" + self.keys[display])
        for display in sorted(set(self.outcomes) - set(self.keys)):
            h.update(display.encode() + b"\0unreadable")
        return h.digest()

    def load(self, displays: Iterable[str] | None = None) -> dict[str, Outcome]:
        """Every file's outcome (or those of `displays`), loading those the cache holds."""
        wanted = self.keys if displays is None else {d: self.keys[d] for d in displays if d in self.keys}
        missing = {d: k for d, k in wanted.items() if d not in self.outcomes}
        if missing:
            stored = self.cache.load_facts(missing.values()) if self.cache is not None else {}
            redo = []
            for display, key in missing.items():
                if key in stored:
                    self.outcomes[display] = _rehome(cast(Outcome, stored[key]), display)
                else:
                    redo.append(display)
            if redo:   # corrupt or vanished entries: extract again, store again
                self._recompute(redo)
        if displays is None:
            return self.outcomes
        return {d: self.outcomes[d] for d in displays if d in self.outcomes}

    def merge(self, other: Extraction):
        """Take in another extraction of other files (a demand round)."""
        self.keys.update(other.keys)
        self.outcomes.update(other.outcomes)
        self.paths.update(other.paths)
        self.reused += other.reused
        self.context = other.context

    def facts(self) -> tuple[list[FileFacts], list[Skipped]]:
        self.load()
        facts = sorted((r for r in self.outcomes.values() if isinstance(r, FileFacts)), key=lambda f: f.path)
        skipped = sorted((r for r in self.outcomes.values() if isinstance(r, Skipped)), key=lambda s: s.path)
        return facts, skipped

    def _recompute(self, displays: list[str]):
        fresh = {}
        for display in displays:
            path = self.paths[display]
            try:
                with open(path, "rb") as fh:
                    src = fh.read()
            except OSError as e:
                self.outcomes[display] = Skipped(display, f"cannot read: {e.strerror or e}")
                continue
            outcome = _analyse_source(src, display, self.context)
            self.outcomes[display] = outcome
            if self.context.fact_key(content_hash(src)) == self.keys[display]:   # unchanged since the scan
                fresh[self.keys[display]] = seal(outcome)
        if self.cache is not None and fresh:
            self.cache.store(fresh, [])


def _rehome(outcome: Outcome, display: str) -> Outcome:
    """Facts are stored by content: the same bytes may live under another name."""
    if isinstance(outcome, FileFacts) and outcome.path != display:
        return outcome._replace(path=display)
    if isinstance(outcome, Skipped) and outcome.path != display:
        return dataclasses.replace(outcome, path=display)
    return outcome


def extract_all(files: list[SourceFile], jobs: int, progress: Progress | None = None,
                extra_names: frozenset[str] = frozenset(), cache: FactsCache | None = None,
                warn: Callable[[str], None] | None = None, known: dict[str, bytes] | None = None,
                stored: frozenset[bytes] | None = None, relevant: frozenset[str] = frozenset()) -> Extraction:
    """Extract every file the cache does not already hold, in worker processes.

    Files whose stat identity the cache recorded are not even read. The rest
    are read and hashed in the workers, and extracted only if their content is
    new. Files go out in batches. A worker that dies (a crash inside the
    parser, the OOM killer) breaks the pool: the batches it took down are
    halved and run again in a fresh pool, and a single file that still fails
    runs in a worker of its own, so only the file that kills its worker is
    lost (and reported as skipped).
    `progress(done, total)` is called as results come in. `extra_names`
    (configured allocators, retry-wait helpers) widen the byte prefilter.
    Each finished batch is stored in the cache as it arrives: Ctrl-C (or
    SIGTERM) cancels what is pending, stops the workers within a second and
    re-raises, and the next run starts from what was finished.
    `known` ({absolute path: content hash} of unchanged files) and `stored`
    (the fact keys the cache holds) may be passed in by a caller that has them.
    `relevant`: the tree's mask macros named unlike a mask (relevance.py).
    """
    contents: dict[str, bytes] = {}
    if cache is not None:
        if known is None:
            known = cache.known_hashes([(f.absolute, f.identity) for f in files])
        if stored is None:
            stored = frozenset(cache.stored_hashes())
    context = WorkerContext.make(extra_names, stored or frozenset(), relevant)
    if cache is not None and known:
        for f in files:
            content = known.get(f.absolute)
            # known and stored: not even read (a file only scanned so far is known, not stored)
            if content is not None and context.fact_key(content) in context.stored:
                contents[f.display] = content
    items = [(f.path, f.display) for f in files if f.display not in contents]
    by_display = {f.display: f for f in files}
    outcomes: dict[str, Outcome] = {}

    def take(answers: list[Answer]):
        """A finished batch: its outcomes kept, and stored in the cache at
        once, so an interrupted run leaves its finished work for the next."""
        fresh: dict[bytes, tuple[bytes, bytes]] = {}
        stats = []                          # files read: their stat rows are (re)recorded
        for display, content, answer in answers:
            if content is not None:
                contents[display] = content
                f = by_display[display]
                stats.append((f.absolute, f.identity, content))
            if isinstance(answer, str):     # CACHED
                continue
            outcomes[display] = cast(Outcome, unseal(*answer))
            if content is not None:
                fresh[context.fact_key(content)] = answer
        if cache is not None and (fresh or stats):
            cache.store(fresh, stats)

    _run_workers(items, jobs, context, progress, len(files) - len(items), len(files), take, warn)
    keys = {d: context.fact_key(c) for d, c in contents.items()}
    return Extraction(keys, outcomes, cache, context, {f.display: f.path for f in files},
                      reused=len(set(keys) - set(outcomes)))



@dataclass
class TreeScan:
    """Every file of a tree: its fact key, and its ScanRow (scan.py) on demand."""

    keys: dict[str, bytes]              # display -> fact key, every readable file
    known: dict[str, bytes]             # absolute path -> content hash, every readable file
    fresh: dict[str, ScanRow]           # rows computed this run
    cache: FactsCache | None
    files: list[SourceFile]
    context: WorkerContext
    _rows: dict[str, ScanRow] | None = field(default=None, repr=False)

    def rows(self) -> dict[str, ScanRow]:
        """Rows for every file: this run's, the rest loaded from the cache
        (scanned again if an entry went missing meanwhile)."""
        if self._rows is None:
            self._rows = self._load_rows()
        return self._rows

    def seeds(self, flag: str, composites: Mapping[str, str]) -> Seeds:
        """The flag's seeds over these files (seeds.find_seeds), stored in the
        cache under every file's content: an unchanged tree neither loads its
        rows nor reads any text for them."""
        h = hashlib.blake2b(digest_size=16)
        h.update(repr(("seeds", flag, sorted(composites.items()))).encode())
        for display in sorted(self.keys):
            h.update(display.encode() + b"\0" + self.keys[display])
        key = h.digest()
        stored = self.cache.load_result(key) if self.cache is not None else None
        if isinstance(stored, Seeds):
            return stored
        found = find_seeds(flag, composites, self.rows(), {f.display: f.path for f in self.files})
        if self.cache is not None:
            self.cache.store_result(key, found)
        return found

    def _load_rows(self) -> dict[str, ScanRow]:
        rows = dict(self.fresh)
        wanted = {d: k for d, k in self.keys.items() if d not in rows}
        stored = self.cache.load_scans(wanted.values()) if self.cache is not None and wanted else {}
        paths = {f.display: f.path for f in self.files}
        for display, key in wanted.items():
            row = stored.get(key)
            rows[display] = row if isinstance(row, ScanRow) else _rescan(paths[display], self.context)
        for f in self.files:
            rows.setdefault(f.display, NOTHING_SCANNED)
        return rows


def _rescan(path: str, context: WorkerContext) -> ScanRow:
    try:
        with open(path, "rb") as fh:
            return scan_source(fh.read(), context.extra)
    except OSError:
        return NOTHING_SCANNED


def scan_all(files: list[SourceFile], jobs: int, extra_names: frozenset[str],
             cache: FactsCache | None, progress: Progress | None = None) -> TreeScan:
    """Every file's fact key, and its ScanRow computed where the cache has none:
    unchanged files are known by their stat identity and not read, the rest
    are read (and scanned) in worker processes."""
    contents: dict[str, bytes] = {}
    known: dict[str, bytes] = {}
    stored: frozenset[bytes] = frozenset()
    if cache is not None:
        known = cache.known_hashes([(f.absolute, f.identity) for f in files])
        contents = {f.display: known[f.absolute] for f in files if f.absolute in known}
        stored = frozenset(cache.stored_scan_hashes())
    context = WorkerContext.make(extra_names, stored)
    items = [(f.path, f.display) for f in files
             if f.display not in contents or context.fact_key(contents[f.display]) not in stored]
    by_display = {f.display: f for f in files}
    fresh: dict[str, ScanRow] = {}

    def take(answers: list) -> None:
        new_rows: dict[bytes, ScanRow] = {}
        stats = []
        for display, content, answer in answers:
            if content is None:
                contents.pop(display, None)
                continue
            contents[display] = content
            f = by_display[display]
            known[f.absolute] = content
            stats.append((f.absolute, f.identity, content))
            if not isinstance(answer, str):        # not CACHED: a new row
                fresh[display] = new_rows[context.fact_key(content)] = answer
        if cache is not None and (new_rows or stats):
            cache.store_scans(new_rows, stats)

    _run_workers(items, jobs, context, progress, len(files) - len(items), len(files), take, None,
                 _scan_batch, _scan_one)
    return TreeScan({d: context.fact_key(c) for d, c in contents.items()}, known, fresh, cache, files, context)



def _macros_only(files: list[SourceFile], context: WorkerContext, with_calls: bool = False) -> Extraction:
    """Files a partial run needs only for their object-like macros: the same
    `macros` extraction would give, without parsing (no functions). With
    `with_calls`, also the function-like macros that pass a gfp on, as
    extraction gives them (extract.call_macros: text, no parsing)."""
    from .. import extract
    from ..source import SourceText
    keys: dict[str, bytes] = {}
    outcomes: dict[str, Outcome] = {}
    for f in files:
        try:
            with open(f.path, "rb") as fh:
                src = fh.read()
        except OSError as e:
            outcomes[f.display] = Skipped(f.display, f"cannot read: {e.strerror or e}")
            continue
        keys[f.display] = context.fact_key(content_hash(src)) + (b"/macros+calls" if with_calls else b"/macros")
        if b"\0" in src[:8192]:
            outcomes[f.display] = Skipped(f.display, "binary file (NUL bytes)")
        elif not worth_parsing(src, context.extra):
            outcomes[f.display] = unparsed(src, f.display)
        else:
            # object-like and function-like mask macros, as extraction gives them
            with extra_names(context.relevant):
                calls = tuple(extract.call_macros(src, SourceText(src))) if with_calls else ()
                outcomes[f.display] = FileFacts(f.display, tuple(extract.object_like_macros(src)), calls,
                                                mask_macros=tuple(extract.mask_macros(src)))
    return Extraction(keys, outcomes, None, context, {f.display: f.path for f in files})

