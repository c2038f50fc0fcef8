"""The pipeline, top to bottom: discover -> extract -> link -> check.

Extraction runs in worker processes (one tree-sitter parser each); everything
after it is tree-wide and runs in the parent.
"""
from __future__ import annotations

import functools
import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Protocol, cast

from .cache import FactsCache
from .check import run_rules
from .check.gfp_flow import LIMITS
from .demand import DefinitionIndex, close_over
from .discover import SourceFile, discover, kernel_version_of
from .engine.runs import DemandRun, SeedRun, TreeRun
from .engine.seeds import unshaped
from .engine.store import Extraction, _rehome, extract_all, scan_all
from .engine.workers import Outcome, Progress, Terminated, WorkerContext, interruptible, paused_gc
from .facts import FileFacts
from .findings import Finding, Incomplete, RunResult, Skipped
from .grep import Hit
from .grep import hits as grep_hits
from .incremental import RunRecord, affected_files, build_record, defines_of, interface_changes, updated
from .link import TreeTables
from .model import NOFAIL, load_model
from .scan import kernel_root

__all__ = ["Options", "Analysis", "analyse", "run", "not_analysed", "Terminated", "interruptible", "paused_gc"]


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
    demand: TreeRun | None = None            # a partial run in a kernel tree, or a seed-driven run
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
            return self.note or (f", whole-tree context of {d.root} unchanged" if d.root is not None else "")
        return d.note(self._target_set)

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
            warn: Callable[[str], None] | None = None, flag: str | None = None) -> Analysis:
    """discover -> extract (-> link, on first use of .tables); the shared front half of `run` and `grep`.

    With `flag`, only where that gfp flag enters a mask is wanted (`grep`):
    a seed-driven run (engine/runs.SeedRun) that extracts the files naming
    the flag or its macro closure and what their masks reach."""
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
    partial = root is not None and not any(os.path.abspath(p) == str(root) for p in options.paths)
    if flag is not None:
        seeded = SeedRun(files, root if partial else None, cwd, options.jobs, progress, extra, cache, version,
                         warn, flag)
        return Analysis(seeded.extraction, files, skipped, version, excluded, started, options, seeded)
    if partial:
        assert root is not None
        demand = DemandRun(files, root, cwd, options.jobs, progress, extra, cache, version, warn)
        return Analysis(demand.extraction, files, skipped, version, excluded, started, options, demand)
    # the tree's own mask macros named unlike a mask are relevant to extraction (relevance.py)
    scan = scan_all(files, options.jobs, extra, cache, progress)
    nofail = scan.seeds(NOFAIL, model.algebra(version).composites)
    extraction = extract_all(files, options.jobs, progress, extra, cache, warn, scan.known, None,
                             unshaped(nofail.names))
    return Analysis(extraction, files, skipped, version, excluded, started, options)


@dataclass
class GrepResult:
    hits: list[Hit]
    skipped: list[Skipped]


def grep(options: Options, flag: str, cwd: Path | None = None, progress: Progress | None = None,
         warn: Callable[[str], None] | None = None) -> GrepResult:
    """Where `flag` enters an allocation's mask, in the requested files
    (grep.hits over a seed-driven run). With a cache, an unchanged tree
    answers from the stored result."""
    with paused_gc(), interruptible():
        a = analyse(options, cwd, progress, warn, flag=flag)
        cache = a.extraction.cache
        key = a.result_key("grep", flag, a.version, sorted(options.extra_allocators),
                           sorted(options.extra_retry_wait), str(cwd or Path.cwd()), sorted(a.targets or ()))
        stored = cache.load_result(key) if cache is not None else None
        if isinstance(stored, tuple) and len(stored) == 2:
            hits, bad = cast(tuple[list[Hit], list[Skipped]], stored)
            skipped = sorted(a.skipped + bad, key=lambda s: s.path)
        else:
            before = list(a.skipped)
            hits = [h for h in grep_hits(a.tables, flag, cwd) if a.reports_on(h.path)]
            skipped = a.skipped
            if cache is not None:
                cache.store_result(key, (hits, [s for s in skipped if s not in before]))
        a.close()
    return GrepResult(hits, skipped)


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
    if stored is None and cache is not None and a.demand is not None:
        stored = _from_whole_record(a, cache, parts[:4])
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


def _scope_key(a: Analysis, parts: tuple, paths: list[str] | None = None) -> bytes:
    """Names a run's scope: its paths and options, not the files' contents."""
    h = hashlib.blake2b(digest_size=16)
    h.update(repr((sorted(os.path.abspath(p) for p in (paths or a.options.paths)), parts)).encode())
    return h.digest()


def _from_whole_record(a: Analysis, cache: FactsCache, options_parts: tuple) -> tuple | None:
    """A partial run in a tree whose whole run (from the root, same options,
    nothing skipped) left a record, and not one file of which changed since:
    its findings are the record's under the requested paths. A partial run
    reports exactly what a whole run reports under its paths
    (tests/test_demand.py), so nothing is extracted or linked. None when
    there is no such record or any file differs (path or content)."""
    d = a.demand
    if d is None or d.root is None:
        return None
    scope = _scope_key(a, (*options_parts, [], None), [str(d.root)])
    record = RunRecord.loaded(cache.load_run(scope, "state"), functools.partial(cache.load_run, scope))
    if record is None:
        return None
    d.nofail_names()                     # the relevant names salt the fact keys (relevance.py)
    context = WorkerContext.make(a.options.extra_allocators | a.options.extra_retry_wait, relevant=d.relevant)
    displays = {f.absolute: f.display for f in d.context}
    current = {displays[path]: context.fact_key(content) for path, content in d.scan.known.items()
               if path in displays}
    if current != record.keys:
        return None
    wanted = a._target_set
    a.note = f", from the whole run's record of {d.root}"
    return ([f for f in record.findings if f.location.path in wanted],
            [s for path, s in record.skipped.items() if path in wanted],
            [i for i in record.incomplete if i.path in wanted])


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
