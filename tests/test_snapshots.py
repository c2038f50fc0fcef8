"""What users see: the full text report of every fixture folder, in process,
against snapshot files committed in tests/snapshots/ (message, column, notes,
call chain, model facts). A changed message is a reviewed diff, not a
surprise.

Regenerate after an intended change (then review `git diff tests/snapshots`):

    NOFAIL_LINT_UPDATE_SNAPSHOTS=1 pytest -q tests/test_snapshots.py
"""
from __future__ import annotations

import contextlib
import difflib
import os
from pathlib import Path

import pytest
from conftest import EXAMPLE_TREE, FIXTURES, REPO

from nofail_lint.findings import RunResult
from nofail_lint.pipeline import Options, run
from nofail_lint.report import render
from nofail_lint.rules_catalog import load_rules
from nofail_lint.suppress import split_suppressed

SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"
UPDATE = os.environ.get("NOFAIL_LINT_UPDATE_SNAPSHOTS") == "1"
OLD_TREE = FIXTURES / "nf007" / "old-tree"
RULE_FOLDERS = [rule_id.lower() for rule_id in load_rules()]
FOLDERS = RULE_FOLDERS + ["fix"]      # fixtures/fix: the inputs of `nofail-lint fix` (tests/test_fix.py)


def _check(target: Path, cwd: Path) -> RunResult:
    """`nofail-lint check --show-suppressed TARGET` run from `cwd`, in this process."""
    rules = load_rules()
    with contextlib.chdir(cwd):     # as the CLI runs: paths and snippets are relative to here
        result = run(Options([str(target.relative_to(cwd))], jobs=1), cwd)
    result.findings, result.suppressed = split_suppressed(result.findings, cwd,
                                                          {r.name: r.id for r in rules.values()})
    assert result.skipped == []
    return result


def _text(result: RunResult, keep) -> str:
    part = RunResult(findings=[f for f in result.findings if keep(f.location.path)],
                     suppressed=[f for f in result.suppressed if keep(f.location.path)])
    return render(part, "text", load_rules(), {}, REPO, "snapshot", show_suppressed=True)


def _compare(name: str, text: str) -> None:
    path = SNAPSHOTS / f"{name}.txt"
    if UPDATE:
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    assert path.exists(), f"no snapshot {path.name}: run NOFAIL_LINT_UPDATE_SNAPSHOTS=1 pytest {__file__}"
    want = path.read_text(encoding="utf-8")
    if text != want:
        diff = "".join(difflib.unified_diff(want.splitlines(True), text.splitlines(True),
                                            f"snapshots/{path.name}", "reported now"))
        pytest.fail(f"the report differs from the snapshot (NOFAIL_LINT_UPDATE_SNAPSHOTS=1 "
                    f"accepts it):\n{diff}", pytrace=False)


@pytest.fixture(scope="module")
def corpus() -> RunResult:
    """The whole fixture directory in one run, as the corpus test scans it."""
    return _check(FIXTURES, REPO)


def _in_folder(folder: str):
    prefix = f"fixtures/{folder}/"
    old = f"{OLD_TREE.relative_to(REPO).as_posix()}/"
    return lambda path: path.startswith(prefix) and not (folder == "nf007" and path.startswith(old))


@pytest.mark.parametrize("folder", FOLDERS)
def test_rule_folder_report_matches_snapshot(corpus, folder):
    text = _text(corpus, _in_folder(folder))
    assert text, f"fixtures/{folder} reports nothing"
    _compare(folder, text)


def test_every_finding_of_the_corpus_is_in_a_snapshot(corpus):
    folders = {Path(f.location.path).parts[1] for f in corpus.findings + corpus.suppressed}
    assert folders <= set(FOLDERS)


def test_old_kernel_tree_report_matches_snapshot():
    _compare("nf007-old-tree", _text(_check(OLD_TREE, OLD_TREE), lambda path: True))


def test_demo_tree_report_matches_snapshot():
    _compare("demo-tree", _text(_check(EXAMPLE_TREE, EXAMPLE_TREE), lambda path: True))
