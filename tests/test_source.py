"""The source model (lines end at `\\n` only) and the readers that use it:
suppression comments, reported snippets, grep's argument text."""
from __future__ import annotations

import json

import pytest
from conftest import RETRY_LOOP, run_cli

from nofail_lint.cexpr import call_args, split_args
from nofail_lint.facts import Span
from nofail_lint.source import SourceText, read_source

# RETRY_LOOP reports NF002 at its line 6 (the kmalloc call)
CALL_LINE = 6


def test_lines_break_on_newline_only():
    src = SourceText("a\fb\nc\r\n\x0bd\x1c\x85e\n\nlast".encode())
    assert src.line_count == 5
    assert [src.line(n) for n in range(1, 6)] == ["a\fb", "c", "\x0bd\x1c\x85e", "", "last"]
    assert src.line(0) == "" and src.line(6) == ""
    assert SourceText(b"x\n").line_count == 2     # the empty text after the last newline


def test_columns_count_characters():
    src = SourceText("/* é */ kmalloc(n);\n".encode())
    offset = "/* é */ ".encode().__len__()
    row, byte_col = src.point(offset)
    assert (row, byte_col) == (0, 9)
    assert src.char_col(row, byte_col) == 9          # 1-based, é is one character
    assert src.text(Span(1, 9, 1, 16)) == "kmalloc"


def test_text_of_a_multi_line_span_drops_carriage_returns():
    src = SourceText(b"x = f(a,\r\n      b);\r\n")
    assert src.text(Span(1, 5, 2, 9)) == "f(a,\n      b)"
    assert src.text(Span(1, 1, 3, 1)) == "x = f(a,\n      b);\n"
    assert src.text(Span(4, 1, 4, 2)) is None


def test_read_source_follows_file_changes(tmp_path):
    path = tmp_path / "a.c"
    path.write_bytes(b"one\n")
    assert read_source(path).line(1) == "one"
    path.write_bytes(b"two lines\nnow\n")
    assert read_source(path).line(2) == "now"
    assert read_source(tmp_path / "missing.c") is None


@pytest.mark.parametrize("text, args", [
    ("a, b", ["a", "b"]),
    ("", []),
    ("  ", []),
    ("a,", ["a", ""]),
    ("f(x, y), g[1, 2], {3, 4}", ["f(x, y)", "g[1, 2]", "{3, 4}"]),
    ('"a, (b", \'(\', c', ['"a, (b"', "'('", "c"]),
    ("a /* , ) */, b // , c", ["a", "b"]),
    ("x,\n   GFP_KERNEL |\n   __GFP_NOFAIL", ["x", "GFP_KERNEL | __GFP_NOFAIL"]),
    ("a, b)", None),
    ("(a, b", None),
])
def test_split_args(text, args):
    assert split_args(text) == args


def test_call_args_takes_the_first_parenthesised_list():
    assert call_args("kmalloc(size, GFP_KERNEL /* ) */) + 1") == ["size", "GFP_KERNEL"]
    assert call_args("kmalloc") is None
    assert call_args("kmalloc(size, (GFP_KERNEL)") is None


def _check_json(cli, tmp_path):
    proc = run_cli(cli, "check", "--format", "json", "--show-suppressed", ".", cwd=tmp_path)
    assert proc.returncode in (0, 1), proc.stderr
    doc = json.loads(proc.stdout)
    return doc["findings"], doc.get("suppressed", [])


def test_form_feed_does_not_shift_suppression_lines(cli, tmp_path):
    """Kernel files put `^L` lines between sections; str.splitlines() took
    each for a second line break, so a comment was read one line off."""
    lines = RETRY_LOOP.split("\n")
    on_the_line = lines[:]
    on_the_line[CALL_LINE - 1] += " /* nofail-lint: ignore[NF002] */"
    two_above = lines[:]     # two lines above the loop head (`do {`): silences nothing
    two_above[CALL_LINE - 4] += " /* nofail-lint: ignore[NF002] */"
    (tmp_path / "on_line.c").write_text("\f\n" + "\n".join(on_the_line))
    (tmp_path / "two_above.c").write_text("\f\n" + "\n".join(two_above))
    findings, suppressed = _check_json(cli, tmp_path)
    assert [(f["path"], f["line"]) for f in suppressed] == [("on_line.c", CALL_LINE + 1)]
    assert [(f["path"], f["line"]) for f in findings] == [("two_above.c", CALL_LINE + 1)]


def test_crlf_files_report_and_suppress_on_the_right_line(cli, tmp_path):
    lines = RETRY_LOOP.split("\n")
    silenced = lines[:]
    silenced[CALL_LINE - 2] += " // nofail-lint: ignore"
    (tmp_path / "plain.c").write_bytes("\r\n".join(lines).encode())
    (tmp_path / "silenced.c").write_bytes("\r\n".join(silenced).encode())
    findings, suppressed = _check_json(cli, tmp_path)
    assert [(f["path"], f["line"], f["column"]) for f in findings] == [("plain.c", CALL_LINE, 7)]
    assert [(f["path"], f["line"]) for f in suppressed] == [("silenced.c", CALL_LINE)]
    proc = run_cli(cli, "check", "plain.c", cwd=tmp_path)
    assert "\r" not in proc.stdout
    assert f"plain.c:{CALL_LINE}:7: warning:" in proc.stdout
