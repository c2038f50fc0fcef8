"""Verification: a rewrite is emitted only if the analysis agrees with it.

The patched files are extracted again and the whole tree is linked and
checked again (every rule, whatever was selected). A rewrite passes when its
own finding is gone and no finding appears that was not there before (lines
are mapped through the edits). A finding that appears inside a rewrite's new
lines is that rewrite's fault (adding __GFP_NOFAIL to a GFP_ATOMIC mask makes
NF004 there); one that appears elsewhere (a caller of a wrapper) cannot be
pinned on one rewrite, so each rewrite is then verified alone.
"""
from __future__ import annotations

from collections import Counter, defaultdict

from ..check import run_rules
from ..extract import extract
from ..facts import FileFacts
from ..findings import Finding
from ..link import TreeTables
from .edit import Refusal, Rewrite, apply_hunks, line_map, new_ranges
from .source import encode, parser

MAX_ROUNDS = 4


def _key(f: Finding, line: int | None = None):
    return (f.rule_id, f.location.path, f.location.line if line is None else line, f.function)


class Verifier:
    def __init__(self, tables: TreeTables, before: list[Finding]):
        self.tables = tables
        self.before = before
        self.runs = 0      # how many times the tree was linked and checked again

    def _findings_with(self, rewrites: list[Rewrite]) -> list[Finding]:
        by_path: dict[str, list[Rewrite]] = defaultdict(list)
        for rw in rewrites:
            by_path[rw.path].append(rw)
        patched: dict[str, FileFacts] = {}
        for path, rws in by_path.items():
            text = apply_hunks(rws[0].old, [h for rw in rws for h in rw.hunks])
            patched[path] = extract(encode(text), path, parser())
        t = self.tables
        files = [patched.get(ff.path, ff) for ff in t.files]
        files += [ff for p, ff in patched.items() if p not in {f.path for f in t.files}]
        tables = TreeTables(files, t.model, t.kernel_version, t.extra_allocators, t.extra_retry_wait)
        self.runs += 1
        return run_rules(tables, None)

    def check(self, rewrites: list[Rewrite]) -> tuple[dict[int, Refusal], list[Finding]]:
        """Refusals (by index into `rewrites`) found with all of them applied, and
        the new findings that could not be pinned on one rewrite."""
        after = self._findings_with(rewrites)
        by_path: dict[str, list[int]] = defaultdict(list)
        for i, rw in enumerate(rewrites):
            by_path[rw.path].append(i)
        maps, owners = {}, {}
        for path, idxs in by_path.items():
            hunks = [(h, i) for i in idxs for h in rewrites[i].hunks]
            hunks.sort(key=lambda x: x[0].start)
            maps[path] = line_map([h for h, _ in hunks])
            owners[path] = list(zip(new_ranges([h for h, _ in hunks]), [i for _, i in hunks], strict=True))
        targets = {id(rw.finding): i for i, rw in enumerate(rewrites)}
        target_keys = {}
        expected: Counter = Counter()
        for f in self.before:
            m = maps.get(f.location.path)
            line = m(f.location.line) if m else f.location.line
            if id(f) in targets:
                if line is not None:
                    target_keys[_key(f, line)] = targets[id(f)]
                continue
            if line is not None:
                expected[_key(f, line)] += 1
            else:
                expected[("hunk", f.rule_id, f.location.path, self._owner(owners, f, maps, rewrites))] += 1
        refusals: dict[int, Refusal] = {}
        unpinned: list[Finding] = []
        for f in after:
            k = _key(f)
            owner = self._new_owner(owners.get(f.location.path, ()), f.location.line)
            if owner is not None:
                hk = ("hunk", f.rule_id, f.location.path, owner)
                if expected[hk] > 0:
                    expected[hk] -= 1
                    continue
                rw = rewrites[owner]
                reason = "finding-remains" if f.rule_id == rw.finding.rule_id else f"would-create-{f.rule_id}"
                refusals.setdefault(owner, Refusal(rw.finding, reason, f"after the rewrite: {f.message}"))
                continue
            if expected[k] > 0:
                expected[k] -= 1
                continue
            if k in target_keys:
                idx = target_keys[k]
                refusals.setdefault(idx, Refusal(rewrites[idx].finding, "finding-remains",
                                                 f"after the rewrite: {f.message}"))
                continue
            unpinned.append(f)
        return refusals, unpinned

    @staticmethod
    def _new_owner(ranges, line: int) -> int | None:
        for (lo, hi), i in ranges:
            if lo <= line <= hi:
                return i
        return None

    @staticmethod
    def _owner(owners, f: Finding, maps, rewrites) -> int | None:
        """The rewrite whose hunk replaced the line of `f` (a finding that
        stays inside a rewritten region is matched there by rule)."""
        for i, rw in enumerate(rewrites):
            if rw.path == f.location.path:
                for h in rw.hunks:
                    if h.start < f.location.line <= h.end:
                        return i
        return None

    def verify(self, rewrites: list[Rewrite]) -> tuple[list[Rewrite], list[Refusal]]:
        """The rewrites that pass together, and refusals for the others."""
        kept = list(rewrites)
        refused: list[Refusal] = []
        for _ in range(MAX_ROUNDS):
            if not kept:
                break
            bad, unpinned = self.check(kept)
            if unpinned:
                for i, rw in enumerate(kept):
                    if i in bad:
                        continue
                    alone, lone_unpinned = self.check([rw])
                    if alone:
                        bad[i] = alone[0]
                    elif lone_unpinned:
                        f = lone_unpinned[0]
                        bad[i] = Refusal(rw.finding, f"would-create-{f.rule_id}",
                                         f"after the rewrite, at line {f.location.line} of the patched file: "
                                         f"{f.message}")
            if not bad and not unpinned:
                return kept, refused
            if not bad:   # each passes alone, not together
                break
            refused += [bad[i] for i in sorted(bad)]
            kept = [rw for i, rw in enumerate(kept) if i not in bad]
        if kept:   # still not clean together after several rounds: emit nothing half-verified
            refused += [Refusal(rw.finding, "verification-failed", "the rewrites do not verify together")
                        for rw in kept]
        return [], refused
