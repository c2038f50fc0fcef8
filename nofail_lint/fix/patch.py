"""Unified diffs that `git apply` accepts, with paths from the repository root."""
from __future__ import annotations

import difflib
import os
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
