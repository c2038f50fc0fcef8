"""Opt-in checks on real Linux trees (Debian linux-source-6.1 / 6.12).

Set NOFAIL_LINT_KERNEL_6_1 and/or NOFAIL_LINT_KERNEL_6_12 to the unpacked
tree roots; each run takes a few minutes on 2 cores.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import run_cli

pytestmark = pytest.mark.kernel


def _tree(var: str) -> Path:
    root = os.environ.get(var)
    if not root:
        pytest.skip(f"{var} is not set")
    return Path(root)


def _check(cli, root: Path) -> dict:
    proc = run_cli(cli, "check", "--format", "json", "-q", ".", cwd=root)
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 1, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    failed = [s for s in doc["skipped"] if s["reason"].startswith("analysis failed")]
    assert not failed, failed[:5]
    return doc


RECORDED = Path(__file__).parent / "data"


def _recorded(version: str) -> set[tuple[str, int, str]]:
    rows = (RECORDED / f"results-{version}.tsv").read_text().splitlines()
    return {(p, int(l), r) for p, l, r in (row.split("\t") for row in rows if row and not row.startswith("#"))}


def _diff(expected, got) -> str:
    return "\n".join([f"missing  {e}" for e in sorted(expected - got)] +
                     [f"new      {g}" for g in sorted(got - expected)])


@pytest.mark.parametrize("version,var", [("6.1", "NOFAIL_LINT_KERNEL_6_1"), ("6.12", "NOFAIL_LINT_KERNEL_6_12")])
def test_whole_tree_matches_the_recorded_result_set(cli, version, var):
    """(file, line, rule) of every finding, as triaged in docs/real-kernel-findings.md."""
    doc = _check(cli, _tree(var))
    got = {(f["path"], f["line"], f["rule_id"]) for f in doc["findings"]}
    expected = _recorded(version)
    assert got == expected, "\n" + _diff(expected, got)


def test_linux_6_1_reports_xfs_kmem_alloc(cli):
    doc = _check(cli, _tree("NOFAIL_LINT_KERNEL_6_1"))
    assert doc["kernel_version"] == "6.1"
    hits = {(f["path"], f["function"], f["rule_id"]) for f in doc["findings"]}
    assert ("fs/xfs/kmem.c", "kmem_alloc", "NF002") in hits
    assert not [f for f in doc["findings"] if f["rule_id"] == "NF001"]


def test_linux_6_12_runs_to_completion(cli):
    doc = _check(cli, _tree("NOFAIL_LINT_KERNEL_6_12"))
    assert doc["kernel_version"] == "6.12"
    hits = {(f["path"], f["function"]) for f in doc["findings"] if f["rule_id"] == "NF002"}
    assert ("fs/xfs/xfs_log_priv.h", "xlog_kvmalloc") in hits
    assert not [f for f in doc["findings"] if f["rule_id"] == "NF001"]
