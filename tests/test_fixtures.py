"""The fixture corpus: the exact set of (file, line, rule) equals the inline expectations."""
from __future__ import annotations

from conftest import EXAMPLE_TREE, FIXTURES, REPO, expectations, reported


def _diff(expected, got) -> str:
    missing = sorted(expected - got)
    extra = sorted(got - expected)
    lines = [f"missed   {p}:{l} {r}" for p, l, r in missing] + [f"spurious {p}:{l} {r}" for p, l, r in extra]
    return "\n".join(lines)


def test_fixture_corpus_matches_inline_expectations(cli):
    expected = expectations(FIXTURES, REPO)
    assert len(expected) >= 25
    got, doc = reported(cli, FIXTURES, REPO, "--select", "NF001,NF002")
    assert got == expected, "\n" + _diff(expected, got)
    assert doc["skipped"] == []


def test_every_rule_has_positive_and_negative_fixtures():
    for rule, folder in (("NF001", "nf001"), ("NF002", "nf002")):
        files = sorted((FIXTURES / folder).rglob("*.c"))
        marked = {p for p, _, r in expectations(FIXTURES / folder, REPO) if r == rule}
        unmarked = [f for f in files if f.relative_to(REPO).as_posix() not in marked]
        assert len(marked) >= 10, rule
        assert unmarked, f"{rule}: no fixture file without findings (negatives)"


def test_demo_tree_matches_inline_expectations(cli):
    expected = expectations(EXAMPLE_TREE, EXAMPLE_TREE)
    got, doc = reported(cli, EXAMPLE_TREE, EXAMPLE_TREE)
    assert got == expected, "\n" + _diff(expected, got)
    assert doc["kernel_version"] == "6.12"
