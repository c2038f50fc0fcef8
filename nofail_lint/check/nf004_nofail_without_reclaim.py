"""NF004 nofail-without-reclaim: __GFP_NOFAIL without __GFP_DIRECT_RECLAIM
(GFP_ATOMIC, GFP_NOWAIT, reclaim masked out). The allocator cannot loop
without sleeping: it warns and returns NULL, so "no fail" fails."""
from __future__ import annotations

from ..findings import Finding
from ..link import TreeTables
from ..model import NOFAIL
from ..rules_catalog import RuleDoc
from .common import findings_where_true

RECLAIM = "__GFP_DIRECT_RECLAIM"


def _lacks_reclaim(sink) -> bool:
    mask = sink.mask
    # "lacks" reclaim: no path the analysis sees sets it (a ternary with
    # GFP_KERNEL on one side is quiet); an unresolved part (a call, an
    # unknown macro) may well carry it
    return (mask.known and mask.may_include(NOFAIL) and not mask.may_include(RECLAIM)
            and not mask.param_may_carry(RECLAIM))


def check(tables: TreeTables, rule: RuleDoc) -> list[Finding]:
    def message(site) -> str:
        return (f"__GFP_NOFAIL without __GFP_DIRECT_RECLAIM in the mask reaching {site.sink.api.name}(): "
                f"the allocator cannot retry without sleeping and returns NULL")
    notes = ["NOFAIL needs a sleepable context: use GFP_KERNEL/GFP_NOFS/GFP_NOIO with __GFP_NOFAIL "
             "outside atomic context, or drop __GFP_NOFAIL and handle the failure"]
    return findings_where_true(tables, rule, _lacks_reclaim, message, notes)
