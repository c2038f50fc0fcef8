"""Link: all FileFacts -> tree-wide tables the rules query.

Macros (same-file definitions first, then every definition in the tree),
function lookup with C's static/global scoping, a reverse call index, and the
fixpoint of "functions that return an allocator's result" (NF002's wrappers).
Where gfp masks and vmalloc ranges flow through wrappers is check/gfp_flow.py's.
"""
from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from .cexpr import Mask, MaskEvaluator, NullTests, TestDef, const_value, mask_union, parse_expr
from .facts import CallSite, FileFacts, FunctionFacts, NullTestVia, RetryLoop, ReturnedCall
from .model import Model


@dataclass(frozen=True)
class FunctionRef:
    file: FileFacts
    fn: FunctionFacts

    @property
    def key(self) -> tuple[str, str]:
        return (self.file.path, self.fn.name)


@dataclass(frozen=True)
class NofailWrapper:
    """`ref` cannot return NULL unless a caller passes one of `may_fail_if`
    ((parameter index, flag)); either its own `loop` retries an allocation,
    or it returns the result of `via` = (the returned call, that wrapper)."""

    ref: FunctionRef
    may_fail_if: tuple[tuple[int, str], ...]
    via: tuple[ReturnedCall, "NofailWrapper"] | None
    loop: RetryLoop | None


def flag_terms(e, macro_bodies, params_ok=(), depth: int = 0) -> set[str] | None:
    """The names OR-ed into a flags expression (`flags | KM_ZERO`, `0`,
    `KM_NOFS`), through macros; None when it is not a plain OR of names
    and constants (a call, a mask operation, a field)."""
    kind = e[0]
    if depth > 8:
        return None
    if kind == "num":
        return set()
    if kind == "cast":
        return flag_terms(e[1], macro_bodies, params_ok, depth + 1)
    if kind == "id":
        bodies = macro_bodies(e[1])
        if len(bodies) == 1:
            inner = flag_terms(parse_expr(bodies[0]), macro_bodies, params_ok, depth + 1)
            return None if inner is None else {*inner, e[1]}
        if bodies or not (e[1].isupper() or e[1] in params_ok):
            return None     # a macro with several bodies, or a variable we know nothing of
        return {e[1]}
    if kind == "bin" and e[1] in ("|", "+"):
        a = flag_terms(e[2], macro_bodies, params_ok, depth + 1)
        b = flag_terms(e[3], macro_bodies, params_ok, depth + 1) if a is not None else None
        return None if a is None or b is None else a | b
    if kind == "cond":
        a = flag_terms(e[2], macro_bodies, params_ok, depth + 1)
        b = flag_terms(e[3], macro_bodies, params_ok, depth + 1) if a is not None else None
        return None if a is None or b is None else a | b
    return None


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
        self.fn_macros: dict[str, list[tuple[tuple[str, ...], str]]] = defaultdict(list)
        self.file_fn_macros: dict[str, dict[str, list[tuple[tuple[str, ...], str]]]] = {}
        # (struct type, field) -> [(file, op, value)]: every mask assigned to the field
        self.field_values: dict[tuple[str, str], list[tuple[str, str, str]]] = defaultdict(list)
        self._field_masks: dict[tuple[str, str], Mask | None] = {}
        self.globals: dict[str, list[FunctionRef]] = defaultdict(list)
        # `static inline` functions of headers: visible wherever the header is included
        self.header_statics: dict[str, list[FunctionRef]] = defaultdict(list)
        self.file_functions: dict[str, dict[str, FunctionRef | None]] = {}
        self.callers: dict[str, list[tuple[FunctionRef, CallSite]]] = defaultdict(list)
        # macros and helpers that test their arguments (FileFacts.test_defs)
        self.test_defs: dict[str, list[TestDef]] = defaultdict(list)
        self.file_test_defs: dict[str, dict[str, list[TestDef]]] = {}
        self._via_verdicts: dict[tuple[str, str, bool], bool] = {}
        for ff in files:
            local_defs: dict[str, list[TestDef]] = defaultdict(list)
            for name, nparams, value, acts in getattr(ff, "test_defs", ()):
                local_defs[name].append((nparams, value, acts))
                # a .c file's macros and (static) helpers are its own; a header's are everyone's
                if ff.path.endswith(".h") and (nparams, value, acts) not in self.test_defs[name]:
                    self.test_defs[name].append((nparams, value, acts))
            self.file_test_defs[ff.path] = local_defs
            local = defaultdict(list)
            for name, body in ff.macros:
                local[name].append(body)
                if body not in self.macros[name]:
                    self.macros[name].append(body)
            self.file_macros[ff.path] = local
            local_fn = defaultdict(list)
            for name, params, body in ff.mask_macros:
                local_fn[name].append((params, body))
                if (params, body) not in self.fn_macros[name]:
                    self.fn_macros[name].append((params, body))
            self.file_fn_macros[ff.path] = local_fn
            for kind, name, op, value in ff.field_masks:
                self.field_values[(kind, name)].append((ff.path, op, value))
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
        (NF002's allocator wrappers use them). The gfp flow does not yet: on
        the real trees it then reports NF008 through netdev_hold() under
        gfp_any() and through sb_bread() in code under a debug #ifdef
        (docs/real-kernel-findings.md, round 3)."""
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

    def field_mask(self, kind: str, name: str) -> Mask | None:
        """The union of every mask assigned to `struct kind`'s field `name` in
        the tree: `=` values, and those values with each `|=`/`&=` applied
        (an assignment may or may not have run). None if none is known."""
        key = (kind, name)
        if key in self._field_masks:
            return self._field_masks[key]
        self._field_masks[key] = None      # a field assigned from itself: no value yet
        base = None
        for path, op, value in self.field_values.get(key, ()):
            if op == "=":
                m = self.evaluator_for_file(path).eval_text(value)
                base = m if base is None else mask_union(base, m)
        if base is not None:
            result = base
            for path, op, value in self.field_values.get(key, ()):
                if op != "=":
                    e = parse_expr(f"(__nfl_base) {op[0]} ({value})")
                    ev = MaskEvaluator(self.algebra.atoms, self.algebra.composites,
                                       functools.partial(self._macro_bodies_but_base, path),
                                       resolve_fn_macro=functools.partial(self.fn_macro_bodies, path),
                                       resolve_field=self.field_mask)
                    ev._bound.append({"__nfl_base": base})
                    result = mask_union(result, ev.eval(e))
            base = result
        self._field_masks[key] = base
        return base

    def test_definitions(self, path: str, name: str) -> list[TestDef]:
        """How a called name tests its arguments: the kernel's primitives
        (nulltest.BUILTIN_TEST_DEFS), else its definitions in the calling file,
        else every definition in the tree; [] if some definition of the name
        does not test at all (a function with a body that is no test)."""
        from .nulltest import BUILTIN_TEST_DEFS
        if name in BUILTIN_TEST_DEFS:
            return BUILTIN_TEST_DEFS[name]
        local = self.file_test_defs.get(path, {}).get(name)
        if local:
            return local
        if name in self.file_functions.get(path, {}):
            return []       # the file's own definition of the name tests nothing
        return self.test_defs.get(name, [])

    def tests_null(self, path: str, via: NullTestVia) -> bool:
        """Is `via` (a condition calling macros or helpers on a result) a NULL
        test of the result, by the tree's definitions of what it calls?"""
        key = (path, via.text, via.stmt)
        found = self._via_verdicts.get(key)
        if found is None:
            found = NullTests(functools.partial(self.test_definitions, path)).is_test(via.text, via.stmt)
            self._via_verdicts[key] = found
        return found

    def _macro_bodies_but_base(self, path: str, name: str) -> list[str]:
        """Macro bodies, with `__nfl_base` (a field's value so far) left to the evaluator's binding."""
        return [] if name == "__nfl_base" else self.macro_bodies(path, name)

    def fn_macro_bodies(self, path: str, name: str) -> list[tuple[tuple[str, ...], str]]:
        return self.file_fn_macros.get(path, {}).get(name) or self.fn_macros.get(name, [])

    def evaluator(self, ref: FunctionRef) -> MaskEvaluator:
        params = {p: i for i, p in enumerate(ref.fn.params) if p}
        path = ref.file.path
        return MaskEvaluator(self.algebra.atoms, self.algebra.composites,
                             lambda n: self.macro_bodies(path, n), params.get,
                             lambda n: self.fn_macro_bodies(path, n), self.field_mask)

    def const_int(self, path: str, expr, known: dict[str, int] | None = None) -> int | None:
        """Value of a constant integer expression, through the tree's macros."""
        return const_value(expr, lambda n: self.macro_bodies(path, n), known)

    def evaluator_for_file(self, path: str) -> MaskEvaluator:
        """An evaluator with no parameters bound (file-scope macros only)."""
        return MaskEvaluator(self.algebra.atoms, self.algebra.composites,
                             lambda n: self.macro_bodies(path, n),
                             resolve_fn_macro=lambda n: self.fn_macro_bodies(path, n),
                             resolve_field=self.field_mask)

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

    # ------------------------------------------------------------ -ENOMEM from an allocation

    @property
    def enomem_sources(self) -> dict[tuple[str, str], tuple[str, ...]]:
        """(file, function) -> the calls down to an allocator whose failure
        the function returns as an error code (`-ENOMEM`): a function that
        allocates and returns -ENOMEM, and any function returning the result
        of one of those (followed across files)."""
        found = self.derived.get("enomem_sources")
        if found is None:
            found = self.derived["enomem_sources"] = self._enomem_sources()
        return found

    def _enomem_sources(self) -> dict[tuple[str, str], tuple[str, ...]]:
        out: dict[tuple[str, str], tuple[str, ...]] = {}
        by_callee: dict[str, list[tuple[FileFacts, FunctionFacts]]] = defaultdict(list)
        for ff in self.files:
            for fn in ff.functions:
                for callee in fn.callees_errno:      # `return PTR_ERR(p);` after `p = callee()`
                    by_callee[callee].append((ff, fn))
                for rc in fn.returns:
                    by_callee[rc.callee].append((ff, fn))
                    api = self.model.allocator(rc.callee)
                    if api is not None and api.fails == "errno" and (ff.path, fn.name) not in out:
                        out[(ff.path, fn.name)] = (fn.name, rc.callee)
                if fn.mentions_enomem and (ff.path, fn.name) not in out:
                    alloc = next((c.callee for c in fn.calls
                                  if self.allocator_chain(ff.path, c.callee) is not None), None)
                    if alloc is not None:
                        out[(ff.path, fn.name)] = (fn.name, alloc)
        work = list({key[1] for key in out})
        while work:
            name = work.pop()
            for ff, fn in by_callee.get(name, ()):
                if (ff.path, fn.name) in out or fn.name == name:
                    continue
                target = next((out[r.key] for r in self.resolve(ff.path, name, True) if r.key in out), None)
                if target is not None:
                    out[(ff.path, fn.name)] = (fn.name,) + target
                    work.append(fn.name)
        return out

    def enomem_chain(self, caller_path: str, name: str) -> tuple[str, ...] | None:
        """How a call to `name` can return -ENOMEM from an allocation, or None."""
        api = self.model.allocator(name)
        if api is not None:
            return (name,) if api.fails == "errno" else None
        return next((self.enomem_sources[r.key] for r in self.resolve(caller_path, name, True)
                     if r.key in self.enomem_sources), None)

    # ------------------------------------------------------------ wrappers that cannot return NULL

    def retries_allocation(self, ff: FileFacts, loop: RetryLoop) -> bool:
        """NF002's test: the loop's call is an allocator (model, tree wrapper,
        configured) or the loop waits for memory before retrying it."""
        waits = self.model.retry_wait | self.extra_retry_wait
        return self.allocator_chain(ff.path, loop.call.callee) is not None or \
            not waits.isdisjoint(loop.callees_in_loop)

    @property
    def nofail_wrappers(self) -> dict[tuple[str, str], NofailWrapper]:
        """Functions that cannot return NULL because of their own retry loop,
        unless a caller's flag allows it: (file, name) -> NofailWrapper."""
        found = self.derived.get("nofail_wrappers")
        if found is None:
            found = self.derived["nofail_wrappers"] = self._nofail_wrappers()
        return found

    def _nofail_wrappers(self) -> dict[tuple[str, str], NofailWrapper]:
        out: dict[tuple[str, str], NofailWrapper] = {}
        for ff in self.files:
            for fn in ff.functions:
                if not fn.returns or fn.other_returns:
                    continue
                for loop in fn.retry_loops:
                    if loop.code_only or loop.conditional_exit and not loop.may_fail_if:
                        continue     # leaves on something we cannot tie to a caller's flag
                    returned = {rc.callee for rc in fn.returns}
                    if returned <= set(loop.callees_in_loop) and self.retries_allocation(ff, loop):
                        out[(ff.path, fn.name)] = NofailWrapper(FunctionRef(ff, fn), loop.may_fail_if, None, loop)
                        break
        # a function whose every return is a call to such a wrapper is one too,
        # with the wrapper's may-fail flags mapped to its own parameters
        by_callee: dict[str, list[tuple[FileFacts, FunctionFacts]]] = defaultdict(list)
        for ff in self.files:
            for fn in ff.functions:
                if fn.returns and not fn.other_returns:
                    for rc in fn.returns:
                        by_callee[rc.callee].append((ff, fn))
        work = list({w.ref.fn.name for w in out.values()})
        while work:
            name = work.pop()
            for ff, fn in by_callee.get(name, ()):
                if (ff.path, fn.name) in out:
                    continue
                wrapper = self._wrapper_of_wrappers(ff, fn, out)
                if wrapper is not None:
                    out[(ff.path, fn.name)] = wrapper
                    work.append(fn.name)
        return out

    def _wrapper_of_wrappers(self, ff: FileFacts, fn: FunctionFacts,
                             known: dict[tuple[str, str], NofailWrapper]) -> NofailWrapper | None:
        """`fn` as a NOFAIL wrapper if every return is a call to a known one
        whose may-fail flags map to `fn`'s own parameters."""
        conds: set[tuple[int, str]] = set()
        via = None
        for rc in fn.returns:
            target = next((known[r.key] for r in self.resolve(ff.path, rc.callee, True) if r.key in known), None)
            if target is None:
                return None
            mapped = self.flags_passed(ff.path, fn.params, rc.args, target.may_fail_if)
            if mapped is None:
                return None
            conds.update(mapped)
            via = via or (rc, target)
        return NofailWrapper(FunctionRef(ff, fn), tuple(sorted(conds)), via, None)

    def flags_passed(self, path: str, params: tuple[str, ...], args: tuple[str, ...],
                     may_fail_if: tuple[tuple[int, str], ...]) -> set[tuple[int, str]] | None:
        """Where a call's arguments can set the callee's may-fail flags: the
        caller's own (parameter, flag) pairs; None if a flag may be set here
        or an argument is not understood."""
        out: set[tuple[int, str]] = set()
        for idx, flag in may_fail_if:
            if idx >= len(args):
                return None
            seen = flag_terms(parse_expr(args[idx]), lambda n: self.macro_bodies(path, n), params)
            if seen is None or flag in seen:
                return None
            out.update((params.index(p), flag) for p in seen if p in params)
        return out

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
