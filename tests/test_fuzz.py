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
    # the junk goes at the start of a line of the body: inside a comment it could
    # end the comment early or late, which is different code, not damage
    line_starts = [i + 1 for i in range(body, hi - 2) if text[i] == "\n"]
    cut = data.draw(st.sampled_from(line_starts))
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

    def elsewhere(name: str, shift: int) -> set[tuple[int, str]]:
        """Findings outside the damaged function, on the original's line numbers."""
        out = set()
        for f in findings(name):
            line = f["line"]
            if line >= victim_lines.stop + shift:
                line -= shift
            elif line >= victim_lines.start:
                continue
            out.add((line, f["rule_id"]))
        return out

    before = elsewhere("orig.c", 0)
    # every other function of the sample has a finding: the comparison is never empty,
    # whichever function is damaged (the first, the last, or one in between)
    assert len(before) >= len(starts) - 3
    # whatever the junk (unbalanced braces, an open string or #if), the functions
    # before and after the damaged one keep exactly their findings
    assert elsewhere("mut.c", junk_lines) == before


def test_octal_and_odd_literals_in_conditions_never_raise():
    """C octal literals (`0444`) and malformed ones (`08`) in a mask test."""
    src = (b"int f(umode_t mode, gfp_t gfp)\n{\n\tgfp_t m = gfp;\n\n\tif (mode & 0444)\n"
           b"\t\tm |= __GFP_NOFAIL;\n\tif ((mode & 08) == 0)\n\t\tm |= __GFP_ZERO;\n"
           b"\treturn kmalloc(8, m) != NULL;\n}\n")
    facts = extract(src, "octal.c")
    assert [c.callee for fn in facts.functions for c in fn.calls] == ["kmalloc"]
