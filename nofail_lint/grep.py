"""`nofail-lint grep`: allocation sites whose effective gfp mask may include a flag.

A smarter `git grep __GFP_NOFAIL`: every site of the gfp flow (check/gfp_flow.py)
where the flag *enters* -- the mask seen at the call may include it and the
callee's own sink did not -- so a flag carried by a macro, a local variable or a
caller passing it to a wrapper is found at the call that supplies it, and a mask
that clears it is not listed.

Each hit shows the gfp argument as written at the call, re-read from the source
(CallSite.args has local variables already substituted).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .cexpr import call_args
from .check.common import became_true
from .check.gfp_flow import flow_for
from .link import TreeTables
from .source import read_source


@dataclass(frozen=True)
class Hit:
    path: str
    line: int
    column: int
    callee: str
    mask: str            # the gfp argument(s) as written at the call
    may_include: tuple[str, ...]   # the effective mask's atoms some path sets
    must_include: tuple[str, ...]  # ... and those every path sets
    function: str        # enclosing function
    api: str             # the kernel API the mask reaches
    chain: tuple[str, ...]   # callees from this call down to the API

    def text(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.callee}: {self.mask}"

    def as_json(self) -> dict:
        return {"path": self.path, "line": self.line, "column": self.column, "callee": self.callee,
                "mask": self.mask, "may_include": list(self.may_include),
                "must_include": list(self.must_include), "function": self.function,
                "api": self.api, "chain": list(self.chain)}


def normalise_flag(flag: str) -> str:
    """`__GFP_NOFAIL`, `___GFP_NOFAIL` and `NOFAIL` all name the same atom."""
    f = flag.strip()
    if f.startswith("___GFP_"):
        return f[1:]
    if not f.startswith("__GFP_") and not f.startswith("GFP_") and not f.startswith("_"):
        return "__GFP_" + f.upper()
    return f


def hits(tables: TreeTables, flag: str, cwd: Path | None = None) -> list[Hit]:
    """Every call where `flag` enters an allocator's effective mask, in file/line order."""
    root = Path(os.path.abspath(cwd or Path.cwd()))
    out: dict[tuple, Hit] = {}
    for site in flow_for(tables, flag).sites:
        if not became_true(site, lambda s: s.mask.may_include(flag)):
            continue
        call = site.step.call
        span = call.span
        key = (site.step.path, span.line, span.column, call.callee)
        if key in out:
            continue
        indices = [i for i, cleared in site.below.mask.params if flag not in cleared] or \
            [i for i, _ in site.below.mask.params]
        source = read_source(root / site.step.path)
        written = call_args((source.text(span) if source is not None else None) or "")
        if written is None or len(written) != len(call.args):
            written = None
        mask = ", ".join(" ".join((written or call.args)[i].split()) for i in indices if i < len(call.args))
        m = site.sink.mask
        out[key] = Hit(site.step.path, span.line, span.column, call.callee, mask or "?",
                       tuple(sorted(m.flags)), tuple(sorted(m.must)), site.step.function, site.sink.api.name,
                       tuple(s.call.callee for s in site.sink.steps))
    return sorted(out.values(), key=lambda h: (h.path, h.line, h.column, h.callee))
