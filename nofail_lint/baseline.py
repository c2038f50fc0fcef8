"""Baselines: accept today's findings, report only new ones.

`--write-baseline FILE` records each finding's rule id, path and SARIF
content fingerprint (report/sarif.py `fingerprints`, so a baseline and a SARIF
upload agree). `--baseline FILE` hides findings whose (rule, path,
fingerprint) is recorded. The fingerprint hashes the rule, the function and
the normalised source line, never a line number: moving code does not bring
a finding back, editing its line does.

Paths are stored relative to the baseline file's directory (POSIX), so the
file can be committed at the tree root and used from any directory.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from .findings import Finding
from .report.fingerprint import fingerprints

FORMAT = "nofail-lint-baseline"
FORMAT_VERSION = 1


class BaselineError(Exception):
    pass


def _key_path(path: str, cwd: Path, base: Path) -> str:
    absolute = Path(os.path.abspath(cwd / path))
    try:
        return absolute.relative_to(base).as_posix()
    except ValueError:
        return absolute.as_posix()


def _entries(findings: list[Finding], cwd: Path, base: Path) -> list[tuple[str, str, str]]:
    ordered = sorted(findings, key=Finding.sort_key)
    return [(f.rule_id, _key_path(f.location.path, cwd, base), fp)
            for f, fp in zip(ordered, fingerprints(ordered), strict=True)]


def write(path: Path, findings: list[Finding], cwd: Path) -> int:
    path = Path(os.path.abspath(cwd / path))
    entries = _entries(findings, cwd, path.parent)
    doc = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "findings": [{"rule_id": r, "path": p, "fingerprint": fp} for r, p, fp in sorted(entries)],
    }
    try:
        path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    except OSError as e:
        raise BaselineError(f"cannot write baseline {path}: {e.strerror or e}") from None
    return len(entries)


def load(path: Path, cwd: Path) -> set[tuple[str, str, str]]:
    path = Path(os.path.abspath(cwd / path))
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise BaselineError(f"cannot read baseline {path}: {e.strerror or e}") from None
    except ValueError as e:
        raise BaselineError(f"baseline {path} is not JSON: {e}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("findings"), list):
        raise BaselineError(f"{path} is not a nofail-lint baseline (write one with --write-baseline)")
    if doc.get("version") != FORMAT_VERSION:
        raise BaselineError(f"baseline {path}: unsupported version {doc.get('version')!r}")
    out = set()
    for i, entry in enumerate(doc["findings"]):
        if not (isinstance(entry, dict)
                and all(isinstance(entry.get(k), str) for k in ("rule_id", "path", "fingerprint"))):
            raise BaselineError(f"baseline {path}: entry {i} wants string rule_id, path and fingerprint")
        out.add((entry["rule_id"], entry["path"], entry["fingerprint"]))
    return out


def split_known(findings: list[Finding], known: set[tuple[str, str, str]], baseline_path: Path,
                cwd: Path) -> tuple[list[Finding], list[Finding]]:
    """(new, known): findings not in the baseline, and those it records."""
    base = Path(os.path.abspath(cwd / baseline_path)).parent
    ordered = sorted(findings, key=Finding.sort_key)
    new: list[Finding] = []
    old: list[Finding] = []
    for f, entry in zip(ordered, _entries(ordered, cwd, base), strict=True):
        (old if entry in known else new).append(f)
    return new, old
