"""Partial runs with whole-tree context (scan.py, demand.py) against whole-tree runs.

The demand stage extracts a subtree and only the files of the tree that may
define what it reaches. Its findings and grep sites on the subtree must be
exactly those of a run over the whole tree, restricted to the subtree: the
whole-tree run (every file extracted) is the reference.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import FIXTURES, run_cli

KERNEL_TREES = {"6.1": os.environ.get("NOFAIL_LINT_KERNEL_6_1"),
                "6.12": os.environ.get("NOFAIL_LINT_KERNEL_6_12")}


@pytest.fixture(scope="module")
def fixture_tree(tmp_path_factory) -> Path:
    """The fixture corpus as a kernel tree: a top-level Makefile with VERSION/PATCHLEVEL."""
    root = tmp_path_factory.mktemp("tree")
    for sub in sorted(FIXTURES.iterdir()):
        if sub.is_dir() and sub.name.startswith("nf") and sub.name != "nf007":
            shutil.copytree(sub, root / sub.name)
    (root / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 0\n")
    return root


def _findings(cli: str, root: Path, *args: str) -> list[tuple]:
    proc = run_cli(cli, "check", "--format", "json", "--no-cache", *args, cwd=root)
    assert proc.returncode in (0, 1), proc.stderr
    # every field of every finding: location, message, notes, the path down to the API, facts
    return sorted((f["path"], f["line"], f["column"], f["rule_id"], json.dumps(f, sort_keys=True))
                  for f in json.loads(proc.stdout)["findings"])


def _sites(cli: str, root: Path, *args: str) -> list[tuple]:
    proc = run_cli(cli, "grep", "--json", "--no-cache", *args, cwd=root)
    assert proc.returncode in (0, 1), proc.stderr
    return sorted(tuple(sorted((k, str(v)) for k, v in h.items())) for h in json.loads(proc.stdout))


def _under(rows: list[tuple], subtree: str) -> list[tuple]:
    prefix = subtree.rstrip("/") + "/"
    return [r for r in rows if r[0].startswith(prefix) or r[0] == subtree]


def _grep_under(rows: list[tuple], subtree: str) -> list[tuple]:
    prefix = subtree.rstrip("/") + "/"
    return [r for r in rows if dict(r)["path"].startswith(prefix)]


def test_subtrees_match_the_whole_tree(cli, fixture_tree):
    whole = _findings(cli, fixture_tree, ".")
    assert whole, "the fixture tree has findings"
    whole_sites = _sites(cli, fixture_tree, ".")
    for sub in ("nf001", "nf001/xfile", "nf002", "nf002/xfile", "nf003", "nf004", "nf005", "nf006", "nf008"):
        if not (fixture_tree / sub).is_dir():
            continue
        assert _findings(cli, fixture_tree, sub) == _under(whole, sub), sub
        assert _sites(cli, fixture_tree, sub) == _grep_under(whole_sites, sub), sub


def test_a_wrapper_elsewhere_in_the_tree_is_seen(cli, tmp_path):
    """`check drivers/foo` finds the loop around a wrapper defined in mm/;
    `--context none` does not (the wrapper is unknown there)."""
    (tmp_path / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 12\n")
    (tmp_path / "mm").mkdir()
    (tmp_path / "mm" / "pool.c").write_text(
        "void *demo_pool_alloc(size_t n)\n{\n\treturn kmalloc(n, GFP_KERNEL);\n}\n")
    (tmp_path / "drivers" / "foo").mkdir(parents=True)
    (tmp_path / "drivers" / "foo" / "foo.c").write_text(
        "void *foo_get(void)\n{\n\tvoid *p;\n\n\tdo {\n\t\tp = demo_pool_alloc(64);\n\t} while (!p);\n\treturn p;\n}\n")
    found = _findings(cli, tmp_path, "drivers/foo")
    assert [(f[0], f[1], f[3]) for f in found] == [("drivers/foo/foo.c", 6, "NF002")]
    assert _findings(cli, tmp_path, "--context", "none", "drivers/foo") == []
    proc = run_cli(cli, "check", "--no-cache", "drivers/foo", cwd=tmp_path)
    assert "as context" in proc.stderr


def test_a_mask_macro_in_a_header_is_seen(cli, tmp_path):
    (tmp_path / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 12\n")
    (tmp_path / "include").mkdir()
    (tmp_path / "include" / "demo_gfp.h").write_text("#define DEMO_GFP_ATOMIC_NOFAIL (GFP_ATOMIC | __GFP_NOFAIL)\n")
    (tmp_path / "fs").mkdir()
    (tmp_path / "fs" / "a.c").write_text(
        "void *fs_a_get(void)\n{\n\treturn kmalloc(16, DEMO_GFP_ATOMIC_NOFAIL);\n}\n")
    found = _findings(cli, tmp_path, "fs")
    assert [(f[0], f[3]) for f in found] == [("fs/a.c", "NF004")]


@pytest.mark.kernel
@pytest.mark.parametrize("version", sorted(KERNEL_TREES))
def test_kernel_subtrees_match_the_whole_tree(cli, version, tmp_path):
    """The whole tree (every file extracted) is the reference; each subtree
    run from the tree root must report exactly its part. One cache for all
    runs: facts are keyed by content, so sharing them tests the closure, not
    the parser."""
    tree = KERNEL_TREES[version]
    if not tree:
        pytest.skip(f"set NOFAIL_LINT_KERNEL_{version.replace('.', '_')} to a Linux {version} tree")
    root = Path(tree)
    cache = ("--cache-dir", str(tmp_path / "cache"))
    whole = _findings_cached(cli, root, *cache, ".")
    whole_sites = _sites_cached(cli, root, *cache, ".")
    for sub in ("fs/xfs", "mm", "fs/btrfs", "drivers/md", "net/core", "fs/f2fs"):
        assert _findings_cached(cli, root, *cache, sub) == _under(whole, sub), sub
        assert _sites_cached(cli, root, *cache, sub) == _grep_under(whole_sites, sub), sub


def _findings_cached(cli: str, root: Path, *args: str) -> list[tuple]:
    proc = run_cli(cli, "check", "--format", "json", "--jobs", "2", *args, cwd=root)
    assert proc.returncode in (0, 1, 2), proc.stderr
    return sorted((f["path"], f["line"], f["column"], f["rule_id"], json.dumps(f, sort_keys=True))
                  for f in json.loads(proc.stdout)["findings"])


def _sites_cached(cli: str, root: Path, *args: str) -> list[tuple]:
    proc = run_cli(cli, "grep", "--json", "--jobs", "2", *args, cwd=root)
    assert proc.returncode in (0, 1, 2), proc.stderr
    return sorted(tuple(sorted((k, str(v)) for k, v in h.items())) for h in json.loads(proc.stdout))


def test_a_struct_field_mask_assigned_elsewhere_is_seen(cli, tmp_path):
    """A mask stored in a struct field by one directory and used by another:
    the field's value is the union of its assignments tree-wide, so the
    assigning file is context for the user's subtree."""
    from nofail_lint import cexpr
    if not hasattr(cexpr, "FIELD_READ"):
        pytest.skip("struct-field masks are not followed by this version")
    (tmp_path / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 12\n")
    (tmp_path / "include").mkdir()
    (tmp_path / "include" / "demo_ctx.h").write_text(
        "struct demo_ctx {\n\tgfp_t gfp;\n\tint n;\n};\n")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "demo_init.c").write_text(
        "void demo_ctx_init(struct demo_ctx *ctx)\n{\n\tctx->gfp = GFP_ATOMIC | __GFP_NOFAIL;\n}\n")
    (tmp_path / "drivers").mkdir()
    (tmp_path / "drivers" / "demo_use.c").write_text(
        "void *demo_use_alloc(struct demo_ctx *ctx)\n{\n\treturn kmalloc(ctx->n, ctx->gfp);\n}\n")
    whole = _findings(cli, tmp_path, ".")
    assert [(f[0], f[3]) for f in whole if f[0].startswith("drivers/")] == [("drivers/demo_use.c", "NF004")]
    assert _findings(cli, tmp_path, "drivers") == _under(whole, "drivers")
    assert _findings(cli, tmp_path, "--context", "none", "drivers") == []


def test_constants_from_a_header_the_prefilter_skips(cli, tmp_path):
    """Orders and sizes from headers that name no allocator, in another
    directory and two includes away: seen by a whole run and by a partial
    run of the driver's directory or file alone, not with `--context none`."""
    (tmp_path / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 12\n")
    hw = tmp_path / "include" / "rngx"
    hw.mkdir(parents=True)
    for name in ("rngx_hw.h", "rngx_base.h"):
        shutil.copy(FIXTURES / "nf005" / "include" / "rngx" / name, hw / name)
    drv = tmp_path / "drivers" / "rngx"
    drv.mkdir(parents=True)
    shutil.copy(FIXTURES / "nf005" / "header_constants.c", drv / "rngx_main.c")
    whole = _findings(cli, tmp_path, ".")
    assert [(f[0], f[1], f[3]) for f in whole] == [("drivers/rngx/rngx_main.c", n, "NF005") for n in (23, 24, 25)]
    assert _findings(cli, tmp_path, "drivers/rngx") == whole
    assert _findings(cli, tmp_path, "drivers/rngx/rngx_main.c") == whole
    alone = _findings(cli, tmp_path, "--context", "none", "drivers/rngx")
    assert [(f[1], f[3]) for f in alone] == [(36, "NF006")]     # the size unknown: the test looks dead


def test_a_status_code_from_a_callee_elsewhere_is_seen(cli, tmp_path):
    """NF002's caller-retry family in a partial run: the callee that returns
    the retried code on allocation failure lives outside the checked subtree
    (two levels down, the code a macro of a header); the partial run reports
    exactly what the whole run reports there."""
    (tmp_path / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 12\n")
    (tmp_path / "include").mkdir()
    (tmp_path / "include" / "demo_codes.h").write_text("#define DEMO_TRY_AGAIN 7\n")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "demo_fill.c").write_text(
        "#include <demo_codes.h>\n\nstatic int demo_fill_one(struct demo_q *q)\n{\n"
        "\tvoid *e = kzalloc(64, GFP_KERNEL);\n\n"
        "\tif (!e)\n\t\treturn DEMO_TRY_AGAIN;\n\tq->e = e;\n\treturn 0;\n}\n\n"
        "int demo_fill(struct demo_q *q)\n{\n\tif (demo_fill_one(q) == DEMO_TRY_AGAIN)\n\t\treturn DEMO_TRY_AGAIN;\n"
        "\treturn 0;\n}\n")
    (tmp_path / "drivers" / "foo").mkdir(parents=True)
    (tmp_path / "drivers" / "foo" / "foo.c").write_text(
        "#include <linux/gfp.h>\n#include <demo_codes.h>\nint foo_fill(struct demo_q *q)\n{\n\tint ret;\n\n"
        "\tdo {\n\t\tret = demo_fill(q);\n"
        "\t} while (ret == DEMO_TRY_AGAIN);\n\treturn ret;\n}\n")
    found = _findings(cli, tmp_path, "drivers/foo")
    assert [(f[0], f[1], f[3]) for f in found] == [("drivers/foo/foo.c", 8, "NF002")]
    assert found == _under(_findings(cli, tmp_path, "."), "drivers/foo")
    assert _findings(cli, tmp_path, "--context", "none", "drivers/foo") == []



def test_an_ops_member_call_reaches_a_wrapper_elsewhere(cli, tmp_path):
    """NF002 through an ops member: the file's ops struct points the member
    at one function of the file, which returns the result of an allocator
    wrapper in another directory; the partial run reports what the whole
    run reports. A member the file points at two functions is not followed."""
    (tmp_path / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 12\n")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "demo_pool.c").write_text(
        "void *demo_pool_get(unsigned int n)\n{\n\treturn kvzalloc(n, GFP_KERNEL);\n}\n")
    (tmp_path / "drivers" / "foo").mkdir(parents=True)
    (tmp_path / "drivers" / "foo" / "foo.c").write_text(
        "#include <linux/gfp.h>\nstruct foo_ops {\n\tvoid *(*grab)(unsigned int n);\n"
        "\tvoid *(*peek)(unsigned int n);\n};\n\n"
        "static void *foo_grab_impl(unsigned int n)\n{\n\treturn demo_pool_get(n);\n}\n\n"
        "static void *foo_peek_a(unsigned int n)\n{\n\treturn demo_pool_get(n);\n}\n\n"
        "static void *foo_peek_b(unsigned int n)\n{\n\treturn demo_pool_get(n + 1);\n}\n\n"
        "static const struct foo_ops foo_a_ops = {\n\t.grab = foo_grab_impl,\n\t.peek = foo_peek_a,\n};\n\n"
        "static const struct foo_ops foo_b_ops = {\n\t.peek = foo_peek_b,\n};\n\n"
        "void *foo_grab(const struct foo_ops *ops)\n{\n\tvoid *p;\n\n"
        "\twhile (!(p = ops->grab(64)))\n\t\tcond_resched();\n\treturn p;\n}\n\n"
        "void *foo_peek(const struct foo_ops *ops)\n{\n\tvoid *p;\n\n"
        "\twhile (!(p = ops->peek(64)))\n\t\tcond_resched();\n\treturn p;\n}\n")
    found = _findings(cli, tmp_path, "drivers/foo")
    assert [(f[0], f[1], f[3]) for f in found] == [("drivers/foo/foo.c", 35, "NF002")]
    assert found == _under(_findings(cli, tmp_path, "."), "drivers/foo")
    assert _findings(cli, tmp_path, "--context", "none", "drivers/foo") == []
