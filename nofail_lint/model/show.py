"""Text views of the allocator model for `nofail-lint model [API]`."""
from __future__ import annotations

from . import NOFAIL_KINDS, Fact, Model, NotAllocator

_COLUMNS = ("name", "family", "gfp", "size", "order", "start", "end", "nofail", "since")


def _pos(v: int | None) -> str:
    return "-" if v is None else str(v)


def table(model: Model, version: str | None = None) -> str:
    """One row per allocator: positions, NOFAIL handling and since when."""
    rows = []
    for a in model.entries():
        if not a.exists_in(version):
            continue
        v = a.for_version(version)
        rows.append((v.name, v.family, _pos(v.gfp), _pos(v.size), _pos(v.order), _pos(v.start),
                     _pos(v.end), v.nofail or "-", v.nofail_since or "-"))
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(_COLUMNS)]
    out = ["  ".join(c.ljust(w) for c, w in zip(_COLUMNS, widths, strict=True)).rstrip()]
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    target = f"Linux {version}" if version else f"newest known (Linux {model.newest_version})"
    out.append("")
    out.append(f"{len(rows)} allocators, {len(model.allocators)} spellings, {len(model.facts)} facts; "
               f"positions are 0-based argument indexes; view: {target}.")
    out.append("`nofail-lint model API` shows one entry with its facts; "
               "`nofail-lint model verify LINUX_TREE` checks the facts against a tree.")
    return "\n".join(out) + "\n"


def _fact_block(fact: Fact, version: str | None) -> list[str]:
    view = fact.for_version(version)
    lines = [f"  [{fact.id}] {view.summary}",
             f"      where: {view.file}, {view.function}{'()' if view.function.isidentifier() else ''}"
             f" -- Linux {fact.versions}"]
    if fact.function_before_6_10 and view.function != fact.function_before_6_10:
        lines.append(f"      before 6.10: {fact.function_before_6_10}()")
    for rng, values in fact.variants:
        vals = dict(values)
        bits = [f"{k} {vals[k]}" for k in ("file", "function") if k in vals]
        lines.append(f"      in {rng}: " + (", ".join(bits) if bits else "different code (see verify)"))
    if view.verify:
        lines.append("      verify: " + "; ".join(repr(s) for s in view.verify))
    if view.verify_absent:
        lines.append("      must be absent: " + "; ".join(repr(s) for s in view.verify_absent))
    if fact.note:
        lines.append(f"      note: {fact.note}")
    return lines


def entry(model: Model, name: str, version: str | None = None) -> str:
    """Every field of one allocator (any spelling), and its facts with citations."""
    base = model.allocator(name)
    assert base is not None
    a = base.for_version(version)
    out = [f"{a.name}" + (f"  (asked for {name})" if name != a.name else "")]
    field_rows = [
        ("aliases", ", ".join(a.aliases) or "-"),
        ("family", a.family),
        ("params", ", ".join(f"{i}:{p}" for i, p in enumerate(a.params)) or "-"),
        ("gfp", _pos(a.gfp)), ("size", _pos(a.size)), ("order", _pos(a.order)),
        ("start", _pos(a.start)), ("end", _pos(a.end)),
        ("range_default", " .. ".join(a.range_default) if a.range_default else "-"),
        ("fails", a.fails),
        ("wraps", (a.wraps + (" with " + " | ".join(a.gfp_adds) if a.gfp_adds else "")) if a.wraps else "-"),
        ("nofail", f"{a.nofail} -- {NOFAIL_KINDS[a.nofail]}" if a.nofail else "-"),
        ("nofail_since", a.nofail_since or "-"),
        ("null_under_nofail", "; ".join(a.null_under_nofail) or "-"),
        ("present", a.present or "all versions the model knows"),
        ("note", a.note or "-"),
    ]
    width = max(len(k) for k, _ in field_rows)
    out += [f"  {k.ljust(width)}  {v}" for k, v in field_rows]
    honoured = a.nofail_honoured(version)
    if honoured is not None:
        out.append(f"  {'honours NOFAIL'.ljust(width)}  {'yes' if honoured else 'no'}"
                   f" ({'Linux ' + version if version else 'newest'})")
    if base.versions:
        out.append("  per-version overrides:")
        for rng, values in base.versions:
            out.append(f"    {rng}: " + ", ".join(f"{k} = {_val(v)}" for k, v in values))
    fact_ids = list(dict.fromkeys(a.facts))
    if fact_ids:
        out.append("")
        out.append("facts:")
        for fid in fact_ids:
            out += _fact_block(model.facts[fid], version)
    return "\n".join(out) + "\n"


def not_allocator(model: Model, na: NotAllocator, version: str | None = None) -> str:
    out = [f"{na.name}: not an allocator", f"  reason  {na.reason}"]
    if na.facts:
        out.append("")
        out.append("facts:")
        for fid in na.facts:
            out += _fact_block(model.facts[fid], version)
    return "\n".join(out) + "\n"


def _val(v) -> str:
    if isinstance(v, tuple):
        return "[" + ", ".join(str(x) for x in v) + "]"
    return str(v)
