"""Which text can carry a gfp mask or a vmalloc bound: the one definition.

Extraction keeps a call, a field store or an initialiser only when an
argument or value matches `RELEVANT_ARG` (or names a `gfp_t` variable of
its function); the tree scan (scan.py) uses the same test to find the files
whose field stores extraction would keep, so the two cannot drift apart.
"""
from __future__ import annotations

import re

RELEVANT_ARG_PATTERN = r"gfp|GFP|nofail|NOFAIL|VADDR|\w*(?:start|end|START|END)\b"
RELEVANT_ARG = re.compile(RELEVANT_ARG_PATTERN)
RELEVANT_ARG_BYTES = re.compile(RELEVANT_ARG_PATTERN.encode())
GFP_T = b"gfp_t"      # a file without it declares no gfp_t variable a value could name
