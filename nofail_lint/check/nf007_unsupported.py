"""NF007 nofail-unsupported: __GFP_NOFAIL passed to an API that rejects or
ignores it for the target kernel version, per the allocator model."""
from __future__ import annotations

from ..findings import Finding
from ..link import TreeTables
from ..model import NOFAIL, version_key
from ..rules_catalog import RuleDoc
from .common import became_true, flow_report
from .gfp_flow import flow_for


def _unsupported_reason(api, version: str) -> str | None:
    if api.nofail in ("rejected", "ignored"):
        return f"{api.name}() {api.nofail} __GFP_NOFAIL in Linux {version}"
    if api.nofail_since and version_key(version)[:2] < version_key(api.nofail_since)[:2]:
        return f"{api.name}() honours __GFP_NOFAIL only since Linux {api.nofail_since}; the target is {version}"
    return None


def check(tables: TreeTables, rule: RuleDoc) -> list[Finding]:
    version = tables.kernel_version
    out = {}
    for site in flow_for(tables).sites:
        api = site.sink.api
        reason = _unsupported_reason(api, version)
        if reason is None or not became_true(site, lambda s: s.mask.may_include(NOFAIL)):
            continue
        fails = "; ".join(api.null_under_nofail) or "it can fail"
        msg = f"__GFP_NOFAIL is not supported here: {reason}"
        notes = [f"under __GFP_NOFAIL it still fails: {fails}",
                 "handle the failure, or use an allocator that honours __GFP_NOFAIL on this kernel"]
        key = (site.step.path, site.step.call.span)
        if key not in out:
            out[key] = flow_report(tables, rule, site.step, site.sink, msg, notes, api.facts)
    return list(out.values())
