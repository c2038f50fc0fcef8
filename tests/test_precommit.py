"""The pre-commit hook (.pre-commit-hooks.yaml), run by the real `pre-commit` tool.

The project is cloned at HEAD from the repository the tests run from (so the
hook files must be committed; uncommitted changes elsewhere do not matter),
and a throw-away kernel-style git repo uses it through a local-path
`.pre-commit-config.yaml`. pre-commit builds the hook's virtualenv from the
clone (pip install, so the first run needs the package index or a pip
cache), which makes this the slowest test: well under a minute here.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, RETRY_LOOP

FIXED = """\
void *demo_get(size_t n)
{
\treturn kmalloc(n, GFP_KERNEL | __GFP_NOFAIL);
}
"""


def _pre_commit() -> str | None:
    beside = Path(sys.executable).parent / "pre-commit"
    return str(beside) if beside.exists() else shutil.which("pre-commit")


def _env(tmp_path: Path) -> dict:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.org",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.org",
               PRE_COMMIT_HOME=str(tmp_path / "pre-commit-home"),
               GIT_CONFIG_NOSYSTEM="1", HOME=str(tmp_path / "home"))
    (tmp_path / "home").mkdir(exist_ok=True)
    return env


def _run(args, cwd, env, check=True) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if check:
        assert proc.returncode == 0, f"{args}: {proc.stdout}\n{proc.stderr}"
    return proc


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_pre_commit_hook_fails_on_a_retry_loop_and_passes_once_fixed(tmp_path):
    pre_commit = _pre_commit()
    if pre_commit is None:
        pytest.skip("pre-commit is not installed (pip install '.[test]')")
    if not (REPO / ".git").exists():
        pytest.skip("not running from a git checkout: nothing to clone the hook from")
    env = _env(tmp_path)
    tracked = _run(["git", "ls-files", "--error-unmatch", ".pre-commit-hooks.yaml"], REPO, env, check=False)
    assert tracked.returncode == 0, ".pre-commit-hooks.yaml must be committed"

    clone = tmp_path / "nofail-lint"
    _run(["git", "clone", "-q", str(REPO), str(clone)], tmp_path, env)
    rev = _run(["git", "rev-parse", "HEAD"], clone, env).stdout.strip()

    project = tmp_path / "linux"
    project.mkdir()
    _run(["git", "init", "-q"], project, env)
    (project / ".pre-commit-config.yaml").write_text(
        f"repos:\n  - repo: {clone}\n    rev: {rev}\n    hooks:\n      - id: nofail-lint\n")
    (project / "mm").mkdir()
    (project / "mm" / "demo.c").write_text(RETRY_LOOP)
    (project / "README").write_text("not C: the hook must not see it\n")
    _run([pre_commit, "install"], project, env)
    _run(["git", "add", "."], project, env)

    failed = _run(["git", "commit", "-q", "-m", "add a retry loop"], project, env, check=False)
    out = failed.stdout + failed.stderr
    assert failed.returncode != 0, out
    assert "mm/demo.c:6:7: warning: open-coded retry loop around kmalloc()" in out, out

    (project / "mm" / "demo.c").write_text(FIXED)
    _run(["git", "add", "."], project, env)
    passed = _run(["git", "commit", "-q", "-m", "use __GFP_NOFAIL"], project, env, check=False)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "nofail-lint" in passed.stdout + passed.stderr and "Passed" in passed.stdout + passed.stderr
