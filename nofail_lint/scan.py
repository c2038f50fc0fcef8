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

Struct fields are not listed here: a regex for `->f =` over the whole tree
costs more than the rest of the scan together. `assigns_field` answers for
one file and one field, when a reached function reads that field.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import NamedTuple

from .discover import makefile_version, worth_parsing


class ScanRow(NamedTuple):
    """What one file may define, if it is worth parsing at all."""

    parsed: bool                     # passes the prefilter (extraction would look at it)
    functions: frozenset[str]        # names it may define as functions
    macros: frozenset[str]           # object-like macros it may define that a mask or bound can use
    fn_macros: frozenset[str] = frozenset()    # function-like macros it defines
    fields: frozenset[str] = frozenset()       # (exact definitions only; see assigns_field)
    structs: frozenset[str] = frozenset()      # struct tags it names: only these can have fields assigned here


NOTHING = ScanRow(False, frozenset(), frozenset())
_STRUCT_TAG = re.compile(rb"struct[ \t\n]+([A-Za-z_]\w*)")
_WORD_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")

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
    return ScanRow(True, _names(functions), _names(macros), _names(fn_macros),
                   structs=_names(set(_STRUCT_TAG.findall(src))))


def assigns_field(src: bytes, field: bytes) -> bool:
    """Does the source assign struct field `field` (`->field =`, `.field |=`,
    `.field = ` in an initialiser)? A superset of extract's field_masks: any
    assignment, whatever its value."""
    n = len(field)
    i = src.find(field)
    while i != -1:
        end = i + n
        if (i == 0 or src[i - 1] not in _WORD_BYTES) and (end >= len(src) or src[end] not in _WORD_BYTES):
            j = i - 1
            while j >= 0 and src[j] in b" \t":
                j -= 1
            if j >= 0 and (src[j] == 0x2E or (src[j] == 0x3E and j > 0 and src[j - 1] == 0x2D)):   # . or ->
                k = end
                while k < len(src) and src[k] in b" \t":
                    k += 1
                op = src[k:k + 2]
                if (op[:1] == b"=" and op != b"==") or op in (b"|=", b"&="):
                    return True
        i = src.find(field, i + 1)
    return False


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
