"""Small helpers shared by the rule modules."""
from __future__ import annotations

from ..facts import Span
from ..findings import Location
from ..model import Model


def location(path: str, span: Span) -> Location:
    return Location(path, span.line, span.column, span.end_line, span.end_column, span.snippet)


def fact_notes(model: Model, fact_ids) -> tuple[str, ...]:
    """One `note:` line per model fact: what holds, and where in the kernel."""
    out = []
    for fid in dict.fromkeys(fact_ids):
        fact = model.facts.get(fid)
        if fact is not None:
            out.append(f"allocator model [{fid}]: {fact.summary} ({fact.citation()})")
    return tuple(out)


def short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
