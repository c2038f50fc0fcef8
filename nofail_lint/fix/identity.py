"""Who a patch is from: the identity `git format-patch -s` uses.

`git var GIT_AUTHOR_IDENT` run in the tree (its repository's config, else
git's global and system config, and GIT_AUTHOR_NAME/GIT_AUTHOR_EMAIL/EMAIL
from the environment), or `--from "Name <address>"`. git can make up an
address from the user and host names when none is configured; a patch
must not carry one, so an identity counts only when its address is
configured (user.email, GIT_AUTHOR_EMAIL or EMAIL).
"""
from __future__ import annotations

import email.utils
import os
import re
import subprocess
from pathlib import Path

HOW_TO_SET = ('set it with `git config --global user.name "Your Name"` and '
              '`git config --global user.email you@example.org`, or pass --from "Your Name <you@example.org>"')


class IdentityError(Exception):
    pass


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, errors="replace",
                              stdin=subprocess.DEVNULL)
    except OSError:
        return None


def parse(value: str) -> tuple[str, str]:
    """`Name <address>` -> (name, address); IdentityError unless both are there."""
    name, addr = email.utils.parseaddr(value)
    if not name or not re.fullmatch(r"[^@\s<>]+@[^@\s<>]+", addr or ""):
        raise IdentityError(f"--from wants \"Name <address>\", got {value!r}")
    return name, addr


def git_identity(cwd: Path) -> tuple[str, str]:
    """The author identity git would use in `cwd` (a repository or not)."""
    configured = any(os.environ.get(v) for v in ("GIT_AUTHOR_EMAIL", "EMAIL"))
    if not configured:
        proc = _git(cwd, "config", "user.email")
        configured = proc is not None and proc.returncode == 0 and bool(proc.stdout.strip())
    proc = _git(cwd, "var", "GIT_AUTHOR_IDENT")
    if proc is None:
        raise IdentityError("git is not installed, so there is no git identity for the patches' "
                            "From and Signed-off-by; pass --from \"Your Name <you@example.org>\"")
    m = re.match(r"^(.*?)\s*<([^<>]*)>\s+\d+\s+[-+]\d{4}\s*$", proc.stdout.strip())
    if proc.returncode != 0 or not m or not configured or not m.group(1) or "@" not in m.group(2):
        raise IdentityError("no git identity for the patches' From and Signed-off-by: " + HOW_TO_SET)
    return m.group(1), m.group(2)


def resolve(from_option: str | None, cwd: Path) -> str:
    """The From/Signed-off-by identity, formatted as `Name <address>` (raw, not RFC 2047 encoded)."""
    name, addr = parse(from_option) if from_option else git_identity(cwd)
    return f"{name} <{addr}>"


def header(identity: str) -> str:
    """The identity as a From: header value (a non-ASCII name RFC 2047-encoded, as git does)."""
    name, addr = email.utils.parseaddr(identity)
    return email.utils.formataddr((name, addr), charset="utf-8")
