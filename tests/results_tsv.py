"""Recorded whole-tree result sets (tests/data/results-X.Y.tsv).

A finding is keyed by (file, function, rule, ordinal): the ordinal counts the
function's findings of that rule in line order, from 1. Lines are left out on
purpose, so a stable point release that only moves code keeps the set; the
tree's version string (VERSION.PATCHLEVEL.SUBLEVEL) is recorded beside it.

File layout: `#` comment lines, one `version<TAB>6.12.117` line, then one
`path<TAB>function<TAB>rule<TAB>ordinal` row per finding; a finding outside
any function has `-` as its function.

As a script, it writes a set from a JSON report of a whole-tree run:

    nofail-lint check --format json -q -o /tmp/report.json .     # in the tree
    python tests/results_tsv.py /tmp/report.json LINUX_TREE > tests/data/results-X.Y.tsv
"""
from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import NamedTuple

NO_FUNCTION = "-"


class Key(NamedTuple):
    path: str
    function: str
    rule: str
    ordinal: int

    def __str__(self) -> str:
        return "\t".join((self.path, self.function, self.rule, str(self.ordinal)))


class Recorded(NamedTuple):
    version: str
    keys: frozenset[Key]


def tree_version(root: Path) -> str:
    """VERSION.PATCHLEVEL.SUBLEVEL of the tree's top-level Makefile."""
    text = (root / "Makefile").read_text(errors="replace")
    parts = []
    for var in ("VERSION", "PATCHLEVEL", "SUBLEVEL"):
        m = re.search(rf"^{var}\s*=\s*(\d+)\s*$", text, re.MULTILINE)
        parts.append(m.group(1) if m else "?")
    return ".".join(parts)


def keys_of(findings: list[dict]) -> frozenset[Key]:
    """Keys of a JSON report's findings (path, function, rule_id, line, column)."""
    groups: dict[tuple[str, str, str], list[tuple[int, int]]] = defaultdict(list)
    for f in findings:
        fn = f.get("function") or NO_FUNCTION
        groups[(f["path"], fn, f["rule_id"])].append((f["line"], f.get("column", 0)))
    out = set()
    for (path, fn, rule), positions in groups.items():
        for ordinal, _pos in enumerate(sorted(positions), 1):
            out.add(Key(path, fn, rule, ordinal))
    return frozenset(out)


def read(path: Path) -> Recorded:
    version = ""
    keys = set()
    for row in path.read_text().splitlines():
        if not row or row.startswith("#"):
            continue
        cols = row.split("\t")
        if cols[0] == "version" and len(cols) == 2:
            version = cols[1]
            continue
        if len(cols) != 4:
            raise ValueError(f"{path}: not path, function, rule, ordinal: {row!r}")
        keys.add(Key(cols[0], cols[1], cols[2], int(cols[3])))
    if not version:
        raise ValueError(f"{path}: no version line")
    return Recorded(version, frozenset(keys))


def render(version: str, keys: frozenset[Key], header: str) -> str:
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    lines.append("# columns: path, function, rule, ordinal of the finding among the function's findings"
                 " of that rule (by line)")
    lines.append(f"version\t{version}")
    lines.extend(str(k) for k in sorted(keys))
    return "\n".join(lines) + "\n"


def diff(expected: frozenset[Key], got: frozenset[Key]) -> str:
    return "\n".join([f"missing  {k}" for k in sorted(expected - got)] +
                     [f"new      {k}" for k in sorted(got - expected)])


def header_for(label: str) -> str:
    return (f"nofail-lint findings on Debian linux-source-{label}, whole tree, all rules\n"
            "triaged in docs/real-kernel-findings.md; compared by tests/test_kernel_trees.py "
            "when NOFAIL_LINT_KERNEL_* is set")


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    doc = json.loads(Path(argv[0]).read_text())
    version = tree_version(Path(argv[1]))
    label = ".".join(version.split(".")[:2])
    sys.stdout.write(render(version, keys_of(doc["findings"]), header_for(label)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
