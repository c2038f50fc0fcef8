"""Which text can carry a gfp mask or a vmalloc bound: the one definition.

Extraction keeps a call, a field store, an initialiser or a macro only when
its text is *relevant*: it matches `RELEVANT_ARG_PATTERN` (gfp, GFP, NOFAIL,
start/end, ...), or it names one of the tree's own mask macros whose names
have none of those shapes (`#define DEMO_MUST (GFP_ATOMIC | __GFP_NOFAIL)`,
found from the tree's definitions by engine/seeds.py and handed to the
workers in their context). The tree scan (scan.py) uses the same test to
find the files whose field stores extraction would keep, so the two cannot
drift apart.

The extra names are set for the duration of one file's extraction
(`extra_names`): the same bytes give the same facts under the same names,
and the fact key is salted by them (engine/workers.WorkerContext).
"""
from __future__ import annotations

import contextlib
import contextvars
import re
from typing import Iterator

RELEVANT_ARG_PATTERN = r"gfp|GFP|nofail|NOFAIL|VADDR|\w*(?:start|end|START|END)\b"
RELEVANT_ARG_BYTES = re.compile(RELEVANT_ARG_PATTERN.encode())
# macro bodies worth keeping for a mask, a range or a may-fail flag
INTERESTING_MACRO_BYTES = re.compile(rb"GFP|NOFAIL|VMALLOC|nofail|MAYFAIL|MAY_FAIL")
GFP_T = b"gfp_t"      # a file without it declares no gfp_t variable a value could name

_EXTRA: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar("relevant_names", default=frozenset())
_WORD = re.compile(r"[A-Za-z_]\w*")
_WORD_BYTES = re.compile(rb"[A-Za-z_]\w*")


class _Relevant:
    """`RELEVANT_ARG.search(text)`: the shape test, or a name of the tree's mask macros."""

    def __init__(self, pattern: re.Pattern, words: re.Pattern):
        self.pattern, self.words = pattern, words

    def search(self, text):
        found = self.pattern.search(text)
        if found is not None:
            return found
        extra = _EXTRA.get()
        if not extra:
            return None
        name = (lambda m: m.group(0).decode()) if isinstance(text, bytes) else (lambda m: m.group(0))
        return next((m for m in self.words.finditer(text) if name(m) in extra), None)


RELEVANT_ARG = _Relevant(re.compile(RELEVANT_ARG_PATTERN), _WORD)
INTERESTING_MACRO = _Relevant(INTERESTING_MACRO_BYTES, _WORD_BYTES)


@contextlib.contextmanager
def extra_names(names: frozenset[str]) -> Iterator[None]:
    """Make `names` relevant for the block (one file's extraction)."""
    token = _EXTRA.set(names)
    try:
        yield
    finally:
        _EXTRA.reset(token)
