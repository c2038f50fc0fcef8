"""The seed-driven engine (engine/seeds.py, engine/flow_demand.py) against full runs.

`grep` extracts only the files that name the flag or a macro expanding to it,
and what their masks reach downwards. Its sites must be exactly those of a
run that extracts every file (the reference: `analyse` without a flag, then
grep.hits), whole tree and partial, for any flag. Under `-m kernel` the same
comparison runs on both real trees.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from conftest import FIXTURES, run_cli

from nofail_lint.engine.flow_demand import mask_text
from nofail_lint.engine.seeds import find_seeds
from nofail_lint.grep import hits
from nofail_lint.model import load_model
from nofail_lint.pipeline import Options, analyse, grep
from nofail_lint.scan import scan_source

FLAGS = ("__GFP_NOFAIL", "__GFP_NORETRY", "__GFP_IO", "__GFP_HIGH", "__GFP_RETRY_MAYFAIL")
KERNEL_TREES = {"6.1": os.environ.get("NOFAIL_LINT_KERNEL_6_1"),
                "6.12": os.environ.get("NOFAIL_LINT_KERNEL_6_12")}


def _tree(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 0\n")
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def _full(paths: list[str], flag: str, cwd: Path, context: str = "tree") -> list:
    """The reference: every file (or the demand closure of a partial run) extracted."""
    a = analyse(Options(paths=[str(cwd / p) for p in paths], jobs=1, context=context), cwd)
    try:
        return [h for h in hits(a.tables, flag, cwd) if a.reports_on(h.path)]
    finally:
        a.close()


def _seeded(paths: list[str], flag: str, cwd: Path, context: str = "tree") -> list:
    return grep(Options(paths=[str(cwd / p) for p in paths], jobs=1, context=context), flag, cwd).hits


@pytest.fixture(scope="module")
def fixture_tree(tmp_path_factory) -> Path:
    """The fixture corpus as a kernel tree (a top-level Makefile)."""
    root = tmp_path_factory.mktemp("tree")
    for sub in sorted(FIXTURES.iterdir()):
        if sub.is_dir() and sub.name.startswith("nf"):
            shutil.copytree(sub, root / sub.name)
    return _tree(root, {})


@pytest.mark.parametrize("flag", FLAGS)
def test_seed_grep_equals_full_grep_on_the_fixture_tree(fixture_tree, flag):
    whole = _full(["."], flag, fixture_tree)
    if flag == "__GFP_NOFAIL":
        assert len(whole) > 50
    assert _seeded(["."], flag, fixture_tree) == whole
    for sub in ("nf001", "nf002/xfile", "nf003", "nf004", "nf006", "nf008"):
        assert _seeded([sub], flag, fixture_tree) == [h for h in whole if h.path.startswith(sub + "/")], sub


def test_seed_grep_equals_full_grep_without_a_kernel_tree(tmp_path):
    """No Makefile above: the paths alone, as a full run sees them."""
    for sub in ("nf001", "nf004", "nf008"):
        shutil.copytree(FIXTURES / sub, tmp_path / sub)
    assert _seeded(["."], "__GFP_NOFAIL", tmp_path) == _full(["."], "__GFP_NOFAIL", tmp_path)
    assert _seeded(["nf004"], "__GFP_NOFAIL", tmp_path, "none") == _full(["nf004"], "__GFP_NOFAIL", tmp_path, "none")


ODD_NAMES = {
    # a mask macro whose name has neither GFP nor NOFAIL, and an alias of it
    # whose body has no GFP either: found through the tree's definitions
    "include/linux/demo_flags.h": (
        "#define DEMO_MUST\t(GFP_ATOMIC | __GFP_NOFAIL)\n"
        "#define DEMO_STRICT\tDEMO_MUST\n"
        "#define DEMO_CALM\t(GFP_KERNEL)\n"),
    "drivers/demo/odd.c": (
        "#include <linux/demo_flags.h>\n\n"
        "static void *demo_take(size_t n)\n{\n\treturn kmalloc(n, DEMO_STRICT);\n}\n\n"
        "static void *demo_calm(size_t n)\n{\n\treturn kmalloc(n, DEMO_CALM);\n}\n"),
}


def test_the_macro_closure_follows_definitions_not_names(tmp_path):
    root = _tree(tmp_path, ODD_NAMES)
    model = load_model()
    rows = {rel: scan_source((root / rel).read_bytes()) for rel in ODD_NAMES}
    seeds = find_seeds("__GFP_NOFAIL", model.algebra("6.12").composites, rows,
                       {rel: str(root / rel) for rel in ODD_NAMES})
    assert {"DEMO_MUST", "DEMO_STRICT"} <= seeds.names and "DEMO_CALM" not in seeds.names
    assert seeds.files == frozenset(ODD_NAMES)
    assert seeds.text_passes >= 1          # DEMO_STRICT has no GFP in its name or body
    assert _seeded(["drivers/demo"], "__GFP_NOFAIL", root) == _full(["drivers/demo"], "__GFP_NOFAIL", root)


FIELD_TREE = {
    # a mask stored in a field by one directory, read at an allocation in another
    "fs/aa/setup.c": (
        "struct demo_ctx {\n\tgfp_t mode;\n\tint n;\n};\n\n"
        "static const struct demo_ctx demo_strict = {\n\t.mode = GFP_NOFS | __GFP_NOFAIL,\n};\n"),
    "fs/bb/use.c": (
        "void *demo_read(struct demo_ctx *ctx)\n{\n\treturn kmalloc(ctx->n, ctx->mode);\n}\n\n"
        "void *demo_plain(struct demo_ctx *ctx)\n{\n\treturn kmalloc(ctx->n, GFP_KERNEL);\n}\n"),
}


def test_a_seed_stored_in_a_field_elsewhere_reaches_its_readers(tmp_path):
    root = _tree(tmp_path, FIELD_TREE)
    whole = _full(["."], "__GFP_NOFAIL", root)
    assert [(h.path, h.function) for h in whole] == [("fs/bb/use.c", "demo_read")]
    assert _seeded(["."], "__GFP_NOFAIL", root) == whole
    assert _seeded(["fs/bb"], "__GFP_NOFAIL", root) == whole
    assert _seeded(["fs/bb/use.c"], "__GFP_NOFAIL", root) == whole


def test_mask_text_leaves_out_what_cannot_be_a_mask():
    is_macro = {"NO_SLEEP"}.__contains__
    assert mask_text("gfp | __GFP_NOWARN", is_macro) == "gfp | __GFP_NOWARN"
    assert mask_text("NO_SLEEP(gfp) | other(gfp)", is_macro) == "NO_SLEEP(gfp) | other()"
    assert mask_text("(kzalloc(sizeof(*p), gfp))->n", is_macro) == "(kzalloc())->n"
    assert mask_text("__nfl_field(ctx, mode)", is_macro) == "__nfl_field(ctx, mode)"


def test_grep_result_is_reused_for_an_unchanged_tree_and_redone_after_an_edit(cli, tmp_path):
    root = _tree(tmp_path / "t", ODD_NAMES)
    env_cache = ["--cache-dir", str(tmp_path / "cache")]
    first = run_cli(cli, "grep", *env_cache, "drivers/demo", cwd=root)
    again = run_cli(cli, "grep", *env_cache, "drivers/demo", cwd=root)
    assert first.returncode == again.returncode == 0
    assert first.stdout == again.stdout and "odd.c:5" in first.stdout
    # another scope of the same tree is another result
    whole = run_cli(cli, "grep", *env_cache, ".", cwd=root)
    elsewhere = run_cli(cli, "grep", *env_cache, "include", cwd=root)
    assert whole.stdout == first.stdout and elsewhere.returncode == 1 and elsewhere.stdout == ""
    header = root / "include/linux/demo_flags.h"
    header.write_text(header.read_text().replace("__GFP_NOFAIL", "__GFP_NOWARN"))
    after = run_cli(cli, "grep", *env_cache, "drivers/demo", cwd=root)
    assert after.returncode == 1 and after.stdout == ""


def test_the_context_is_a_function_of_the_request_not_of_the_cwd(fixture_tree, tmp_path):
    """The same request from the root, from elsewhere with an absolute path,
    and from inside the subtree analyses the same files."""
    runs = []
    for cwd, path in ((fixture_tree, "nf004"), (tmp_path, str(fixture_tree / "nf004")),
                      (fixture_tree / "nf004", ".")):
        a = analyse(Options(paths=[str(cwd / path)], jobs=1), cwd, flag="__GFP_NOFAIL")
        assert a.tables is not None       # runs the closure
        runs.append(sorted(os.path.normpath(os.path.join(cwd, f.path)) for f in a.demand.context
                           if f.display in a.extraction.keys))
        a.close()
    assert runs[0] == runs[1] == runs[2] and runs[0]


@pytest.mark.kernel
@pytest.mark.parametrize("version", ["6.12", "6.1"])
@pytest.mark.parametrize("scope", [".", "fs/xfs", "mm", "fs/btrfs", "drivers/md", "net/core", "fs/f2fs",
                                   "drivers/usb"])
def test_seed_grep_equals_full_grep_on_real_trees(version, scope):
    tree = KERNEL_TREES[version]
    if not tree:
        pytest.skip(f"NOFAIL_LINT_KERNEL_{version.replace('.', '_')} not set")
    root = Path(tree)
    cache = Path(os.environ.get("NOFAIL_LINT_CACHE_DIR", root / ".nofail-lint-test-cache"))
    full = analyse(Options(paths=[str(root / scope)], jobs=2, cache_dir=cache), root)
    try:
        reference = [h for h in hits(full.tables, "__GFP_NOFAIL", root) if full.reports_on(h.path)]
    finally:
        full.close()
    seeded = grep(Options(paths=[str(root / scope)], jobs=2, cache_dir=cache), "__GFP_NOFAIL", root).hits
    assert seeded == reference
