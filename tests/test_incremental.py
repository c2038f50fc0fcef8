"""Incremental re-checks (incremental.py) against runs without a cache.

After a whole run, editing a few files re-checks only the files they can
affect and keeps the recorded findings of the rest. Every edit here must
give exactly the findings a run from scratch gives on the edited tree.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import FIXTURES, run_cli


def _findings(cli: str, root: Path, *args: str) -> tuple[list[tuple], str]:
    proc = run_cli(cli, "check", "--format", "json", *args, ".", cwd=root)
    assert proc.returncode in (0, 1, 2), proc.stderr
    # every field of every finding: location, message, notes, the path down to the API, facts
    rows = sorted((f["path"], f["line"], f["column"], f["rule_id"], json.dumps(f, sort_keys=True))
                  for f in json.loads(proc.stdout)["findings"])
    return rows, proc.stderr


@pytest.fixture()
def tree(tmp_path) -> Path:
    root = tmp_path / "tree"
    for sub in sorted(FIXTURES.iterdir()):
        if sub.is_dir() and sub.name.startswith("nf") and sub.name != "nf007":
            shutil.copytree(sub, root / sub.name)
    return root


def _edit(path: Path, old: str, new: str):
    text = path.read_text()
    assert old in text, f"{path} has no {old!r}"
    path.write_text(text.replace(old, new, 1))


def _same_as_scratch(cli, root: Path, cache: Path) -> str:
    got, err = _findings(cli, root, "--cache-dir", str(cache))
    want, _ = _findings(cli, root, "--no-cache")
    assert got == want
    return err


def test_edits_recheck_only_what_they_affect(cli, tree, tmp_path):
    cache = tmp_path / "cache"
    _same_as_scratch(cli, tree, cache)                       # the whole run records its state
    files = sorted(p for p in tree.rglob("*.c"))
    assert len(files) > 20

    # a body edit: every later line of the file moves
    target = next(p for p in files if "retry" in p.read_text() and "do {" in p.read_text())
    _edit(target, "{\n", "{\n\t/* an edit */\n")
    err = _same_as_scratch(cli, tree, cache)
    assert "re-checked" in err
    rechecked = int(err.split(" re-checked")[0].rsplit(", ", 1)[1])
    assert 1 <= rechecked < len(files) // 2, err

    # a header macro used from other files changes a finding's outcome there
    header = tree / "nf004" / "nf4_gfp.h"
    text = header.read_text()
    _edit(header, "#define", "#define NF4_EDIT_UNUSED 1\n#define")
    assert "re-checked" in _same_as_scratch(cli, tree, cache)
    header.write_text(text.replace("GFP_ATOMIC", "GFP_KERNEL"))
    _same_as_scratch(cli, tree, cache)

    # a wrapper's definition changes its callers in other files
    for path in files:
        if "xfile" in str(path) and "return kmalloc(" in path.read_text():
            _edit(path, "return kmalloc(", "return (void *)0; kmalloc(")
            break
    _same_as_scratch(cli, tree, cache)

    # a file removed, a file added
    files[0].unlink()
    (tree / "nf002" / "added.c").write_text(
        "void *nf2_added_get(size_t n)\n{\n\tvoid *p;\n\n\tdo {\n\t\tp = kmalloc(n, GFP_KERNEL);\n\t} while (!p);\n"
        "\treturn p;\n}\n")
    _same_as_scratch(cli, tree, cache)


def test_moved_definitions_move_the_paths_that_point_into_them(cli, tree, tmp_path):
    """Lines shifted in a file that defines wrappers: the findings of other
    files whose paths go through it must show the new lines."""
    cache = tmp_path / "cache"
    _same_as_scratch(cli, tree, cache)
    for path in sorted((tree / "nf001" / "xfile").glob("*"))[:4] + sorted((tree / "nf006").glob("*.c"))[:2]:
        path.write_text("/* a line more */\n" + path.read_text())
        assert "re-checked" in _same_as_scratch(cli, tree, cache)


def test_nothing_changed_is_answered_from_the_cache(cli, tree, tmp_path):
    cache = tmp_path / "cache"
    first, _ = _findings(cli, tree, "--cache-dir", str(cache))
    again, err = _findings(cli, tree, "--cache-dir", str(cache))
    assert first == again and "from cache" in err


def test_a_field_assignment_edited_elsewhere_rechecks_its_users(cli, tmp_path):
    from nofail_lint import cexpr
    if not hasattr(cexpr, "FIELD_READ"):
        pytest.skip("struct-field masks are not followed by this version")
    root = tmp_path / "tree"
    (root / "lib").mkdir(parents=True)
    (root / "drivers").mkdir()
    (root / "lib" / "demo_ctx.h").write_text("struct demo_ctx {\n\tgfp_t gfp;\n\tint n;\n};\n")
    init = root / "lib" / "demo_init.c"
    init.write_text("void demo_ctx_init(struct demo_ctx *ctx)\n{\n\tctx->gfp = GFP_KERNEL;\n}\n")
    (root / "drivers" / "demo_use.c").write_text(
        "void *demo_use_alloc(struct demo_ctx *ctx)\n{\n\treturn kmalloc(ctx->n, ctx->gfp);\n}\n")
    cache = tmp_path / "cache"
    _same_as_scratch(cli, root, cache)
    init.write_text("void demo_ctx_init(struct demo_ctx *ctx)\n{\n\tctx->gfp = GFP_ATOMIC | __GFP_NOFAIL;\n}\n")
    assert "re-checked" in _same_as_scratch(cli, root, cache)
    got, _ = _findings(cli, root, "--cache-dir", str(cache))
    assert [(r[0], r[3]) for r in got if r[0].startswith("drivers/")] == [("drivers/demo_use.c", "NF004")]


def test_a_callee_status_code_edited_elsewhere_rechecks_the_callers_loop(cli, tmp_path):
    """NF002's caller-retry family: the loop is in one file, the allocation
    failure that becomes the code it retries on is in another. Editing the
    callee (what it returns on failure) must change the caller's finding."""
    root = tmp_path / "tree"
    (root / "fs" / "demo").mkdir(parents=True)
    (root / "fs" / "demo" / "demo_status.h").write_text("#define DEMO_RESCAN 3\n#define DEMO_DONE 0\n")
    callee = root / "fs" / "demo" / "demo_prep.c"
    body = ("#include \"demo_status.h\"\n\nint demo_prep(struct demo_tb *tb)\n{\n"
            "\tchar *b = kmalloc(tb->len, GFP_NOFS);\n\n"
            "\tif (!b)\n\t\treturn DEMO_RESCAN;\n\ttb->buf = b;\n\treturn DEMO_DONE;\n}\n")
    callee.write_text(body)
    # (a file is analysed only if it names an allocation or a gfp mask: discover's prefilter)
    (root / "fs" / "demo" / "demo_balance.c").write_text(
        "#include <linux/gfp.h>\n#include \"demo_status.h\"\nvoid demo_balance(struct demo_tb *tb)\n{\n"
        "\twhile (demo_prep(tb) == DEMO_RESCAN)\n\t\ttb->len--;\n}\n")
    cache = tmp_path / "cache"
    _same_as_scratch(cli, root, cache)
    got, _ = _findings(cli, root, "--cache-dir", str(cache))
    assert [(r[0], r[1], r[3]) for r in got] == [("fs/demo/demo_balance.c", 5, "NF002")]
    # the callee gives up with another code: the caller's loop is bounded
    callee.write_text(body.replace("return DEMO_RESCAN;", "return -ENOMEM;"))
    assert "re-checked" in _same_as_scratch(cli, root, cache)
    assert _findings(cli, root, "--cache-dir", str(cache))[0] == []
    # and back
    callee.write_text(body)
    _same_as_scratch(cli, root, cache)
    assert len(_findings(cli, root, "--cache-dir", str(cache))[0]) == 1
