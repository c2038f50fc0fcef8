"""Bad input and failing workers: reported, skipped, never a traceback or a lost finding."""
from __future__ import annotations

import json
import os

import pytest
from conftest import RETRY_LOOP, run_cli


def _json(proc):
    assert "Traceback" not in proc.stderr, proc.stderr
    return json.loads(proc.stdout)


def test_fifo_symlink_loop_dangling_link_and_empty_file(cli, tmp_path):
    (tmp_path / "good.c").write_text(RETRY_LOOP)
    os.mkfifo(tmp_path / "pipe.c")
    (tmp_path / "empty.c").write_text("")
    os.symlink("nowhere.c", tmp_path / "dangling.c")
    os.symlink("loop_b.c", tmp_path / "loop_a.c")
    os.symlink("loop_a.c", tmp_path / "loop_b.c")
    os.symlink(".", tmp_path / "selfdir")            # a directory symlink loop
    proc = run_cli(cli, "check", "--format", "json", ".", cwd=tmp_path)
    assert proc.returncode == 1
    doc = _json(proc)
    assert [(f["path"], f["line"]) for f in doc["findings"]] == [("good.c", 6)]
    skipped = {s["path"]: s["reason"] for s in doc["skipped"]}
    assert skipped["pipe.c"] == "not a regular file"
    assert "dangling.c" in skipped and "loop_a.c" in skipped and "loop_b.c" in skipped
    assert "empty.c" not in skipped


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_unreadable_file_is_skipped(cli, tmp_path):
    f = tmp_path / "secret.c"
    f.write_text(RETRY_LOOP)
    f.chmod(0)
    proc = run_cli(cli, "check", "--format", "json", ".", cwd=tmp_path)
    assert proc.returncode == 2
    assert _json(proc)["skipped"][0]["path"] == "secret.c"


def test_invalid_utf8_keeps_scanning_with_character_columns(cli, tmp_path):
    src = ("/* caf\xe9 in latin-1 */ void *f(void)\n{\n\tvoid *p;\n\n\tdo {\n"
           "\t\t/* \u00e9\u00e9 */ p = kmalloc(8, GFP_KERNEL);\n\t} while (!p);\n\treturn p;\n}\n")
    data = src.encode("utf-8").replace("caf\u00e9".encode("utf-8"), b"caf\xe9")  # one invalid byte
    (tmp_path / "mixed.c").write_bytes(data)
    doc = _json(run_cli(cli, "check", "--format", "json", ".", cwd=tmp_path))
    (f,) = doc["findings"]
    # two tabs, then "/* éé */ p = " (13 characters, 15 bytes): kmalloc starts at character 16
    assert (f["line"], f["column"]) == (6, 16)


def test_deeply_nested_code_does_not_crash(cli, tmp_path):
    cond = " && ".join(f"(x{i} || y{i})" for i in range(3000))
    body = "if (a) {\n" * 300 + "x = 1;\n" + "}\n" * 300
    (tmp_path / "deep.c").write_text(
        "void f(int a)\n{\n\tvoid *p;\n\twhile (" + cond + ") { p = kmalloc(1, GFP_KERNEL); }\n" + body + "}\n"
        + RETRY_LOOP.replace("demo_get", "g"))
    proc = run_cli(cli, "check", "--format", "json", ".", cwd=tmp_path)
    doc = _json(proc)
    assert ("deep.c", "g") in {(f["path"], f["function"]) for f in doc["findings"]}


def test_a_dying_worker_costs_only_its_file(tmp_path, monkeypatch):
    from nofail_lint.discover import discover
    from nofail_lint.engine import store, workers

    original = workers._extract_one

    def dies_on_one_file(item, context):
        if item[1].endswith("killer.c"):
            os._exit(9)
        return original(item, context)

    monkeypatch.setattr(workers, "_extract_one", dies_on_one_file)
    for i in range(40):
        (tmp_path / f"f{i:02}.c").write_text(RETRY_LOOP.replace("demo_get", f"f{i}"))
    (tmp_path / "killer.c").write_text("void *k(void) { return kmalloc(1, GFP_KERNEL); }\n")
    files, _ = discover([str(tmp_path)], tmp_path)
    facts, skipped = store.extract_all(files, 2).facts()
    assert len(facts) == 40
    assert [(s.path, s.reason) for s in skipped] == [
        ("killer.c", "analysis failed: the worker process died on this file")]
