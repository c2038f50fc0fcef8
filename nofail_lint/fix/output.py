"""What `fix` prints or writes: the diff, the files, the refusals and suggestions."""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from .edit import Rewrite
from .patch import repo_path, unified_diff
from .plan import Plan
from .source import encode


def print_plan(plan: Plan, root: Path, cwd: Path) -> str:
    """One unified diff for every file the verified rewrites touch."""
    return "".join(unified_diff(repo_path(p, cwd, root), old, new) for p, (old, new) in plan.files().items())


def write_files(plan: Plan, cwd: Path) -> list[str]:
    """Apply in place: each file written to a temporary name, then renamed over."""
    written = []
    for path, (_old, new) in plan.files().items():
        target = cwd / path
        tmp = target.with_name(f".{target.name}.nofail-lint-fix")
        tmp.write_bytes(encode(new))
        os.chmod(tmp, target.stat().st_mode & 0o7777)
        os.replace(tmp, target)
        written.append(path)
    return written


def _suggestion(rw: Rewrite, root: Path, cwd: Path) -> list[str]:
    loc = rw.finding.location
    head = f"{loc.path}:{loc.line}:{loc.column}: {rw.finding.rule_id} suggestion ({rw.kind}): {rw.title}"
    diff = unified_diff(repo_path(rw.path, cwd, root), rw.old, rw.new, context=1)
    return [head] + ["    " + ln for ln in diff.splitlines() if not ln.startswith("diff --git")]


def refusal_lines(plan: Plan, root: Path, cwd: Path) -> list[str]:
    """stderr: every refused finding with its reason, then the suggestions
    (NF003's two ways out, the NF006 way not chosen) as small diffs."""
    out = [r.line() for r in plan.refusals]
    for rw in sorted(plan.suggestions, key=lambda r: (r.finding.sort_key(), r.kind)):
        out += _suggestion(rw, root, cwd)
    return out


def summary(plan: Plan, mode: str, written: list[Path] | None = None, out_dir: str | None = None) -> str:
    """The closing line; `mode`: "applied" (--write), "proposed" (a diff), "patches" (--format-patch)."""
    per_rule = Counter(rw.finding.rule_id for rw in plan.rewrites)
    reasons = Counter(r.reason for r in plan.refusals)
    files = len({rw.path for rw in plan.rewrites})
    detail = ", ".join(f"{k}: {n}" for k, n in sorted(per_rule.items()))
    refused = ", ".join(f"{k}: {n}" for k, n in sorted(reasons.items()))
    if mode == "patches":
        n = sum(1 for p in written or () if not p.name.startswith("0000-"))
        cover = " and a cover letter" if any(p.name.startswith("0000-") for p in written or ()) else ""
        done = f"in {n} patch(es){cover} written to {out_dir}, nothing changed in place"
    else:
        done = mode
    return (f"nofail-lint fix: {len(plan.rewrites)} fix(es) in {files} file(s) {done}"
            f"{f' ({detail})' if detail else ''}, {len(plan.refusals)} refused"
            f"{f' ({refused})' if refused else ''}, {len(plan.suggestions)} suggestion(s)")
