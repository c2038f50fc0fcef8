"""The bundled allocator model: data consistency, `nofail-lint model`, `model verify`."""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from conftest import FIXTURES, run_cli

from nofail_lint.model import NOFAIL_KINDS, load_model, parse_range, version_key
from nofail_lint.model.verify import check_gfp, check_signatures, function_body, macro_body, normalise

VERIFY_GOOD = FIXTURES / "model-verify" / "good"
VERIFY_STALE = FIXTURES / "model-verify" / "stale"
KNOWN = ("6.1", "6.12")          # the trees the model was read from

GFP_PARAM = re.compile(r"gfp|flags|priority", re.I)
SIZE_PARAM = re.compile(r"size|len|count|bytes", re.I)


def _views(a):
    """An allocator as it reads in each version the model knows."""
    return [a.for_version(v) for v in KNOWN]


# ---------------------------------------------------------------- data

def test_model_loads_with_its_parts():
    m = load_model()
    assert len(m.entries()) >= 100
    assert {"6.1", "6.12"} <= set(m.gfp)
    for name in ("kmalloc", "kzalloc", "kcalloc", "kmalloc_array", "krealloc", "kmalloc_node",
                 "kmem_cache_alloc", "kmem_cache_zalloc", "kstrdup", "kmemdup", "kvmalloc",
                 "kvrealloc", "vmalloc", "__vmalloc_node_range", "alloc_pages", "alloc_page",
                 "alloc_pages_node", "__get_free_pages", "__get_free_page", "get_zeroed_page",
                 "folio_alloc", "mempool_alloc", "alloc_contig_range", "devm_kmalloc",
                 "devm_kzalloc", "alloc_skb", "__alloc_skb", "dev_alloc_skb", "bio_alloc",
                 "find_or_create_page", "grab_cache_page", "pagecache_get_page",
                 "__filemap_get_folio", "read_cache_page_gfp", "alloc_percpu_gfp"):
        assert m.allocator(name) is not None, name


def test_every_spelling_resolves_to_one_entry_with_consistent_positions():
    m = load_model()
    for spelling, a in m.allocators.items():
        assert spelling in a.spellings
        for v in _views(a):
            pos = v.positions()
            assert all(isinstance(i, int) and i >= 0 for i in pos.values()), (a.name, pos)
            assert len(set(pos.values())) == len(pos), f"{a.name}: two roles share an argument: {pos}"
            assert (v.start is None) == (v.end is None), a.name
            if v.range_default is not None:
                assert v.is_range_api and len(v.range_default) == 2, a.name
            if not v.params:
                continue
            assert all(i < len(v.params) for i in pos.values()), (a.name, v.params, pos)
            if v.gfp is not None:
                assert GFP_PARAM.search(v.params[v.gfp]), (a.name, v.params, v.gfp)
            else:
                assert not any(GFP_PARAM.search(p) for p in v.params), f"{a.name}: gfp param not marked"
            if v.size is not None:
                assert SIZE_PARAM.search(v.params[v.size]), (a.name, v.params, v.size)
            if v.order is not None:
                assert "order" in v.params[v.order], (a.name, v.params)
        # every alias is the same entry: same positions under every spelling
        for alias in a.aliases:
            assert m.allocators[alias] is a


@pytest.mark.parametrize("name,version,gfp,size", [
    ("kvrealloc", "6.12", 2, 1), ("kvrealloc_noprof", "6.12", 2, 1),
    ("kvrealloc", "6.1", 3, 2), ("kvrealloc", None, 2, 1),
    ("__alloc_percpu_gfp", "6.1", 2, 0), ("pcpu_alloc_noprof", "6.12", 3, 0),
    ("alloc_percpu_gfp", "6.12", 1, None), ("krealloc_array", "6.12", 3, 2),
    ("devm_kcalloc", "6.1", 3, 2), ("bio_alloc", "6.1", 3, None),
    ("__filemap_get_folio", "6.12", 3, None), ("kmalloc_node_track_caller", "6.12", 1, 0),
])
def test_positions_read_off_the_headers(name, version, gfp, size):
    a = load_model().allocator_for(name, version)
    assert (a.gfp, a.size) == (gfp, size)


def test_range_api_positions():
    a = load_model().allocator("__vmalloc_node_range_noprof")
    assert (a.size, a.start, a.end, a.gfp) == (0, 2, 3, 4)
    assert a.range_default == ("VMALLOC_START", "VMALLOC_END")
    assert "vmalloc.range-nofail-retry" in a.facts


def test_per_version_behaviour():
    m = load_model()
    assert m.allocator("alloc_contig_range").nofail == "rejected"
    old = m.allocator_for("alloc_contig_range", "6.1")
    assert old.nofail == "ignored" and "page.contig-ignores-nofail" in old.facts
    assert m.allocator_for("__filemap_get_folio", "6.1").fails == "null"
    assert m.allocator("__filemap_get_folio").fails == "errptr"
    kv = m.allocator("kvmalloc")
    assert kv.nofail_since == "5.17"
    assert kv.nofail_honoured("5.15") is False and kv.nofail_honoured("6.1") is True
    assert m.allocator("alloc_percpu_gfp").nofail_honoured("6.12") is False
    assert m.allocator("vmalloc").nofail_honoured("6.12") is None       # takes no gfp
    assert not m.allocator("vrealloc").exists_in("6.1") and m.allocator("vrealloc").exists_in("6.12")


def test_wrappers_name_their_target():
    m = load_model()
    kcalloc = m.allocator("kcalloc")
    assert kcalloc.wraps == "kmalloc_array" and kcalloc.gfp_adds == ("__GFP_ZERO",)
    for a in m.entries():
        if a.wraps:
            assert m.allocator(a.wraps) is not None, f"{a.name} wraps unknown {a.wraps}"


def test_nofail_fields_are_filled_and_backed_by_facts():
    m = load_model()
    for a in m.entries():
        for v in _views(a):
            assert v.nofail in NOFAIL_KINDS, (a.name, v.nofail)
            if v.nofail in ("retry-loop", "vmalloc-retry", "vmalloc-fallback", "mempool-wait"):
                assert v.nofail_since and version_key(v.nofail_since) <= version_key("6.1"), a.name
                assert v.facts, f"{a.name}: NOFAIL handling without a fact"
            if v.nofail in ("ignored", "rejected"):
                assert v.null_under_nofail and v.facts, a.name
            if v.nofail != "no-gfp":
                assert v.gfp is not None, a.name


def test_every_cited_fact_exists_and_covers_a_version():
    m = load_model()
    for a in m.entries():
        for v in [a, *_views(a)]:
            for fid in v.facts:
                assert fid in m.facts, f"{a.name} cites unknown fact {fid}"
    for na in m.not_allocators.values():
        for fid in na.facts:
            assert fid in m.facts, f"{na.name} cites unknown fact {fid}"
    for f in m.facts.values():
        lo, hi = parse_range(f.versions)
        assert lo <= hi, f.id
        assert any(f.applies_to(v) for v in KNOWN), f"{f.id}: covers neither 6.1 nor 6.12"
        for v in KNOWN:
            if f.applies_to(v):
                view = f.for_version(v)
                assert view.verify or view.verify_absent, f"{f.id}: nothing to verify in {v}"
        outside = lo < version_key("6.1") or hi > version_key("6.12")
        assert not outside or f.note, f"{f.id}: claims versions outside 6.1/6.12 without a note"


def test_memcg_charging_is_not_an_allocator():
    m = load_model()
    for name in ("try_charge_memcg", "mem_cgroup_charge_skmem"):
        assert m.allocator(name) is None
        na = m.not_allocator(name)
        assert na is not None and "charg" in na.reason
    assert not set(m.not_allocators) & set(m.allocators)


def test_gfp_algebra_differences_between_versions():
    m = load_model()
    old, new = m.algebra("6.1"), m.algebra("6.12")
    assert "__GFP_ATOMIC" in old.atoms and "__GFP_ATOMIC" not in new.atoms
    assert "__GFP_NO_OBJ_EXT" in new.atoms and "__GFP_SKIP_KASAN" in new.atoms
    assert "__GFP_NOWARN" in new.composites["GFP_NOWAIT"]
    assert "__GFP_NOWARN" not in old.composites["GFP_NOWAIT"]
    for alg in (old, new):
        assert "__GFP_NOFAIL" in alg.composites["GFP_RECLAIM_MASK"]
        names = set(re.findall(r"\b_*[A-Z][A-Z0-9_]+\b", " ".join(alg.composites.values())))
        assert names <= alg.atoms | set(alg.composites), names - alg.atoms - set(alg.composites)


# ---------------------------------------------------------------- body finder

def test_function_body_finds_definitions_not_calls_or_prototypes():
    src = """
static inline __alloc_size(1, 2) void *thing(size_t n, size_t size, gfp_t flags);
/* thing(a) { not this } */
void caller(void)
{
\tp = thing(1, 2, GFP_KERNEL);
\tthing(3, 4, GFP_KERNEL);
}
static inline __alloc_size(1, 2) void *thing(size_t n, size_t size, gfp_t flags)
\t__must_hold(&lock)
{
\tif (x) { y(); }   /* } */
\treturn "}";
}
"""
    body = function_body(src, "thing")
    assert body is not None and body.startswith("{") and body.rstrip().endswith("}")
    assert 'return "}";' in body and "caller" not in body
    assert function_body(src, "missing") is None


def test_macro_body_and_normalise():
    src = "#define twice(x)\t\\\n\t((x) + \\\n\t (x))\nint after;\n"
    assert macro_body(src, "twice").endswith("(x))")
    assert normalise("a\n * b  c\t\n d") == "a b c d"


def test_signature_check_catches_a_wrong_position(tmp_path):
    import dataclasses
    (tmp_path / "include" / "linux").mkdir(parents=True)
    (tmp_path / "include" / "linux" / "percpu.h").write_text(
        "extern void __percpu *__alloc_percpu_gfp(size_t size, size_t align, gfp_t gfp) __alloc_size(1);\n"
        "#define alloc_percpu_gfp(type, gfp)\t\\\n"
        "\t(typeof(type) __percpu *)__alloc_percpu_gfp(sizeof(type), __alignof__(type), gfp)\n")
    m = load_model()
    got = {r.name: r for r in check_signatures(m, tmp_path, "6.1")}
    assert got["__alloc_percpu_gfp"].status == "ok" and got["alloc_percpu_gfp"].status == "ok"
    assert got["kmalloc"].status == "missing"
    wrong = dataclasses.replace(m.allocator("__alloc_percpu_gfp"), gfp=1)
    bad = dataclasses.replace(m, allocators={**m.allocators, "__alloc_percpu_gfp": wrong})
    got = {r.name: r for r in check_signatures(bad, tmp_path, "6.1")}
    assert got["__alloc_percpu_gfp"].status == "mismatch"
    assert "argument 1 is 'size_t align', not a gfp" in got["__alloc_percpu_gfp"].reason


def test_gfp_check_compares_flags_not_spelling(tmp_path):
    (tmp_path / "include" / "linux").mkdir(parents=True)
    m = load_model()
    lines = [f"#define {a} ((__force gfp_t)___{a[2:]})" for a in sorted(m.gfp["6.12"].atoms)]
    lines += [f"#define {n} ({body})" for n, body in m.gfp["6.12"].composites.items() if n != "GFP_NOWAIT"]
    lines.append("#define GFP_NOWAIT (__GFP_KSWAPD_RECLAIM)")          # 6.1's spelling
    (tmp_path / "include" / "linux" / "gfp_types.h").write_text("\n".join(lines) + "\n")
    got = {r.name: r for r in check_gfp(m, tmp_path, "6.12")}
    assert got["atoms"].status == "ok" and got["GFP_KERNEL"].status == "ok"
    assert got["GFP_NOWAIT"].status == "mismatch" and "lacks __GFP_NOWARN" in got["GFP_NOWAIT"].reason
    assert check_gfp(m, tmp_path, "6.5")[0].status == "skipped"


# ---------------------------------------------------------------- CLI

def test_model_table(cli):
    proc = run_cli(cli, "model")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["name", "family", "gfp", "size", "order", "start", "end", "nofail", "since"]
    rows = {l.split()[0]: l.split() for l in lines[2:] if l.strip() and not l.startswith(("-", "`"))}
    assert rows["kmalloc"][1:4] == ["slab", "1", "0"]
    assert rows["__vmalloc_node_range"][2:7] == ["4", "0", "-", "2", "3"]
    assert rows["kvmalloc"][-2:] == ["vmalloc-fallback", "5.17"]


def test_model_entry_with_facts_and_citations(cli):
    proc = run_cli(cli, "model", "kvmalloc")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for text in ("kvmalloc", "vmalloc-fallback", "5.17", "size > INT_MAX",
                 "[kvmalloc.kmalloc-attempt-drops-nofail]", "mm/util.c", "kmalloc_gfp_adjust()",
                 "before 6.10: kvmalloc_node()", "nofail semantic is implemented by the vmalloc fallback"):
        assert text in out, text
    alias = run_cli(cli, "model", "kvmalloc_noprof")
    assert alias.returncode == 0 and "kvmalloc  (asked for kvmalloc_noprof)" in alias.stdout


def test_model_entry_per_version_and_unknown(cli):
    old = run_cli(cli, "model", "kvrealloc", "--kernel-version", "6.1")
    assert old.returncode == 0, old.stderr
    assert re.search(r"^\s+gfp\s+3$", old.stdout, re.M)
    new = run_cli(cli, "model", "kvrealloc")
    assert re.search(r"^\s+gfp\s+2$", new.stdout, re.M)
    memcg = run_cli(cli, "model", "try_charge_memcg")
    assert memcg.returncode == 0 and "not an allocator" in memcg.stdout
    unknown = run_cli(cli, "model", "no_such_allocator")
    assert unknown.returncode == 2 and "no_such_allocator" in unknown.stderr


def test_model_verify_good_tree(cli):
    proc = run_cli(cli, "model", "verify", str(VERIFY_GOOD))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert "vmalloc.range-nofail-retry: ok (mm/vmalloc.c, __vmalloc_node_range_noprof())" in lines
    assert "kvmalloc.kvrealloc-6-1: skipped: not in version range (6.1; tree is 6.12)" in lines
    assert not [l for l in lines if "STALE" in l]
    assert re.search(r"^Linux 6\.12: \d+ ok, 0 stale, \d+ skipped", lines[-1])


def test_model_verify_stale_tree_names_the_fact(cli, tmp_path):
    tree = tmp_path / "stale"
    shutil.copytree(VERIFY_GOOD, tree)
    for f in VERIFY_STALE.rglob("*"):            # the overlay: only what differs
        if f.is_file() and f.name != "README":
            shutil.copy(f, tree / f.relative_to(VERIFY_STALE))
    proc = run_cli(cli, "model", "verify", str(tree))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    stale = [l for l in proc.stdout.splitlines() if ": STALE: " in l]
    assert len(stale) == 1 and stale[0].startswith("vmalloc.range-nofail-retry: STALE: mm/vmalloc.c")
    assert "goto again" in stale[0]


def test_model_verify_usage_errors(cli, tmp_path):
    missing = run_cli(cli, "model", "verify", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "not a directory" in missing.stderr
    no_makefile = run_cli(cli, "model", "verify", str(tmp_path))
    assert no_makefile.returncode == 2
    (tmp_path / "Makefile").write_text("all:\n\ttrue\n")
    no_version = run_cli(cli, "model", "verify", str(tmp_path))
    assert no_version.returncode == 2 and "VERSION" in no_version.stderr


def test_model_verify_skips_facts_outside_the_tree_version(cli, tmp_path):
    (tmp_path / "Makefile").write_text("VERSION = 4\nPATCHLEVEL = 19\n")
    proc = run_cli(cli, "model", "verify", str(tmp_path))
    assert proc.returncode == 0, proc.stdout
    assert all(": skipped: not in version range" in l for l in proc.stdout.splitlines()[:-1])


def test_model_verify_checks_older_spellings(cli, tmp_path):
    """On a tree before 6.10 the pre-`_noprof` names are looked up."""
    tree = tmp_path / "old"
    shutil.copytree(VERIFY_GOOD, tree)
    (tree / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 1\n")
    proc = run_cli(cli, "model", "verify", str(tree))
    assert proc.returncode == 1
    assert "vmalloc.range-nofail-retry: STALE: mm/vmalloc.c: no definition of __vmalloc_node_range" \
        in proc.stdout


def test_model_verify_fixtures_have_no_findings(cli):
    proc = run_cli(cli, "check", "fixtures/model-verify")
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ---------------------------------------------------------------- real trees (opt-in)

REAL_TREES = [pytest.param(os.environ.get(var), id=var) for var in
              ("NOFAIL_LINT_KERNEL_6_12", "NOFAIL_LINT_KERNEL_6_1")]


@pytest.mark.kernel
@pytest.mark.parametrize("tree", REAL_TREES)
def test_model_verify_real_tree(cli, tree):
    if not tree or not Path(tree).is_dir():
        pytest.skip("set NOFAIL_LINT_KERNEL_6_12 / NOFAIL_LINT_KERNEL_6_1 to a Linux source tree")
    proc = run_cli(cli, "model", "verify", "--signatures", "--gfp", tree)
    assert proc.returncode == 0, "\n".join(l for l in proc.stdout.splitlines()
                                           if "STALE" in l or "MISMATCH" in l or "MISSING" in l)
    assert "0 mismatch, 0 missing" in proc.stdout.splitlines()[-1]
    assert " 0 stale" in proc.stdout.splitlines()[-1]
