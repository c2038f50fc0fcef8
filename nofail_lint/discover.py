"""Discover: paths -> candidate files.

Walks directories for .c/.h files without following symlinked directories
(no loops) and never opens anything but regular files. Each file comes with
its stat identity (size, mtime, inode), which lets the facts cache know an
unchanged file without reading it. The byte-level prefilter that decides which
files are worth parsing is here too; it runs where the file is read.
"""
from __future__ import annotations

import functools
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from .findings import Skipped

SOURCE_SUFFIXES = (".c", ".h")
SKIP_DIRS = frozenset({".git", ".hg", ".svn", ".pc", "node_modules", "__pycache__"})

# A file can matter only if it allocates, names a gfp mask, or waits to retry.
# Plain substring tests: `bytes.find` is several times faster than one regex
# alternation over the 1.3 GB of a kernel tree.
PREFILTER_WORDS = (b"alloc", b"GFP", b"gfp", b"NOFAIL", b"nofail", b"retry_wait",
                   b"congestion_wait", b"get_free_page", b"mempool")


def worth_parsing(src: bytes, extra: re.Pattern[bytes] | None = None) -> bool:
    """The byte prefilter: does the file name anything the rules look at?"""
    return any(w in src for w in PREFILTER_WORDS) or (extra is not None and extra.search(src) is not None)


@dataclass(frozen=True)
class SourceFile:
    path: str        # as found (absolute or relative to cwd), for opening
    display: str     # path shown in reports
    identity: tuple[int, int, int]   # (size, mtime_ns, inode) when discovered
    absolute: str                    # normalised absolute path (the cache's key)


class MissingPath(Exception):
    pass


def display_path(path: Path | str, cwd: Path) -> str:
    absolute = Path(os.path.abspath(path))
    try:
        return absolute.relative_to(cwd).as_posix()
    except ValueError:
        return absolute.as_posix()


def _identity(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def _walk(top: str, absolute: str, shown: str, files: dict[str, SourceFile], skipped: list[Skipped]):
    """Depth-first scandir walk: symlinked directories are not entered,
    symlinked files are followed to what they name (if it is a regular file).
    Paths are built by joining names (no per-file abspath: 60,000 files)."""
    try:
        with os.scandir(top) as it:
            entries = list(it)
    except OSError as e:
        skipped.append(Skipped(shown or ".", f"cannot list directory: {e.strerror or e}"))
        return
    for entry in entries:
        name = entry.name
        child_shown = f"{shown}/{name}" if shown else name
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
        except OSError:
            is_dir = False
        if is_dir:
            if name not in SKIP_DIRS:
                _walk(entry.path, f"{absolute}/{name}", child_shown, files, skipped)
            continue
        if name.endswith(SOURCE_SUFFIXES):
            _add(entry.path, child_shown, f"{absolute}/{name}", entry.stat, files, skipped)


def _add(path: str, shown: str, absolute: str, stat_of, files: dict[str, SourceFile], skipped: list[Skipped]):
    """Keep a regular file (symlinks followed); anything else is skipped, never opened."""
    try:
        st = stat_of()
    except OSError as e:
        skipped.append(Skipped(shown, f"cannot stat: {e.strerror or e}"))
        return
    if not stat.S_ISREG(st.st_mode):
        skipped.append(Skipped(shown, "not a regular file"))
        return
    files.setdefault(shown, SourceFile(path, shown, _identity(st), absolute))


def discover(paths: list[str], cwd: Path | None = None) -> tuple[list[SourceFile], list[Skipped]]:
    """Every .c/.h file under `paths`, sorted, plus inputs that had to be skipped."""
    cwd = Path(os.path.abspath(cwd or Path.cwd()))
    files: dict[str, SourceFile] = {}
    skipped: list[Skipped] = []
    for raw in paths:
        p = Path(raw)
        if not os.path.lexists(p):
            raise MissingPath(raw)
        shown = display_path(p, cwd)
        if p.is_dir():
            _walk(raw, os.path.abspath(raw).rstrip("/"), "" if shown == "." else shown, files, skipped)
        else:
            _add(raw, shown, os.path.abspath(raw), functools.partial(os.stat, raw), files, skipped)
    return sorted(files.values(), key=lambda f: f.display), skipped


_MAKE_VAR = re.compile(rb"^(VERSION|PATCHLEVEL)\s*=\s*(\d+)\s*$", re.MULTILINE)


def makefile_version(makefile: Path) -> str | None:
    """VERSION.PATCHLEVEL set by this Makefile (a kernel tree's top level), if any."""
    try:
        text = makefile.read_bytes()[:4096]
    except OSError:
        return None
    found = dict(_MAKE_VAR.findall(text))
    if b"VERSION" in found and b"PATCHLEVEL" in found:
        return f"{int(found[b'VERSION'])}.{int(found[b'PATCHLEVEL'])}"
    return None


def kernel_version_of(paths: list[str]) -> str | None:
    """VERSION.PATCHLEVEL from the top-level Makefile above the first path."""
    for raw in paths:
        p = Path(os.path.abspath(raw))
        for d in [p, *p.parents] if p.is_dir() else list(p.parents):
            version = makefile_version(d / "Makefile")
            if version is not None:
                return version
    return None
