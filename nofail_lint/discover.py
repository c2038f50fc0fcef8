"""Discover: paths -> candidate files.

Walks directories for .c/.h files without following symlinked directories
(no loops), never opens anything but regular files, and applies the cheap
byte-level prefilter that decides which files are worth parsing.
"""
from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from .findings import Skipped

SOURCE_SUFFIXES = (".c", ".h")
SKIP_DIRS = frozenset({".git", ".hg", ".svn", ".pc", "node_modules", "__pycache__"})

# A file can matter only if it allocates, names a gfp mask, or waits to retry.
PREFILTER = re.compile(rb"alloc|GFP|gfp|NOFAIL|nofail|retry_wait|congestion_wait|get_free_page|mempool")


@dataclass(frozen=True)
class SourceFile:
    path: Path       # as found (absolute or relative to cwd)
    display: str     # path shown in reports


class MissingPath(Exception):
    pass


def display_path(path: Path, cwd: Path) -> str:
    absolute = Path(os.path.abspath(path))
    try:
        return absolute.relative_to(cwd).as_posix()
    except ValueError:
        return absolute.as_posix()


def discover(paths: list[str], cwd: Path | None = None) -> tuple[list[SourceFile], list[Skipped]]:
    """Every .c/.h file under `paths`, sorted, plus inputs that had to be skipped."""
    cwd = Path(os.path.abspath(cwd or Path.cwd()))
    files: dict[str, SourceFile] = {}
    skipped: list[Skipped] = []

    def add(p: Path):
        d = display_path(p, cwd)
        try:
            st = os.stat(p)
        except OSError as e:
            skipped.append(Skipped(d, f"cannot stat: {e.strerror or e}"))
            return
        if not stat.S_ISREG(st.st_mode):
            skipped.append(Skipped(d, "not a regular file"))
            return
        files.setdefault(d, SourceFile(p, d))

    for raw in paths:
        p = Path(raw)
        if not os.path.lexists(p):
            raise MissingPath(raw)
        if p.is_dir():
            for dirpath, dirnames, filenames in os.walk(p, followlinks=False):
                dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
                for name in sorted(filenames):
                    if name.endswith(SOURCE_SUFFIXES):
                        add(Path(dirpath) / name)
        else:
            add(p)
    return sorted(files.values(), key=lambda f: f.display), skipped


_MAKE_VAR = re.compile(rb"^(VERSION|PATCHLEVEL)\s*=\s*(\d+)\s*$", re.MULTILINE)


def kernel_version_of(paths: list[str]) -> str | None:
    """VERSION.PATCHLEVEL from the top-level Makefile above the first path."""
    for raw in paths:
        p = Path(os.path.abspath(raw))
        for d in [p, *p.parents] if p.is_dir() else list(p.parents):
            mk = d / "Makefile"
            try:
                text = mk.read_bytes()[:4096]
            except OSError:
                continue
            found = dict(_MAKE_VAR.findall(text))
            if b"VERSION" in found and b"PATCHLEVEL" in found:
                return f"{int(found[b'VERSION'])}.{int(found[b'PATCHLEVEL'])}"
    return None
