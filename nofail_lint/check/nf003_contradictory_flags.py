"""NF003 nofail-contradictory-flags: __GFP_NOFAIL together with __GFP_NORETRY or
__GFP_RETRY_MAYFAIL. The page allocator lets NOFAIL win (it still loops), so the
"may fail" flag is dead and the caller's intent is unclear."""
from __future__ import annotations

from ..findings import Finding
from ..link import TreeTables
from ..model import NOFAIL
from ..rules_catalog import RuleDoc
from .common import findings_where_true

MAY_FAIL = ("__GFP_NORETRY", "__GFP_RETRY_MAYFAIL")


def _contradicts(sink) -> bool:
    return any(sink.mask.some_path((NOFAIL, f)) for f in MAY_FAIL)


def check(tables: TreeTables, rule: RuleDoc) -> list[Finding]:
    def message(site) -> str:
        other = " and ".join(f for f in MAY_FAIL if site.sink.mask.some_path((NOFAIL, f)))
        return (f"__GFP_NOFAIL together with {other} in the mask reaching {site.sink.api.name}(): "
                f"the allocator cannot both never fail and give up early")
    notes = ["NOFAIL wins in the page allocator (it keeps retrying), so the 'may fail' flag is dead; "
             "decide whether the caller can handle failure and drop one of the two"]
    return findings_where_true(tables, rule, _contradicts, message, notes)
