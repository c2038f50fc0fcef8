"""The fixture corpus: the exact set of (file, line, rule) equals the inline expectations."""
from __future__ import annotations

from conftest import EXAMPLE_TREE, FIXTURES, REPO, TODO_EXPECT, expect_marker, expectations, reported

from nofail_lint.rules_catalog import load_rules


def _diff(expected, got) -> str:
    missing = sorted(expected - got)
    extra = sorted(got - expected)
    lines = [f"missed   {p}:{l} {r}" for p, l, r in missing] + [f"spurious {p}:{l} {r}" for p, l, r in extra]
    return "\n".join(lines)


def test_fixture_corpus_matches_inline_expectations(cli):
    expected = expectations(FIXTURES, REPO)
    assert len(expected) >= 25
    got, doc = reported(cli, FIXTURES, REPO)
    # known misses stay misses until fixed; then their marker becomes `expect:`
    todo = expectations(FIXTURES, REPO, TODO_EXPECT)
    assert todo
    now_reported = sorted(todo & got)
    assert not now_reported, "reported now, turn todo-expect: into expect: " + \
        ", ".join(f"{p}:{l} {r}" for p, l, r in now_reported)
    assert got == expected, "\n" + _diff(expected, got)
    assert doc["skipped"] == []


def test_old_kernel_tree_gates_nofail_support(cli):
    """fixtures/nf007/old-tree has a Makefile saying 5.10: kvmalloc/__vmalloc ignore NOFAIL there."""
    old = FIXTURES / "nf007" / "old-tree"
    expected = expectations(old, old, expect_marker("5.10"))
    assert expected
    got, doc = reported(cli, old, old)
    assert doc["kernel_version"] == "5.10"
    assert got == expected, "\n" + _diff(expected, got)


def test_every_rule_has_fixture_files_with_positives():
    """Negatives are every unmarked line: the exact-set test above checks them."""
    for rule, folder in [(rule_id, rule_id.lower()) for rule_id in load_rules()]:
        files = sorted((FIXTURES / folder).rglob("*.c"))
        positives = [e for e in expectations(FIXTURES / folder, REPO) if e[2] == rule]
        assert len(positives) >= 4, rule
        assert len(files) >= 2, rule


def test_demo_tree_matches_inline_expectations(cli):
    expected = expectations(EXAMPLE_TREE, EXAMPLE_TREE)
    got, doc = reported(cli, EXAMPLE_TREE, EXAMPLE_TREE)
    assert got == expected, "\n" + _diff(expected, got)
    assert doc["kernel_version"] == "6.12"
