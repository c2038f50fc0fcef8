"""The recorded result-set format (tests/results_tsv.py), without a kernel tree."""
from __future__ import annotations

from pathlib import Path

import pytest
import results_tsv
from results_tsv import Key


def _f(path, fn, rule, line, column=1):
    return {"path": path, "function": fn, "rule_id": rule, "line": line, "column": column}


def test_ordinals_count_a_functions_findings_of_one_rule_in_line_order():
    keys = results_tsv.keys_of([
        _f("a.c", "g", "NF006", 40), _f("a.c", "g", "NF006", 12), _f("a.c", "g", "NF002", 30),
        _f("a.c", "g", "NF006", 12, 20), _f("b.c", "g", "NF006", 5), _f("b.c", None, "NF006", 7),
    ])
    assert keys == {Key("a.c", "g", "NF006", 1), Key("a.c", "g", "NF006", 2), Key("a.c", "g", "NF006", 3),
                    Key("a.c", "g", "NF002", 1), Key("b.c", "g", "NF006", 1), Key("b.c", "-", "NF006", 1)}


def test_moved_lines_keep_the_keys_and_a_new_finding_changes_them():
    before = results_tsv.keys_of([_f("a.c", "g", "NF006", 10), _f("a.c", "g", "NF006", 20)])
    moved = results_tsv.keys_of([_f("a.c", "g", "NF006", 61), _f("a.c", "g", "NF006", 75)])
    assert moved == before
    more = results_tsv.keys_of([_f("a.c", "g", "NF006", 61), _f("a.c", "g", "NF006", 75),
                                _f("a.c", "g", "NF006", 80)])
    assert results_tsv.diff(before, more) == "new      a.c\tg\tNF006\t3"


def test_render_and_read_round_trip(tmp_path):
    keys = results_tsv.keys_of([_f("fs/x.c", "x_alloc", "NF002", 3), _f("fs/x.c", "x_alloc", "NF002", 9)])
    path = tmp_path / "results.tsv"
    path.write_text(results_tsv.render("6.12.118", keys, results_tsv.header_for("6.12")))
    assert results_tsv.read(path) == ("6.12.118", keys)


def test_a_set_without_version_or_with_short_rows_is_refused(tmp_path):
    path = tmp_path / "results.tsv"
    path.write_text("a.c\tg\tNF006\t1\n")
    with pytest.raises(ValueError, match="no version"):
        results_tsv.read(path)
    path.write_text("version\t6.1.192\na.c\t120\tNF006\n")
    with pytest.raises(ValueError, match="not path, function"):
        results_tsv.read(path)


def test_tree_version_reads_the_makefile(tmp_path):
    (tmp_path / "Makefile").write_text("# SPDX\nVERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 118\nEXTRAVERSION =\n")
    assert results_tsv.tree_version(tmp_path) == "6.12.118"


@pytest.mark.parametrize("label", ["6.1", "6.12"])
def test_recorded_sets_parse_and_name_their_tree(label):
    recorded = results_tsv.read(Path(__file__).parent / "data" / f"results-{label}.tsv")
    assert recorded.version.startswith(label + ".")
    assert recorded.keys
