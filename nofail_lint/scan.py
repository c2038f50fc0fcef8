"""Scan: one cheap pass over every file of a tree -> what each file may define.

A partial run (`check fs/xfs`, the pre-commit hook on staged files) reports
only on its paths, but a call there may reach a wrapper or a macro defined
anywhere in the tree. Parsing the whole tree to find those definitions costs
minutes; this pass costs seconds. It runs where the file is read (worker
processes) and its rows are cached by content, like the facts.

A row is a *superset* of what extraction would find defined in the file, so
that the demand stage (demand.py) never misses a definition:
- every function-like `#define NAME(` (a possible wrapper, extract.call_macros,
  or a mask computation, extract.mask_macros);
- every object-like `#define NAME` whose body could be kept by
  extract.object_like_macros (a continued body is always kept);
- on every line that starts at column 0 with an identifier (kernel style puts
  a function's name, or the line holding it, there), each identifier directly
  followed by `(`, and the first identifier inside the first `(` (macro-headed
  definitions such as `SYSCALL_DEFINE3(open, ...)`, also as `sys_open`).
One-line prototypes (`...);`) and `extern` lines are left out: they declare,
they never define.

For seeds (engine/seeds.py) a row also lists the identifiers containing
`GFP` and the `#define`s whose body contains `GFP`, with the body's names.

Struct fields are not listed here: a regex for `->f =` over the whole tree
costs more than the rest of the scan together. `stored_fields` indexes one
file's field stores when a reached function reads a field of a struct type
the file names (once per run).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import NamedTuple

from .discover import makefile_version, worth_parsing
from .relevance import GFP_T, RELEVANT_ARG_BYTES


class ScanRow(NamedTuple):
    """What one file may define, if it is worth parsing at all."""

    parsed: bool                     # passes the prefilter (extraction would look at it)
    functions: frozenset[str]        # names it may define as functions
    macros: frozenset[str]           # object-like macros it may define that a mask or bound can use
    fn_macros: frozenset[str] = frozenset()    # function-like macros it defines
    fields: frozenset[str] = frozenset()       # (exact definitions only; see stored_fields)
    structs: frozenset[str] = frozenset()      # struct tags it names: only these can have fields assigned here
    # for the seeds of a flag (engine/seeds.py): identifiers containing GFP,
    # and the #defines whose body contains GFP, as (name, body identifiers)
    gfp_words: frozenset[str] = frozenset()
    gfp_defines: tuple[tuple[str, frozenset[str]], ...] = ()


NOTHING = ScanRow(False, frozenset(), frozenset())
_STRUCT_TAG = re.compile(rb"struct[ \t\n]+([A-Za-z_]\w*)")

_DEFINE = re.compile(rb"\n[ \t]*#[ \t]*define[ \t]+([A-Za-z_]\w*)(\(?)([^\n]*)")
# the bodies extract.object_like_macros keeps: masks, ranges, aliases, sizes and orders
_USEFUL_BODY = re.compile(rb"GFP|NOFAIL|VMALLOC|nofail|/[*/]|^\s*\(?\s*[A-Za-z_]\w*\s*\)?\s*$|\\\s*$")
# integer constants and constant arithmetic, whatever their name (a superset of extract's)
_CONSTANT_BODY = re.compile(rb"^[\s()\w+\-*/<>|&~]*$")
_COLUMN0_CALL_LINE = re.compile(rb"\n([A-Za-z_][^\n(]*\([^\n]*)")
_CALLED_NAME = re.compile(rb"([A-Za-z_]\w*)[ \t]*\(")
_FIRST_ARGUMENT = re.compile(rb"\([ \t]*([A-Za-z_]\w*)")
_PROTOTYPE_END = re.compile(rb"\)[ \t]*;[ \t]*(?:/\*.*\*/[ \t]*)?$")
_SYSCALL_LIKE = re.compile(rb"^(?:COMPAT_)?SYSCALL_DEFINE\d$")


def scan_source(src: bytes, extra: re.Pattern[bytes] | None = None) -> ScanRow:
    """One file's bytes -> its ScanRow. Never raises on odd bytes."""
    if b"\0" in src[:8192]:
        return NOTHING
    if not worth_parsing(src, extra):
        # extraction keeps only its integer constants (extract.unparsed_constants)
        from .extract import unparsed_constants
        names = frozenset(name for name, _ in unparsed_constants(src))
        return ScanRow(False, frozenset(), names) if names else NOTHING
    text = b"\n" + src
    functions: set[bytes] = set()
    macros: set[bytes] = set()
    fn_macros: set[bytes] = set()
    for name, paren, body in _DEFINE.findall(text):
        if paren:
            fn_macros.add(name)
        elif _USEFUL_BODY.search(body) or _CONSTANT_BODY.match(body):
            macros.add(name)
    for m in _COLUMN0_CALL_LINE.finditer(text):
        line = m.group(1)
        if line.startswith(b"extern") or _PROTOTYPE_END.search(line):
            continue
        functions.update(_CALLED_NAME.findall(line))
        first = _FIRST_ARGUMENT.search(line)
        if first is not None:
            functions.add(first.group(1))
            head = _CALLED_NAME.match(line)
            if head is not None and _SYSCALL_LIKE.match(head.group(1)):
                functions.add(b"sys_" + first.group(1))
    words, defines = gfp_names(src)
    return ScanRow(True, _names(functions), _names(macros), _names(fn_macros),
                   structs=_names(set(_STRUCT_TAG.findall(src))), gfp_words=words, gfp_defines=defines)


_GFP_TAIL = re.compile(rb"GFP\w*")
DEFINE_WITH_BODY = re.compile(rb"^[ \t]*#[ \t]*define[ \t]+([A-Za-z_]\w*)(?:\([^)\n]*\))?((?:[^\n\\]|\\.|\\\n)*)",
                          re.MULTILINE)
IDENTIFIER_BYTES = re.compile(rb"[A-Za-z_]\w*")
_WORD_HEAD = re.compile(rb"\w*\Z")


def gfp_names(src: bytes) -> tuple[frozenset[str], tuple[tuple[str, frozenset[str]], ...]]:
    """(identifiers containing `GFP`, #defines whose body contains `GFP`
    with their body's identifiers, continuation lines included). Visits only
    the occurrences of `GFP`, not the whole text."""
    i = src.find(b"GFP")
    if i == -1:
        return frozenset(), ()
    words: set[bytes] = set()
    define_starts: set[int] = set()
    while i != -1:
        head = _WORD_HEAD.search(src, max(0, i - 64), i)
        m = _GFP_TAIL.match(src, i)
        end = m.end() if m is not None else i + 3
        words.add(src[head.start() if head is not None else i:end])
        line = src.rfind(b"\n", 0, i) + 1
        while line > 1 and src[line - 2:line - 1] == b"\\":      # a continued line: where it began
            line = src.rfind(b"\n", 0, line - 1) + 1
        if b"define" in src[line:line + 32]:
            define_starts.add(line)
        i = src.find(b"GFP", end)
    defines = []
    for start in sorted(define_starts):
        d = DEFINE_WITH_BODY.match(src, start)
        if d is not None and b"GFP" in d.group(2):
            defines.append((d.group(1).decode("ascii"),
                            frozenset(w.decode("ascii") for w in IDENTIFIER_BYTES.findall(d.group(2)))))
    return frozenset(w.decode("ascii", "replace") for w in words if w[:1] not in b"0123456789"), tuple(defines)


_FIELD_STORE = re.compile(rb"(?:\.|->)[ \t]*([A-Za-z_]\w*)[ \t]*(?:=(?!=)|\|=|&=)([^;]*)")
_FIELD_USE = re.compile(rb"(?:\.|->)[ \t]*([A-Za-z_]\w*)")


def stored_fields(src: bytes) -> frozenset[bytes]:
    """The fields this file may store a mask in, in one pass: every field
    assigned (`->f =`, `.f |=`, `.f = ` in an initialiser; not `==`) whose stored value (up to the `;`) can
    carry a mask by extraction's own test (relevance.py), or any such field
    where the file declares a gfp_t variable the value could name."""
    any_value = GFP_T in src
    return frozenset(name for name, value in _FIELD_STORE.findall(src)
                     if any_value or RELEVANT_ARG_BYTES.search(value))


def used_fields(src: bytes) -> frozenset[bytes]:
    """Every name that follows `.` or `->`: the fields a file may read."""
    return frozenset(_FIELD_USE.findall(src))


def _names(found: set[bytes]) -> frozenset[str]:
    return frozenset(n.decode("ascii") for n in found)


def kernel_root(paths: list[str]) -> Path | None:
    """The kernel tree above the first path: the nearest directory (the path
    itself included) whose Makefile sets VERSION and PATCHLEVEL."""
    for raw in paths[:1]:
        p = Path(os.path.abspath(raw))
        for d in ([p] if p.is_dir() else []) + list(p.parents):
            if makefile_version(d / "Makefile") is not None:
                return d
    return None
