"""The CLI contract CI relies on, through the installed script: exit codes,
one-line errors, output destinations, the linter options, suppressions,
silent successes and per-file resource guards. Signals: test_signals.py."""
from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from conftest import REPO, RETRY_LOOP, TEST_CACHE, run_cli

LOOP = "#include <linux/slab.h>\n\n" + RETRY_LOOP      # NF002 at line 8
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _tree(tmp_path: Path, **files: str) -> Path:
    for name, text in files.items():
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return tmp_path


def _env(**extra: str) -> dict:
    env = dict(os.environ, **extra)
    env.pop("PYTHONPATH", None)
    env.setdefault("NOFAIL_LINT_CACHE_DIR", TEST_CACHE)
    return env


def _one_error_line(stderr: str, *needles: str):
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr
    errors = [line for line in lines if line.startswith("nofail-lint: error:")]
    assert len(errors) == 1, stderr
    for n in needles:
        assert n in errors[0], errors[0]


# ------------------------------------------------------------------ exit status means one thing

def test_unexpected_error_is_one_line_naming_the_input_and_exit_2(cli, tmp_path):
    """A bug in the check stage (injected through sitecustomize in a real process)."""
    _tree(tmp_path, **{"src/loop.c": LOOP})
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import nofail_lint.pipeline as p\n"
        "def boom(*a, **k):\n    raise RuntimeError('injected failure')\n"
        "p.run_rules = boom\n")
    env = dict(os.environ, PYTHONPATH=str(hook), NOFAIL_LINT_CACHE_DIR=str(tmp_path / "cache"))
    proc = subprocess.run([cli, "check", "src"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    _one_error_line(proc.stderr, "checking src", "RuntimeError: injected failure", "--debug")
    debug = subprocess.run([cli, "check", "--debug", "src"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert debug.returncode == 2
    assert "Traceback" in debug.stderr and "injected failure" in debug.stderr


def test_output_destination_checked_before_the_analysis(cli, tmp_path):
    _tree(tmp_path, **{"loop.c": LOOP})
    for option in ("-o", "--write-baseline"):
        proc = run_cli(cli, "check", option, "no/such/dir/out.json", ".", cwd=tmp_path)
        assert proc.returncode == 2
        _one_error_line(proc.stderr, "does not exist")
        assert "finding(s)" not in proc.stderr, "refused before analysing"
    proc = run_cli(cli, "check", "-o", ".", ".", cwd=tmp_path)
    assert proc.returncode == 2 and "is a directory" in proc.stderr


def test_output_naming_an_input_source_file_is_refused(cli, tmp_path):
    _tree(tmp_path, **{"drivers/loop.c": LOOP})
    for target, inputs in (("drivers/loop.c", ["drivers/loop.c"]), ("drivers/loop.c", ["."]),
                           ("drivers/new.c", ["drivers"])):
        proc = run_cli(cli, "check", "--format", "json", "-o", target, *inputs, cwd=tmp_path)
        assert proc.returncode == 2, (target, inputs)
        _one_error_line(proc.stderr, "input source file")
    assert (tmp_path / "drivers/loop.c").read_text() == LOOP
    assert not (tmp_path / "drivers/new.c").exists()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_write_failures_exit_2_with_one_line(cli, tmp_path):
    _tree(tmp_path, **{"loop.c": LOOP})
    proc = run_cli(cli, "check", "-o", "/dev/full", ".", cwd=tmp_path)
    assert proc.returncode == 2
    _one_error_line(proc.stderr, "/dev/full", "No space left")
    with open("/dev/full", "w") as full:
        proc = subprocess.run([cli, "check", "."], cwd=tmp_path, env=_env(), stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    assert proc.returncode == 2
    _one_error_line(proc.stderr, "stdout")


def test_closed_stdout_exits_2_with_one_line(cli, tmp_path):
    _tree(tmp_path, **{"loop.c": LOOP})
    env = dict(os.environ, NOFAIL_LINT_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("PYTHONPATH", None)
    proc = subprocess.Popen([cli, "check", "."], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.stdout.close()           # the reader went away (`| head -0`)
    stderr = proc.stderr.read()
    assert proc.wait(timeout=120) == 2
    _one_error_line(stderr, "stdout was closed")
    assert "Exception ignored" not in stderr


def test_config_that_is_not_utf8_is_a_config_error(cli, tmp_path):
    _tree(tmp_path, **{"loop.c": LOOP})
    (tmp_path / ".nofail-lint.toml").write_bytes(b'select = ["NF\xff02"]\n')
    proc = run_cli(cli, "check", ".", cwd=tmp_path)
    assert proc.returncode == 2
    _one_error_line(proc.stderr, "config", "not UTF-8")


# ------------------------------------------------------------------ linter options

def _ids(proc) -> list[str]:
    return [f["rule_id"] for f in json.loads(proc.stdout)["findings"]]


def test_select_and_ignore_take_ids_and_names(cli):
    fixtures = ["fixtures/nf002", "fixtures/nf006"]
    both = run_cli(cli, "check", "--format", "json", *fixtures)
    assert {"NF002", "NF006"} <= set(_ids(both))
    for value in ("NF002", "open-coded-retry-loop", "nf002"):
        proc = run_cli(cli, "check", "--format", "json", "--ignore", value, *fixtures)
        assert "NF002" not in _ids(proc) and "NF006" in _ids(proc), value
        proc = run_cli(cli, "check", "--format", "json", "--select", value, *fixtures)
        assert set(_ids(proc)) == {"NF002"}, value
    proc = run_cli(cli, "check", "--ignore", "NF02", *fixtures)
    assert proc.returncode == 2 and "unknown rule 'NF02'" in proc.stderr


def test_fail_on_and_exit_zero(cli):
    notes_only = ["--select", "NF006", "fixtures/nf006"]
    assert run_cli(cli, "check", *notes_only).returncode == 0, "a note does not fail by default"
    assert run_cli(cli, "check", "--fail-on", "note", *notes_only).returncode == 1
    warning = ["--select", "NF002", "fixtures/nf002"]
    assert run_cli(cli, "check", *warning).returncode == 1
    assert run_cli(cli, "check", "--fail-on", "error", *warning).returncode == 0
    proc = run_cli(cli, "check", "--exit-zero", *warning)
    assert proc.returncode == 0 and "NF002" in proc.stdout


def test_incomplete_runs_exit_2_only_when_nothing_was_found(cli, tmp_path):
    _tree(tmp_path, **{"loop.c": LOOP})
    (tmp_path / "blob.c").write_bytes(b"\x00" * 64)
    assert run_cli(cli, "check", ".", cwd=tmp_path).returncode == 1
    assert run_cli(cli, "check", "--exit-zero", ".", cwd=tmp_path).returncode == 0
    assert run_cli(cli, "check", "--fail-on", "error", ".", cwd=tmp_path).returncode == 0
    (tmp_path / "loop.c").unlink()
    for extra in ([], ["--exit-zero"], ["--fail-on", "error"]):
        proc = run_cli(cli, "check", *extra, ".", cwd=tmp_path)
        assert proc.returncode == 2 and "skipped blob.c" in proc.stderr, extra


def test_statistics_per_rule_and_top_level_directory(cli, tmp_path):
    _tree(tmp_path, **{"fs/a/one.c": LOOP, "fs/b/two.c": LOOP.replace("demo_get", "demo_two"),
                       "mm/three.c": LOOP, "top.c": LOOP})
    proc = run_cli(cli, "check", "--statistics", "--terse", ".", cwd=tmp_path)
    assert proc.returncode == 1
    assert re.search(r"^\s+4\s+NF002\s+open-coded-retry-loop$", proc.stdout, re.M), proc.stdout
    assert re.search(r"^\s+2\s+fs/$", proc.stdout, re.M)
    assert re.search(r"^\s+1\s+mm/$", proc.stdout, re.M)
    assert re.search(r"^\s+1\s+\./$", proc.stdout, re.M)
    doc = json.loads(run_cli(cli, "check", "--format", "json", "--statistics", ".", cwd=tmp_path).stdout)
    assert doc["statistics"]["rules"] == [{"rule_id": "NF002", "rule_name": "open-coded-retry-loop", "count": 4}]
    assert {"directory": "fs", "count": 2} in doc["statistics"]["directories"]


def test_terse_and_no_notes(cli):
    full = run_cli(cli, "check", "--select", "NF001", "fixtures/nf001").stdout.splitlines()
    assert any(line.startswith("    note:") for line in full)
    no_notes = run_cli(cli, "check", "--no-notes", "--select", "NF001", "fixtures/nf001").stdout.splitlines()
    assert no_notes and not any(line.startswith("    note:") for line in no_notes)
    assert any(": note: " in line for line in no_notes), "the call path stays"
    terse = run_cli(cli, "check", "--terse", "--select", "NF001", "fixtures/nf001").stdout.splitlines()
    assert terse and all("[NF001]" in line for line in terse)
    assert len(terse) == sum(1 for line in full if "[NF001]" in line)


def test_color_follows_option_and_no_color(cli, tmp_path):
    _tree(tmp_path, **{"loop.c": LOOP})
    assert not ANSI.search(run_cli(cli, "check", ".", cwd=tmp_path).stdout), "no colour into a pipe"
    coloured = run_cli(cli, "check", "--color", "always", ".", cwd=tmp_path).stdout
    assert ANSI.search(coloured)
    assert ANSI.sub("", coloured) == run_cli(cli, "check", ".", cwd=tmp_path).stdout
    assert not ANSI.search(run_cli(cli, "check", "--color", "never", ".", cwd=tmp_path).stdout)
    for args in (["--color", "auto"], []):
        proc = subprocess.run([cli, "check", *args, "."], cwd=tmp_path, env=_env(NO_COLOR="1"),
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 1 and not ANSI.search(proc.stdout)


def test_stdin_with_stdin_filename(cli, tmp_path):
    _tree(tmp_path, **{"Makefile": "VERSION = 6\nPATCHLEVEL = 1\n", "drivers/x.c": ""})
    proc = run_cli(cli, "check", "--format", "json", "--stdin-filename", "drivers/x.c", "-",
                   cwd=tmp_path, input=LOOP)
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert [(f["path"], f["line"]) for f in doc["findings"]] == [("drivers/x.c", 8)]
    assert doc["kernel_version"] == "6.1", "the Makefile above --stdin-filename counts"
    silenced = LOOP.replace("GFP_KERNEL);", "GFP_KERNEL); /* nofail-lint: ignore[NF002] */")
    proc = run_cli(cli, "check", "--stdin-filename", "drivers/x.c", "-", cwd=tmp_path, input=silenced)
    assert proc.returncode == 0 and "1 suppressed" in proc.stderr
    assert run_cli(cli, "check", "-", cwd=tmp_path, input=LOOP).stdout.startswith("-:8:7: warning:")
    assert run_cli(cli, "check", "-", ".", cwd=tmp_path, input=LOOP).returncode == 2
    assert not list(Path(os.environ.get("TMPDIR", "/tmp")).glob("nofail-lint-stdin-*/x.c"))


def test_explain_without_argument_lists_rules(cli):
    proc = run_cli(cli, "explain")
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    assert len(lines) == 8 and lines[0].startswith("NF001  nofail-vmalloc-range")
    assert any(re.match(r"NF006\s+nofail-dead-null-check\s+note\s", line) for line in lines)


def test_model_kernel_version_out_of_range_is_an_error(cli):
    for v in ("5.4", "7.0"):
        for args in (["model", "--kernel-version", v], ["model", "kmalloc", "--kernel-version", v]):
            proc = run_cli(cli, *args)
            assert proc.returncode == 2, args
            _one_error_line(proc.stderr, "outside the allocator model's range 6.1-6.12")
    assert run_cli(cli, "model", "--kernel-version", "6.6").returncode == 0


def test_check_kernel_version_out_of_range_warns(cli, tmp_path):
    _tree(tmp_path, **{"loop.c": LOOP})
    proc = run_cli(cli, "check", "--kernel-version", "5.4", ".", cwd=tmp_path)
    assert proc.returncode == 1
    assert "warning: Linux 5.4 is outside the allocator model's range" in proc.stderr


def test_json_fingerprints_match_sarif(cli):
    doc = json.loads(run_cli(cli, "check", "--format", "json", "fixtures").stdout)
    sarif = json.loads(run_cli(cli, "check", "--format", "sarif", "fixtures").stdout)
    by_place = {(r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
                 r["locations"][0]["physicalLocation"]["region"]["startLine"], r["ruleId"]):
                r["partialFingerprints"]["primaryLocationLineHash"] for r in sarif["runs"][0]["results"]}
    assert len(doc["findings"]) == len(by_place) > 10
    for f in doc["findings"]:
        assert f["fingerprint"] == by_place[(f["path"], f["line"], f["rule_id"])]


def test_check_help_shows_exit_codes_examples_and_rules(cli):
    out = run_cli(cli, "check", "--help").stdout
    for needle in ("Exit codes", "130", "--fail-on", "Examples", "--format sarif", "Rules",
                   "NF001 nofail-vmalloc-range", "NF008 nofail-atomic-context", "[note]"):
        assert needle in out, needle


def test_progress_lines_when_stderr_is_not_a_terminal(cli, tmp_path):
    for i in range(40):
        (tmp_path / f"f{i}.c").write_text(LOOP.replace("demo_get", f"demo_get{i}"))
    proc = run_cli(cli, "check", "--progress", "--no-cache", "-j", "2", ".", cwd=tmp_path)
    lines = [line for line in proc.stderr.splitlines() if "files/s" in line]
    assert len(lines) >= 2 and "\r" not in proc.stderr, proc.stderr
    assert lines[-1].startswith("nofail-lint: 40/40 files") and "linking and checking" in lines[-1]
    quiet = run_cli(cli, "check", "--no-cache", ".", cwd=tmp_path)
    assert "files/s" not in quiet.stderr, "no progress by default when stderr is no terminal"


def test_jobs_capped_with_a_warning(cli, tmp_path):
    for i in range(40):
        (tmp_path / f"f{i}.c").write_text(LOOP.replace("demo_get", f"demo_get{i}"))
    proc = run_cli(cli, "check", "--format", "json", "--no-cache", "-j", "999", ".", cwd=tmp_path)
    assert proc.returncode == 1
    assert re.search(r"warning: --jobs 999 lowered to \d+ \(at most one worker per CPU", proc.stderr)
    assert len(json.loads(proc.stdout)["findings"]) == 40


# ------------------------------------------------------------------ silent successes

def test_silent_successes_warn(cli, tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "README").write_text("no C here\n")
    proc = run_cli(cli, "check", "docs", cwd=tmp_path)
    assert proc.returncode == 0 and "warning: no .c/.h files to check in docs" in proc.stderr

    _tree(tmp_path, **{"src/loop.c": LOOP})
    (tmp_path / "src/.nofail-lint.toml").write_text('exclude = ["**"]\n')
    proc = run_cli(cli, "check", "src", cwd=tmp_path)
    assert proc.returncode == 0
    assert re.search(r"warning: no \.c/\.h files to check in src \(1 excluded by .*\.nofail-lint\.toml\)",
                     proc.stderr), proc.stderr

    (tmp_path / "src/.nofail-lint.toml").write_text(
        'ignore = ["NF001", "NF002", "NF003", "NF004", "NF005", "NF006", "NF007", "NF008"]\n')
    proc = run_cli(cli, "check", "src", cwd=tmp_path)
    assert proc.returncode == 0
    assert "warning: no rules to run: the config" in proc.stderr and "ignores every rule" in proc.stderr


# ------------------------------------------------------------------ suppressions

LOOP_SHAPES = {
    "do": ("\tdo {\n\t\tp = kmalloc(n, GFP_KERNEL);\n\t} while (!p);\n", "\tdo {"),
    "while": ("\twhile (!(p = kmalloc(n, GFP_KERNEL)))\n\t\tcpu_relax();\n", "\twhile ("),
    "for": ("\tfor (;;) {\n\t\tp = kmalloc(n, GFP_KERNEL);\n\t\tif (p)\n\t\t\tbreak;\n\t}\n", "\tfor ("),
    "goto": ("retry:\n\tp = kmalloc(n, GFP_KERNEL);\n\tif (!p)\n\t\tgoto retry;\n", "retry:"),
}


def _shape_file(body: str, head: str, comment: str) -> str:
    body = body.replace(head, f"\t/* {comment} */\n{head}", 1)
    return f"void *demo_get(size_t n)\n{{\n\tvoid *p;\n\n{body}\treturn p;\n}}\n"


def test_ignore_above_the_loop_head_silences_the_loop(cli, tmp_path):
    for kind, (body, head) in LOOP_SHAPES.items():
        (tmp_path / f"{kind}.c").write_text(_shape_file(body, head, "nofail-lint: ignore[NF002] -- bounded"))
        (tmp_path / f"{kind}_other.c").write_text(_shape_file(body, head, "nofail-lint: ignore[NF001]"))
    proc = run_cli(cli, "check", "--format", "json", "--show-suppressed", ".", cwd=tmp_path)
    doc = json.loads(proc.stdout)
    assert sorted(f["path"] for f in doc["suppressed"]) == sorted(f"{k}.c" for k in LOOP_SHAPES)
    assert sorted(f["path"] for f in doc["findings"]) == sorted(f"{k}_other.c" for k in LOOP_SHAPES)


def test_unknown_rule_in_a_suppression_warns(cli, tmp_path):
    (tmp_path / "loop.c").write_text(
        LOOP.replace("GFP_KERNEL);", "GFP_KERNEL); /* nofail-lint: ignore[NF02] */"))
    proc = run_cli(cli, "check", ".", cwd=tmp_path)
    assert proc.returncode == 1, "a typo silences nothing"
    assert "warning: loop.c:8: unknown rule 'NF02' in a nofail-lint: ignore comment" in proc.stderr


def test_report_unused_suppressions(cli, tmp_path):
    used = LOOP.replace("GFP_KERNEL);", "GFP_KERNEL); /* nofail-lint: ignore[NF002] */")
    unused = "/* nofail-lint: ignore[NF001] */\nint x;\n// nofail-lint: ignore\nint y;\n"
    _tree(tmp_path, **{"used.c": used, "unused.c": unused})
    proc = run_cli(cli, "check", "--report-unused-suppressions", ".", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "unused suppression" in line]
    assert warnings == ["nofail-lint: warning: unused.c:1: unused suppression `nofail-lint: ignore[NF001]`",
                        "nofail-lint: warning: unused.c:3: unused suppression `nofail-lint: ignore`"]
    assert "unused suppression" not in run_cli(cli, "check", ".", cwd=tmp_path).stderr


# ------------------------------------------------------------------ resource guards

def test_huge_and_deeply_nested_files_are_skipped_quickly(cli, tmp_path):
    (tmp_path / "loop.c").write_text(LOOP)
    (tmp_path / "huge.c").write_text("/* generated */\nstatic int gfp_table[] = {\n"
                                     + "\t1, 2, 3, 4, 5, 6, 7, 8,\n" * 400_000 + "};\n")
    (tmp_path / "deep.c").write_text("void f(gfp_t gfp)\n" + "{" * 100_000 + "}" * 100_000 + "\n")
    started = time.monotonic()
    proc = run_cli(cli, "check", "--no-cache", "-j", "1", ".", cwd=tmp_path)
    assert time.monotonic() - started < 60
    assert proc.returncode == 1, "loop.c's finding is still made"
    assert re.search(r"skipped huge\.c: too large to analyse: \d+\.\d MB", proc.stderr), proc.stderr
    assert "skipped deep.c: too deeply nested to analyse" in proc.stderr
    (tmp_path / "loop.c").unlink()
    assert run_cli(cli, "check", "--no-cache", ".", cwd=tmp_path).returncode == 2, "only incomplete: exit 2"


def test_sarif_still_valid_with_new_options(cli, tmp_path):
    """--statistics and --terse shape text and JSON only; SARIF stays the same document."""
    plain = run_cli(cli, "check", "--format", "sarif", "fixtures/nf002", cwd=REPO).stdout
    shaped = run_cli(cli, "check", "--format", "sarif", "--terse", "--no-notes", "fixtures/nf002",
                     cwd=REPO).stdout
    assert plain == shaped


# ------------------------------------------------------------------ incomplete analysis

# a function whose two #ifdef branches each open a brace: the parser loses
# the whole function, and with it an NF004 allocation
LOST_FUNCTION = """\
#include <linux/slab.h>

int
demo_link(struct demo *d)
{
\tvoid *page;

#ifdef CONFIG_DEMO_LEGACY
\tif (d->legacy) {
#else
\tif (d->modern) {
#endif
\t\tpage = kmalloc(64, GFP_ATOMIC | __GFP_NOFAIL);
\t}
\treturn 0;
}
"""


def _deep_wrappers(levels: int) -> str:
    out = ["void *w0(size_t n, gfp_t gfp)\n{\n\treturn kmalloc(n, gfp);\n}\n"]
    out += [f"void *w{i}(size_t n, gfp_t gfp)\n{{\n\treturn w{i - 1}(n, gfp);\n}}\n" for i in range(1, levels)]
    out.append(f"void *top(void)\n{{\n\treturn w{levels - 1}(8, GFP_ATOMIC | __GFP_NOFAIL);\n}}\n")
    return "\n".join(out)


def _many_paths(n: int) -> str:
    flags = ["__GFP_ZERO", "__GFP_NOWARN", "__GFP_COMP", "__GFP_ACCOUNT", "__GFP_HIGH", "__GFP_MEMALLOC",
             "__GFP_NOMEMALLOC", "__GFP_HARDWALL", "__GFP_THISNODE", "__GFP_RECLAIMABLE"]
    pairs = [(a, b) for i, a in enumerate(flags) for b in flags[i + 1:]][:n]
    body = "".join(f"\tif (i == {k})\n\t\treturn kmalloc(n, gfp | {a} | {b});\n" for k, (a, b) in enumerate(pairs))
    return (f"void *many(size_t n, gfp_t gfp, int i)\n{{\n{body}\treturn NULL;\n}}\n\n"
            "void *user(void)\n{\n\treturn many(8, GFP_KERNEL, 1);\n}\n")


def test_parse_error_that_loses_code_is_reported_and_exits_2(cli, tmp_path):
    _tree(tmp_path, **{"lost.c": LOST_FUNCTION})
    proc = run_cli(cli, "check", ".", cwd=tmp_path)
    assert proc.returncode == 2, "nothing found, but not everything was analysed"
    assert "warning: not analysed: lost.c:3-16: code the parser could not read holds allocation calls" \
        in proc.stderr, proc.stderr
    assert "1 part(s) not analysed" in proc.stderr
    doc = json.loads(run_cli(cli, "check", "--format", "json", ".", cwd=tmp_path).stdout)
    assert [(i["path"], i["line"], i["end_line"], i["kind"]) for i in doc["incomplete"]] == \
        [("lost.c", 3, 16, "parse-error")]
    sarif = json.loads(run_cli(cli, "check", "--format", "sarif", ".", cwd=tmp_path).stdout)
    notes = sarif["runs"][0]["invocations"][0]["toolExecutionNotifications"]
    assert len(notes) == 1 and notes[0]["message"]["text"].startswith("parse-error: ")
    region = notes[0]["locations"][0]["physicalLocation"]["region"]
    assert (region["startLine"], region["endLine"]) == (3, 16)
    github = run_cli(cli, "check", "--format", "github", ".", cwd=tmp_path).stdout
    assert github.startswith("::warning file=lost.c,line=3,endLine=16,title=nofail-lint incomplete (parse-error)::")
    quiet = run_cli(cli, "check", "-q", ".", cwd=tmp_path)
    assert quiet.returncode == 2
    assert quiet.stderr.strip() == ("nofail-lint: warning: 1 part(s) of the input not analysed "
                                    "(listed without -q, and in JSON/SARIF)")


def test_ordinary_parse_errors_inside_analysed_functions_stay_quiet(cli, tmp_path):
    """Most kernel files have some ERROR node from macros; only lost code counts."""
    _tree(tmp_path, **{"macro.c": "#include <linux/slab.h>\n\nvoid *demo(size_t n)\n{\n"
                                  "\tDECLARE_THING(x) y;\n\treturn kmalloc(n, GFP_KERNEL);\n}\n"})
    proc = run_cli(cli, "check", "--format", "json", ".", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["incomplete"] == []


def test_deep_wrapper_chains_are_followed_to_the_end(cli, tmp_path):
    """A summary per function needs no cap on the chain's length."""
    _tree(tmp_path, **{"deep.c": _deep_wrappers(40)})
    proc = run_cli(cli, "check", "--format", "json", ".", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["incomplete"] == []
    [nf004] = [f for f in doc["findings"] if f["rule_id"] == "NF004"]
    assert nf004["function"] == "top"
    assert "not analysed" not in proc.stderr


def test_gfp_flow_limits_are_reported(cli, tmp_path):
    _tree(tmp_path, **{"many.c": _many_paths(40)})
    proc = run_cli(cli, "check", "--format", "json", ".", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    found = {(i["path"], i["kind"]): i["message"] for i in json.loads(proc.stdout)["incomplete"]}
    assert "more than 32 distinct gfp paths" in found[("many.c", "limit")]
    assert proc.stderr.count("warning: not analysed:") == 1
    many = {f"m{k}.c": _many_paths(40).replace("many", f"many{k}").replace("user", f"user{k}")
            for k in range(27)}
    _tree(tmp_path, **many)
    listed = run_cli(cli, "check", ".", cwd=tmp_path)
    assert listed.stderr.count("warning: not analysed:") == 21, listed.stderr
    assert "warning: not analysed: 8 more part(s) (all of them in --format json/sarif/github)" in listed.stderr
    few = run_cli(cli, "check", "--format", "json", "--no-cache", "-", cwd=tmp_path,
                  input=_many_paths(20))
    assert few.returncode == 0 and json.loads(few.stdout)["incomplete"] == []


# ------------------------------------------------------------------ adoption as written

def test_readme_install_lines_name_no_tag():
    """Only the branch main is published, so a fresh clone has no tags: the
    README's install lines and pre-commit revs name none (a branch, a commit
    the reader looks up, or the clone itself), and the CHANGELOG has the
    package's version."""
    from nofail_lint import __version__
    readme = (REPO / "README.md").read_text()
    assert "pip install nofail-lint" not in readme, "not on PyPI"
    pins = set(re.findall(r"rev: (v[\w.]*\w)", readme)) | set(re.findall(r"nofail-lint@(v[\w.]*\w)", readme)) \
        | set(re.findall(r"git\+file://\S+@(v[\w.]*\w)", readme))
    assert pins == set(), pins
    assert re.search(rf"^## {re.escape(__version__)}\b", (REPO / "CHANGELOG.md").read_text(), re.M)


# ------------------------------------------------------------------ guard helpers (in-process)

def test_nesting_depth_counts_brackets_and_unclosed_openers():
    from nofail_lint.engine.workers import nesting_depth
    assert nesting_depth(b"int f(void) { return g(a[1]); }") == 3
    assert nesting_depth(b"{ {} {} { ( [ ] ) } }") == 4
    assert nesting_depth(b"{" * 50) == 50
    assert nesting_depth(b"}}}{{" + b"{}" * 3) == 3
    assert nesting_depth(b"{" * 10_000 + b"}" * 10_000, limit=500) == 500


def test_time_budget_interrupts_a_slow_analysis():
    from nofail_lint.engine import workers
    started = time.monotonic()
    with pytest.raises(workers._FileTimeout):
        with workers._time_budget(0.2):
            while True:
                sum(range(1000))
    assert time.monotonic() - started < 2


def test_progress_shows_an_eta_on_long_runs(monkeypatch, capsys):
    from nofail_lint import cli as cli_module
    clock = iter([0.0, 0.0, 3.0, 6.0, 9.0])
    monkeypatch.setattr(cli_module.time, "monotonic", lambda: next(clock))
    progress = cli_module._Progress("lines")
    progress(0, 100)
    progress(10, 100)
    progress(20, 100)
    progress(100, 100)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "nofail-lint: 0/100 files (0 files/s)"
    assert lines[1] == "nofail-lint: 20/100 files (3 files/s, ETA 24s)"
    assert lines[2].startswith("nofail-lint: 100/100 files") and "linking and checking" in lines[2]
