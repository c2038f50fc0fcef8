"""Property tests: C-like token soup and mutated fixtures never crash the
analysis, and damage inside one function never changes findings elsewhere."""
from __future__ import annotations

import json
import re

from conftest import FIXTURES, run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nofail_lint.extract import extract

TOKENS = ["{", "}", "(", ")", ";", ",", "=", "!", "&&", "||", "|", "&", "~", "*", "->", ".",
          "do", "while", "for", "if", "else", "goto", "retry", ":", "return", "break", "continue",
          "p", "q", "gfp", "NULL", "0", "1", "kmalloc", "vmalloc", "alloc_pages", "GFP_KERNEL",
          "__GFP_NOFAIL", "__vmalloc_node_range", "spin_lock", "spin_unlock", "#ifdef X\n", "#endif\n",
          "#define A B\n", "int", "void", "static", "struct s", "\"str\"", "'c'", "/* c */", "\n"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(TOKENS), max_size=120), st.binary(max_size=40))
def test_token_soup_never_raises(tokens, noise):
    src = " ".join(tokens).encode() + noise
    facts = extract(src, "soup.c")
    for fn in facts.functions:
        for call in fn.calls:
            assert call.span.line >= 1 and call.span.column >= 1


SAMPLE = FIXTURES / "nf002" / "do_while_basic.c"
_FUNC_START = re.compile(r"^\w[^\n;]*\)\s*\n\{", re.MULTILINE)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(st.data())
def test_damage_in_one_function_keeps_findings_elsewhere(cli, tmp_path_factory, data):
    text = SAMPLE.read_text()
    starts = [m.start() for m in _FUNC_START.finditer(text)] + [len(text)]
    assert len(starts) >= 3
    victim = data.draw(st.integers(0, len(starts) - 2))
    lo, hi = starts[victim], starts[victim + 1]
    body = text.index("{", lo)
    cut = data.draw(st.integers(body + 1, max(body + 1, hi - 2)))
    junk = data.draw(st.sampled_from(["@@ )) ", "?? $$ ", "#if\n", "\"unterminated", "} } }", "do {"]))
    mutated = text[:cut] + junk + text[cut:]
    d = tmp_path_factory.mktemp("mut")
    (d / "orig.c").write_text(text)
    (d / "mut.c").write_text(mutated)

    def findings(name):
        proc = run_cli(cli, "check", "--format", "json", "-q", name, cwd=d)
        assert "Traceback" not in proc.stderr
        return json.loads(proc.stdout)["findings"]

    junk_lines = junk.count("\n")
    victim_lines = range(text.count("\n", 0, lo) + 1, text.count("\n", 0, hi) + 1)
    before = {(f["line"], f["rule_id"]) for f in findings("orig.c") if f["line"] < victim_lines.start}
    after = {(f["line"], f["rule_id"]) for f in findings("mut.c") if f["line"] < victim_lines.start}
    assert before == after
    before_later = {(f["line"] + junk_lines, f["rule_id"]) for f in findings("orig.c")
                    if f["line"] >= victim_lines.stop}
    after_later = {(f["line"], f["rule_id"]) for f in findings("mut.c")
                   if f["line"] >= victim_lines.stop + junk_lines}
    # brace-balanced damage leaves the functions after it alone too; an open
    # brace, string or #if may legitimately swallow the rest of the file
    if junk in ("@@ )) ", "?? $$ "):
        assert before_later == after_later
