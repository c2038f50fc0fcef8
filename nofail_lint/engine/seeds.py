"""Seeds: the files a gfp flag can enter a mask from.

A flag enters an allocation's mask only where it is written: its own name,
or the name of a macro whose expansion contains it (its *macro closure*:
`#define FOO_MUST (GFP_ATOMIC | __GFP_NOFAIL)`, and any macro naming
FOO_MUST, whatever the names look like), or a struct field such a value was
stored in (followed by flow_demand.py, which needs the seed files' facts).
So `grep` and the rules that ask where NOFAIL enters need to parse only the
files that mention a name of the closure; everything else is reached
downwards from them.

The closure is computed on text, never by parsing:
- the model's composite masks (GFP_KERNEL, ...) that contain the flag;
- the tree's `#define`s whose body names a closure name, round by round
  until no new name appears. The scan rows (scan.py) list, per file, the
  identifiers containing `GFP` and the `#define`s whose body contains
  `GFP`, so most of the closure comes from cached rows; a closure name
  without `GFP` in it (`OBJCGS_CLEAR_MASK`) is searched for in the text of
  the files the prefilter keeps, one pass for all such names of a round.

The closure names without the shape extraction looks for (relevance.py)
are handed to extraction (`unshaped`): they widen the byte prefilter and
what extraction keeps, so `kmalloc(64, DEMO_MUST)` is a call like any other.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Mapping

from ..relevance import RELEVANT_ARG_BYTES
from ..scan import DEFINE_WITH_BODY, IDENTIFIER_BYTES, ScanRow


@dataclass(frozen=True)
class Seeds:
    """The flag's closure and the files that mention it."""

    flag: str
    names: frozenset[str]          # the flag's spellings and every macro whose expansion contains it
    files: frozenset[str]          # display paths of the files naming one of `names`
    text_passes: int = 0           # passes over file text the closure needed (names without GFP)


def unshaped(names: Iterable[str]) -> frozenset[str]:
    """The names extraction would not find relevant by their shape
    (relevance.py): these widen the prefilter and what extraction keeps."""
    return frozenset(n for n in names if RELEVANT_ARG_BYTES.search(n.encode()) is None)


def spellings(flag: str) -> set[str]:
    """`__GFP_NOFAIL` is also written `___GFP_NOFAIL` (the bit value)."""
    out = {flag}
    if flag.startswith("__GFP_"):
        out.add("_" + flag)
    return out


def model_closure(flag: str, composites: Mapping[str, str]) -> set[str]:
    """The flag and the model's composite masks whose body (transitively) names it."""
    names = spellings(flag)
    grown = True
    while grown:
        grown = False
        for name, body in composites.items():
            if name not in names and not names.isdisjoint(re.findall(r"[A-Za-z_]\w*", body)):
                names.add(name)
                grown = True
    return names


def find_seeds(flag: str, composites: Mapping[str, str], rows: Mapping[str, ScanRow],
               paths: Mapping[str, str]) -> Seeds:
    """The flag's macro closure over the tree and the files that mention it.

    `rows`: every file's scan row (display -> ScanRow); `paths`: display ->
    path to open, for the text passes."""
    names = model_closure(flag, composites)
    defines: list[tuple[str, frozenset[str]]] = [d for row in rows.values() if row.parsed
                                                 for d in row.gfp_defines]
    text_hits: set[str] = set()
    searched: set[str] = set()
    passes = 0
    while True:
        grown = True
        while grown:                       # rows: #defines whose body holds GFP
            grown = False
            for name, body in defines:
                if name not in names and not names.isdisjoint(body):
                    names.add(name)
                    grown = True
        # names the rows cannot see (no GFP in them): one text pass for all of them
        unseen = sorted(n for n in names if "GFP" not in n and n not in searched)
        if not unseen:
            break
        searched.update(unseen)
        passes += 1
        found, more = _text_pass(unseen, names, rows, paths)
        text_hits |= found
        if not more - names:
            break
        names |= more
    files = {d for d, row in rows.items() if row.parsed and not names.isdisjoint(row.gfp_words)}
    return Seeds(flag, frozenset(names), frozenset(files | text_hits), passes)


def _text_pass(wanted: Iterable[str], names: set[str], rows: Mapping[str, ScanRow],
               paths: Mapping[str, str]) -> tuple[set[str], set[str]]:
    """(files that name one of `wanted` as a word, #defines of those files
    whose body names one of `names` or `wanted`)."""
    needles = [n.encode() for n in wanted]
    words = {n.encode() for n in names} | set(needles)
    files: set[str] = set()
    more: set[str] = set()
    for display in rows:                  # every file: naming a seed makes a file worth parsing
        try:
            with open(paths[display], "rb") as fh:
                src = fh.read()
        except OSError:
            continue
        if not any(n in src for n in needles) or b"\0" in src[:8192]:
            continue
        present = set(IDENTIFIER_BYTES.findall(src))
        if present.isdisjoint(needles):
            continue
        files.add(display)
        for m in DEFINE_WITH_BODY.finditer(src):
            if not words.isdisjoint(IDENTIFIER_BYTES.findall(m.group(2))):
                more.add(m.group(1).decode("ascii"))
    return files, more
