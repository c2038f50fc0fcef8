"""Signals with real processes: `nofail-lint check` on a generated tree that
takes seconds, interrupted while its workers run.

Ctrl-C (SIGINT to the process group, as a terminal sends it) and SIGTERM
stop the run within a second with exit 130 / 143, the workers are gone, and
the batches finished before the signal are in the cache (the next run
reuses them). SIGKILL to the parent takes the workers with it.
"""
from __future__ import annotations

import contextlib
import os
import re
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

FUNCTION = """
static void *demo_get_{i}_{j}(size_t n, int flags)
{{
\tvoid *p;
\tint k;

\tfor (k = 0; k < n; k++) {{
\t\tif (flags & (1 << k))
\t\t\tp = kmalloc(n * k, GFP_KERNEL | __GFP_ZERO);
\t\telse
\t\t\tp = kzalloc(n + k, GFP_NOFS);
\t\tif (!p)
\t\t\treturn NULL;
\t}}
\tdo {{
\t\tp = kmalloc(n, GFP_KERNEL);
\t}} while (!p);
\treturn p;
}}
"""
FILES, FUNCTIONS = 300, 30
STOP_SECONDS = 1.0       # the contract
SLACK = 1.0              # a loaded CI machine


@pytest.fixture(scope="module")
def big_tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("big-tree")
    for i in range(FILES):
        d = root / f"d{i % 10}"
        d.mkdir(exist_ok=True)
        (d / f"f{i}.c").write_text("#include <linux/slab.h>\n"
                                   + "".join(FUNCTION.format(i=i, j=j) for j in range(FUNCTIONS)))
    return root


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry))
    return out


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for its new parent to reap it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _start(cli: str, tree: Path, cache: Path) -> tuple[subprocess.Popen, list[int]]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    proc = subprocess.Popen([cli, "check", "-j", "2", "--cache-dir", str(cache), "."], cwd=tree, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.monotonic() + 60
    workers: list[int] = []
    while len(workers) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
        workers = _children(proc.pid)
    assert len(workers) >= 2, "the workers never started"
    # the scan's workers come first; wait until extraction has stored some facts
    while _stored_facts(cache) == 0 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    time.sleep(0.5)         # let some batches finish
    assert proc.poll() is None, "the run ended before the signal: make the tree bigger"
    return proc, _children(proc.pid) or workers


def _stored_facts(cache: Path) -> int:
    """Facts rows committed to the cache so far (0 while only the scan ran)."""
    total = 0
    for db in cache.rglob("*.sqlite*"):
        if db.suffix not in (".sqlite", ".sqlite3"):
            continue
        try:
            with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)) as con:
                total += con.execute("SELECT count(*) FROM facts").fetchone()[0]
        except sqlite3.Error:
            pass
    return total


def _gone(pids: list[int], within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not any(_alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


def _from_cache(cli: str, tree: Path, cache: Path) -> int:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([cli, "check", "-j", "2", "--cache-dir", str(cache), "--select", "NF003", "."],
                          cwd=tree, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    m = re.search(r"in (\d+) file\(s\)(?: \((\d+) from cache\))?", proc.stderr)
    assert m, proc.stderr
    return int(m.group(2) or 0)


@pytest.mark.parametrize("how, code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_interrupt_stops_at_once_and_keeps_finished_work(cli, big_tree, tmp_path, how, code):
    cache = tmp_path / "cache"
    proc, workers = _start(cli, big_tree, cache)
    sent = time.monotonic()
    if how == "SIGINT":
        os.killpg(proc.pid, signal.SIGINT)      # Ctrl-C reaches the whole foreground group
    else:
        os.kill(proc.pid, signal.SIGTERM)       # a CI runner stopping the job
    rc = proc.wait(timeout=30)
    took = time.monotonic() - sent
    stderr = proc.stderr.read()
    assert rc == code, stderr
    assert took < STOP_SECONDS + SLACK, f"took {took:.2f}s"
    assert "Traceback" not in stderr and "Aborted" not in stderr
    assert "finished work is kept in the cache" in stderr
    assert _gone(workers, 2.0), "workers outlived the run"
    reused = _from_cache(cli, big_tree, cache)
    assert 0 < reused < FILES, f"{reused} files from the cache"


def test_workers_die_with_a_killed_parent(cli, big_tree, tmp_path):
    proc, workers = _start(cli, big_tree, tmp_path / "cache")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert _gone(workers, 3.0), "orphaned workers still running after SIGKILL to the parent"
