"""`nofail-lint model verify LINUX_TREE`: do the model's cited facts still hold?

For every fact whose version range covers the tree (top-level Makefile
`VERSION`/`PATCHLEVEL`), find the cited function in the cited file -- a C
function definition of that name (or `function_before_6_10` on trees older
than 6.10), else a `#define` of it -- take its body by brace matching, and
check that every `verify` string occurs in it. Comparison is whitespace-
normalised, and the ` * ` leaders of block comments count as whitespace, so a
quoted comment sentence may span lines. A fact whose `function` is not a C
identifier (e.g. "__GFP_NOFAIL (kernel-doc)") is checked against the whole
file. Plain Python, no tree-sitter: it reads a handful of files.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from . import Fact, Model

_MAKEFILE_VAR = re.compile(r"^(VERSION|PATCHLEVEL)\s*[:?]?=\s*(\d+)\s*$", re.M)
_COMMENT_LEADER = re.compile(r"\n[ \t]*\*(?!/)")
_WS = re.compile(r"\s+")


class VerifyUsageError(Exception):
    """The tree argument cannot be used (not a directory, no Makefile version)."""


@dataclass(frozen=True)
class FactResult:
    fact_id: str
    status: str          # "ok" | "stale" | "skipped"
    reason: str = ""
    where: str = ""      # file and function actually checked

    def line(self) -> str:
        if self.status == "ok":
            return f"{self.fact_id}: ok ({self.where})"
        if self.status == "skipped":
            return f"{self.fact_id}: skipped: {self.reason}"
        return f"{self.fact_id}: STALE: {self.reason}"


# ---------------------------------------------------------------- versions

def tree_version(tree: Path) -> str:
    """`X.Y` from the tree's top-level Makefile; VerifyUsageError if absent."""
    if not tree.is_dir():
        raise VerifyUsageError(f"not a directory: {tree}")
    makefile = tree / "Makefile"
    try:
        text = makefile.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise VerifyUsageError(f"cannot read {makefile}: {e.strerror or e}") from None
    found = {}
    for m in _MAKEFILE_VAR.finditer(text[:4096]):
        found.setdefault(m.group(1), m.group(2))
    if "VERSION" not in found or "PATCHLEVEL" not in found:
        raise VerifyUsageError(f"{makefile}: no VERSION/PATCHLEVEL lines (not a Linux tree?)")
    return f"{found['VERSION']}.{found['PATCHLEVEL']}"


# ---------------------------------------------------------------- C text

def blank_comments_and_strings(src: str) -> str:
    """Same-length copy of `src` with comments, string and char literals blanked
    (newlines kept), so braces and parentheses can be matched safely."""
    out = list(src)
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if c == "/" and i + 1 < n and src[i + 1] == "*":
            end = src.find("*/", i + 2)
            end = n if end < 0 else end + 2
            for k in range(i, end):
                if out[k] != "\n":
                    out[k] = " "
            i = end
        elif c == "/" and i + 1 < n and src[i + 1] == "/":
            end = src.find("\n", i)
            end = n if end < 0 else end
            for k in range(i, end):
                out[k] = " "
            i = end
        elif c in "\"'":
            k = i + 1
            while k < n and src[k] != c and src[k] != "\n":
                k += 2 if src[k] == "\\" else 1
            end = min(k + 1, n)
            for k in range(i + 1, end - 1):
                if out[k] != "\n":
                    out[k] = " "
            i = end
        else:
            i += 1
    return "".join(out)


def _match(code: str, i: int, open_c: str, close_c: str) -> int:
    """Index just past the bracket closing the one at code[i]; -1 if unbalanced."""
    depth = 0
    for k in range(i, len(code)):
        ch = code[k]
        if ch == open_c:
            depth += 1
        elif ch == close_c:
            depth -= 1
            if depth == 0:
                return k + 1
    return -1


_ANNOTATION = re.compile(r"__\w*\s*(?:\((?:[^()]|\([^()]*\))*\))?")   # __releases(x), __acquires(x)
_PAREN_GROUP = re.compile(r"\([^()]*\)")
_NOT_A_DECLARATOR = re.compile(r"[=(),;{}?:!&|+\-/%<>#\[\]]|\b(?:return|if|while|for|switch|case|else|do|sizeof)\b")


def _starts_declarator(code: str, pos: int) -> bool:
    """Is the identifier at `pos` the declarator of a definition? Only a type,
    `*`, storage classes and attributes (`__alloc_size(1, 2)`) may precede it on
    its line; an expression, a statement keyword or a `#define` may not."""
    line_start = code.rfind("\n", 0, pos) + 1
    before = code[line_start:pos].replace("->", " . ")
    if "." in before:
        return False
    while True:
        stripped = _PAREN_GROUP.sub(" ", before)
        if stripped == before:
            break
        before = stripped
    return not _NOT_A_DECLARATOR.search(before)


def function_body(src: str, name: str, code: str | None = None) -> str | None:
    """Text of the body `{...}` of the C function definition `name` in `src`.

    A definition is `name (` at the start of a declarator (see
    `_starts_declarator`), its parameter list balanced, then only kernel
    annotations (`__releases(x)`), then `{`. Comments and strings are blanked
    for the matching, and the body is returned from the original text.
    """
    code = blank_comments_and_strings(src) if code is None else code
    for m in re.finditer(rf"(?<![\w.]){re.escape(name)}\s*\(", code):
        if not _starts_declarator(code, m.start()):
            continue
        after_params = _match(code, m.end() - 1, "(", ")")
        if after_params < 0:
            continue
        k = after_params
        while True:
            while k < len(code) and code[k] in " \t\r\n":
                k += 1
            if k < len(code) and code[k] == "{":
                end = _match(code, k, "{", "}")
                return None if end < 0 else src[k:end]
            am = _ANNOTATION.match(code, k)
            if not am:
                break
            k = am.end()
    return None


def macro_body(src: str, name: str) -> str | None:
    """Text of `#define name...` through its backslash-continued lines."""
    m = re.search(rf"^[ \t]*#[ \t]*define[ \t]+{re.escape(name)}\b", src, re.M)
    if not m:
        return None
    end = m.start()
    while True:
        nl = src.find("\n", end)
        if nl < 0:
            return src[m.start():]
        if src[nl - 1:nl] == "\\" or src[nl - 2:nl] == "\\\r":
            end = nl + 1
            continue
        return src[m.start():nl]


def normalise(text: str) -> str:
    """Collapse whitespace; block-comment ` * ` leaders and backslash-newlines
    count as whitespace."""
    text = _COMMENT_LEADER.sub(" ", text.replace("\\\n", " "))
    return _WS.sub(" ", text).strip()


# ---------------------------------------------------------------- facts

def check_fact(fact: Fact, tree: Path, version: str) -> FactResult:
    """Does `fact` hold in the tree at `tree` (kernel `version`)?"""
    if not fact.applies_to(version):
        return FactResult(fact.id, "skipped", f"not in version range ({fact.versions}; tree is {version})")
    view = fact.for_version(version)
    rel, func = view.file, view.function
    try:
        src = (tree / rel).read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        return FactResult(fact.id, "stale", f"{rel}: cannot read ({e.strerror or e})")
    if func.isidentifier():
        body, what = function_body(src, func), f"{rel}, {func}()"
        if body is None:
            body, what = macro_body(src, func), f"{rel}, #define {func}"
        if body is None:
            return FactResult(fact.id, "stale", f"{rel}: no definition of {func}")
    else:
        body, what = src, rel
    hay = normalise(body)
    missing = [s for s in view.verify if normalise(s) not in hay]
    present = [s for s in view.verify_absent if normalise(s) in hay]
    problems = []
    if missing:
        problems.append("missing " + "; ".join(repr(s) for s in missing))
    if present:
        problems.append("should be absent but found " + "; ".join(repr(s) for s in present))
    if problems:
        return FactResult(fact.id, "stale", f"{what}: {', '.join(problems)}", what)
    if not view.verify and not view.verify_absent:
        what += "; no verify strings, existence only"
    return FactResult(fact.id, "ok", "", what)


def verify_tree(model: Model, tree: Path) -> tuple[str, list[FactResult]]:
    """(tree version, one result per model fact in id order)."""
    version = tree_version(tree)
    results = [check_fact(f, tree, version) for f in sorted(model.facts.values(), key=lambda f: f.id)]
    return version, results
