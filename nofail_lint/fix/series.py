"""`fix --format-patch DIR`: a patch series a kernel maintainer can take as it is.

One patch per MAINTAINERS section and kind of change (retry loops, dead NULL
checks, ...), or per directory when the tree has no MAINTAINERS file, in
`git format-patch` form:

- From and Signed-off-by: the user's git identity (identity.py) or --from;
- To/Cc: the sections get_maintainer.pl would list (maintainers.py), or the
  script's own answer with --get-maintainer;
- Subject: `<prefix>: <what>`, at most 75 characters. The prefix is the one
  most of the files' recent `git log` subjects use; without history it is
  derived from the directory (`subject_prefix`);
- the message says what the code did in each function, why __GFP_NOFAIL is
  right there, what was removed, and cites the allocator-model facts that
  apply; lines wrapped at 75 columns;
- a cover letter (`0000-cover-letter.patch`) with --cover-letter or when one
  section gets more than one patch: what the series does and what was refused.
"""
from __future__ import annotations

import datetime
import email.utils
import re
import subprocess
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .. import __version__
from ..link import TreeTables
from .edit import Change, Rewrite, apply_hunks
from .identity import header
from .maintainers import Maintainers, MaintainersError, Recipients, run_script
from .patch import repo_path, unified_diff
from .plan import Plan

_PREFIX = re.compile(r"^((?:[\w.+/-]+(?:, ?)?)+(?::\s?[\w.+/-]+)*):\s")
WRAP = 75                 # commit message width (checkpatch warns past 75)
SUBJECT_MAX = 75          # `prefix: summary`, without the [PATCH n/m] tag
_PREFIX_MAX = 30          # a longer prefix from the log is not used
# directory names that say little alone: qualified by their parent ("usb: core")
_GENERIC = frozenset({"core", "common", "lib", "base", "host", "src", "hw", "main", "generic", "ethernet",
                      "drivers", "misc", "include", "linux", "platform", "arch", "kernel"})
_SLEEPS = re.compile(r"^(?:schedule\w*|msleep\w*|ssleep|usleep\w*|fsleep|congestion_wait|memalloc_retry_wait|"
                     r"io_schedule\w*|wait_\w+|cond_resched\w*)$")


class SeriesError(Exception):
    pass


@dataclass
class SeriesOptions:
    identity: str                          # "Name <address>", for From and Signed-off-by
    signoff: bool = True
    cover_letter: bool = False
    get_maintainer: Path | None = None     # run this get_maintainer.pl instead of reading MAINTAINERS


@dataclass
class Group:
    section: str                           # MAINTAINERS section title, or the directory
    kind: str                              # the rewrites' kind
    rewrites: list[Rewrite] = field(default_factory=list)

    def files(self, cwd: Path, root: Path) -> list[str]:
        return sorted({repo_path(rw.path, cwd, root) for rw in self.rewrites})


# ------------------------------------------------------------------ subjects

def _git(root: Path, *args: str) -> str:
    try:
        proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, errors="replace",
                              stdin=subprocess.DEVNULL)
    except OSError:
        return ""
    return proc.stdout if proc.returncode == 0 else ""


def logged_prefix(root: Path, paths: list[str]) -> str | None:
    """The prefix most of the files' last 30 commit subjects use (merges,
    reverts and `[tags]` aside), or None without history."""
    found: Counter = Counter()
    for p in paths:
        for subject in _git(root, "log", "-n", "30", "--no-merges", "--format=%s", "--", p).splitlines():
            subject = re.sub(r"^(?:\[[^\]]*\]\s*)+", "", subject)
            m = _PREFIX.match(subject)
            if m and not m.group(1).lower().startswith(("revert", "merge")) and len(m.group(1)) <= _PREFIX_MAX:
                found[m.group(1)] += 1
    if not found:
        return None
    return max(sorted(found), key=lambda k: found[k])


def derived_prefix(paths: list[str]) -> str:
    """Without history: the deepest directory the files share ("cxgb4" for
    drivers/net/ethernet/chelsio/cxgb4/), qualified by its parent when the
    name says little alone ("usb: core"); `lib<parent>` reads as the parent
    (fs/xfs/libxfs: "xfs"); files directly in the tree root: "treewide"."""
    parts = [PurePosixPath(p).parent.parts for p in paths]
    common: list[str] = []
    for items in zip(*parts, strict=False):
        if len(set(items)) != 1:
            break
        common.append(items[0])
    common = [c for c in common if c not in (".", "")]
    if not common:
        return "treewide"
    last = common[-1]
    if len(common) >= 2:
        parent = common[-2]
        if last == "lib" + parent or last == parent + "lib":
            return parent
        if last in _GENERIC and parent not in _GENERIC:
            return f"{parent}: {last}"
    return last


def subject_prefix(root: Path, paths: list[str]) -> str:
    return logged_prefix(root, paths) or derived_prefix(paths)


def _functions(rewrites: list[Rewrite]) -> list[str]:
    return sorted({rw.finding.function for rw in rewrites if rw.finding.function})


_WHAT = {   # kind -> (one function, several)
    "nf002-nofail": ("use __GFP_NOFAIL in {fn}() instead of a retry loop",
                     "use __GFP_NOFAIL instead of open-coded retry loops"),
    "nf006-drop-check": ("remove dead NULL check in {fn}()",
                         "remove NULL checks that __GFP_NOFAIL makes dead"),
    "nf006-drop-nofail": ("drop __GFP_NOFAIL where {fn}() handles failure",
                          "drop __GFP_NOFAIL where the failure is handled"),
}
_SHORTER = {
    "nf002-nofail": "use __GFP_NOFAIL instead of a retry loop",
    "nf006-drop-check": "remove a dead NULL check",
    "nf006-drop-nofail": "drop __GFP_NOFAIL where failure is handled",
}


def subject(prefix: str, rewrites: list[Rewrite]) -> str:
    """`prefix: what`, within SUBJECT_MAX: the function named when there is one and it fits."""
    kind = rewrites[0].kind
    one, several = _WHAT.get(kind, ("fix __GFP_NOFAIL use in {fn}()", "fix __GFP_NOFAIL use"))
    fns = _functions(rewrites)
    candidates = [one.format(fn=fns[0])] if len(fns) == 1 else []
    candidates += [several if len(fns) != 1 else _SHORTER.get(kind, several), "fix __GFP_NOFAIL use"]
    for what in candidates:
        if len(prefix) + 2 + len(what) <= SUBJECT_MAX:
            return f"{prefix}: {what}"
    return f"{prefix[:SUBJECT_MAX - 22].rstrip(' :')}: fix __GFP_NOFAIL use"


# ------------------------------------------------------------------ messages

def wrap(text: str, width: int = WRAP, indent: str = "") -> list[str]:
    out, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            out.append(line)
            line = indent + word
        else:
            line = f"{line} {word}" if line else word
    if line:
        out.append(line)
    return out


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


_LOOPS = {"do-while": "a do/while loop", "while": "a while loop", "for": "an endless for loop",
          "goto": "a goto-based retry loop"}


def _calls(names: tuple[str, ...]) -> str:
    return _join([f"{n}()" for n in names])


def _what_nf002(fns: list[str], c: Change) -> str:
    who = _join([f"{f}()" for f in fns]) or "This code"
    verb = "retries" if len(fns) <= 1 else "each retry"
    how = f" in {_LOOPS.get(c.loop, 'a loop')}"
    if c.waits:
        how += f", calling {_calls(c.waits)} after each failure"
    else:
        how += ", without waiting between tries"
    if c.logs:
        how += f" and warning with {_calls(c.logs)}"
    return (f"{who} {verb} {c.callee}(){how}, until the allocation succeeds. Nothing leaves the loop "
            "when the allocation keeps failing: it is an open-coded __GFP_NOFAIL that the allocator "
            "cannot see.")


def _labels(text: str) -> set[str]:
    """Names of the goto labels defined in `text` (a line starting `name:`)."""
    return set(re.findall(r"(?m)^[ \t]*([A-Za-z_]\w*)[ \t]*:(?!:)", text)) - {"default", "public", "private"}


def _removed(c: Change, old: str) -> str:
    parts = ["the loop"]
    if c.waits:
        parts.append(f"its {_calls(c.waits)} wait{'s' if len(c.waits) > 1 else ''}")
    if c.logs:
        parts.append(f"the {_calls(c.logs)} warning")
    if c.counters:
        parts.append(_join([f"'{n}'" for n in c.counters]) + f" counter{'s' if len(c.counters) > 1 else ''}")
    labels = [n for n in c.dropped if n in _labels(old)]
    others = [n for n in c.dropped if n not in labels]
    if labels:
        parts.append(_join([f"'{n}'" for n in labels]) + f" label{'s' if len(labels) > 1 else ''}")
    if others:
        parts.append("the now unused " + _join([f"'{n}'" for n in others]))
    return _join(parts)


def _why_nf002(c: Change, old: str) -> list[str]:
    out = [f"Pass __GFP_NOFAIL to {c.callee}() instead and remove {_removed(c, old)}. The allocator then "
           "knows that the caller cannot handle failure: it keeps retrying reclaim and compaction "
           "itself and, when the OOM killer cannot help, lets the request use memory reserves, "
           "instead of failing the same way on every call."]
    mask = f"the mask, {c.gfp}, allows direct reclaim" if c.gfp else "the mask allows direct reclaim"
    sleeps = [w for w in c.waits if _SLEEPS.match(w)]
    if sleeps:
        mask += f" and the loop already slept in {_calls(tuple(sleeps))}, so this context can block"
    else:
        mask += ", so the allocation may block"
    why = f"__GFP_NOFAIL is safe here: {mask}, as the flag requires"
    if c.size_kind == "order" and c.size.isdigit() and int(c.size) <= 1:
        why += f"; and the request is order {c.size}, while the flag is not supported above order 1"
    elif c.size_kind == "size" and re.fullmatch(r"sizeof\s*\(?[\w\s*]+\)?", c.size):
        why += f"; and the request has a fixed size, {c.size}"
    out.append(why + ".")
    return out


_HONOURS = ("skb.alloc-via-slab", "devres.kmalloc-forwards")


def _facts_nf002(tables: TreeTables, changes: list[Change]) -> list[str]:
    ids = ["gfp.nofail-preferred-over-loop", "gfp.nofail-needs-direct-reclaim", "page.nofail-oom-fallback"]
    for c in changes:
        api = tables.model.allocator_for(c.callee, tables.kernel_version)
        if api is not None:
            ids += [f for f in api.facts if f in _HONOURS]
        if c.size_kind == "order" and c.size.isdigit():
            ids.append("gfp.nofail-high-order-unsupported")
    return list(dict.fromkeys(ids))


def _body(group: Group, tables: TreeTables, cwd: Path, root: Path) -> list[list[str]]:
    """The message paragraphs (each a list of lines) for one group."""
    paras: list[list[str]] = []
    fact_ids: list[str] = []
    by_change: dict[tuple, list[Rewrite]] = defaultdict(list)
    for rw in group.rewrites:
        c = rw.about or Change(rw.finding.function or "the allocator")
        by_change[(c.callee, c.loop, c.waits, c.logs, c.gfp, c.size, c.counters, c.dropped)].append(rw)
    if group.kind == "nf002-nofail":
        said: set[str] = set()
        for rws in by_change.values():
            c = rws[0].about or Change("")
            paras.append(wrap(_what_nf002(_functions(rws), c)))
            for text in _why_nf002(c, rws[0].old):
                if text not in said:
                    said.add(text)
                    paras.append(wrap(text))
        fact_ids = _facts_nf002(tables, [rw.about for rw in group.rewrites if rw.about])
    elif group.kind == "nf006-drop-check":
        sites = []
        for rws in by_change.values():
            c = rws[0].about or Change("the allocator")
            fns = _join([f"{f}()" for f in _functions(rws)]) or "this code"
            sites.append((fns, f"{c.callee}() with {c.gfp}" if c.gfp else f"{c.callee}() with __GFP_NOFAIL"))
        n = len(group.rewrites)
        if len(sites) == 1:
            one = len(_functions(group.rewrites)) <= 1
            paras.append(wrap(f"{sites[0][0][:1].upper()}{sites[0][0][1:]} call{'s' if one else ''} "
                              f"{sites[0][1]} and then test{'s' if one else ''} the result for NULL."))
        else:
            paras.append(["These functions test the result of a __GFP_NOFAIL allocation for NULL:"]
                         + [line for fns, call in sites for line in wrap(f"- {fns}: {call}", WRAP, "  ")])
        labels = sorted(set().union(*(_labels(rw.old) - _labels(rw.new) for rw in group.rewrites)))
        extra = (f", with the {_join([repr(x) for x in labels])} label{'s' if len(labels) > 1 else ''} "
                 "and the code only the checks reached") if labels else ""
        paras.append(wrap("A __GFP_NOFAIL allocation that may block does not return NULL: the allocator "
                          f"retries until it succeeds, so {'these error paths are' if n > 1 else 'the error path is'}"
                          f" dead code. Remove the check{'s' if n > 1 else ''}{extra}."))
        fact_ids = ["gfp.nofail-contract", "gfp.nofail-needs-direct-reclaim"]
    else:
        for rws in by_change.values():
            c = rws[0].about or Change("")
            fns = _join([f"{f}()" for f in _functions(rws)]) or "This code"
            one = len(_functions(rws)) <= 1
            paras.append(wrap(f"{fns} pass{'es' if one else ''} __GFP_NOFAIL to {c.callee}() "
                              "but also handle" + ("s" if one else "") + " a NULL result. "
                              "Keep the error handling and drop __GFP_NOFAIL, so that the allocation may "
                              "fail into it instead of looping in the allocator."))
    facts = tables.model.facts_for(fact_ids, tables.kernel_version)
    if facts:
        lines = ["Allocator facts relied on (with the kernel source that states them):"]
        for f in facts:
            wrapped = wrap(f"{f.summary.replace('`', '')} ({f.citation()})", WRAP - 2)
            lines += ["- " + wrapped[0]] + ["  " + w for w in wrapped[1:]]
        paras.append(lines)
    paras.append(wrap(f"Found with nofail-lint {__version__}; running its analysis again on the patched "
                      "tree reports no finding here and none new."))
    return paras


# ------------------------------------------------------------------ grouping

def group_rewrites(plan: Plan, maintainers: Maintainers | None, root: Path, cwd: Path) -> list[Group]:
    groups: dict[tuple[str, str], Group] = {}
    for rw in plan.rewrites:
        rel = repo_path(rw.path, cwd, root)
        section = ""
        if maintainers is not None:
            section = maintainers.recipients([rel]).primary
        key = (section or str(PurePosixPath(rel).parent), rw.kind)
        groups.setdefault(key, Group(key[0], rw.kind)).rewrites.append(rw)
    return sorted(groups.values(), key=lambda g: min(r.finding.sort_key() for r in g.rewrites))


# ------------------------------------------------------------------ writing

def _slug(text: str) -> str:
    """git format-patch's file name for a subject."""
    return re.sub(r"[^A-Za-z0-9._]+", "-", text).strip("-.")[:52].rstrip("-.")


def _mail(identity: str, date: str, subject_line: str, rcpt: Recipients | None, body: str) -> str:
    headers = ["From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001",
               f"From: {header(identity)}", f"Date: {date}", f"Subject: {subject_line}"]
    if rcpt is not None and rcpt.to:
        headers.append("To: " + ",\n    ".join(rcpt.to))
    if rcpt is not None and rcpt.cc:
        headers.append("Cc: " + ",\n    ".join(rcpt.cc))
    if not (identity + subject_line + body).isascii():
        headers += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=UTF-8",
                    "Content-Transfer-Encoding: 8bit"]
    return "\n".join(headers) + "\n\n" + body


def _recipients(maintainers: Maintainers | None, options: SeriesOptions, root: Path, files: list[str],
                render) -> Recipients | None:
    """The patch's To/Cc: the script's answer (--get-maintainer), else the
    MAINTAINERS matcher run until the K: keywords it sees in the rendered
    patch (headers included, as the script reads them) stop changing it."""
    if options.get_maintainer is not None:
        with tempfile.TemporaryDirectory(prefix="nofail-lint-patch-") as tmp:
            probe = Path(tmp) / "probe.patch"
            probe.write_text(render(None), encoding="utf-8", errors="surrogateescape")
            try:
                return run_script(options.get_maintainer, root, probe)
            except MaintainersError as e:
                raise SeriesError(str(e)) from None
    if maintainers is None:
        return None
    rcpt = maintainers.recipients(files, render(None))
    for _ in range(3):
        again = maintainers.recipients(files, render(rcpt))
        if again.everyone() == rcpt.everyone():
            break
        rcpt = again
    return rcpt


def write_series(plan: Plan, out_dir: Path, root: Path, cwd: Path, tables: TreeTables,
                 options: SeriesOptions, kernel_root: Path | None = None) -> list[Path]:
    """Write the series into `out_dir`; returns the files written, the cover letter first."""
    kroot = kernel_root or root
    try:
        maintainers = Maintainers.of_tree(kroot) if options.get_maintainer is None else None
    except MaintainersError as e:
        raise SeriesError(str(e)) from None
    groups = group_rewrites(plan, maintainers, kroot, cwd)
    sections = Counter(g.section for g in groups)
    cover = bool(groups) and (options.cover_letter or any(n > 1 for n in sections.values()))
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SeriesError(f"cannot create {out_dir}: {e.strerror or e}") from None
    total = len(groups)
    date = email.utils.format_datetime(datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0))
    texts: list[tuple[Path, str]] = []
    summaries: list[tuple[str, str, Recipients | None]] = []
    for n, g in enumerate(groups, 1):
        by_path: dict[str, list[Rewrite]] = defaultdict(list)
        for rw in g.rewrites:
            by_path[rw.path].append(rw)
        files = g.files(cwd, kroot)
        title = subject(subject_prefix(root, [repo_path(p, cwd, root) for p in by_path]), g.rewrites)
        tag = f"PATCH {n}/{total}" if total > 1 or cover else "PATCH"
        diff = "".join(unified_diff(repo_path(p, cwd, root), rws[0].old,
                                    apply_hunks(rws[0].old, [h for rw in rws for h in rw.hunks]))
                       for p, rws in sorted(by_path.items()))
        message = "\n\n".join("\n".join(p) for p in _body(g, tables, cwd, root))
        if options.signoff:
            message += f"\n\nSigned-off-by: {options.identity}"
        body = message + "\n---\n" + _stat(diff) + "\n" + diff + "-- \nnofail-lint " + __version__ + "\n\n"

        def render(rcpt, _title=f"[{tag}] {title}", _body=body):
            return _mail(options.identity, date, _title, rcpt, _body)
        rcpt = _recipients(maintainers, options, kroot, files, render)
        texts.append((out_dir / f"{n:04d}-{_slug(title)}.patch", render(rcpt)))
        summaries.append((title, diff, rcpt))
    if cover:
        texts.insert(0, (out_dir / "0000-cover-letter.patch",
                         _cover(plan, summaries, options, date, cwd, root)))
    written = []
    for path, text in texts:
        try:
            path.write_text(text, encoding="utf-8", errors="surrogateescape")
        except OSError as e:
            raise SeriesError(f"cannot write {path}: {e.strerror or e}") from None
        written.append(path)
    return written


_COVER = {
    "nf002-nofail": ("open-coded __GFP_NOFAIL retry loop use the flag instead",
                     "open-coded __GFP_NOFAIL retry loops use the flag instead"),
    "nf006-drop-check": ("NULL check made dead by __GFP_NOFAIL go away",
                         "NULL checks made dead by __GFP_NOFAIL go away"),
    "nf006-drop-nofail": ("allocation that handles failure drop __GFP_NOFAIL",
                          "allocations that handle failure drop __GFP_NOFAIL"),
}


def _cover(plan: Plan, summaries: list[tuple[str, str, Recipients | None]], options: SeriesOptions,
           date: str, cwd: Path, root: Path) -> str:
    """`git format-patch --cover-letter`'s shape: the blurb, the shortlog, the diffstat."""
    total = len(summaries)
    kinds = {rw.kind for rw in plan.rewrites}
    title = subject("treewide" if len({s.split(":")[0] for s, _, _ in summaries}) > 1 else
                    summaries[0][0].split(":")[0], [rw for rw in plan.rewrites if rw.kind == min(kinds)]) \
        if len(kinds) == 1 else "treewide: fix __GFP_NOFAIL use"
    what = Counter(rw.kind for rw in plan.rewrites)
    done = [f"{n} {_COVER.get(k, ('change', 'changes'))[n != 1]}" for k, n in sorted(what.items())]
    paras = [wrap(f"This series makes {_join(done)}, in {total} patch{'es' if total != 1 else ''}: "
                  "one per MAINTAINERS section and kind of change. The patches do not depend on each "
                  "other. Each was checked by running nofail-lint's analysis again on the patched "
                  "tree: the finding is gone and nothing new is reported.")]
    if plan.refusals:
        lines = [f"Not changed ({len(plan.refusals)}): findings nofail-lint reports but has no safe, "
                 "verified rewrite for:"]
        for r in plan.refusals:
            where = f"{repo_path(r.finding.location.path, cwd, root)}:{r.finding.location.line}"
            fn = f" {r.finding.function}()" if r.finding.function else ""
            lines += wrap(f"- {where}{fn}: {r.finding.rule_id} {r.reason}: {r.detail}", WRAP, "  ")
        paras.append(lines)
    blurb = "\n\n".join("\n".join(p) for p in paras)
    name = email.utils.parseaddr(options.identity)[0]
    shortlog = f"{name} ({total}):\n" + "".join(
        "".join(f"  {line}\n" for line in wrap(s, WRAP - 2, "  ")) for s, _, _ in summaries)
    stat = _stat("".join(d for _, d, _ in summaries))
    to: list[str] = []
    cc: list[str] = []
    for _, _, got in summaries:
        if got is None:
            continue
        to += [a for a in got.to if a not in to]
        cc += [a for a in got.cc if a not in cc and a not in to]
    cc = [a for a in cc if a not in to]
    rcpt = Recipients(to, cc) if to or cc else None
    body = blurb + "\n\n" + shortlog + "\n" + stat + "\n-- \nnofail-lint " + __version__ + "\n\n"
    return _mail(options.identity, date, f"[PATCH 0/{total}] {title}", rcpt, body)


def _stat(diff: str) -> str:
    """A short diffstat (informational; git am ignores it)."""
    counts: dict[str, list[int]] = {}
    current = None
    for ln in diff.splitlines():
        if ln.startswith("+++ b/"):
            current = ln[6:]
            counts.setdefault(current, [0, 0])
        elif current and ln.startswith("+") and not ln.startswith("+++"):
            counts[current][0] += 1
        elif current and ln.startswith("-") and not ln.startswith("---"):
            counts[current][1] += 1
    width = max((len(p) for p in counts), default=0)
    lines = [f" {p:<{width}} | {a + d} {'+' * a}{'-' * d}" for p, (a, d) in counts.items()]
    adds, dels = sum(c[0] for c in counts.values()), sum(c[1] for c in counts.values())
    lines.append(f" {len(counts)} file{'s' if len(counts) != 1 else ''} changed, {adds} insertion"
                 f"{'s' if adds != 1 else ''}(+), {dels} deletion{'s' if dels != 1 else ''}(-)")
    return "\n".join(lines) + "\n"
