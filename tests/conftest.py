"""Shared helpers: tests drive the installed `nofail-lint` console script."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"
EXAMPLE_TREE = REPO / "examples" / "demo-tree"
# every run in the suite shares one fresh facts cache, as a user's runs would
# (tests of the cache itself pass their own --cache-dir / --no-cache)
TEST_CACHE = tempfile.mkdtemp(prefix="nofail-lint-test-cache-")
# the plainest NF002 positive (reported at line 6), for tests that need one
RETRY_LOOP = """\
void *demo_get(size_t n)
{
\tvoid *p;

\tdo {
\t\tp = kmalloc(n, GFP_KERNEL);
\t} while (!p);
\treturn p;
}
"""
EXPECT = re.compile(r"/\*\s*expect:\s*([A-Z0-9,\s]+?)\s*\*/")
# a known miss: the line should be reported but is not yet (semgrep's todoruleid:)
TODO_EXPECT = re.compile(r"/\*\s*todo-expect:\s*([A-Z0-9,\s]+?)\s*\*/")


def expect_marker(tag: str) -> re.Pattern:
    """`/* expect-<tag>: NF00x */`: expectations that hold for another target (e.g. a kernel version)."""
    return re.compile(r"/\*\s*expect-" + re.escape(tag) + r":\s*([A-Z0-9,\s]+?)\s*\*/")


@pytest.fixture(scope="session")
def cli() -> str:
    beside = Path(sys.executable).parent / "nofail-lint"
    exe = str(beside) if beside.exists() else shutil.which("nofail-lint")
    assert exe, "the nofail-lint console script is not installed (pip install .)"
    return exe


def run_cli(cli: str, *args: str, cwd: Path | str = REPO, **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)   # test the installed package, not the checkout
    env.setdefault("NOFAIL_LINT_CACHE_DIR", TEST_CACHE)
    timeout = int(os.environ.get("NOFAIL_LINT_TEST_TIMEOUT", "600"))     # real trees on a busy machine: more
    return subprocess.run([cli, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout, **kw)


def expectations(root: Path, relative_to: Path, marker: re.Pattern = EXPECT) -> set[tuple[str, int, str]]:
    """(path, line, rule) for every `/* expect: NF00x[, ...] */` marker under root."""
    out = set()
    for path in sorted(root.rglob("*")):
        if path.suffix not in (".c", ".h"):
            continue
        rel = path.relative_to(relative_to).as_posix()
        for lineno, line in enumerate(path.read_bytes().decode("utf-8", "replace").split("\n"), 1):
            for m in marker.finditer(line):
                for rule in m.group(1).split(","):
                    if rule.strip():
                        out.add((rel, lineno, rule.strip()))
    return out


def reported(cli: str, target: Path, cwd: Path, *extra: str) -> tuple[set[tuple[str, int, str]], dict]:
    proc = run_cli(cli, "check", "--format", "json", *extra, str(target.relative_to(cwd)), cwd=cwd)
    assert proc.returncode in (0, 1), proc.stderr
    doc = json.loads(proc.stdout)
    return {(f["path"], f["line"], f["rule_id"]) for f in doc["findings"]}, doc
