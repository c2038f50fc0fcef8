"""Small helpers shared by the rule modules."""
from __future__ import annotations

from ..facts import Span
from ..findings import Location
from ..link import TreeTables


def location(path: str, span: Span) -> Location:
    return Location(path, span.line, span.column, span.end_line, span.end_column, span.snippet)


def fact_notes(tables: TreeTables, fact_ids) -> tuple[str, ...]:
    """One `note:` line per model fact valid for the target kernel: what holds, and where."""
    return tuple(f"allocator model [{fact.id}]: {fact.summary} ({fact.citation()})"
                 for fact in tables.model.facts_for(dict.fromkeys(fact_ids), tables.kernel_version))


def short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
