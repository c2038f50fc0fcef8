"""The facts cache: same findings cold, warm and after edits; damaged entries and
databases are detected and recomputed; --no-cache, --cache-dir, the env var and
the XDG default choose where (or whether) it lives."""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

from conftest import EXAMPLE_TREE, FIXTURES, RETRY_LOOP, run_cli


def _tree(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    shutil.copytree(EXAMPLE_TREE, tree)
    return tree


def _check(cli, tree: Path, cache: Path | None, *extra: str) -> subprocess.CompletedProcess:
    opts = ["--no-cache"] if cache is None else ["--cache-dir", str(cache)]
    proc = run_cli(cli, "check", "--format", "sarif", *opts, *extra, ".", cwd=tree)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode in (0, 1), proc.stderr
    return proc


def _from_cache(proc) -> int:
    summary = [line for line in proc.stderr.splitlines() if " finding(s)" in line][-1]
    if "from cache)" not in summary:
        return 0
    return int(summary.split(" file(s) (")[1].split(" from cache")[0])


def _db(cache: Path) -> Path:
    (db,) = cache.glob("facts-*.sqlite")
    return db


def _age(tree: Path, seconds: int = 60):
    """Files older than the racy window, so the cache records their stat."""
    old = os.stat(tree).st_mtime - seconds
    for p in tree.rglob("*"):
        os.utime(p, (old, old))


def test_cold_warm_touched_and_uncached_runs_print_the_same_report(cli, tmp_path):
    tree = _tree(tmp_path)
    _age(tree)
    cache = tmp_path / "cache"
    uncached = _check(cli, tree, None)
    cold = _check(cli, tree, cache)
    warm = _check(cli, tree, cache)
    (tree / "fs" / "demofs" / "demofs_inode.c").touch()
    touched = _check(cli, tree, cache, "-j", "1")
    assert uncached.stdout == cold.stdout == warm.stdout == touched.stdout
    assert json.loads(cold.stdout)["runs"][0]["results"], "the demo tree has findings"
    assert _from_cache(cold) == 0
    files = len(list(tree.rglob("*.[ch]")))
    assert _from_cache(warm) == files
    assert _from_cache(touched) == files          # same bytes: hashed, not re-extracted


def test_an_edited_file_is_extracted_again_and_its_findings_change(cli, tmp_path):
    tree = tmp_path / "t"
    tree.mkdir()
    (tree / "a.c").write_text(RETRY_LOOP)
    (tree / "b.c").write_text("int g(void)\n{\n\treturn 0;\n}\n")
    _age(tree)
    cache = tmp_path / "cache"
    first = json.loads(_check(cli, tree, cache).stdout)["runs"][0]["results"]
    assert [r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in first] == ["a.c"]
    (tree / "b.c").write_text(RETRY_LOOP.replace("demo_get", "g"))
    proc = _check(cli, tree, cache)
    second = json.loads(proc.stdout)["runs"][0]["results"]
    assert sorted(r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in second) == ["a.c", "b.c"]
    assert _from_cache(proc) == 1
    (tree / "a.c").write_text("int f(void)\n{\n\treturn 1;\n}\n")
    third = json.loads(_check(cli, tree, cache).stdout)["runs"][0]["results"]
    assert [r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in third] == ["b.c"]


def test_same_content_under_another_name_reports_the_new_name(cli, tmp_path):
    tree = tmp_path / "t"
    tree.mkdir()
    (tree / "a.c").write_text(RETRY_LOOP)
    cache = tmp_path / "cache"
    _check(cli, tree, cache)
    (tree / "a.c").rename(tree / "renamed.c")
    doc = json.loads(_check(cli, tree, cache).stdout)
    (result,) = doc["runs"][0]["results"]
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "renamed.c"


def _corrupt_every(db: Path, table: str):
    con = sqlite3.connect(db)
    with con:
        for (key,) in con.execute(f"SELECT rowid FROM {table}").fetchall():
            con.execute(f"UPDATE {table} SET data = substr(data, 1, length(data) / 2) WHERE rowid = ?", (key,))
    con.close()


def test_truncated_entries_are_detected_and_recomputed(cli, tmp_path):
    tree = _tree(tmp_path)
    _age(tree)
    cache = tmp_path / "cache"
    cold = _check(cli, tree, cache)
    _corrupt_every(_db(cache), "facts")
    _corrupt_every(_db(cache), "results")      # so the run must link again, loading the facts
    _corrupt_every(_db(cache), "runs")         # (not re-check from the last run's record)
    again = _check(cli, tree, cache)
    assert again.stdout == cold.stdout
    assert "damaged entries recomputed" in again.stderr
    # the damaged entries were replaced: a third run finds every one intact
    con = sqlite3.connect(_db(cache))
    from nofail_lint.cache import unseal
    for digest, data in con.execute("SELECT digest, data FROM facts"):
        unseal(digest, data)
    con.close()
    assert _check(cli, tree, cache).stdout == cold.stdout


def test_a_damaged_database_file_is_set_aside_with_a_warning(cli, tmp_path):
    tree = _tree(tmp_path)
    cache = tmp_path / "cache"
    cold = _check(cli, tree, cache)
    db = _db(cache)
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    db.write_bytes(db.read_bytes()[:1000])              # truncated mid-page
    proc = _check(cli, tree, cache)
    assert proc.stdout == cold.stdout
    assert "nofail-lint: warning: cache" in proc.stderr
    db.write_bytes(b"this is not a database\n" * 100)   # garbage
    proc = _check(cli, tree, cache)
    assert proc.stdout == cold.stdout
    assert "nofail-lint: warning: cache" in proc.stderr
    healthy = _check(cli, tree, cache)                   # started anew: quiet again
    assert healthy.stdout == cold.stdout
    assert "warning" not in healthy.stderr


def test_where_the_cache_lives(cli, tmp_path):
    tree = _tree(tmp_path)
    env_dir, xdg = tmp_path / "from-env", tmp_path / "xdg"
    env = {k: v for k, v in os.environ.items() if k != "NOFAIL_LINT_CACHE_DIR"}
    proc = subprocess.run([cli, "check", "-q", "."], cwd=tree, capture_output=True, text=True,
                          env={**env, "NOFAIL_LINT_CACHE_DIR": str(env_dir)})
    assert proc.returncode == 1 and list(env_dir.glob("facts-*.sqlite"))
    proc = subprocess.run([cli, "check", "-q", "."], cwd=tree, capture_output=True, text=True,
                          env={**env, "XDG_CACHE_HOME": str(xdg)})
    assert proc.returncode == 1 and list((xdg / "nofail-lint").glob("facts-*.sqlite"))
    off = tmp_path / "off"
    proc = subprocess.run([cli, "check", "-q", "--no-cache", "."], cwd=tree, capture_output=True, text=True,
                          env={**env, "NOFAIL_LINT_CACHE_DIR": str(off), "XDG_CACHE_HOME": str(off)})
    assert proc.returncode == 1 and not off.exists()


def test_an_unusable_cache_directory_does_not_stop_the_run(cli, tmp_path):
    tree = _tree(tmp_path)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    proc = run_cli(cli, "check", "--format", "sarif", "--cache-dir", str(blocker / "sub"), ".", cwd=tree)
    assert proc.returncode == 1
    assert "running without a cache" in proc.stderr
    assert proc.stdout == _check(cli, tree, None).stdout


def test_a_database_that_cannot_be_opened_warns_at_once(cli, tmp_path):
    """Not a lock to wait for: the run goes on without a cache straight away."""
    from nofail_lint.cache import namespace
    tree = _tree(tmp_path)
    cache = tmp_path / "cache"
    (cache / f"facts-{namespace()}.sqlite").mkdir(parents=True)    # a directory where the file goes
    start = time.monotonic()
    proc = run_cli(cli, "check", "--format", "sarif", "--cache-dir", str(cache), ".", cwd=tree)
    assert time.monotonic() - start < 5
    assert proc.returncode == 1 and "running without a cache" in proc.stderr
    assert proc.stdout == _check(cli, tree, None).stdout


def test_concurrent_runs_share_one_cache(cli, tmp_path):
    fixtures = tmp_path / "fixtures"
    shutil.copytree(FIXTURES, fixtures)
    cache = tmp_path / "cache"
    cmd = [cli, "check", "--format", "sarif", "--cache-dir", str(cache), "-j", "1", "."]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    procs = [subprocess.Popen(cmd, cwd=fixtures, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(3)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 1 for p in procs), [o[1][-500:] for o in outs]
    assert all("Traceback" not in err and "warning" not in err for _, err in outs)
    assert outs[0][0] == outs[1][0] == outs[2][0]
    assert _check(cli, fixtures, cache).stdout == outs[0][0]


def test_cache_command_shows_and_clears(cli, tmp_path):
    tree = _tree(tmp_path)
    cache = tmp_path / "cache"
    _check(cli, tree, cache)
    shown = run_cli(cli, "cache", "--cache-dir", str(cache))
    assert shown.returncode == 0
    assert "1 database(s)" in shown.stdout and "(this version)" in shown.stdout
    cleared = run_cli(cli, "cache", "--cache-dir", str(cache), "--clear")
    assert cleared.returncode == 0 and "deleted 1 database(s)" in cleared.stdout
    assert not list(cache.glob("facts-*"))
    assert _from_cache(_check(cli, tree, cache)) == 0
