"""Unified diffs that `git apply` accepts, with paths from the repository root."""
from __future__ import annotations

import difflib
import os
import re
import subprocess
from pathlib import Path


def repo_root(paths: list[str], cwd: Path) -> Path:
    """The git work tree holding the first path, else the current directory."""
    first = Path(paths[0]) if paths else Path(".")
    start = first if first.is_dir() else first.parent
    try:
        proc = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=cwd / start,
                              capture_output=True, text=True)
    except OSError:
        return cwd
    if proc.returncode == 0 and proc.stdout.strip():
        return Path(proc.stdout.strip())
    return cwd


def kernel_root(paths: list[str], cwd: Path) -> Path | None:
    """The kernel tree above the first path: the nearest directory holding MAINTAINERS and a Makefile."""
    first = Path(os.path.abspath(cwd / (paths[0] if paths else ".")))
    for d in [first, *first.parents] if first.is_dir() else list(first.parents):
        if (d / "MAINTAINERS").is_file() and (d / "Makefile").is_file():
            return d
    return None


def repo_path(display: str, cwd: Path, root: Path) -> str:
    """A finding's path (relative to cwd, or absolute) -> POSIX path relative to `root`."""
    absolute = Path(os.path.abspath(cwd / display))
    try:
        return absolute.relative_to(Path(os.path.abspath(root))).as_posix()
    except ValueError:
        return Path(os.path.relpath(absolute, os.path.abspath(root))).as_posix()


def unified_diff(rel: str, old: str, new: str, context: int = 3) -> str:
    """`diff --git a/rel b/rel` with `---/+++` headers and the hunks."""
    a, b = old.splitlines(keepends=True), new.splitlines(keepends=True)
    out = [f"diff --git a/{rel} b/{rel}\n"]
    body = list(difflib.unified_diff(a, b, f"a/{rel}", f"b/{rel}", n=context))
    if not body:
        return ""
    for line in body:
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)


_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


def apply_unified(old: str, diff: str) -> str | None:
    """`old` with a one-file unified diff applied (strictly: every context and
    removed line must match), or None when it does not apply. Used to check
    each emitted diff against the text it was made from."""
    lines = old.splitlines(keepends=True)
    out: list[str] = []
    pos = 0
    body = diff.splitlines(keepends=True)
    i = 0
    while i < len(body):
        m = _HUNK.match(body[i])
        i += 1
        if not m:
            continue
        start = int(m.group(1)) - (0 if m.group(2) == "0" else 1)
        if start < pos:
            return None
        out += lines[pos:start]
        pos = start
        last = ""
        while i < len(body) and not body[i].startswith(("@@", "diff --git")):
            line = body[i]
            i += 1
            if line.startswith("\\"):       # the line before has no newline at the end of its file
                if last in (" ", "+") and out and out[-1].endswith("\n"):
                    out[-1] = out[-1][:-1]
                continue
            tag, text = line[:1], line[1:]
            last = tag
            if tag in (" ", "-"):
                if pos >= len(lines) or lines[pos].rstrip("\n") != text.rstrip("\n"):
                    return None
                pos += 1
                if tag == " ":
                    out.append(lines[pos - 1])
            elif tag == "+":
                out.append(text)
    out += lines[pos:]
    return "".join(out)
