"""`--diff REV`: which lines were added or changed since REV.

`git diff --unified=0 REV -- PATHS` compares REV with the working tree; each
hunk header `@@ -a,b +c,d @@` names the new lines c .. c+d-1. Files git does
not track yet (and does not ignore) are new as a whole. Renames are followed,
so moving a file does not make all its lines new.
"""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from .findings import Finding

HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@")
WHOLE_FILE = None   # marker in ChangedLines: every line of the file is new


class DiffError(Exception):
    pass


def _git(args: list[str], cwd: Path) -> str:
    try:
        proc = subprocess.run(["git", "-c", "core.quotePath=false", *args], cwd=cwd,
                              capture_output=True, text=True, errors="surrogateescape")
    except OSError as e:
        raise DiffError(f"cannot run git: {e.strerror or e}") from None
    if proc.returncode != 0:
        msg = proc.stderr.strip().splitlines()
        raise DiffError(f"git {args[0]} failed: {msg[-1] if msg else 'exit ' + str(proc.returncode)}")
    return proc.stdout


def _unquote(path: str) -> str:
    """git's C-style quoting of unusual file names."""
    if not (path.startswith('"') and path.endswith('"')):
        return path
    raw = path[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape")
    return raw.encode("latin-1", "surrogateescape").decode("utf-8", "surrogateescape")


def changed_lines(rev: str, paths: list[str], cwd: Path) -> dict[str, set[int] | None]:
    """Real path -> new line numbers (WHOLE_FILE for untracked files)."""
    cwd = Path(os.path.abspath(cwd))
    first = Path(os.path.abspath(cwd / (paths[0] if paths else ".")))
    where = first if first.is_dir() else first.parent
    top = Path(_git(["rev-parse", "--show-toplevel"], where).strip())
    if rev.startswith("-"):
        raise DiffError(f"--diff wants a revision, got {rev!r}")
    try:
        _git(["rev-parse", "--verify", f"{rev}^{{commit}}"], top)
    except DiffError:
        raise DiffError(f"--diff: {rev!r} is not a commit in {top}") from None
    specs = [os.path.realpath(cwd / p) for p in (paths or ["."])]
    diff = _git(["diff", "--unified=0", "--no-color", "--no-ext-diff", "--no-textconv", "-M",
                 "--src-prefix=a/", "--dst-prefix=b/", rev, "--", *specs], top)
    out = _hunks(diff, top)
    untracked = _git(["ls-files", "--others", "--exclude-standard", "--full-name", "-z", "--", *specs], top)
    for name in untracked.split("\0"):
        if name:
            out[str(top / name)] = WHOLE_FILE
    return out


EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"    # git's empty tree: "before the first commit"


def staged_lines(paths: list[str], cwd: Path) -> dict[str, set[int] | None]:
    """`--diff-staged`: real path -> line numbers added or changed in the index
    (`git diff --cached` against HEAD, or against nothing before the first
    commit). During a pre-commit hook the working tree holds exactly the
    staged content (unstaged changes are stashed), so the lines match."""
    cwd = Path(os.path.abspath(cwd))
    first = Path(os.path.abspath(cwd / (paths[0] if paths and paths[0] != "-" else ".")))
    where = first if first.is_dir() else first.parent
    top = Path(_git(["rev-parse", "--show-toplevel"], where).strip())
    try:
        _git(["rev-parse", "--verify", "HEAD^{commit}"], top)
        base = "HEAD"
    except DiffError:
        base = EMPTY_TREE
    specs = [os.path.realpath(cwd / p) for p in (paths or ["."]) if p != "-"]
    diff = _git(["diff", "--cached", "--unified=0", "--no-color", "--no-ext-diff", "--no-textconv", "-M",
                 "--src-prefix=a/", "--dst-prefix=b/", base, "--", *specs], top)
    return _hunks(diff, top)


def _hunks(diff: str, top: Path) -> dict[str, set[int] | None]:
    """Real path -> new line numbers of a `git diff --unified=0`."""
    out: dict[str, set[int] | None] = {}
    current: set[int] | None = None
    for line in diff.splitlines():
        if line.startswith("+++ "):
            name = _unquote(line[4:].rstrip("\t"))
            if name == "/dev/null":
                current = None
                continue
            current = out.setdefault(str(top / name[2:]), set())
        elif line.startswith("@@") and current is not None:
            m = HUNK.match(line)
            if m:
                start, count = int(m.group(1)), int(m.group(2) or 1)
                current.update(range(start, start + count))
    return out


def split_changed(findings: list[Finding], changed: dict[str, set[int] | None],
                  cwd: Path) -> tuple[list[Finding], list[Finding]]:
    """(changed, unchanged): findings whose primary line is new since REV, and the rest."""
    cwd = Path(os.path.abspath(cwd))
    keep, drop = [], []
    for f in findings:
        key = os.path.realpath(cwd / f.location.path)
        lines = changed.get(key, set())
        if lines is WHOLE_FILE or f.location.line in lines:
            keep.append(f)
        else:
            drop.append(f)
    return keep, drop


def touched(path: str, changed: dict[str, set[int] | None], cwd: Path) -> bool:
    """Whether the diff changed anything in `path` (a reported path)."""
    return os.path.realpath(Path(os.path.abspath(cwd)) / path) in changed
