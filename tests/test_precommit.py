"""The pre-commit hook (.pre-commit-hooks.yaml), run by the real `pre-commit` tool.

The project is cloned at HEAD from the repository the tests run from (so the
hook files must be committed; uncommitted changes elsewhere do not matter),
and throw-away kernel-style git repos use it through a local-path
`.pre-commit-config.yaml`. pre-commit builds the hook's virtualenv from the
clone (pip install, so the first run needs the package index or a pip
cache) once for the module, which makes these the slowest tests: well under
a minute here.
"""
from __future__ import annotations

import os
import re
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


def _needs_git_and_pre_commit() -> str:
    """The pre-commit executable; skips without git, pre-commit or a git checkout to clone."""
    if shutil.which("git") is None:
        pytest.skip("needs git")
    pre_commit = _pre_commit()
    if pre_commit is None:
        pytest.skip("pre-commit is not installed (pip install '.[test]')")
    if not (REPO / ".git").exists():
        pytest.skip("not running from a git checkout: nothing to clone the hook from")
    return pre_commit


@pytest.fixture(scope="module")
def hook_source(tmp_path_factory):
    """(pre-commit executable, clone of this repository, its HEAD, a shared PRE_COMMIT_HOME)."""
    pre_commit = _needs_git_and_pre_commit()
    base = tmp_path_factory.mktemp("hook")
    env = _env(base)
    tracked = _run(["git", "ls-files", "--error-unmatch", ".pre-commit-hooks.yaml"], REPO, env, check=False)
    assert tracked.returncode == 0, ".pre-commit-hooks.yaml must be committed"
    clone = base / "nofail-lint"
    _run(["git", "clone", "-q", str(REPO), str(clone)], base, env)
    rev = _run(["git", "rev-parse", "HEAD"], clone, env).stdout.strip()
    return pre_commit, clone, rev, base / "pre-commit-home"


def _project(tmp_path: Path, hook_source, hook_id: str = "nofail-lint") -> tuple[Path, dict]:
    pre_commit, clone, rev, home = hook_source
    env = _env(tmp_path)
    env["PRE_COMMIT_HOME"] = str(home)
    project = tmp_path / "linux"
    project.mkdir()
    _run(["git", "init", "-q"], project, env)
    (project / ".pre-commit-config.yaml").write_text(
        f"repos:\n  - repo: {clone}\n    rev: {rev}\n    hooks:\n      - id: {hook_id}\n")
    _run([pre_commit, "install"], project, env)
    return project, env


OLD_FINDINGS = RETRY_LOOP + "".join(RETRY_LOOP.replace("demo_get", f"demo_get{i}") for i in (2, 3))


@pytest.mark.slow
def test_pre_commit_hook_fails_on_a_retry_loop_and_passes_once_fixed(tmp_path, hook_source):
    project, env = _project(tmp_path, hook_source)
    (project / "README").write_text("not C: the hook must not see it\n")
    _blocks_a_loop_then_passes(project, env)


def _blocks_a_loop_then_passes(project: Path, env: dict):
    """Commit a retry loop: the hook blocks it; commit the fix: it passes."""
    (project / "mm").mkdir()
    (project / "mm" / "demo.c").write_text(RETRY_LOOP)
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


@pytest.mark.slow
def test_pre_commit_hook_reports_only_staged_lines(tmp_path, hook_source):
    """A file with three old findings: touching it elsewhere commits; a new
    retry loop in it is the only finding reported, and blocks the commit."""
    project, env = _project(tmp_path, hook_source)
    (project / "mm").mkdir()
    (project / "mm" / "old.c").write_text(OLD_FINDINGS)
    _run(["git", "add", "."], project, env)
    _run(["git", "commit", "-q", "--no-verify", "-m", "history with three findings"], project, env)

    with open(project / "mm" / "old.c", "a") as fh:
        fh.write("/* a comment */\n")
    _run(["git", "add", "."], project, env)
    touched = _run(["git", "commit", "-q", "-m", "comment only"], project, env, check=False)
    assert touched.returncode == 0, touched.stdout + touched.stderr

    new_loop = RETRY_LOOP.replace("demo_get", "demo_new")
    with open(project / "mm" / "old.c", "a") as fh:
        fh.write(new_loop)
    (project / "mm" / "unstaged.c").write_text(RETRY_LOOP.replace("demo_get", "demo_unstaged"))
    _run(["git", "add", "mm/old.c"], project, env)
    blocked = _run(["git", "commit", "-q", "-m", "a new retry loop"], project, env, check=False)
    out = blocked.stdout + blocked.stderr
    assert blocked.returncode != 0, out
    first = OLD_FINDINGS.count("\n") + 1 + 1            # after the old functions and the comment
    assert re.findall(r"mm/\w+\.c:\d+:\d+: warning", out) == [f"mm/old.c:{first + 5}:7: warning"], out
    assert "4 outside --diff-staged" in out    # the 3 old ones and the untracked file's


@pytest.mark.slow
def test_whole_tree_hook_reports_every_finding(tmp_path, hook_source):
    project, env = _project(tmp_path, hook_source, "nofail-lint-all")
    (project / "mm").mkdir()
    (project / "mm" / "old.c").write_text(OLD_FINDINGS)
    _run(["git", "add", "."], project, env)
    failed = _run([hook_source[0], "run", "--all-files"], project, env, check=False)
    assert failed.returncode != 0
    assert len(re.findall(r"mm/old\.c:\d+:\d+: warning", failed.stdout + failed.stderr)) == 3


def _readme_hook() -> str:
    """The first YAML block of the README's pre-commit section, as printed."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## pre-commit\n", 1)[1].split("\n## ", 1)[0]
    m = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert m, "README's pre-commit section has no YAML snippet"
    return m.group(1)


def test_readme_names_no_release_tag():
    """Only main is published: an install line or rev naming a tag fails as copied."""
    for name in ("README.md", ".pre-commit-hooks.yaml"):
        text = (REPO / name).read_text(encoding="utf-8")
        assert not re.search(r"nofail-lint(?:\.git)?@v\d|rev: v\d", text), name       # actions@v4 are not ours
    assert "repo: local" in _readme_hook() and "language: system" in _readme_hook()


@pytest.mark.slow
def test_readme_pre_commit_snippet_in_a_fresh_clone_without_tags(tmp_path):
    """A fresh clone of the repository with no tags, `pip install .` in it
    (the README's install line), and the README's pre-commit snippet as
    printed: the hook blocks a commit with a retry loop and passes the fix."""
    pre_commit = _needs_git_and_pre_commit()
    env = _env(tmp_path)
    clone = tmp_path / "nofail-lint"
    _run(["git", "clone", "-q", "--no-tags", str(REPO), str(clone)], tmp_path, env)
    assert _run(["git", "tag", "-l"], clone, env).stdout == ""
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], tmp_path, env)
    _run([str(venv / "bin" / "pip"), "install", "-q", "."], clone, env)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    project = tmp_path / "linux"
    project.mkdir()
    _run(["git", "init", "-q"], project, env)
    (project / ".pre-commit-config.yaml").write_text(_readme_hook())
    _run([pre_commit, "install"], project, env)
    _blocks_a_loop_then_passes(project, env)
