"""Who a patch goes to: MAINTAINERS read the way scripts/get_maintainer.pl
reads it with `--nogit --nogit-fallback` (its defaults otherwise), without
running it.

What the script does, and this module with it:

- sections: a line that is not `X: value` starts one; its fields follow;
- F:/X: patterns: `.` is literal, `*` is `.*`, `?` is `.`, the rest is a
  regular expression anchored at the start of the path; a pattern naming a
  directory of the tree gets a trailing `/`; without one, the path must
  have as many `/` as the pattern; X: excludes the whole section;
- N: a regular expression anywhere in the path; K: a regular expression
  over the patch's text before the diff (headers, message) and its
  added/removed lines;
- every matching section counts, the most specific first (more `/` in the
  matching pattern; N: and K: least);
- M: and R: people, duplicates (same name or same address) dropped; the
  chief penguin (Linus Torvalds, THE REST's M:) is never listed, THE REST's
  list is; L: lists unless subscribers-only; the tree's .mailmap applied.

`run_script` runs the tree's (or a given) get_maintainer.pl instead; that
executes code from the analysed tree, so the CLI does it only on request.
"""
from __future__ import annotations

import email.utils
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

_FIELD = re.compile(r"^([A-Z]):\s*(.*)")
CHIEF_PENGUINS = ("torvalds@linux-foundation.org",)     # get_maintainer.pl's @penguin_chief
MAINTAINER_ROLES = ("maintainer", "supporter", "odd fixer", "orphan minder", "obsolete minder")


class MaintainersError(Exception):
    pass


@dataclass
class Section:
    """One MAINTAINERS section: its title and fields in file order."""

    title: str
    order: int
    fields: list[tuple[str, str]] = field(default_factory=list)

    def values(self, kind: str) -> list[str]:
        return [v for k, v in self.fields if k == kind]


@dataclass
class Recipients:
    to: list[str] = field(default_factory=list)      # the primary section's maintainers
    cc: list[str] = field(default_factory=list)      # everyone else: other maintainers, reviewers, lists
    primary: str = ""                                 # the most specific section's title ("" if none)

    def everyone(self) -> list[str]:
        return self.to + self.cc


def _perl_pattern(value: str, root: Path) -> str:
    """read_maintainer_file(): the F:/X: value as the regex the script matches."""
    rx = value.replace(".", r"\.").replace("*", ".*").replace("?", ".")
    if (root / rx).is_dir() and not rx.endswith("/"):
        rx += "/"
    return rx


def _file_match(path: str, rx: str) -> bool:
    """file_match_pattern()."""
    try:
        if not re.match(rx, path):
            return False
    except re.error:
        return False
    return rx.endswith("/") or path.count("/") == rx.count("/")


def _depth(rx: str) -> int:
    """The script's $value_pd: how specific a matching F: pattern is."""
    if rx.startswith(".*"):
        return -1
    return rx.count("/") + (0 if rx.endswith("/") else 1)


def _search(rx: str, text: str) -> bool:
    """A Perl `m/$rx/x` match (N:, K:); a pattern Python cannot read matches nothing."""
    try:
        return re.search(rx, text, re.VERBOSE) is not None
    except re.error:
        return False


class Maintainers:
    def __init__(self, root: Path, text: str, mailmap: str = ""):
        self.root = root
        self.sections: list[Section] = []
        current: Section | None = None
        for line in text.splitlines():
            m = _FIELD.match(line)
            if m:
                if current is None:
                    current = Section("", len(self.sections))
                    self.sections.append(current)
                kind, value = m.group(1), m.group(2)
                if kind in "FX":
                    value = _perl_pattern(value, root)
                current.fields.append((kind, value))
            elif line.strip() and not line.lstrip().startswith("#"):
                current = Section(line.strip(), len(self.sections))
                self.sections.append(current)
        self.sections = [s for s in self.sections if s.fields]
        self.names, self.addresses = _read_mailmap(mailmap)

    @classmethod
    def of_tree(cls, root: Path) -> Maintainers | None:
        path = root / "MAINTAINERS"
        if not path.is_file():
            return None
        mailmap = root / ".mailmap"
        try:
            return cls(root, path.read_text(encoding="utf-8", errors="replace"),
                       mailmap.read_text(encoding="utf-8", errors="replace") if mailmap.is_file() else "")
        except OSError as e:
            raise MaintainersError(f"cannot read {path}: {e.strerror or e}") from None

    def matching(self, files: list[str], patch_text: str = "", whole_text: str = "") -> list[Section]:
        """The sections that take a patch touching `files`, most specific first
        (ties in file order; the script leaves their order to Perl's hash order)."""
        scored: dict[int, int] = {}
        for path in files:
            for s in self.sections:
                if any(_file_match(path, x) for x in s.values("X")):
                    continue
                for kind, value in s.fields:
                    if kind == "F" and _file_match(path, value):
                        scored[s.order] = max(scored.get(s.order, -2), _depth(value))
                    elif kind == "N" and _search(value, path):
                        scored[s.order] = max(scored.get(s.order, -2), 0)
        chosen = sorted(scored, key=lambda i: (-scored[i], i))
        keyed = [s for s in self.sections if s.order not in scored and (
            self._keyword(s, patch_text) or any(_search(k, whole_text) for k in s.values("K") if whole_text))]
        by_order = {s.order: s for s in self.sections}
        return [by_order[i] for i in chosen] + keyed

    @staticmethod
    def _keyword(section: Section, patch_text: str) -> bool:
        if not patch_text:
            return False
        keys = section.values("K")
        if not keys:
            return False
        intro, _, diff = _split_patch(patch_text)
        changed = "\n".join(ln for ln in diff.splitlines() if ln[:1] in "+-")
        return any(_search(k, intro) or _search(k, changed) for k in keys)

    def file_keywords(self) -> bool:
        """Does the tree's get_maintainer.pl match K: against a file's whole
        text with `-f FILE`? Before `--keywords-in-file` existed (6.1) it did;
        since then it does not by default. Read from the script, never run."""
        script = self.root / "scripts" / "get_maintainer.pl"
        try:
            text = script.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return False
        return "keywords-in-file" not in text and "keyword_hash" in text

    def recipients_for_file(self, rel: str) -> Recipients:
        """What `get_maintainer.pl --nogit --nogit-fallback -f rel` lists."""
        if not self.file_keywords():
            return self.recipients([rel])
        try:
            text = (self.root / rel).read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""
        return self.recipients([rel], whole_text=text)

    def recipients(self, files: list[str], patch_text: str = "", whole_text: str = "") -> Recipients:
        sections = self.matching(files, patch_text, whole_text)
        out = Recipients(primary=next((s.title for s in sections if s.title != "THE REST"), ""))
        seen_names: set[str] = set()
        seen_addrs: set[str] = set()
        people: list[tuple[str, str, bool]] = []     # name, address, is a maintainer of the primary section
        lists: list[str] = []
        for s in sections:
            status = " ".join(s.values("S")).lower()
            for kind, value in s.fields:
                if kind in "MR":
                    name, addr = _parse(value)
                    if not addr or (name and name.lower() in seen_names) or addr.lower() in seen_addrs:
                        continue
                    if name:
                        seen_names.add(name.lower())
                    seen_addrs.add(addr.lower())
                    people.append((name, addr, kind == "M" and s.title == out.primary
                                   and "buried alive" not in status))
                elif kind == "L":
                    parts = value.split(None, 1)
                    if not parts or "subscribers-only" in (parts[1] if len(parts) > 1 else ""):
                        continue
                    if parts[0].lower() not in {x.lower() for x in lists}:
                        lists.append(parts[0])
        dedup_names: dict[str, tuple[str, str]] = {}
        dedup_addrs: dict[str, tuple[str, str]] = {}
        for name, addr, to in people:
            if addr.lower() in CHIEF_PENGUINS:
                continue
            name, addr = self._mailmap(name, addr)
            known = dedup_names.get(name.lower()) if name else None
            known = known or dedup_addrs.get(addr.lower())
            if known is not None:
                continue
            dedup_names[name.lower()] = dedup_addrs[addr.lower()] = (name, addr)
            text = email.utils.formataddr((name, addr), charset="utf-8") if name else addr
            (out.to if to else out.cc).append(text)
        out.cc += [ls for ls in lists if ls.lower() not in dedup_addrs]
        if not out.to and out.cc:          # nobody maintains it by name: the first address takes To
            out.to.append(out.cc.pop(0))
        return out

    def _mailmap(self, name: str, addr: str) -> tuple[str, str]:
        whole = f"{name} <{addr}>" if name else addr
        if whole in self.names or whole in self.addresses:
            return self.names.get(whole, name), self.addresses.get(whole, addr)
        return self.names.get(addr, name), self.addresses.get(addr, addr)


def _parse(value: str) -> tuple[str, str]:
    """parse_email(): `Name <addr>` or a bare address; quotes stripped."""
    m = re.match(r"^([^<]+)<(.+@.*)>.*$", value)
    if m:
        return m.group(1).strip().strip('"'), m.group(2).strip()
    m = re.match(r"^\s*<(.+@\S*)>.*$", value) or re.match(r"^(.+@\S*).*$", value)
    return ("", m.group(1).strip()) if m else ("", "")


def _read_mailmap(text: str) -> tuple[dict[str, str], dict[str, str]]:
    """read_mailmap(): names and addresses by wrong address (or wrong `Name <address>`)."""
    names: dict[str, str] = {}
    addresses: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if m := re.match(r"^([^<]+)<([^>]+)>$", line):
            names[m.group(2).strip()] = m.group(1).strip().strip('"')
        elif m := re.match(r"^<([^>]+)>\s*<([^>]+)>$", line):
            addresses[m.group(2)] = m.group(1)
        elif m := re.match(r"^(.+)<([^>]+)>\s*<([^>]+)>$", line):
            names[m.group(3)] = m.group(1).strip().strip('"')
            addresses[m.group(3)] = m.group(2).strip()
        elif m := re.match(r"^(.+)<([^>]+)>\s*(.+)\s*<([^>]+)>$", line):
            wrong = f"{m.group(3).strip().strip(chr(34))} <{m.group(4).strip()}>"
            names[wrong] = m.group(1).strip().strip('"')
            addresses[wrong] = m.group(2).strip()
    return names, addresses


def _split_patch(text: str) -> tuple[str, str, str]:
    """(the part before the first ---/+++ file line, that line, the rest), as the script reads a patch."""
    m = re.search(r"(?m)^(?:\+\+\+|---)\s+\S+.*$", text)
    if not m:
        return text, "", ""
    return text[:m.start()], m.group(0), text[m.end():]


def run_script(script: Path, root: Path, patch: Path) -> Recipients:
    """Run get_maintainer.pl (--nogit --nogit-fallback) on `patch` from `root`:
    maintainers and supporters go to To, reviewers and lists to Cc."""
    try:
        proc = subprocess.run(["perl", str(script), "--nogit", "--nogit-fallback", "--rolestats", str(patch)],
                              cwd=root, capture_output=True, text=True, errors="replace", timeout=300)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise MaintainersError(f"cannot run {script}: {e}") from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["exit status " + str(proc.returncode)])[-1]
        raise MaintainersError(f"{script} failed: {last}")
    out = Recipients()
    for line in proc.stdout.splitlines():
        m = re.match(r"^(.*?)\s*\(([^()]*)\)\s*$", line.strip())
        who, role = (m.group(1), m.group(2)) if m else (line.strip(), "")
        if not who or "@" not in who:
            continue
        name, addr = _parse(who)
        text = email.utils.formataddr((name, addr), charset="utf-8") if name else addr
        if role.split(":", 1)[0] in MAINTAINER_ROLES:
            out.to.append(text)
            out.primary = out.primary or role.split(":", 1)[-1]
        else:
            out.cc.append(text)
    if not out.to and out.cc:
        out.to.append(out.cc.pop(0))
    return out


def addresses(headers: list[str]) -> set[str]:
    """The lower-cased addresses in To/Cc header values (for comparisons)."""
    return {addr.lower() for _, addr in email.utils.getaddresses(headers) if addr}
