"""Content fingerprints of findings: SARIF's primaryLocationLineHash and the
baseline's identity of a finding. Kept apart from sarif.py so that reading a
baseline does not import the SARIF object model."""
from __future__ import annotations

import hashlib

from ..findings import Finding


def line_hash(rule_id: str, function: str, snippet: str) -> str:
    """Content hash of one finding; no counter, no line number."""
    normalised = " ".join(snippet.split())
    data = "\0".join((rule_id, function, normalised)).encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()


def fingerprints(findings: list[Finding]) -> list[str]:
    """primaryLocationLineHash per finding; `findings` must be in sort order."""
    counts: dict[tuple[str, str], int] = {}
    out = []
    for f in findings:
        digest = line_hash(f.rule_id, f.function, f.location.snippet)
        key = (f.location.path, digest)
        counts[key] = counts.get(key, 0) + 1
        out.append(f"{digest}:{counts[key]}")
    return out
