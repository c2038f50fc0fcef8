"""Link: all FileFacts -> tree-wide tables the rules query.

Macros (same-file definitions first, then every definition in the tree),
function lookup with C's static/global scoping, a reverse call index, and the
fixpoint of "functions that return an allocator's result" (NF002's wrappers).
Where gfp masks and vmalloc ranges flow through wrappers is check/gfp_flow.py's.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from .cexpr import MaskEvaluator, const_value
from .facts import CallSite, FileFacts, FunctionFacts, ReturnedCall
from .model import Model


@dataclass(frozen=True)
class FunctionRef:
    file: FileFacts
    fn: FunctionFacts

    @property
    def key(self) -> tuple[str, str]:
        return (self.file.path, self.fn.name)


@dataclass(frozen=True)
class WrapperLink:
    """`fn` returns the result of `returned.callee`, an allocator or a wrapper of one."""

    ref: FunctionRef
    returned: ReturnedCall


class TreeTables:
    def __init__(self, files: list[FileFacts], model: Model, kernel_version: str,
                 extra_allocators: frozenset[str] = frozenset(),
                 extra_retry_wait: frozenset[str] = frozenset()):
        self.files = files
        self.model = model
        self.kernel_version = kernel_version
        self.algebra = model.algebra(kernel_version)
        self.derived: dict[str, Any] = {}     # per-run results rules share (e.g. the gfp flow)
        self.extra_allocators = extra_allocators
        self.extra_retry_wait = extra_retry_wait     # configured retry-wait helpers (NF002)
        self.macros: dict[str, list[str]] = defaultdict(list)
        self.file_macros: dict[str, dict[str, list[str]]] = {}
        self.globals: dict[str, list[FunctionRef]] = defaultdict(list)
        # `static inline` functions of headers: visible wherever the header is included
        self.header_statics: dict[str, list[FunctionRef]] = defaultdict(list)
        self.file_functions: dict[str, dict[str, FunctionRef | None]] = {}
        self.callers: dict[str, list[tuple[FunctionRef, CallSite]]] = defaultdict(list)
        for ff in files:
            local = defaultdict(list)
            for name, body in ff.macros:
                local[name].append(body)
                if body not in self.macros[name]:
                    self.macros[name].append(body)
            self.file_macros[ff.path] = local
            # a fact-less function defined first still hides later definitions
            # and any global of its name from this file
            table: dict[str, FunctionRef | None] = dict.fromkeys(ff.plain_functions)
            for fn in ff.functions:
                ref = FunctionRef(ff, fn)
                table.setdefault(fn.name, ref)
                if not fn.is_static:
                    self.globals[fn.name].append(ref)
                elif ff.path.endswith(".h"):
                    self.header_statics[fn.name].append(ref)
                for call in fn.calls:
                    self.callers[call.callee].append((ref, call))
            self.file_functions[ff.path] = table
        self.wrappers = self._allocator_wrappers()

    # ------------------------------------------------------------ lookups

    def resolve(self, caller_path: str, name: str, header_statics: bool = False) -> list[FunctionRef]:
        """Definitions a call to `name` from `caller_path` may reach.

        With `header_statics`, also the `static inline` functions of headers
        (NF002's allocator wrappers use them). The gfp flow does not yet: a
        header wrapper such as netdev_hold() reaches ref_tracker_alloc(), whose
        `if (gfp & __GFP_DIRECT_RECLAIM) mask |= __GFP_NOFAIL` is not modelled
        as a condition on the caller's mask, so GFP_ATOMIC callers under a
        lock would be NF008."""
        if self.model.allocator(name) is not None:
            return []
        table = self.file_functions.get(caller_path, {})
        if name in table:
            local = table[name]
            return [local] if local is not None else []
        found = self.globals.get(name, [])
        return found + self.header_statics.get(name, []) if header_statics else found

    def macro_bodies(self, path: str, name: str) -> list[str]:
        return self.file_macros.get(path, {}).get(name) or self.macros.get(name, [])

    def evaluator(self, ref: FunctionRef) -> MaskEvaluator:
        params = {p: i for i, p in enumerate(ref.fn.params) if p}
        path = ref.file.path
        return MaskEvaluator(self.algebra.atoms, self.algebra.composites,
                             lambda n: self.macro_bodies(path, n), params.get)

    def const_int(self, path: str, expr, known: dict[str, int] | None = None) -> int | None:
        """Value of a constant integer expression, through the tree's macros."""
        return const_value(expr, lambda n: self.macro_bodies(path, n), known)

    def evaluator_for_file(self, path: str) -> MaskEvaluator:
        """An evaluator with no parameters bound (file-scope macros only)."""
        return MaskEvaluator(self.algebra.atoms, self.algebra.composites,
                             lambda n: self.macro_bodies(path, n))

    def is_model_allocator(self, name: str) -> bool:
        return self.model.allocator(name) is not None or name in self.extra_allocators

    # ------------------------------------------------------------ wrappers

    def _allocator_wrappers(self) -> dict[tuple[str, str], WrapperLink]:
        """Fixpoint: a function returning an allocator's (or wrapper's) result is an allocator."""
        by_callee: dict[str, list[tuple[FunctionRef, ReturnedCall]]] = defaultdict(list)
        for ff in self.files:
            for fn in ff.functions:
                for rc in fn.returns:
                    by_callee[rc.callee].append((FunctionRef(ff, fn), rc))
        wrappers: dict[tuple[str, str], WrapperLink] = {}
        # a name is re-queued each time one more definition of it becomes a
        # wrapper; wrappers only grow, so this ends
        work = [name for name in by_callee if self.is_model_allocator(name)]
        while work:
            name = work.pop()
            for ref, rc in by_callee.get(name, ()):
                if ref.key in wrappers or ref.fn.name == name:
                    continue
                if not self.is_model_allocator(name):
                    # a call to a tree function: it must resolve to a known wrapper
                    if not any(t.key in wrappers for t in self.resolve(ref.file.path, name, True)):
                        continue
                wrappers[ref.key] = WrapperLink(ref, rc)
                work.append(ref.fn.name)
        return wrappers

    def allocator_chain(self, caller_path: str, name: str, limit: int = 8) -> list[WrapperLink] | None:
        """How a call to `name` reaches an allocator: [] for a model allocator,
        the wrapper links for a tree wrapper, None if it is no allocator."""
        if self.is_model_allocator(name):
            return []
        for ref in self.resolve(caller_path, name, True):
            link = self.wrappers.get(ref.key)
            if link is None:
                continue
            chain = [link]
            while len(chain) < limit:
                nxt = link.returned.callee
                if self.is_model_allocator(nxt):
                    return chain
                link = next((self.wrappers[r.key] for r in self.resolve(link.ref.file.path, nxt, True)
                             if r.key in self.wrappers), None)
                if link is None or link in chain:
                    return chain
                chain.append(link)
            return chain
        return None
