"""Opt-in checks on real Linux trees (Debian linux-source-6.1 / 6.12).

Set NOFAIL_LINT_KERNEL_6_1 and/or NOFAIL_LINT_KERNEL_6_12 to the unpacked
tree roots; each run takes a few minutes on 2 cores.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import results_tsv
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


@pytest.mark.parametrize("version,var", [("6.1", "NOFAIL_LINT_KERNEL_6_1"), ("6.12", "NOFAIL_LINT_KERNEL_6_12")])
def test_whole_tree_matches_the_recorded_result_set(cli, version, var):
    """(file, function, rule, ordinal) of every finding, as triaged in
    docs/real-kernel-findings.md; lines are not compared, so a point release
    that only moves code keeps the set (tests/results_tsv.py).

    NOFAIL_LINT_UPDATE_RESULTS=1 rewrites the set from this run instead."""
    root = _tree(var)
    doc = _check(cli, root)
    got = results_tsv.keys_of(doc["findings"])
    path = RECORDED / f"results-{version}.tsv"
    tree_version = results_tsv.tree_version(root)
    if os.environ.get("NOFAIL_LINT_UPDATE_RESULTS"):
        path.write_text(results_tsv.render(tree_version, got, results_tsv.header_for(version)))
        return
    recorded = results_tsv.read(path)
    where = (f"recorded on {recorded.version}, this tree is {tree_version}"
             if recorded.version != tree_version else f"recorded on this version, {tree_version}")
    assert got == recorded.keys, f"{where}\n" + results_tsv.diff(recorded.keys, got)


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
