"""`fix --format-patch DIR`: a patch series for maintainers, ready for `git am`.

One patch per MAINTAINERS entry (the most specific entry whose F: patterns
match the file, as scripts/get_maintainer.pl picks sections without git
history), or per directory when the tree has no MAINTAINERS file. To: the
entry's M: people; Cc: its R: and L:, and the M:/R:/L: of the other matching
entries. The subject prefix is the one the file's recent `git log` subjects
use most ("xfs: ", "mm/vmalloc: "), else the directory path. The body says
why, from the rule docs and the allocator-model facts with their kernel
citations.
"""
from __future__ import annotations

import email.utils
import re
import subprocess
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .. import __version__
from ..link import TreeTables
from ..rules_catalog import load_rules
from .edit import Rewrite, apply_hunks
from .patch import repo_path, unified_diff
from .plan import Plan

_FIELD = re.compile(r"^([A-Z]):\s*(.*?)\s*$")
_PREFIX = re.compile(r"^((?:[\w.+/-]+(?:, ?)?)+(?::\s?[\w.+/-]+)*):\s")
_WRAP = 72


class SeriesError(Exception):
    pass


@dataclass
class Entry:
    """One MAINTAINERS section."""

    title: str
    fields: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def matches(self, path: str, root: Path) -> int:
        """How specific the best F: pattern matching `path` is (0: no match)."""
        if any(_pattern_matches(_as_dir(x, root), path) for x in self.fields.get("X", ())):
            return 0
        best = 0
        for pat in self.fields.get("F", ()):
            if _pattern_matches(_as_dir(pat, root), path):
                best = max(best, len(pat.rstrip("*/")) + 1)
        for rx in self.fields.get("N", ()):
            try:
                if re.search(rx, path):
                    best = max(best, 1)
            except re.error:
                continue
        return best


def _pattern_matches(pattern: str, path: str) -> bool:
    """scripts/get_maintainer.pl's file_match_pattern(): `*` is `.*`, `?` is
    `.`, matched at the start of the path; a pattern ending in `/` takes
    everything below, any other only paths with as many `/` as it has."""
    rx = re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")
    if not re.match(rx, path):
        return False
    return pattern.endswith("/") or path.count("/") == pattern.count("/")


def _as_dir(pattern: str, root: Path) -> str:
    """A pattern naming a directory of the tree gets its trailing `/` (as get_maintainer.pl does)."""
    if not pattern.endswith("/") and not any(c in pattern for c in "*?") and (root / pattern).is_dir():
        return pattern + "/"
    return pattern


def parse_maintainers(text: str) -> list[Entry]:
    entries = []
    for block in re.split(r"\n[ \t]*\n", text):
        lines = [ln for ln in block.splitlines() if ln.strip()]
        if len(lines) < 2 or _FIELD.match(lines[0]) or lines[0].startswith((" ", "\t")):
            continue
        entry = Entry(lines[0].strip())
        for ln in lines[1:]:
            m = _FIELD.match(ln)
            if m:
                entry.fields[m.group(1)].append(m.group(2))
        if entry.fields.get("F") or entry.fields.get("N"):
            entries.append(entry)
    return entries


def _address(value: str, kind: str) -> str:
    if kind == "L":
        value = value.split()[0] if value.split() else value
    name, addr = email.utils.parseaddr(value)
    if not addr:
        return ""
    return email.utils.formataddr((name, addr), charset="utf-8") if name and kind != "L" else addr


@dataclass
class Group:
    key: str                     # entry title or directory
    rewrites: list[Rewrite] = field(default_factory=list)
    to: list[str] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)


def _git(root: Path, *args: str) -> str:
    try:
        proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, errors="replace")
    except OSError:
        return ""
    return proc.stdout if proc.returncode == 0 else ""


def subject_prefix(root: Path, paths: list[str]) -> str:
    """The prefix most of the files' recent commit subjects use, else the directory."""
    found: Counter = Counter()
    for p in paths:
        for subject in _git(root, "log", "-n", "30", "--no-merges", "--format=%s", "--", p).splitlines():
            subject = re.sub(r"^(?:\[[^\]]*\]\s*)+", "", subject)
            m = _PREFIX.match(subject)
            if m and not m.group(1).lower().startswith(("revert", "merge")):
                found[m.group(1)] += 1
    if found:
        return max(sorted(found), key=lambda k: found[k])
    dirs = sorted({str(PurePosixPath(p).parent) for p in paths})
    return dirs[0] if len(dirs) == 1 else str(PurePosixPath(*_common(dirs)))


def _common(dirs: list[str]) -> tuple[str, ...]:
    parts = [PurePosixPath(d).parts for d in dirs]
    out = []
    for items in zip(*parts, strict=False):
        if len(set(items)) != 1:
            break
        out.append(items[0])
    return tuple(out) or (".",)


def group_rewrites(plan: Plan, root: Path, cwd: Path) -> list[Group]:
    maintainers = root / "MAINTAINERS"
    entries = parse_maintainers(maintainers.read_text(encoding="utf-8", errors="replace")) \
        if maintainers.is_file() else []
    groups: dict[str, Group] = {}
    for rw in plan.rewrites:
        rel = repo_path(rw.path, cwd, root)
        scored = sorted(((e.matches(rel, root), i, e) for i, e in enumerate(entries)), key=lambda x: (-x[0], x[1]))
        ranked = [(score, e) for score, _, e in scored if score > 0]
        key = ranked[0][1].title if ranked else str(PurePosixPath(rel).parent)
        g = groups.setdefault(key, Group(key))
        g.rewrites.append(rw)
        for n, (_score, e) in enumerate(ranked):
            for kind in ("M", "R", "L"):
                for value in e.fields.get(kind, ()):
                    addr = _address(value, kind)
                    target = g.to if n == 0 and kind == "M" else g.cc
                    if addr and addr not in g.to and addr not in g.cc:
                        target.append(addr)
    return [groups[k] for k in sorted(groups, key=lambda k: min(r.finding.sort_key() for r in groups[k].rewrites))]


_WHAT = {
    "nf002-nofail": "use __GFP_NOFAIL instead of open-coded retry loops",
    "nf006-drop-check": "drop NULL checks that __GFP_NOFAIL makes dead",
    "nf006-drop-nofail": "drop __GFP_NOFAIL where the failure is handled",
}
_SHORT = {
    "nf002-nofail": "retry loops",
    "nf006-drop-check": "dead NULL checks",
    "nf006-drop-nofail": "NOFAIL with a failure path",
}
_SUBJECT_MAX = 75


def _summary(rewrites: list[Rewrite], prefix: str) -> str:
    """One line, as short as kernel subjects are: what changes, and where if one function."""
    kinds = sorted({rw.kind for rw in rewrites})
    functions = sorted({rw.finding.function for rw in rewrites if rw.finding.function})
    if len(kinds) > 1:
        return "fix __GFP_NOFAIL use (" + ", ".join(_SHORT[k] for k in kinds) + ")"
    what = _WHAT[kinds[0]]
    if len(functions) == 1:
        one = what.replace("loops", "loop").replace("checks", "check") + f" in {functions[0]}()"
        if len(prefix) + 2 + len(one) <= _SUBJECT_MAX:
            return one
    return what


def _wrap(text: str) -> list[str]:
    out, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > _WRAP:
            out.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        out.append(line)
    return out


def _body(rewrites: list[Rewrite], tables: TreeTables, cwd: Path, root: Path) -> str:
    rules = load_rules()
    paras = []
    by_rule: dict[str, list[Rewrite]] = defaultdict(list)
    for rw in rewrites:
        by_rule[rw.finding.rule_id].append(rw)
    for rule_id, rws in sorted(by_rule.items()):
        rule = rules.get(rule_id)
        sites = ", ".join(f"{rw.finding.function}() ({repo_path(rw.path, cwd, root)}:{rw.finding.location.line})"
                          for rw in rws)
        if rule_id == "NF002":
            text = (f"{sites} retr{'ies' if len(rws) == 1 else 'y'} an allocation until it succeeds, "
                    "with no way out on persistent failure: an open-coded __GFP_NOFAIL that the allocator "
                    "cannot see. Pass __GFP_NOFAIL instead, so that the allocator knows the caller cannot "
                    "handle failure (it then retries reclaim and compaction and may use reserves rather "
                    "than failing the same way on each try), and drop the loop with its waits and the "
                    "counter that only fed its warning.")
        elif any(rw.kind == "nf006-drop-nofail" for rw in rws):
            text = (f"{sites} test{'s' if len(rws) == 1 else ''} the result of a __GFP_NOFAIL allocation "
                    f"for NULL and handle{'s' if len(rws) == 1 else ''} the failure. Keep that handling and "
                    "drop __GFP_NOFAIL, so that the allocation may fail into it.")
        else:
            text = (f"{sites} test{'s' if len(rws) == 1 else ''} the result of a __GFP_NOFAIL allocation "
                    "for NULL, though the allocator cannot return NULL under this mask. Drop the dead check.")
        paras.append(_wrap(text))
        if rule is not None:
            paras.append(_wrap(re.sub(r"`", "", rule.summary)))
        facts = tables.model.facts_for(dict.fromkeys(rule.facts if rule else ()), tables.kernel_version)
        if rule_id == "NF002" and "gfp.nofail-needs-direct-reclaim" not in (rule.facts if rule else ()):
            facts += tables.model.facts_for(["gfp.nofail-needs-direct-reclaim"], tables.kernel_version)
        if facts:
            lines = ["Allocator facts (nofail-lint model):"]
            for f in facts:
                wrapped = _wrap(f"{f.summary} ({f.citation()})")
                lines += ["- " + wrapped[0]] + ["  " + w for w in wrapped[1:]]
            paras.append(lines)
    paras.append(_wrap(f"Found and rewritten by nofail-lint {__version__} ({', '.join(sorted(by_rule))}); "
                       "each rewrite was checked by running the analysis again on the patched tree: the "
                       "finding is gone and no new one appears."))
    return "\n\n".join("\n".join(p) for p in paras)


def _author(root: Path) -> str:
    name = _git(root, "config", "user.name").strip() or "nofail-lint"
    addr = _git(root, "config", "user.email").strip() or "nofail-lint@localhost"
    return email.utils.formataddr((name, addr), charset="utf-8")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")[:52].rstrip("-")


def write_series(plan: Plan, out_dir: Path, root: Path, cwd: Path, tables: TreeTables) -> list[Path]:
    """Write the series into `out_dir`; returns the patch files in order."""
    groups = group_rewrites(plan, root, cwd)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SeriesError(f"cannot create {out_dir}: {e.strerror or e}") from None
    written = []
    total = len(groups)
    author = _author(root)
    date = email.utils.formatdate(localtime=False)
    for n, g in enumerate(groups, 1):
        by_path: dict[str, list[Rewrite]] = defaultdict(list)
        for rw in g.rewrites:
            by_path[rw.path].append(rw)
        rels = sorted(repo_path(p, cwd, root) for p in by_path)
        prefix = subject_prefix(root, rels)
        subject = f"{prefix}: {_summary(g.rewrites, prefix)}"
        number = f"PATCH {n}/{total}" if total > 1 else "PATCH"
        diff = "".join(unified_diff(repo_path(p, cwd, root), rws[0].old,
                                    apply_hunks(rws[0].old, [h for rw in rws for h in rw.hunks]))
                       for p, rws in sorted(by_path.items()))
        headers = ["From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001",
                   f"From: {author}", f"Date: {date}", f"Subject: [{number}] {subject}"]
        if g.to:
            headers.append("To: " + ",\n    ".join(g.to))
        if g.cc:
            headers.append("Cc: " + ",\n    ".join(g.cc))
        headers += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=UTF-8",
                    "Content-Transfer-Encoding: 8bit"]
        text = "\n".join(headers) + "\n\n" + _body(g.rewrites, tables, cwd, root) + "\n---\n" + \
            _stat(diff) + "\n" + diff + "-- \nnofail-lint " + __version__ + "\n\n"
        path = out_dir / f"{n:04d}-{_slug(subject)}.patch"
        path.write_text(text, encoding="utf-8", errors="surrogateescape")
        written.append(path)
    return written


def _stat(diff: str) -> str:
    """A short diffstat (informational; git am ignores it)."""
    counts: dict[str, list[int]] = {}
    current = None
    for ln in diff.splitlines():
        if ln.startswith("+++ b/"):
            current = ln[6:]
            counts[current] = [0, 0]
        elif current and ln.startswith("+") and not ln.startswith("+++"):
            counts[current][0] += 1
        elif current and ln.startswith("-") and not ln.startswith("---"):
            counts[current][1] += 1
    lines = [f" {p} | {a + d} {'+' * a}{'-' * d}" for p, (a, d) in counts.items()]
    adds, dels = sum(c[0] for c in counts.values()), sum(c[1] for c in counts.values())
    lines.append(f" {len(counts)} file{'s' if len(counts) != 1 else ''} changed, {adds} insertion"
                 f"{'s' if adds != 1 else ''}(+), {dels} deletion{'s' if dels != 1 else ''}(-)")
    return "\n".join(lines) + "\n"
