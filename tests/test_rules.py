"""A rule lives in one place: its rule file names it, its module detects it,
its fixture folder shows it. Everything else is derived from the catalog."""
from __future__ import annotations

import contextlib
import re
import shutil

import pytest
from conftest import FIXTURES, REPO

from nofail_lint import check
from nofail_lint.model import load_model
from nofail_lint.pipeline import Options, run
from nofail_lint.rules_catalog import RuleFileError, load_rules


def test_every_rule_file_has_a_check_module_and_a_fixture_folder():
    rules = load_rules()
    assert set(check.rule_modules()) == set(rules)
    assert list(check.rule_checks()) == sorted(rules)
    for rule_id in rules:
        assert (FIXTURES / rule_id.lower()).is_dir(), rule_id


def test_a_rule_file_without_a_module_is_an_error(tmp_path):
    for path in (REPO / "rules").glob("*.toml"):
        shutil.copy(path, tmp_path)
    text = (tmp_path / "NF008.toml").read_text().replace('id = "NF008"', 'id = "NF099"')
    (tmp_path / "NF099.toml").write_text(text)
    with pytest.raises(RuleFileError, match="NF099"):
        check.rule_checks(load_rules(tmp_path))
    (tmp_path / "NF099.toml").unlink()
    (tmp_path / "NF008.toml").unlink()
    with pytest.raises(RuleFileError, match="NF008"):
        check.rule_checks(load_rules(tmp_path))


def test_rule_modules_keep_no_metadata():
    """Ids, levels and facts come from the rule files, not from module constants."""
    for name in check.rule_modules().values():
        module = __import__(name, fromlist=["check"])
        assert not {"RULE_ID", "LEVEL", "FACTS", "NAME"} & set(vars(module)), name


def test_cited_facts_are_documented_and_in_the_model():
    model = load_model()
    for rule in load_rules().values():
        assert set(rule.cites) <= set(rule.facts), rule.id
        for fact in rule.facts:
            assert fact in model.facts, (rule.id, fact)


def test_cites_outside_facts_is_rejected(tmp_path):
    text = (REPO / "rules" / "NF003.toml").read_text()
    (tmp_path / "NF003.toml").write_text(text.replace('cites = ["', 'cites = ["no.such-fact", "'))
    with pytest.raises(RuleFileError, match="no.such-fact"):
        load_rules(tmp_path)


def _wrapped(example: str) -> str:
    """A rule's example as a C file: statements go into a function body."""
    if any(line[:1].isalpha() for line in example.splitlines()):
        return example + "\n"
    return "void rule_example(void)\n{\n" + example + "\n}\n"


@pytest.mark.parametrize("rule_id", sorted(load_rules()))
def test_rule_example_is_reported_by_its_rule(rule_id, tmp_path):
    rule = load_rules()[rule_id]
    (tmp_path / "example.c").write_text(_wrapped(rule.example))
    with contextlib.chdir(tmp_path):
        result = run(Options(["example.c"], jobs=1), tmp_path)
    assert rule_id in {f.rule_id for f in result.findings}, rule.example


def test_readme_rule_table_matches_the_catalog():
    """The README's table is prose for readers; its id, name and level must be the rule files'."""
    rows = re.findall(r"^\| (NF\d{3}) \| ([\w-]+) \| (\w+) \|", (REPO / "README.md").read_text(), re.MULTILINE)
    assert {(r.id, r.name, r.level) for r in load_rules().values()} == set(rows)


def test_a_user_space_shim_of_a_kernel_mask_does_not_change_it(tmp_path):
    """`# define GFP_KERNEL 0` in a user-space header of the tree (Linux has
    one in include/linux/raid/pq.h and tools/) is not GFP_KERNEL: the kernel's
    masks come from the model, so the NOFAIL allocation still sleeps and its
    NULL test is still dead."""
    (tmp_path / "include").mkdir()
    (tmp_path / "include" / "shim_pq.h").write_text("#ifndef __KERNEL__\n# define GFP_KERNEL\t0\n#endif\n")
    (tmp_path / "shim_user.c").write_text(
        "void *shim_user_get(void)\n{\n\tvoid *p = kzalloc(64, GFP_KERNEL | __GFP_NOFAIL);\n\n"
        "\tif (!p)\n\t\treturn NULL;\n\treturn p;\n}\n")
    result = run(Options(paths=[str(tmp_path)], jobs=1))
    assert [(f.rule_id, f.location.line) for f in result.findings] == [("NF006", 5)]
