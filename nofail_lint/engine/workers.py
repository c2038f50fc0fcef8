"""Worker processes and their guards.

Extraction (and the tree scan) run in forked workers, one tree-sitter parser
each. What a worker needs besides the file is a `WorkerContext` made once per
run. A worker that dies costs only its batch (run again in halves); workers
die with the parent; Ctrl-C and SIGTERM stop the pool at once. Per-file
guards (size, bracket nesting, a wall-clock budget) turn a pathological file
into a skipped input.
"""
from __future__ import annotations

import contextlib
import ctypes
import gc
import multiprocessing
import os
import re
import signal
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Callable

from ..cache import content_hash, seal
from ..discover import worth_parsing
from ..facts import FileFacts
from ..findings import Skipped
from ..relevance import extra_names
from ..scan import ScanRow, scan_source

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
    extra: re.Pattern[bytes] | None = None   # configured and relevant names that widen the prefilter
    salt: bytes = b""                        # mixed into fact keys when `extra` is set
    relevant: frozenset[str] = frozenset()   # the tree's mask macros named unlike a mask (relevance.py)

    @classmethod
    def make(cls, extra_names: frozenset[str], stored: frozenset[bytes] = frozenset(),
             relevant: frozenset[str] = frozenset()) -> WorkerContext:
        widen = extra_names | relevant
        if not widen:
            return cls(stored)
        names = b"|".join(sorted(re.escape(n).encode() for n in widen))
        salt = "\0".join(sorted(extra_names)) + ("\1" + "\0".join(sorted(relevant)) if relevant else "")
        return cls(stored, re.compile(rb"\b(?:" + names + rb")\b"), salt.encode(), relevant)

    def fact_key(self, content: bytes) -> bytes:
        """Facts are stored by content hash, salted by the configured extra names
        (they change which files pass the prefilter) and the relevant names
        (they change what extraction keeps)."""
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
        return unparsed(src, display)
    too_much = _guard(src, display)
    if too_much is not None:
        return too_much
    try:
        import tree_sitter as ts

        from ..extract import LANGUAGE, extract
        if _PARSER is None:
            _PARSER = ts.Parser(LANGUAGE)
        with _time_budget(FILE_SECONDS):
            with extra_names(context.relevant):
                return extract(src, display, _PARSER)
    except _FileTimeout:
        return Skipped(display, f"analysis took longer than {FILE_SECONDS:.0f} s; skipped")
    except RecursionError:
        return Skipped(display, "analysis failed: nesting too deep")
    except Exception as e:  # a bug in one file's analysis must not stop the run
        return Skipped(display, f"analysis failed: {type(e).__name__}: {e}")


def unparsed(src: bytes, display: str) -> Outcome:
    """A file the prefilter leaves out: only its integer constants, if any
    (extract.unparsed_constants: a header of orders and sizes)."""
    from ..extract import unparsed_constants
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

