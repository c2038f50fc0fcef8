"""The pipeline, top to bottom: discover -> extract -> link -> check.

Extraction runs in worker processes (one tree-sitter parser each); everything
after it is tree-wide and runs in the parent.
"""
from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import functools
import gc
import hashlib
import multiprocessing
import os
import re
import signal
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Protocol, cast

from .cache import FactsCache, content_hash, seal, unseal
from .check import run_rules
from .check.gfp_flow import LIMITS
from .demand import DefinitionIndex, close_over
from .discover import SourceFile, discover, kernel_version_of, worth_parsing
from .facts import FileFacts
from .findings import Finding, Incomplete, RunResult, Skipped
from .incremental import RunRecord, affected_files, build_record, defines_of, interface_changes, updated
from .link import TreeTables
from .model import load_model
from .scan import ScanRow, assigns_field, kernel_root, scan_source


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


CACHED = "cached"                             # a worker's answer for "the cache has this file's facts"
NOTHING_SCANNED = ScanRow(False, frozenset(), frozenset())

Outcome = FileFacts | Skipped | None          # None: the prefilter says nothing here can matter


@dataclass(frozen=True)
class WorkerContext:
    """What extracting a file needs besides the file, made once per run in the
    parent. Pool workers get it at start-up (forked: inherited, not pickled,
    however many fact keys the cache holds)."""

    stored: frozenset[bytes] = frozenset()   # fact keys the cache holds: such files are not extracted
    extra: re.Pattern[bytes] | None = None   # configured names that widen the prefilter
    salt: bytes = b""                        # mixed into fact keys when `extra` is set

    @classmethod
    def make(cls, extra_names: frozenset[str], stored: frozenset[bytes] = frozenset()) -> WorkerContext:
        if not extra_names:
            return cls(stored)
        names = b"|".join(sorted(re.escape(n).encode() for n in extra_names))
        return cls(stored, re.compile(rb"\b(?:" + names + rb")\b"), "\0".join(sorted(extra_names)).encode())

    def fact_key(self, content: bytes) -> bytes:
        """Facts are stored by content hash, salted by the configured extra names
        (they change which files pass the prefilter)."""
        return content if not self.salt else content_hash(content + self.salt)


# Per-file resource guards: a generated or hostile file is reported as skipped
# in seconds instead of taking minutes and gigabytes. The largest file of
# Linux 6.12 that passes the prefilter is 2.1 MB and its deepest bracket
# nesting 54 levels; parsing time grows faster than linearly with both.
MAX_FILE_BYTES = 8 << 20
MAX_NESTING = 500
FILE_SECONDS = 60.0          # wall-clock budget for one file's extraction

_BRACKETS = bytes.maketrans(b"{([}])", b"((()))")
_NOT_BRACKETS = bytes(range(256)).translate(None, b"{}()[]")


class _FileTimeout(Exception):
    pass


def nesting_depth(src: bytes, limit: int = MAX_NESTING) -> int:
    """Deepest {, ( and [ nesting (strings and comments included), or `limit`
    once it is reached. Innermost pairs are removed one level per pass, at
    C speed; unmatched openers left over count as levels too."""
    b = src.translate(_BRACKETS, _NOT_BRACKETS)
    depth = 0
    while b and depth < limit:
        shorter = b.replace(b"()", b"")
        if len(shorter) == len(b):
            break
        b, depth = shorter, depth + 1
    return min(limit, depth + b.count(b"("))


def _guard(src: bytes, display: str) -> Skipped | None:
    if len(src) > MAX_FILE_BYTES:
        return Skipped(display, f"too large to analyse: {len(src) / 1e6:.1f} MB "
                                f"(limit {MAX_FILE_BYTES / 1e6:.1f} MB)")
    if nesting_depth(src) >= MAX_NESTING:
        return Skipped(display, f"too deeply nested to analyse: {MAX_NESTING} or more levels of brackets")
    return None


@contextlib.contextmanager
def _time_budget(seconds: float):
    """Raise _FileTimeout in the block after `seconds` (main thread only; elsewhere no budget)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def expired(signum, frame):
        raise _FileTimeout()
    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


_PARSER = None                   # one tree-sitter parser per process, made on first use
_WORKER = WorkerContext()        # the context a pool worker was started with (_start_worker)


def _start_worker(context: WorkerContext, parent: int) -> None:
    global _WORKER
    _WORKER = context
    gc.enable()     # a worker forked while the parent paused the GC (see paused_gc) needs its own
    _die_with_parent(parent)


def _analyse_source(src: bytes, display: str, context: WorkerContext) -> Outcome:
    """One file's bytes -> facts, or the reason it was skipped. Never raises."""
    global _PARSER
    if b"\0" in src[:8192]:
        return Skipped(display, "binary file (NUL bytes)")
    if not worth_parsing(src, context.extra):
        return _unparsed(src, display)
    too_much = _guard(src, display)
    if too_much is not None:
        return too_much
    try:
        import tree_sitter as ts

        from .extract import LANGUAGE, extract
        if _PARSER is None:
            _PARSER = ts.Parser(LANGUAGE)
        with _time_budget(FILE_SECONDS):
            return extract(src, display, _PARSER)
    except _FileTimeout:
        return Skipped(display, f"analysis took longer than {FILE_SECONDS:.0f} s; skipped")
    except RecursionError:
        return Skipped(display, "analysis failed: nesting too deep")
    except Exception as e:  # a bug in one file's analysis must not stop the run
        return Skipped(display, f"analysis failed: {type(e).__name__}: {e}")


def _unparsed(src: bytes, display: str) -> Outcome:
    """A file the prefilter leaves out: only its integer constants, if any
    (extract.unparsed_constants: a header of orders and sizes)."""
    from .extract import unparsed_constants
    constants = unparsed_constants(src)
    return FileFacts(display, tuple(constants), ()) if constants else None


# what a worker answers for one file: (display, content hash or None if
# unreadable, CACHED or the outcome sealed for the cache (cache.seal))
Answer = tuple[str, bytes | None, "str | tuple[bytes, bytes]"]


def _extract_one(item: tuple[str, str], context: WorkerContext) -> Answer:
    """Worker: (path, display) -> Answer. The outcome travels sealed: the parent
    stores those bytes as they are and unpickles them once."""
    path, display = item
    try:
        with open(path, "rb") as fh:
            src = fh.read()
    except OSError as e:
        return display, None, seal(Skipped(display, f"cannot read: {e.strerror or e}"))
    content = content_hash(src)
    if context.fact_key(content) in context.stored:
        return display, content, CACHED
    return display, content, seal(_analyse_source(src, display, context))


def _extract_batch(items: list[tuple[str, str]]) -> list[Answer]:
    """Pool worker: a batch, with the context the worker was started with."""
    return [_extract_one(it, _WORKER) for it in items]


def _scan_one(item: tuple[str, str], context: WorkerContext) -> tuple[str, bytes | None, "str | ScanRow"]:
    """Worker: (path, display) -> (display, content hash, CACHED or the file's
    ScanRow); `context.stored` holds the keys the cache has rows for."""
    path, display = item
    try:
        with open(path, "rb") as fh:
            src = fh.read()
    except OSError:
        return display, None, NOTHING_SCANNED
    content = content_hash(src)
    if context.fact_key(content) in context.stored:
        return display, content, CACHED
    return display, content, scan_source(src, context.extra)


def _scan_batch(items: list[tuple[str, str]]) -> list:
    return [_scan_one(it, _WORKER) for it in items]


class Terminated(KeyboardInterrupt):
    """SIGTERM during a run: handled like Ctrl-C (finished work kept), exit 143."""


PR_SET_PDEATHSIG = 1     # linux/prctl.h


def _die_with_parent(parent: int):
    """A worker dies with its parent, whatever kills the parent (even SIGKILL),
    and leaves Ctrl-C to it: the parent cancels and stops the pool.

    Linux: prctl(PR_SET_PDEATHSIG, SIGKILL). Everywhere, and in case the
    parent died before the prctl: a thread that exits when the parent pid
    changes (the worker is re-parented)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        os._exit(1)

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)
    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


@contextlib.contextmanager
def interruptible():
    """SIGTERM raises Terminated in the main thread for the duration (like
    SIGINT raises KeyboardInterrupt), so the run stops the same orderly way."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        raise Terminated()
    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stop(pool: ProcessPoolExecutor):
    """Stop a pool now: pending batches cancelled, running workers killed
    (waiting for them took up to a batch's time, seconds)."""
    processes = list(getattr(pool, "_processes", {}).values())   # no public way to reach them
    for proc in processes:
        with contextlib.suppress(OSError):
            proc.kill()
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        proc.join(1)


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
                stored: frozenset[bytes] | None = None) -> Extraction:
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
    """
    contents: dict[str, bytes] = {}
    if cache is not None:
        if known is None:
            known = cache.known_hashes([(f.absolute, f.identity) for f in files])
        if stored is None:
            stored = frozenset(cache.stored_hashes())
    context = WorkerContext.make(extra_names, stored or frozenset())
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


def worker_count(jobs: int, batches: int) -> int:
    """Workers for `batches` batches: --jobs (0: all cores), at most one per core and per batch."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(jobs or cpus, cpus, batches))


def _run_workers(items: list[tuple[str, str]], jobs: int, context: WorkerContext, progress: Progress | None,
                 done: int, total: int, take: Callable[[list[Answer]], None],
                 warn: Callable[[str], None] | None = None, batch_fn: Callable = _extract_batch,
                 one_fn: Callable = _extract_one):
    """Extract (or with `batch_fn`/`one_fn`, scan) `items`, handing each finished
    batch to `take` as it arrives."""
    finished = done

    def report(answers: list[Answer]):
        nonlocal finished
        take(answers)
        finished += len(answers)
        if progress is not None:
            progress(finished, total)
    if not items:
        return
    size = max(1, min(64, len(items) // (worker_count(jobs, len(items)) * 8) or 1))
    batches = [items[i:i + size] for i in range(0, len(items), size)]
    workers = worker_count(jobs, len(batches))
    if jobs and workers < jobs and warn is not None:
        warn(f"--jobs {jobs} lowered to {workers} (at most one worker per CPU and per batch)")
    if workers <= 1 or len(items) < 16:
        _run_here(batches, context, report, one_fn)
        return
    start = _PoolStart(context, os.getpid())
    while batches:
        broken: list[list[tuple[str, str]]] = []
        pool = start.pool(workers)
        try:
            pending = {pool.submit(batch_fn, b): b for b in batches}
            while pending:
                ready, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in ready:
                    batch = pending.pop(fut)
                    try:
                        answers = fut.result()
                    except BrokenProcessPool:
                        broken.append(batch)
                    else:
                        report(answers)
        except BaseException:      # Ctrl-C, SIGTERM, a failing cache write: stop now
            _stop(pool)
            raise
        pool.shutdown(wait=True)
        # a dead worker breaks every pending batch: halve them and go again;
        # a single file is finally run in a worker of its own
        batches = []
        for batch in broken:
            if len(batch) == 1:
                report([_isolated(batch[0], start, batch_fn)])
            else:
                half = len(batch) // 2
                batches += [batch[:half], batch[half:]]


def _run_here(batches: list[list[tuple[str, str]]], context: WorkerContext,
              report: Callable[[list[Answer]], None], one_fn: Callable = _extract_one) -> None:
    """Few files or one job: extract in this process."""
    enabled = gc.isenabled()
    gc.enable()          # extraction makes ordinary garbage, unlike loading facts
    try:
        for batch in batches:
            report([one_fn(it, context) for it in batch])
    finally:
        if not enabled:
            gc.disable()


@dataclass(frozen=True)
class _PoolStart:
    """How worker pools start: forked, each worker given the run's context."""

    context: WorkerContext
    parent: int

    def pool(self, workers: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                                   initializer=_start_worker, initargs=(self.context, self.parent))


def _isolated(item: tuple[str, str], start: _PoolStart, batch_fn: Callable = _extract_batch):
    """One file in a worker of its own: a crash costs only this file."""
    pool = start.pool(1)
    try:
        answer = pool.submit(batch_fn, [item]).result()[0]
        pool.shutdown(wait=True)
        return answer
    except BrokenProcessPool:
        if batch_fn is _scan_batch:
            return item[1], None, NOTHING_SCANNED
        return item[1], None, seal(Skipped(item[1], "analysis failed: the worker process died on this file"))
    except BaseException:
        _stop(pool)
        raise


@dataclass
class TreeScan:
    """Every file of a tree: its fact key, and its ScanRow (scan.py) on demand."""

    keys: dict[str, bytes]              # display -> fact key, every readable file
    known: dict[str, bytes]             # absolute path -> content hash, every readable file
    fresh: dict[str, ScanRow]           # rows computed this run
    cache: FactsCache | None
    files: list[SourceFile]
    context: WorkerContext

    def rows(self) -> dict[str, ScanRow]:
        """Rows for every file: this run's, the rest loaded from the cache
        (scanned again if an entry went missing meanwhile)."""
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
             cache: FactsCache | None) -> TreeScan:
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

    _run_workers(items, jobs, context, None, 0, len(items), take, None, _scan_batch, _scan_one)
    return TreeScan({d: context.fact_key(c) for d, c in contents.items()}, known, fresh, cache, files, context)


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


def _macros_only(files: list[SourceFile], context: WorkerContext) -> Extraction:
    """Files a partial run needs only for their object-like macros: the same
    `macros` extraction would give, without parsing (no functions)."""
    from . import extract
    keys: dict[str, bytes] = {}
    outcomes: dict[str, Outcome] = {}
    for f in files:
        try:
            with open(f.path, "rb") as fh:
                src = fh.read()
        except OSError as e:
            outcomes[f.display] = Skipped(f.display, f"cannot read: {e.strerror or e}")
            continue
        keys[f.display] = context.fact_key(content_hash(src)) + b"/macros"
        if b"\0" in src[:8192]:
            outcomes[f.display] = Skipped(f.display, "binary file (NUL bytes)")
        elif not worth_parsing(src, context.extra):
            outcomes[f.display] = _unparsed(src, f.display)
        else:
            facts = FileFacts(f.display, tuple(extract.object_like_macros(src)), ())
            if hasattr(extract, "mask_macros"):       # function-like mask macros, as extraction gives them
                facts = cast(Any, facts)._replace(mask_macros=tuple(extract.mask_macros(src)))
            outcomes[f.display] = facts
    return Extraction(keys, outcomes, None, context, {f.display: f.path for f in files})


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
        return None if self.demand is None else self._target_set

    @functools.cached_property
    def _target_set(self) -> frozenset[str]:
        return frozenset(f.display for f in self.demand.targets) if self.demand is not None else frozenset()

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
        extra = len(set(self.extraction.keys) - self._target_set)
        return f", with {extra} of the {len(d.context)} file(s) of {d.root} as context"

    def reports_on(self, path: str) -> bool:
        return self.demand is None or path in self._target_set

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


def analyse(options: Options, cwd: Path | None = None, progress: Progress | None = None,
            warn: Callable[[str], None] | None = None) -> Analysis:
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
        demand = DemandRun(files, root, cwd, options.jobs, progress, extra, cache, version, warn)
        return Analysis(demand.extraction, files, skipped, version, excluded, started, options, demand)
    extraction = extract_all(files, options.jobs, progress, extra, cache, warn)
    return Analysis(extraction, files, skipped, version, excluded, started, options)


def run(options: Options, cwd: Path | None = None, progress: Progress | None = None,
        warn: Callable[[str], None] | None = None) -> RunResult:
    """The whole pipeline. With a cache, a run whose every input (file contents,
    names, options, tool version) was seen before reuses that run's findings.
    SIGTERM stops it like Ctrl-C (Terminated, a KeyboardInterrupt)."""
    with paused_gc(), interruptible():
        return _run(options, cwd, progress, warn)


def _run(options: Options, cwd: Path | None, progress: Progress | None,
         warn: Callable[[str], None] | None) -> RunResult:
    a = analyse(options, cwd, progress, warn)
    cache = a.extraction.cache
    rules = None if options.rules is None else sorted(options.rules)
    parts = (a.version, rules, sorted(options.extra_allocators), sorted(options.extra_retry_wait), a.skipped,
             None if a.targets is None else sorted(a.targets))
    key = a.result_key(*parts)
    stored = cache.load_result(key) if cache is not None else None
    if not (isinstance(stored, tuple) and len(stored) == 3):
        stored = None            # none, or from another shape of this tool: run again
    if stored is not None:
        findings, bad, incomplete = cast(tuple[list[Finding], list[Skipped], list[Incomplete]], stored)
        skipped = sorted(a.skipped + bad, key=lambda s: s.path)
    else:
        before = list(a.skipped)
        scope = _scope_key(a, parts)
        whole = cache is not None and a.targets is None
        record = None
        if whole and cache is not None:
            record = RunRecord.loaded(cache.load_run(scope, "state"),
                                      functools.partial(cache.load_run, scope))
        try:
            rechecked = _recheck(a, record) if record is not None else None
        except LookupError:             # a part of the record went missing: run everything
            rechecked = None
        if rechecked is not None:
            record, count = rechecked
            a.note = f", {count} re-checked"
            findings, incomplete = record.findings, record.incomplete
            skipped = sorted(a.skipped + list(record.skipped.values()), key=lambda s: s.path)
        else:
            findings = [f for f in run_rules(a.tables, options.rules) if a.reports_on(f.location.path)]
            incomplete = [i for i in not_analysed(a.tables) if a.reports_on(i.path)]
            skipped = a.skipped
            if whole:
                record = build_record(a.extraction.keys, a.tables.files, findings,
                                      [s for s in skipped if s not in before], incomplete)
        if cache is not None:
            cache.store_result(key, (findings, [s for s in skipped if s not in before], incomplete))
            if whole and record is not None:
                cache.store_run(scope, record.parts())
    a.close()
    return RunResult(findings=findings, skipped=skipped, files_scanned=len(a.files),
                     seconds=time.monotonic() - a.started, kernel_version=a.version,
                     excluded=a.excluded, from_cache=a.extraction.reused if cache is not None else None,
                     incomplete=incomplete, context=a.context_note())


def _scope_key(a: Analysis, parts: tuple) -> bytes:
    """Names a run's scope: its paths and options, not the files' contents."""
    h = hashlib.blake2b(digest_size=16)
    h.update(repr((sorted(os.path.abspath(p) for p in a.options.paths), parts)).encode())
    return h.digest()


def _recheck(a: Analysis, record: RunRecord) -> tuple[RunRecord, int] | None:
    """A whole run after a few files changed: re-check only the files they can
    affect (incremental.py), keep the recorded findings of the rest. None when
    too much changed (the caller runs everything)."""
    ex = a.extraction
    current = set(ex.keys)
    changed = {d for d in current if record.keys.get(d) != ex.keys[d]} | (set(record.keys) - current)
    changed |= {d for d in ex.outcomes if d not in ex.keys}         # unreadable now
    if len(changed) > 200:
        return None
    new: dict[str, object] = dict(ex.load(sorted(changed & current)))
    for d in changed - current:
        new.setdefault(d, ex.outcomes.get(d))
    model = load_model()
    o = a.options

    def is_allocator(name: str) -> bool:
        return model.allocator(name) is not None or name in o.extra_allocators
    atoms = model.algebra(a.version).atoms
    new_defines = {d: defines_of(f) for d, f in new.items() if isinstance(f, FileFacts)}
    old_keys = {d: record.keys[d] for d in changed if d in record.keys}
    old = ex.cache.load_facts(old_keys.values()) if ex.cache is not None else {}
    changes = {}
    for d in changed:
        if d in old_keys and old_keys[d] not in old:     # the old facts were pruned: every name counts
            was = record.defines.get(d)
            now = new_defines.get(d)
            changes[d] = ((set(was.functions) if was else set()) | (set(now.functions) if now else set()),
                          (set(was.macros) if was else set()) | (set(now.macros) if now else set()), True)
        else:
            before = _rehome(cast(Outcome, old[old_keys[d]]), d) if d in old_keys else None
            changes[d] = interface_changes(before, new.get(d))
    interface_changed = any(fns or macros for fns, macros, _ in changes.values()) or any(
        record.defines.get(d) != new_defines.get(d) for d in changed)
    recheck = affected_files(record, changes, new_defines, is_allocator, atoms.__contains__)
    if recheck is None:
        return None
    recheck &= current
    defines = {d: x for d, x in record.defines.items() if d not in changed and d in current}
    defines.update(new_defines)
    def load(displays: list[str], full: bool) -> Mapping[str, object]:
        return ex.load(displays)
    outcomes = close_over(sorted(recheck), DefinitionIndex(defines), load, is_allocator, atoms.__contains__)
    facts = sorted((f for f in outcomes.values() if isinstance(f, FileFacts)), key=lambda f: f.path)
    tables = TreeTables(facts, model, a.version, o.extra_allocators, o.extra_retry_wait)
    findings = [f for f in run_rules(tables, o.rules) if f.location.path in recheck]
    incomplete = [i for i in not_analysed(tables) if i.path in recheck]
    return updated(record, ex.keys, new, findings, incomplete, recheck, interface_changed), len(recheck)


def not_analysed(tables: TreeTables) -> list[Incomplete]:
    """What the analysis could not cover: parse-error regions that hide
    allocation calls (FileFacts.lost_regions), and every place an analysis
    limit cut the gfp flow short."""
    out = [Incomplete(ff.path, first, last, "parse-error",
                      "code the parser could not read holds allocation calls that were not analysed; "
                      "findings there may be missing")
           for ff in tables.files for first, last in ff.lost_regions]
    out += cast(dict, tables.derived.get(LIMITS, {})).values()
    return sorted(out, key=lambda i: (i.path, i.line, i.kind, i.message))
