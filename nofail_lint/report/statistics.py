"""`--statistics`: how many findings per rule and per top-level directory."""
from __future__ import annotations

from collections import Counter

from ..findings import Finding


def top_directory(path: str) -> str:
    """The first component of a reported path ("." for a file at the top)."""
    absolute = path.startswith("/")
    head, sep, _ = path.lstrip("/").partition("/")
    if not sep:
        return "/" if absolute else "."
    return ("/" if absolute else "") + head


def statistics(findings: list[Finding], rule_names: dict[str, str]) -> dict:
    """{"rules": [{rule_id, rule_name, count}], "directories": [{directory, count}]}, largest first."""
    per_rule = Counter(f.rule_id for f in findings)
    per_dir = Counter(top_directory(f.location.path) for f in findings)
    return {
        "rules": [{"rule_id": r, "rule_name": rule_names.get(r, ""), "count": n}
                  for r, n in sorted(per_rule.items(), key=lambda rn: (-rn[1], rn[0]))],
        "directories": [{"directory": d, "count": n}
                        for d, n in sorted(per_dir.items(), key=lambda dn: (-dn[1], dn[0]))],
    }


def render(findings: list[Finding], rule_names: dict[str, str]) -> str:
    """Two small tables, ruff style: count, rule id, rule name; count, directory."""
    stats = statistics(findings, rule_names)
    lines = [f"{r['count']:>6}  {r['rule_id']}  {r['rule_name']}" for r in stats["rules"]]
    if stats["directories"]:
        lines.append("")
        lines += [f"{d['count']:>6}  {d['directory'].rstrip('/')}/" for d in stats["directories"]]
    if not lines:
        lines = ["     0  findings"]
    return "".join(line + "\n" for line in lines)
