"""The bundled reference allocator model: the one place allocator facts live.

Data lives in `data/*.toml` (allocator entry points, GFP flag algebra per
kernel version, cited facts); this module loads it into lookup tables that
the link and check stages consult. Rules never hold allocator names or flag
values of their own.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

NOFAIL = "__GFP_NOFAIL"


@dataclass(frozen=True)
class Allocator:
    name: str                     # canonical spelling
    family: str
    gfp: int | None = None        # argument index of the gfp mask
    size: int | None = None
    order: int | None = None
    start: int | None = None      # range APIs only
    end: int | None = None
    range_default: tuple[str, str] | None = None
    fails: str = "null"
    facts: tuple[str, ...] = ()

    @property
    def is_range_api(self) -> bool:
        return self.start is not None and self.end is not None


@dataclass(frozen=True)
class Fact:
    id: str
    summary: str
    file: str
    function: str
    versions: str
    verify: tuple[str, ...] = ()
    function_before_6_10: str = ""

    def citation(self) -> str:
        fn = self.function if not self.function.isidentifier() else self.function + "()"
        return f"{self.file}, {fn}, Linux {self.versions}"

    def one_line(self) -> str:
        return f"{self.summary} ({self.citation()})"


@dataclass(frozen=True)
class GfpAlgebra:
    """Atoms (single-bit flags) and composite masks for one kernel version."""

    version: str
    atoms: frozenset[str]
    composites: dict[str, str] = field(hash=False, compare=False)


@dataclass(frozen=True)
class Model:
    allocators: dict[str, Allocator] = field(hash=False)   # every spelling -> entry
    retry_wait: frozenset[str] = frozenset()
    retry_wait_facts: tuple[str, ...] = ()
    facts: dict[str, Fact] = field(default_factory=dict, hash=False)
    gfp: dict[str, GfpAlgebra] = field(default_factory=dict, hash=False)

    def allocator(self, name: str) -> Allocator | None:
        return self.allocators.get(name)

    def range_apis(self) -> dict[str, Allocator]:
        return {n: a for n, a in self.allocators.items() if a.is_range_api}

    @property
    def versions(self) -> list[str]:
        return sorted(self.gfp, key=version_key)

    @property
    def newest_version(self) -> str:
        return self.versions[-1]

    def algebra(self, version: str | None) -> GfpAlgebra:
        """The flag algebra of `version`, or of the nearest known one below it."""
        if not version:
            return self.gfp[self.newest_version]
        known = self.versions
        best = known[0]
        for v in known:
            if version_key(v) <= version_key(version):
                best = v
        return self.gfp[best]

    def fact_lines(self) -> dict[str, str]:
        return {f.id: f.one_line() for f in self.facts.values()}


def version_key(v: str) -> tuple[int, ...]:
    parts = []
    for p in v.split("."):
        try:
            parts.append(int(p))
        except ValueError:
            parts.append(0)
    return tuple(parts)


def _read(name: str) -> dict:
    return tomllib.loads(resources.files(__package__).joinpath("data", name).read_text("utf-8"))


@lru_cache(maxsize=1)
def load_model() -> Model:
    alloc_data = _read("allocators.toml")
    allocators: dict[str, Allocator] = {}
    for row in alloc_data["allocator"]:
        rd = row.get("range_default")
        entry = Allocator(
            name=row["name"], family=row["family"], gfp=row.get("gfp"),
            size=row.get("size"), order=row.get("order"), start=row.get("start"),
            end=row.get("end"), range_default=tuple(rd) if rd else None,
            fails=row.get("fails", "null"), facts=tuple(row.get("facts", ())),
        )
        for spelling in [row["name"], *row.get("aliases", ())]:
            if spelling in allocators:
                raise ValueError(f"allocator model: {spelling} listed twice")
            allocators[spelling] = entry
    wait = alloc_data.get("retry_wait", {})
    facts = {}
    for row in _read("facts.toml")["fact"]:
        facts[row["id"]] = Fact(
            id=row["id"], summary=row["summary"], file=row["file"],
            function=row["function"], versions=row["versions"],
            verify=tuple(row.get("verify", ())),
            function_before_6_10=row.get("function_before_6_10", ""),
        )
    gfp = {}
    for ver, row in _read("gfp.toml")["versions"].items():
        gfp[ver] = GfpAlgebra(ver, frozenset(row["atoms"]), dict(row["composites"]))
    model = Model(allocators, frozenset(wait.get("names", ())),
                  tuple(wait.get("facts", ())), facts, gfp)
    for a in {id(a): a for a in allocators.values()}.values():
        for f in a.facts:
            if f not in facts:
                raise ValueError(f"allocator model: {a.name} cites unknown fact {f}")
    return model
