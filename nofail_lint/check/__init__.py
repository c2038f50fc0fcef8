"""Check: facts + tree tables + allocator model -> findings, one module per rule.

A rule is a TOML file `rules/NFnnn.toml` (id, name, level, facts, docs: see
rules_catalog) and a module `check/nfnnn_<name>.py` holding only its detection
logic, `check(tables, rule) -> list[Finding]`. The list of rules is the
catalog's; a rule file without a module, or a module without a rule file, is
an error.
"""
from __future__ import annotations

import functools
import importlib
import pkgutil
import re
from collections.abc import Callable

from ..findings import Finding
from ..link import TreeTables
from ..rules_catalog import RuleDoc, RuleFileError, catalog

Check = Callable[[TreeTables, RuleDoc], list[Finding]]
_RULE_MODULE = re.compile(r"nf(\d{3})_\w+")


def rule_modules() -> dict[str, str]:
    """Rule id -> name of the check module that implements it."""
    out = {}
    for info in pkgutil.iter_modules(__path__):
        m = _RULE_MODULE.fullmatch(info.name)
        if m:
            out[f"NF{m.group(1)}"] = f"{__name__}.{info.name}"
    return out


def rule_checks(rules: dict[str, RuleDoc] | None = None) -> dict[str, tuple[RuleDoc, Check]]:
    """Every catalog rule with its check function, in rule-id order."""
    rules = catalog() if rules is None else rules
    modules = rule_modules()
    unpaired = sorted(set(rules) ^ set(modules))
    if unpaired:
        raise RuleFileError("rules without both a rule file and a check module: " + ", ".join(unpaired))
    return {rid: (rule, importlib.import_module(modules[rid]).check) for rid, rule in rules.items()}


@functools.cache
def _bundled() -> dict[str, tuple[RuleDoc, Check]]:
    return rule_checks()


def run_rules(tables: TreeTables, selected: set[str] | None = None) -> list[Finding]:
    findings: set[Finding] = set()
    for rule_id, (rule, check) in _bundled().items():
        if selected is None or rule_id in selected:
            findings.update(check(tables, rule))
    return sorted(findings, key=Finding.sort_key)
