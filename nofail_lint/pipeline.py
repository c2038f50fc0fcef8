"""The pipeline, top to bottom: discover -> extract -> link -> check.

Extraction runs in worker processes (one tree-sitter parser each); everything
after it is tree-wide and runs in the parent.
"""
from __future__ import annotations

import multiprocessing
import os
import re
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

from .check import run_rules
from .discover import PREFILTER, SourceFile, discover, kernel_version_of
from .facts import FileFacts
from .findings import RunResult, Skipped
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


class Excluder(Protocol):
    def matches(self, path: Path) -> bool: ...


# progress(files done, files total), called in the parent process
Progress = Callable[[int, int], None]


_PARSER = None


def _extract_one(item: tuple[str, ...]) -> FileFacts | Skipped | None:
    """Worker: one file -> facts, or the reason it was skipped. Never raises.

    item: (path, display) or (path, display, extra prefilter pattern).
    """
    global _PARSER
    path, display, *extra = item
    try:
        with open(path, "rb") as fh:
            src = fh.read()
    except OSError as e:
        return Skipped(display, f"cannot read: {e.strerror or e}")
    if b"\0" in src[:8192]:
        return Skipped(display, "binary file (NUL bytes)")
    if not PREFILTER.search(src) and not (extra and re.search(extra[0], src)):
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


def _extract_batch(items: list[tuple[str, ...]]) -> list[FileFacts | Skipped | None]:
    return [_extract_one(it) for it in items]


def extract_all(files: list[SourceFile], jobs: int, progress: Progress | None = None,
                extra_names: frozenset[str] = frozenset()) -> tuple[list[FileFacts], list[Skipped]]:
    """Extract every file in worker processes.

    Files go out in batches. A worker that dies (a crash inside the parser,
    the OOM killer) breaks the pool: the batches it took down are halved and
    run again in a fresh pool, and a single file that still fails runs in a
    worker of its own, so only the file that kills its worker is lost (and
    reported as skipped).
    `progress(done, total)` is called as results come in. `extra_names`
    (configured allocators, retry-wait helpers) widen the byte prefilter.
    """
    extra = (rb"\b(?:" + b"|".join(sorted(re.escape(n).encode() for n in extra_names)) + rb")\b",) \
        if extra_names else ()
    items = [(str(f.path), f.display) + extra for f in files]
    total = len(items)
    jobs = jobs or os.cpu_count() or 1
    if jobs <= 1 or len(items) < 16:
        if progress is None:
            results = _extract_batch(items)
        else:
            results = []
            for it in items:
                results.append(_extract_one(it))
                progress(len(results), total)
    else:
        size = max(1, min(64, len(items) // (jobs * 8) or 1))
        batches = [items[i:i + size] for i in range(0, len(items), size)]
        results = []
        ctx = multiprocessing.get_context("fork")
        while batches:
            broken: list[list[tuple[str, str]]] = []
            with ProcessPoolExecutor(jobs, mp_context=ctx) as pool:
                futures = [pool.submit(_extract_batch, b) for b in batches]
                for batch, fut in zip(batches, futures):
                    try:
                        results.extend(fut.result())
                    except BrokenProcessPool:
                        broken.append(batch)
                    else:
                        if progress is not None:
                            progress(len(results), total)
            # a dead worker breaks every pending batch: halve them and go again;
            # a single file is finally run in a worker of its own
            batches = []
            for batch in broken:
                if len(batch) == 1:
                    results.append(_isolated(batch[0], ctx))
                    if progress is not None:
                        progress(len(results), total)
                else:
                    half = len(batch) // 2
                    batches += [batch[:half], batch[half:]]
    facts = sorted((r for r in results if isinstance(r, FileFacts)), key=lambda f: f.path)
    skipped = sorted((r for r in results if isinstance(r, Skipped)), key=lambda s: s.path)
    return facts, skipped


def _isolated(item: tuple[str, ...], ctx) -> FileFacts | Skipped | None:
    """One file in a worker of its own: a crash costs only this file."""
    try:
        with ProcessPoolExecutor(1, mp_context=ctx) as pool:
            return pool.submit(_extract_batch, [item]).result()[0]
    except BrokenProcessPool:
        return Skipped(item[1], "analysis failed: the worker process died on this file")


@dataclass
class Analysis:
    """Everything before the check stage: the linked tree and what was left out."""

    tables: TreeTables
    files: list[SourceFile]        # the files analysed (after excludes)
    skipped: list[Skipped]
    version: str
    excluded: int
    started: float                 # time.monotonic() at the start


def analyse(options: Options, cwd: Path | None = None, progress: Progress | None = None) -> Analysis:
    """discover -> extract -> link; the shared front half of `run` and `grep`."""
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
    facts, bad = extract_all(files, options.jobs, progress,
                             options.extra_allocators | options.extra_retry_wait)
    tables = TreeTables(facts, model, version, options.extra_allocators, options.extra_retry_wait)
    return Analysis(tables, files, sorted(skipped + bad, key=lambda s: s.path), version, excluded, started)


def run(options: Options, cwd: Path | None = None, progress: Progress | None = None) -> RunResult:
    a = analyse(options, cwd, progress)
    findings = run_rules(a.tables, options.rules)
    return RunResult(findings=findings, skipped=a.skipped, files_scanned=len(a.files),
                     seconds=time.monotonic() - a.started, kernel_version=a.version,
                     excluded=a.excluded)
