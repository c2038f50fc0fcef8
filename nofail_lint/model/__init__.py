"""The bundled reference allocator model: the one place allocator facts live.

Data lives in `data/*.toml` (allocator entry points, GFP flag algebra per
kernel version, cited facts); this module loads it into lookup tables that
the link and check stages consult. Rules never hold allocator names or flag
values of their own.

Versioned data: an allocator entry and a fact describe the newest kernel the
model knows; `[... .versions."RANGE"]` (allocators) and
`[... .variants."RANGE"]` (facts) override fields for older targets. Use
`Model.allocator_for(name, version)` / `Fact.for_version(version)` to get the
view for a target kernel; `Model.allocator(name)` is the newest.
"""
from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

NOFAIL = "__GFP_NOFAIL"

# How an API honours __GFP_NOFAIL (allocators.toml `nofail`).
NOFAIL_KINDS = {
    "retry-loop": "the page allocator's slowpath retries forever (directly or via slab)",
    "vmalloc-retry": "vmalloc retries virtual space, pages and mapping forever",
    "vmalloc-fallback": "a kmalloc try without NOFAIL, then vmalloc, which retries",
    "mempool-wait": "waits for a pool element forever when it may sleep, NOFAIL or not",
    "forwarded": "hands the mask unchanged to a callee that decides",
    "ignored": "accepted but without NOFAIL semantics: the call can fail",
    "rejected": "the call fails because of NOFAIL",
    "no-gfp": "takes no gfp argument; NOFAIL cannot be passed",
}
HONOURED = frozenset({"retry-loop", "vmalloc-retry", "vmalloc-fallback", "mempool-wait"})

Overrides = tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]


# ---------------------------------------------------------------- versions

def version_key(v: str) -> tuple[int, ...]:
    parts = []
    for p in v.split("."):
        try:
            parts.append(int(p))
        except ValueError:
            parts.append(0)
    return tuple(parts)


def parse_range(versions: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Version range text -> (low, high), inclusive, on (major, minor).

    "6.1-6.12", "6.12" (just that one), "-6.11" (up to 6.11), "5.17+" (from 5.17).
    """
    text = versions.strip()
    if text.endswith("+"):
        return version_key(text[:-1])[:2], (999, 999)
    lo, sep, hi = text.partition("-")
    lo_key = version_key(lo.strip())[:2] if lo.strip() else (0, 0)
    if not sep:
        return lo_key, lo_key
    return lo_key, version_key(hi.strip())[:2]


def in_range(version: str, versions: str) -> bool:
    lo, hi = parse_range(versions)
    return lo <= version_key(version)[:2] <= hi


def _pick(overrides: Overrides, version: str | None) -> dict[str, Any]:
    """The override whose range covers `version` (the narrowest if several)."""
    if not version or not overrides:
        return {}
    best = None
    for rng, values in overrides:
        if in_range(version, rng):
            lo, hi = parse_range(rng)
            span = (hi[0] - lo[0]) * 1000 + (hi[1] - lo[1])
            if best is None or span < best[0]:
                best = (span, dict(values))
    return best[1] if best else {}


def _freeze(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _overrides(table: dict | None) -> Overrides:
    if not table:
        return ()
    return tuple((rng, tuple((k, _freeze(v)) for k, v in sorted(vals.items())))
                 for rng, vals in sorted(table.items()))


# ---------------------------------------------------------------- entries

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
    aliases: tuple[str, ...] = ()
    params: tuple[str, ...] = ()          # parameter names as declared
    wraps: str = ""                       # fixed-parameter wrapper: the API it forwards to
    gfp_adds: tuple[str, ...] = ()        # flags the wrapper ORs into the caller's gfp
    nofail: str = ""                      # a key of NOFAIL_KINDS
    nofail_since: str = ""                # first version with that handling
    null_under_nofail: tuple[str, ...] = ()   # when it still fails with NOFAIL
    present: str = ""                     # versions where the API exists ("" = all known)
    note: str = ""
    versions: Overrides = field(default=(), compare=False, repr=False)

    @property
    def is_range_api(self) -> bool:
        return self.start is not None and self.end is not None

    @property
    def spellings(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)

    def for_version(self, version: str | None) -> Allocator:
        """This entry as it applies to kernel `version` (None: the newest)."""
        values = _pick(self.versions, version)
        if not values:
            return self
        if "range_default" in values and values["range_default"] is not None:
            values["range_default"] = tuple(values["range_default"])
        return dataclasses.replace(self, **values)

    def exists_in(self, version: str | None) -> bool:
        return not version or not self.present or in_range(version, self.present)

    def nofail_honoured(self, version: str | None = None) -> bool | None:
        """Does the API honour NOFAIL in `version`? None when it takes no gfp
        or the model does not say."""
        a = self.for_version(version)
        if a.nofail in ("", "no-gfp", "forwarded"):
            return None
        if a.nofail not in HONOURED:
            return False
        if version and a.nofail_since and version_key(version)[:2] < version_key(a.nofail_since)[:2]:
            return False
        return True

    def positions(self) -> dict[str, int]:
        return {k: v for k in ("gfp", "size", "order", "start", "end")
                if (v := getattr(self, k)) is not None}


@dataclass(frozen=True)
class NotAllocator:
    """A function that takes a gfp mask but does not allocate pages for its caller."""
    name: str
    reason: str
    facts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Fact:
    id: str
    summary: str
    file: str
    function: str
    versions: str
    verify: tuple[str, ...] = ()
    function_before_6_10: str = ""
    verify_absent: tuple[str, ...] = ()
    note: str = ""
    variants: Overrides = field(default=(), compare=False, repr=False)

    def citation(self) -> str:
        fn = self.function if not self.function.isidentifier() else self.function + "()"
        return f"{self.file}, {fn}, Linux {self.versions}"

    def one_line(self) -> str:
        return f"{self.summary} ({self.citation()})"

    def applies_to(self, version: str | None) -> bool:
        return not version or in_range(version, self.versions)

    def for_version(self, version: str | None) -> Fact:
        """The fact as it reads in kernel `version`: the matching variant's
        file/function/verify, and the pre-6.10 function name before 6.10."""
        values = _pick(self.variants, version)
        fact = dataclasses.replace(self, **values) if values else self
        if (version and fact.function_before_6_10
                and version_key(version)[:2] < RENAME_VERSION):
            fact = dataclasses.replace(fact, function=fact.function_before_6_10)
        return fact


RENAME_VERSION = (6, 10)      # alloc_hooks / `_noprof` spellings appeared in 6.10


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
    not_allocators: dict[str, NotAllocator] = field(default_factory=dict, hash=False)
    atomic_sections: dict[str, frozenset[str]] = field(default_factory=dict, hash=False)  # lock -> unlocks
    atomic_facts: tuple[str, ...] = ()

    def allocator(self, name: str) -> Allocator | None:
        """The entry for any spelling, as it applies to the newest kernel."""
        return self.allocators.get(name)

    def allocator_for(self, name: str, version: str | None) -> Allocator | None:
        """The entry for any spelling, resolved for kernel `version`
        (per-version argument positions, NOFAIL handling, facts)."""
        a = self.allocators.get(name)
        return a.for_version(version) if a is not None else None

    def entries(self) -> list[Allocator]:
        """Each allocator once, in data-file order."""
        return list({id(a): a for a in self.allocators.values()}.values())

    def range_apis(self) -> dict[str, Allocator]:
        return {n: a for n, a in self.allocators.items() if a.is_range_api}

    def not_allocator(self, name: str) -> NotAllocator | None:
        return self.not_allocators.get(name)

    def facts_for(self, fact_ids, version: str | None = None) -> list[Fact]:
        """The facts among `fact_ids` that hold in `version`, as they read there."""
        out = []
        for fid in fact_ids:
            f = self.facts.get(fid)
            if f is not None and f.applies_to(version):
                out.append(f.for_version(version))
        return out

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


# ---------------------------------------------------------------- loading

_ALLOCATOR_KEYS = {"name", "aliases", "params", "family", "gfp", "size", "order", "start", "end",
                   "range_default", "fails", "facts", "wraps", "gfp_adds", "nofail",
                   "nofail_since", "null_under_nofail", "present", "note", "versions"}
_OVERRIDABLE = _ALLOCATOR_KEYS - {"name", "aliases", "family", "versions"}
_FACT_KEYS = {"id", "summary", "file", "function", "function_before_6_10", "versions", "verify",
              "verify_absent", "note", "variants"}
_VARIANT_KEYS = {"file", "function", "function_before_6_10", "verify", "verify_absent", "summary", "note"}
_FAILS = {"null", "errptr", "errno", "count"}


def _read(name: str) -> dict:
    return tomllib.loads(resources.files(__package__).joinpath("data", name).read_text("utf-8"))


def _check_keys(what: str, row: dict, allowed: set[str]) -> None:
    unknown = set(row) - allowed
    if unknown:
        raise ValueError(f"allocator model: {what}: unknown key(s) {', '.join(sorted(unknown))}")


def _allocator(row: dict) -> Allocator:
    name = row["name"]
    _check_keys(f"allocator {name}", row, _ALLOCATOR_KEYS)
    for rng, vals in row.get("versions", {}).items():
        _check_keys(f"allocator {name} versions {rng}", vals, _OVERRIDABLE)
    rd = row.get("range_default")
    entry = Allocator(
        name=name, family=row["family"], gfp=row.get("gfp"),
        size=row.get("size"), order=row.get("order"), start=row.get("start"),
        end=row.get("end"), range_default=tuple(rd) if rd else None,
        fails=row.get("fails", "null"), facts=tuple(row.get("facts", ())),
        aliases=tuple(row.get("aliases", ())), params=tuple(row.get("params", ())),
        wraps=row.get("wraps", ""), gfp_adds=tuple(row.get("gfp_adds", ())),
        nofail=row.get("nofail", ""), nofail_since=row.get("nofail_since", ""),
        null_under_nofail=tuple(row.get("null_under_nofail", ())),
        present=row.get("present", ""), note=row.get("note", ""),
        versions=_overrides(row.get("versions")),
    )
    for view in [entry, *(entry.for_version(rng_high(r)) for r, _ in entry.versions)]:
        if view.nofail and view.nofail not in NOFAIL_KINDS:
            raise ValueError(f"allocator model: {name}: unknown nofail kind {view.nofail!r}")
        if view.fails not in _FAILS:
            raise ValueError(f"allocator model: {name}: unknown fails kind {view.fails!r}")
    return entry


def rng_high(rng: str) -> str:
    """A version inside range `rng` (its upper end, or its start if open), to
    resolve an override for validation."""
    lo, hi = parse_range(rng)
    v = lo if hi == (999, 999) else hi
    return f"{v[0]}.{v[1]}"


def _fact(row: dict) -> Fact:
    _check_keys(f"fact {row.get('id')}", row, _FACT_KEYS)
    for rng, vals in row.get("variants", {}).items():
        _check_keys(f"fact {row['id']} variant {rng}", vals, _VARIANT_KEYS)
    return Fact(
        id=row["id"], summary=row["summary"], file=row["file"],
        function=row["function"], versions=row["versions"],
        verify=tuple(row.get("verify", ())),
        function_before_6_10=row.get("function_before_6_10", ""),
        verify_absent=tuple(row.get("verify_absent", ())),
        note=row.get("note", ""),
        variants=_overrides(row.get("variants")),
    )


@lru_cache(maxsize=1)
def load_model() -> Model:
    alloc_data = _read("allocators.toml")
    allocators: dict[str, Allocator] = {}
    for row in alloc_data["allocator"]:
        entry = _allocator(row)
        for spelling in entry.spellings:
            if spelling in allocators:
                raise ValueError(f"allocator model: {spelling} listed twice")
            allocators[spelling] = entry
    wait = alloc_data.get("retry_wait", {})
    not_allocators = {}
    for name, row in alloc_data.get("not_allocators", {}).items():
        if name in allocators:
            raise ValueError(f"allocator model: {name} is both an allocator and a not_allocator")
        not_allocators[name] = NotAllocator(name, row["reason"], tuple(row.get("facts", ())))
    facts = {}
    for row in _read("facts.toml")["fact"]:
        if row["id"] in facts:
            raise ValueError(f"allocator model: fact {row['id']} listed twice")
        facts[row["id"]] = _fact(row)
    gfp = {}
    for ver, row in _read("gfp.toml")["versions"].items():
        gfp[ver] = GfpAlgebra(ver, frozenset(row["atoms"]), dict(row["composites"]))
    atomic = _read("atomic.toml")
    model = Model(allocators, frozenset(wait.get("names", ())),
                  tuple(wait.get("facts", ())), facts, gfp, not_allocators,
                  {k: frozenset(v) for k, v in atomic["sections"].items()}, tuple(atomic.get("facts", ())))
    cited = [(a.name, f) for a in model.entries()
             for view in [a, *(a.for_version(rng_high(r)) for r, _ in a.versions)] for f in view.facts]
    cited += [(n.name, f) for n in not_allocators.values() for f in n.facts]
    cited += [("retry_wait", f) for f in model.retry_wait_facts]
    cited += [("atomic", f) for f in model.atomic_facts]
    for who, f in cited:
        if f not in facts:
            raise ValueError(f"allocator model: {who} cites unknown fact {f}")
    return model
