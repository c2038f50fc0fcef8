"""The pipeline, top to bottom: discover -> extract -> link -> check.

Extraction runs in worker processes (one tree-sitter parser each); everything
after it is tree-wide and runs in the parent.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import hashlib
import multiprocessing
import os
import re
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Protocol

from .check import run_rules
from .cache import FactsCache, content_hash, seal, unseal
from .demand import DefinitionIndex, close_over
from .discover import SourceFile, discover, kernel_version_of, worth_parsing
from .scan import ScanRow, kernel_root, scan_source
from .facts import FileFacts
from .findings import RunResult, Skipped
from .incremental import RunRecord, affected_files, build_record, defines_of, updated
from .link import TreeTables
from .model import load_model


@dataclass
class Options:
    paths: list[str]
    jobs: int = 0                        # 0: all cores
    kernel_version: str | None = None    # overrides the tree's Makefile
    rules: set[str] | None = None
    extra_allocators: frozenset[str] = field(default_factory=frozenset)
    extra_retry_wait: frozenset[str] = field(default_factory=frozenset)
    exclude: Excluder | None = None      # files left out of the run (config.Excludes)
    cache_dir: Path | None = None        # facts cache (cache.py); None: no cache
    context: str = "tree"                # "tree": resolve definitions in the whole kernel tree; "none": only the paths


class Excluder(Protocol):
    def matches(self, path: Path) -> bool: ...


# progress(files done, files total), called in the parent process
Progress = Callable[[int, int], None]


# Worker state, set in the parent before the pool forks (inherited, never pickled).
_PARSER = None
_STORED: frozenset[bytes] = frozenset()      # fact keys the cache holds: such files are not extracted
_EXTRA: re.Pattern[bytes] | None = None       # configured names that widen the prefilter
_SALT = b""                                   # mixed into fact keys when _EXTRA is set
CACHED = "cached"                             # a worker's answer for "the cache has this file's facts"
NOTHING_SCANNED = ScanRow(False, frozenset(), frozenset())

Outcome = FileFacts | Skipped | None          # None: the prefilter says nothing here can matter


def _fact_key(content: bytes) -> bytes:
    """Facts are stored by content hash, salted by the configured extra names
    (they change which files pass the prefilter)."""
    return content if not _SALT else content_hash(content + _SALT)


def _analyse_source(src: bytes, display: str) -> Outcome:
    """One file's bytes -> facts, or the reason it was skipped. Never raises."""
    global _PARSER
    if b"\0" in src[:8192]:
        return Skipped(display, "binary file (NUL bytes)")
    if not worth_parsing(src, _EXTRA):
        return None
    try:
        from .extract import LANGUAGE, extract
        import tree_sitter as ts
        if _PARSER is None:
            _PARSER = ts.Parser(LANGUAGE)
        return extract(src, display, _PARSER)
    except RecursionError:
        return Skipped(display, "analysis failed: nesting too deep")
    except Exception as e:  # a bug in one file's analysis must not stop the run
        return Skipped(display, f"analysis failed: {type(e).__name__}: {e}")


# what a worker answers for one file: (display, content hash or None if
# unreadable, CACHED or the outcome sealed for the cache (cache.seal))
Answer = tuple[str, bytes | None, "str | tuple[bytes, bytes]"]


def _extract_one(item: tuple[str, str]) -> Answer:
    """Worker: (path, display) -> Answer. The outcome travels sealed: the parent
    stores those bytes as they are and unpickles them once."""
    path, display = item
    try:
        with open(path, "rb") as fh:
            src = fh.read()
    except OSError as e:
        return display, None, seal(Skipped(display, f"cannot read: {e.strerror or e}"))
    content = content_hash(src)
    if _fact_key(content) in _STORED:
        return display, content, CACHED
    return display, content, seal(_analyse_source(src, display))


def _extract_batch(items: list[tuple[str, str]]) -> list[Answer]:
    gc.enable()     # a worker forked while the parent paused the GC (see paused_gc) needs its own
    return [_extract_one(it) for it in items]


def _scan_one(item: tuple[str, str]) -> tuple[str, bytes | None, "str | ScanRow"]:
    """Worker: (path, display) -> (display, content hash, CACHED or the file's ScanRow)."""
    path, display = item
    try:
        with open(path, "rb") as fh:
            src = fh.read()
    except OSError:
        return display, None, NOTHING_SCANNED
    content = content_hash(src)
    if _fact_key(content) in _STORED:
        return display, content, CACHED
    return display, content, scan_source(src, _EXTRA)


def _scan_batch(items: list[tuple[str, str]]) -> list:
    gc.enable()
    return [_scan_one(it) for it in items]


@contextlib.contextmanager
def paused_gc():
    """The cyclic GC off while a tree's facts are loaded, linked and checked.

    A kernel tree is about two million small tuples that live until the end
    and hold no cycles; with the GC on, each growth of the heap makes it scan
    them all again (measured on 6.12: loading the cached facts 5.7 s -> 1.5 s,
    linking 5.2 s -> 2.0 s)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@dataclass
class Extraction:
    """Every file's fact key and outcome; outcomes the cache holds are loaded on demand."""

    keys: dict[str, bytes]                  # display -> fact key, for every file that could be read
    outcomes: dict[str, Outcome]            # display -> outcome computed (or loaded) this run
    cache: FactsCache | None
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

    def load(self, displays: "Iterable[str] | None" = None) -> dict[str, Outcome]:
        """Every file's outcome (or those of `displays`), loading those the cache holds."""
        wanted = self.keys if displays is None else {d: self.keys[d] for d in displays if d in self.keys}
        missing = {d: k for d, k in wanted.items() if d not in self.outcomes}
        if missing:
            stored = self.cache.load_facts(missing.values()) if self.cache is not None else {}
            redo = []
            for display, key in missing.items():
                if key in stored:
                    self.outcomes[display] = _rehome(stored[key], display)
                else:
                    redo.append(display)
            if redo:   # corrupt or vanished entries: extract again, store again
                self._recompute(redo)
        if displays is None:
            return self.outcomes
        return {d: self.outcomes[d] for d in displays if d in self.outcomes}

    def merge(self, other: "Extraction"):
        """Take in another extraction of other files (a demand round)."""
        self.keys.update(other.keys)
        self.outcomes.update(other.outcomes)
        self.paths.update(other.paths)
        self.reused += other.reused

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
            outcome = _analyse_source(src, display)
            self.outcomes[display] = outcome
            if _fact_key(content_hash(src)) == self.keys[display]:   # unchanged since the scan
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
                known: dict[str, bytes] | None = None, stored: frozenset[bytes] | None = None) -> Extraction:
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
    `known` ({absolute path: content hash} of unchanged files) and `stored`
    (the fact keys the cache holds) may be passed in by a caller that has them.
    """
    global _STORED
    _set_prefilter(extra_names)
    contents: dict[str, bytes] = {}
    if cache is not None:
        if known is None:
            known = cache.known_hashes([(f.absolute, f.identity) for f in files])
        _STORED = stored if stored is not None else frozenset(cache.stored_hashes())
        for f in files:
            content = known.get(f.absolute)
            # known and stored: not even read (a file only scanned so far is known, not stored)
            if content is not None and _fact_key(content) in _STORED:
                contents[f.display] = content
    else:
        _STORED = frozenset()
    items = [(f.path, f.display) for f in files if f.display not in contents]
    results = _run_workers(items, jobs, progress, len(files) - len(items), len(files))

    outcomes: dict[str, Outcome] = {}
    fresh: dict[bytes, tuple[bytes, bytes]] = {}
    read: dict[str, bytes] = {}            # files read this run: their stat rows are (re)recorded
    for display, content, answer in results:
        if content is not None:
            read[display] = contents[display] = content
        if isinstance(answer, str):        # CACHED
            continue
        outcomes[display] = unseal(*answer)
        if content is not None:
            fresh[_fact_key(content)] = answer
    if cache is not None:
        cache.store(fresh, [(f.absolute, f.identity, read[f.display])
                            for f in files if f.display in read])
    keys = {d: _fact_key(c) for d, c in contents.items()}
    return Extraction(keys, outcomes, cache, {f.display: f.path for f in files},
                      reused=len(set(keys) - set(outcomes)))


def _set_prefilter(extra_names: frozenset[str]):
    """Configured names widen the byte prefilter and salt every cache key."""
    global _EXTRA, _SALT
    _EXTRA = re.compile(rb"\b(?:" + b"|".join(sorted(re.escape(n).encode() for n in extra_names)) + rb")\b") \
        if extra_names else None
    _SALT = ("\0".join(sorted(extra_names))).encode() if extra_names else b""


@dataclass
class TreeScan:
    """Every file of a tree: its fact key, and its ScanRow (scan.py) on demand."""

    keys: dict[str, bytes]              # display -> fact key, every readable file
    known: dict[str, bytes]             # absolute path -> content hash, every readable file
    fresh: dict[str, ScanRow]           # rows computed this run
    cache: FactsCache | None
    files: list[SourceFile]

    def rows(self) -> dict[str, ScanRow]:
        """Rows for every file: this run's, the rest loaded from the cache
        (rescanned if an entry went missing meanwhile)."""
        rows = dict(self.fresh)
        wanted = {d: k for d, k in self.keys.items() if d not in rows}
        stored = self.cache.load_scans(wanted.values()) if self.cache is not None and wanted else {}
        for display, key in wanted.items():
            row = stored.get(key)
            rows[display] = row if isinstance(row, ScanRow) else _rescan(display, self.files)
        for f in self.files:
            rows.setdefault(f.display, NOTHING_SCANNED)
        return rows


def scan_all(files: list[SourceFile], jobs: int, extra_names: frozenset[str],
             cache: FactsCache | None) -> TreeScan:
    """Every file's fact key, and its ScanRow computed if the cache has none:
    unchanged files are known by their stat identity and not read, the rest
    are read (and scanned) in worker processes."""
    global _STORED
    _set_prefilter(extra_names)
    contents: dict[str, bytes] = {}
    known: dict[str, bytes] = {}
    if cache is not None:
        known = cache.known_hashes([(f.absolute, f.identity) for f in files])
        contents = {f.display: known[f.absolute] for f in files if f.absolute in known}
        _STORED = frozenset(cache.stored_scan_hashes())
    else:
        _STORED = frozenset()
    items = [(f.path, f.display) for f in files
             if f.display not in contents or _fact_key(contents[f.display]) not in _STORED]
    fresh: dict[str, ScanRow] = {}
    new_rows: dict[bytes, ScanRow] = {}
    read: dict[str, bytes] = {}
    for display, content, answer in _run_workers(items, jobs, None, 0, len(items), _scan_batch, _scan_one):
        if content is None:
            contents.pop(display, None)
            continue
        read[display] = contents[display] = content
        if not isinstance(answer, str):        # not CACHED: a new row
            fresh[display] = new_rows[_fact_key(content)] = answer
    if cache is not None and (new_rows or read):
        cache.store_scans(new_rows, [(f.absolute, f.identity, read[f.display]) for f in files if f.display in read])
    known.update((f.absolute, read[f.display]) for f in files if f.display in read)
    return TreeScan({d: _fact_key(c) for d, c in contents.items()}, known, fresh, cache, files)


def _rescan(display: str, files: list[SourceFile]) -> ScanRow:
    """A row the cache named but did not give back (pruned meanwhile): scan again here."""
    path = next(f.path for f in files if f.display == display)
    try:
        with open(path, "rb") as fh:
            return scan_source(fh.read(), _EXTRA)
    except OSError:
        return NOTHING_SCANNED


class DemandRun:
    """A partial run in a kernel tree (demand.py): every file of the tree scanned,
    the targets and what they reach extracted on first use."""

    def __init__(self, targets: list[SourceFile], root: Path, cwd: Path | None, jobs: int,
                 progress: Progress | None, extra_names: frozenset[str], cache: FactsCache | None, version: str):
        self.targets, self.root, self.jobs, self.progress = targets, root, jobs, progress
        self.extra_names, self.cache, self.version = extra_names, cache, version
        context, _unlisted = discover([str(root)], cwd)
        by_absolute = {f.absolute: f for f in targets}
        self.context = [by_absolute.pop(f.absolute, f) for f in context] + list(by_absolute.values())
        self.scan = scan_all(self.context, jobs, extra_names, cache)
        self.keys, self.known = self.scan.keys, self.scan.known
        self.extraction = Extraction({}, {}, cache, {})
        self.closed = False

    def inputs_key(self, *parts: object) -> bytes:
        """Every file of the tree (path and content) and `parts`: the run's inputs."""
        h = hashlib.blake2b(digest_size=16)
        h.update(repr(parts).encode())
        for display in sorted(self.keys):
            h.update(display.encode() + b"\0" + self.keys[display])
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

        def extract(displays: list[str], full: bool) -> dict[str, Outcome]:
            wanted = [by_display[d] for d in displays if d in by_display]
            if not full:
                part = _macros_only(wanted)
            else:
                part = extract_all(wanted, self.jobs, self.progress if rounds[0] == 0 else None,
                                   self.extra_names, self.cache, self.known, stored)
                rounds[0] += 1
            self.extraction.merge(part)
            return part.load()

        close_over([f.display for f in self.targets], DefinitionIndex(self.scan.rows()), extract,
                   lambda n: model.allocator(n) is not None or n in self.extra_names, atoms.__contains__)


def _macros_only(files: list[SourceFile]) -> Extraction:
    """Files a partial run needs only for their object-like macros: the same
    `macros` extraction would give, without parsing (no functions)."""
    from .extract import object_like_macros
    keys: dict[str, bytes] = {}
    outcomes: dict[str, Outcome] = {}
    for f in files:
        try:
            with open(f.path, "rb") as fh:
                src = fh.read()
        except OSError as e:
            outcomes[f.display] = Skipped(f.display, f"cannot read: {e.strerror or e}")
            continue
        keys[f.display] = _fact_key(content_hash(src)) + b"/macros"
        if b"\0" in src[:8192]:
            outcomes[f.display] = Skipped(f.display, "binary file (NUL bytes)")
        elif not worth_parsing(src, _EXTRA):
            outcomes[f.display] = None
        else:
            outcomes[f.display] = FileFacts(f.display, tuple(object_like_macros(src)), ())
    return Extraction(keys, outcomes, None, {f.display: f.path for f in files})


def _run_workers(items: list[tuple[str, str]], jobs: int, progress: Progress | None,
                 done: int, total: int, batch_fn: Callable = _extract_batch,
                 one_fn: Callable = _extract_one) -> list:
    jobs = jobs or os.cpu_count() or 1
    results: list = []

    def report():
        if progress is not None:
            progress(done + len(results), total)
    if jobs <= 1 or len(items) < 16:
        enabled = gc.isenabled()
        gc.enable()          # extraction makes ordinary garbage, unlike loading facts
        try:
            for it in items:
                results.append(one_fn(it))
                report()
        finally:
            if not enabled:
                gc.disable()
        return results
    size = max(1, min(64, len(items) // (jobs * 8) or 1))
    batches = [items[i:i + size] for i in range(0, len(items), size)]
    ctx = multiprocessing.get_context("fork")
    while batches:
        broken: list[list[tuple[str, str]]] = []
        with ProcessPoolExecutor(jobs, mp_context=ctx) as pool:
            futures = [pool.submit(batch_fn, b) for b in batches]
            for batch, fut in zip(batches, futures):
                try:
                    results.extend(fut.result())
                except BrokenProcessPool:
                    broken.append(batch)
                else:
                    report()
        # a dead worker breaks every pending batch: halve them and go again;
        # a single file is finally run in a worker of its own
        batches = []
        for batch in broken:
            if len(batch) == 1:
                results.append(_isolated(batch[0], ctx, batch_fn))
                report()
            else:
                half = len(batch) // 2
                batches += [batch[:half], batch[half:]]
    return results


def _isolated(item: tuple[str, str], ctx, batch_fn: Callable = _extract_batch):
    """One file in a worker of its own: a crash costs only this file."""
    try:
        with ProcessPoolExecutor(1, mp_context=ctx) as pool:
            return pool.submit(batch_fn, [item]).result()[0]
    except BrokenProcessPool:
        if batch_fn is _scan_batch:
            return item[1], None, NOTHING_SCANNED
        return item[1], None, seal(Skipped(item[1], "analysis failed: the worker process died on this file"))


@dataclass
class Analysis:
    """Everything before the check stage: every file's facts and what was left out.

    The tree-wide tables are built on first use: a run whose inputs the
    cache has seen gets its findings without them.
    """

    extraction: Extraction
    files: list[SourceFile]        # the files analysed (after excludes)
    skipped: list[Skipped]         # discovery's skipped inputs (extraction's are added by `tables`)
    version: str
    excluded: int
    started: float                 # time.monotonic() at the start
    options: Options
    demand: DemandRun | None = None          # a partial run in a kernel tree
    note: str = ""                           # for the summary line (an incremental re-check)
    _tables: TreeTables | None = None

    @property
    def targets(self) -> frozenset[str] | None:
        """The files a partial run reports on (None: every file analysed)."""
        return None if self.demand is None else frozenset(f.display for f in self.demand.targets)

    def result_key(self, *parts: object) -> bytes:
        if self.demand is not None:
            return self.demand.inputs_key(*parts)
        return self.extraction.result_key(*parts)

    def context_note(self) -> str:
        """For the summary line: what a partial run drew from the rest of the tree."""
        d = self.demand
        if d is None:
            return self.note
        if not d.closed:
            return f", whole-tree context of {d.root} unchanged"
        extra = len(set(self.extraction.keys) - {f.display for f in d.targets})
        return f", with {extra} of the {len(d.context)} file(s) of {d.root} as context"

    def reports_on(self, path: str) -> bool:
        return self.demand is None or path in self._target_set

    @functools.cached_property
    def _target_set(self) -> frozenset[str]:
        return self.targets or frozenset()

    @property
    def tables(self) -> TreeTables:
        if self._tables is None:
            if self.demand is not None:
                self.demand.close_over()
            facts, bad = self.extraction.facts()
            self.skipped = sorted(self.skipped + bad, key=lambda s: s.path)
            o = self.options
            self._tables = TreeTables(facts, load_model(), self.version, o.extra_allocators, o.extra_retry_wait)
        return self._tables

    def close(self):
        if self.extraction.cache is not None:
            self.extraction.cache.close()


def analyse(options: Options, cwd: Path | None = None, progress: Progress | None = None) -> Analysis:
    """discover -> extract (-> link, on first use of .tables); the shared front half of `run` and `grep`."""
    started = time.monotonic()
    model = load_model()
    files, skipped = discover(options.paths, cwd)
    excluded = 0
    if options.exclude is not None:
        base = Path(os.path.abspath(cwd or Path.cwd()))
        kept = [f for f in files if not options.exclude.matches(base / f.path)]
        excluded = len(files) - len(kept)
        files = kept
        skipped = [s for s in skipped if not options.exclude.matches(base / s.path)]
    version = options.kernel_version or kernel_version_of(options.paths) or model.newest_version
    cache = FactsCache.open(options.cache_dir) if options.cache_dir is not None else None
    extra = options.extra_allocators | options.extra_retry_wait
    root = kernel_root(options.paths) if options.context == "tree" else None
    if root is not None and not any(os.path.abspath(p) == str(root) for p in options.paths):
        demand = DemandRun(files, root, cwd, options.jobs, progress, extra, cache, version)
        return Analysis(demand.extraction, files, skipped, version, excluded, started, options, demand)
    extraction = extract_all(files, options.jobs, progress, extra, cache)
    return Analysis(extraction, files, skipped, version, excluded, started, options)


def run(options: Options, cwd: Path | None = None, progress: Progress | None = None) -> RunResult:
    """The whole pipeline. With a cache, a run whose every input (file contents,
    names, options, tool version) was seen before reuses that run's findings."""
    with paused_gc():
        return _run(options, cwd, progress)


def _run(options: Options, cwd: Path | None, progress: Progress | None) -> RunResult:
    a = analyse(options, cwd, progress)
    cache = a.extraction.cache
    parts = (a.version, None if options.rules is None else sorted(options.rules), sorted(options.extra_allocators),
             sorted(options.extra_retry_wait), a.skipped, None if a.targets is None else sorted(a.targets))
    key = a.result_key(*parts)
    stored = cache.load_result(key) if cache is not None else None
    if stored is not None:
        findings, bad = stored
        skipped = sorted(a.skipped + bad, key=lambda s: s.path)
    else:
        before = list(a.skipped)
        scope = _scope_key(a, parts)
        record = cache.load_run(scope) if cache is not None and a.targets is None else None
        rechecked = _recheck(a, record) if isinstance(record, RunRecord) else None
        if rechecked is not None:
            findings, record, count = rechecked
            a.note = f", {count} re-checked"
            skipped = sorted(a.skipped + list(record.skipped.values()), key=lambda s: s.path)
        else:
            findings = [f for f in run_rules(a.tables, options.rules) if a.reports_on(f.location.path)]
            skipped = a.skipped
            if cache is not None and a.targets is None:
                record = build_record(a.extraction.keys, a.tables.files, findings,
                                      [s for s in skipped if s not in before])
        if cache is not None:
            cache.store_result(key, (findings, [s for s in skipped if s not in before]))
            if a.targets is None and record is not None:
                cache.store_run(scope, record)
    a.close()
    return RunResult(findings=findings, skipped=skipped, files_scanned=len(a.files),
                     seconds=time.monotonic() - a.started, kernel_version=a.version,
                     excluded=a.excluded, from_cache=a.extraction.reused if cache is not None else None,
                     context=a.context_note())


def _scope_key(a: Analysis, parts: tuple) -> bytes:
    """Names a run's scope: its paths and options, not the files' contents."""
    h = hashlib.blake2b(digest_size=16)
    h.update(repr((sorted(os.path.abspath(p) for p in a.options.paths), parts)).encode())
    return h.digest()


def _recheck(a: Analysis, record: RunRecord) -> tuple[list, RunRecord, int] | None:
    """A whole run after a few files changed: re-check only the files they can
    affect (incremental.py), keep the recorded findings of the rest. None when
    too much changed (the caller runs everything)."""
    ex = a.extraction
    current = set(ex.keys)
    changed = {d for d in current if record.keys.get(d) != ex.keys[d]} | (set(record.keys) - current)
    changed |= {d for d in ex.outcomes if d not in ex.keys}         # unreadable now
    if len(changed) > 200:
        return None
    new = ex.load(sorted(changed & current))
    for d in changed - current:
        new.setdefault(d, ex.outcomes.get(d))
    model = load_model()
    o = a.options
    is_allocator = lambda n: model.allocator(n) is not None or n in o.extra_allocators   # noqa: E731
    atoms = model.algebra(a.version).atoms
    new_defines = {d: defines_of(f) for d, f in new.items() if isinstance(f, FileFacts)}
    recheck = affected_files(record, changed, new_defines, is_allocator, atoms.__contains__)
    if recheck is None:
        return None
    recheck &= current
    defines = {d: x for d, x in record.defines.items() if d not in changed and d in current}
    defines.update(new_defines)
    outcomes = close_over(sorted(recheck), DefinitionIndex(defines), lambda ds, full: ex.load(ds),
                          is_allocator, atoms.__contains__)
    facts = sorted((f for f in outcomes.values() if isinstance(f, FileFacts)), key=lambda f: f.path)
    tables = TreeTables(facts, model, a.version, o.extra_allocators, o.extra_retry_wait)
    part = [f for f in run_rules(tables, o.rules) if f.location.path in recheck]
    record = updated(record, ex.keys, new, part, recheck)
    return record.findings, record, len(recheck)
