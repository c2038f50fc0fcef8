"""Findings: what the check stage hands to the reporters.

Plain frozen dataclasses so they pickle across worker processes and compare
exactly in tests. Paths are POSIX strings, relative to the current directory
when the file lies under it.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, order=True)
class Location:
    """A source range; lines and columns are 1-based, columns count characters."""

    path: str
    line: int
    column: int
    end_line: int
    end_column: int
    snippet: str = ""  # the full text of `line`, without its newline


@dataclass(frozen=True)
class PathStep:
    """One hop of a cross-function finding: the call site and what it passes on."""

    location: Location
    message: str


@dataclass(frozen=True)
class Finding:
    rule_id: str           # "NF001"
    level: str             # "error" | "warning" | "note"
    message: str           # one line, no trailing period
    location: Location     # the primary location (docs/architecture.md, Rules)
    function: str = ""     # enclosing function name, "" at file scope
    notes: tuple[str, ...] = ()        # extra explanation lines, printed as note:
    path: tuple[PathStep, ...] = ()    # outermost call first, kernel API last
    facts: tuple[str, ...] = ()        # ids of allocator-model facts behind it
    # more lines whose `nofail-lint: ignore` comment (on it or the line above)
    # silences this finding: NF002's loop head
    anchors: tuple[int, ...] = ()

    def sort_key(self):
        loc = self.location
        return (loc.path, loc.line, loc.column, self.rule_id, self.message)


@dataclass(frozen=True)
class Replacement:
    """Lines [start_line, end_line) of a file (1-based) replaced by `text`."""

    start_line: int
    end_line: int
    text: str


@dataclass(frozen=True)
class FixProposal:
    """A rewrite that would resolve a finding (SARIF `fixes`), from `nofail-lint fix`."""

    description: str
    path: str
    replacements: tuple[Replacement, ...]
    safe: bool


@dataclass(frozen=True)
class Skipped:
    """An input that could not be analysed (fully); reported, never silent."""

    path: str
    reason: str


@dataclass(frozen=True)
class Incomplete:
    """Part of an input the analysis did not cover: a parse-error region whose
    code was not analysed, or an analysis limit that cut a search short.
    Reported (stderr, JSON, SARIF notifications), never silent."""

    path: str
    line: int              # 1-based; 0: the file as a whole
    end_line: int
    kind: str              # "parse-error" | "limit"
    message: str


@dataclass
class RunResult:
    findings: list[Finding] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    files_scanned: int = 0
    seconds: float = 0.0
    kernel_version: str = ""
    suppressed: list[Finding] = field(default_factory=list)   # silenced by inline comments
    excluded: int = 0                                          # files left out by the config
    from_cache: int | None = None      # files whose facts came from the cache; None: no cache
    context: str = ""                  # for a partial run in a kernel tree: where definitions came from
    incomplete: list[Incomplete] = field(default_factory=list)  # regions and limits not analysed
