#!/usr/bin/env python3
"""Whole-tree benchmark: nofail-lint against rg and Coccinelle, side by side.

    python3 bench/bench.py [--tree DIR] [--jobs N] [--markdown FILE]

Unpacks Debian's linux-source tarball if the tree is missing, then times, in
one run and on the same warm page cache:

  rg           literal `__GFP_NOFAIL` over the .c/.h files (the grep baseline)
  spatch       bench/nofail_literal.cocci: calls with a literal __GFP_NOFAIL
               argument, `--jobs N` (Coccinelle's simplest NOFAIL rule)
  cold -j1     nofail-lint check, all rules, empty cache, one process
  cold         nofail-lint check, all rules, empty cache, --jobs N
  grep cold    nofail-lint grep (NOFAIL sites) over the tree, empty cache
  grep xfs     `grep fs/xfs`, cache warm from the whole grep run, twice
  warm         check again: nothing changed
  vmalloc.c    `check mm/vmalloc.c`, cache warm from the whole run
  touched      after `touch` of one .c file (new mtime, same bytes)
  edited       after appending a comment to that file
  body edited  after inserting a line into a function body of fs/xfs/xfs_buf.c
               (every later line moves: its facts change)
  macro edited after adding a #define to a widely included header
  pull         after appending a comment to 2,000 drivers/ .c files (a pull)
  xfs cold     `check fs/xfs` from the tree root, empty cache: the subtree
               with whole-tree context (wrappers and macros of include/, mm/)
  xfs warm     the same again

Prints a table of wall time, CPU time (user+sys, children included: the
figure that holds on a shared machine), ratios of CPU time against spatch
and rg, and peak RSS (largest single process, from wait4), and checks that
cold, warm, touched, edited and pull runs report identical findings, and
that `grep fs/xfs` lists exactly the whole grep's sites under fs/xfs. Every
edited file is restored afterwards. Needs only the standard library, `rg`,
`spatch` and an installed `nofail-lint`.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
COCCI = HERE / "nofail_literal.cocci"
DEFAULT_TREE = "/tmp/k6.12/linux-source-6.12"
DEFAULT_TARBALL = "/usr/src/linux-source-6.12.tar.xz"
TOUCHED = "mm/vmalloc.c"
# the first function body of the file gets a line after its opening brace
BODY_EDIT = ("fs/xfs/xfs_buf.c", b"\n{\n", b"\n{\n\t/* nofail-lint bench: body edit */\n")
HEADER = "include/linux/slab.h"
SUBTREE = "fs/xfs"
PULL_DIR, PULL_FILES = "drivers", 2000


@dataclass
class Timing:
    name: str
    what: str
    wall: float
    cpu: float
    rss_mib: float
    result: str
    stdout: bytes = b""


def run_measured(name: str, what: str, cmd: list[str], cwd: Path, ok=(0,), summarise=None) -> Timing:
    """fork/exec with stdout to a temporary file, then os.wait4 for exact per-command rusage."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode not in ok:
        sys.exit(f"bench: {' '.join(cmd)} exited {proc.returncode}:\n{stderr.decode(errors='replace')[-2000:]}")
    result = summarise(stdout, stderr) if summarise else ""
    return Timing(name, what, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, result, stdout)


def ensure_tree(tree: Path, tarball: Path) -> Path:
    if (tree / "Makefile").exists():
        return tree
    if not tarball.exists():
        sys.exit(f"bench: no tree at {tree} and no tarball at {tarball} "
                 "(apt-get install linux-source-6.12)")
    print(f"bench: unpacking {tarball} into {tree.parent} ...", file=sys.stderr)
    tree.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball) as tar:
        tar.extractall(tree.parent, filter="data")
    if not (tree / "Makefile").exists():
        sys.exit(f"bench: {tarball} did not unpack to {tree}")
    return tree


def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal"))
        mem_s = f"{mem / 1024 / 1024:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        mem_s = "RAM unknown"
    return (f"{os.cpu_count()} cores ({model or platform.processor() or 'unknown CPU'}), {mem_s}, "
            f"{platform.system()} {platform.release()}, Python {platform.python_version()}")


def findings_of(report: Path) -> tuple[int, list]:
    doc = json.loads(report.read_text())
    rows = sorted((f["path"], f["line"], f["column"], f["rule_id"], f["message"]) for f in doc["findings"])
    return len(rows), rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tree", default=DEFAULT_TREE, type=Path)
    ap.add_argument("--tarball", default=DEFAULT_TARBALL, type=Path)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--nofail-lint", dest="tool", default=shutil.which("nofail-lint") or "nofail-lint")
    ap.add_argument("--no-spatch", action="store_true", help="skip Coccinelle (e.g. not installed)")
    ap.add_argument("--markdown", type=Path, help="also write the table to this file")
    ap.add_argument("--report", type=Path, help="keep the cold run's JSON report here")
    args = ap.parse_args()
    tree = ensure_tree(args.tree.resolve(), args.tarball)
    jobs = str(args.jobs)

    timings: list[Timing] = []
    # warm the page cache for everyone: all tools are timed on hot files
    subprocess.run(["rg", "-c", "--no-messages", "-t", "c", "-e", "zzz_no_such_token", "."], cwd=tree,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    timings.append(run_measured(
        "rg", "literal __GFP_NOFAIL in .c/.h", ["rg", "-c", "--no-messages", "-t", "c", "__GFP_NOFAIL", "."],
        tree, summarise=lambda out, err: f"{len(out.splitlines())} files"))
    if not args.no_spatch:
        timings.append(run_measured(
            "spatch", f"calls with a literal __GFP_NOFAIL argument, --jobs {jobs}",
            ["spatch", "--sp-file", str(COCCI), "--dir", ".", "--jobs", jobs, "--very-quiet"], tree,
            summarise=lambda out, err: f"{out.count(b'@@ ') // 2} hunks"))

    work = Path(tempfile.mkdtemp(prefix="nofail-lint-bench-"))
    cache = work / "cache"
    reports = {}
    grep_sites: dict[str, list] = {}

    def lint(name: str, what: str, *extra: str, cache_dir: Path = cache, paths=(".",), command="check",
             j: str = jobs) -> Timing:
        report = work / f"{name}.json"
        if command == "check":
            cmd = [args.tool, "check", "--format", "json", "-o", str(report)]
        else:
            cmd = [args.tool, "grep", "--json"]
        t = run_measured(name, what, cmd + ["-j", j, "--cache-dir", str(cache_dir), "-q", *extra, *paths],
                         tree, ok=(0, 1))
        if command == "check":
            reports[name] = findings_of(report)
            t.result = f"{reports[name][0]} findings"
        else:
            grep_sites[name] = json.loads(t.stdout)
            t.result = f"{len(grep_sites[name])} sites"
        return t

    timings.append(lint("cold -j1", "check, all rules, empty cache, -j 1", cache_dir=work / "cache-j1", j="1"))
    timings.append(lint("cold", f"check, all rules, empty cache, -j {jobs}"))
    timings.append(lint("grep cold", f"grep __GFP_NOFAIL sites, empty cache, -j {jobs}", cache_dir=work / "cache-grep",
                        command="grep"))
    for n in (1, 2):
        timings.append(lint(f"grep xfs #{n}", f"grep {SUBTREE}, cache warm from the whole grep run",
                            cache_dir=work / "cache-grep", command="grep", paths=(SUBTREE,)))
    timings.append(lint("warm", "check again, nothing changed"))
    timings.append(lint("vmalloc.c", f"check {TOUCHED}, cache warm from the whole run", paths=(TOUCHED,)))
    pulled = sorted(p.relative_to(tree).as_posix() for p in (tree / PULL_DIR).rglob("*.c"))[:PULL_FILES]
    saved = {}
    for rel in (TOUCHED, BODY_EDIT[0], HEADER, *pulled):
        target = tree / rel
        saved[rel] = (target.read_bytes(), target.stat())
    try:
        os.utime(tree / TOUCHED)
        timings.append(lint("touched", f"after touching {TOUCHED}"))
        (tree / TOUCHED).write_bytes(saved[TOUCHED][0] + b"\n/* nofail-lint bench: edited */\n")
        timings.append(lint("edited", f"after appending a comment to {TOUCHED}"))
        rel, old_text, new_text = BODY_EDIT
        body = saved[rel][0]
        assert old_text in body, f"bench: {rel} has no {old_text!r} to edit"
        (tree / rel).write_bytes(body.replace(old_text, new_text, 1))
        timings.append(lint("body edited", f"after inserting a line into a function body of {rel}"))
        (tree / rel).write_bytes(body)
        (tree / HEADER).write_bytes(saved[HEADER][0] + b"\n#define NOFAIL_LINT_BENCH_GFP (GFP_KERNEL | __GFP_NOFAIL)\n")
        timings.append(lint("macro edited", f"after adding a #define to {HEADER}"))
        (tree / HEADER).write_bytes(saved[HEADER][0])
        for rel in pulled:
            (tree / rel).write_bytes(saved[rel][0] + b"\n/* nofail-lint bench: pulled */\n")
        timings.append(lint("pull", f"after appending a comment to {len(pulled)} {PULL_DIR}/ .c files"))
    finally:
        for rel, (text, st) in saved.items():
            (tree / rel).write_bytes(text)
            os.utime(tree / rel, ns=(st.st_atime_ns, st.st_mtime_ns))
    timings.append(lint("xfs cold", f"check {SUBTREE} from the tree root, empty cache (whole-tree context)",
                        cache_dir=work / "cache-xfs", paths=(SUBTREE,)))
    timings.append(lint("xfs warm", f"check {SUBTREE} again", cache_dir=work / "cache-xfs", paths=(SUBTREE,)))
    if args.report:
        shutil.copyfile(work / "cold.json", args.report)
    shutil.rmtree(work, ignore_errors=True)

    whole = ("cold -j1", "cold", "warm", "touched", "edited", "pull")
    same = all(reports[n][1] == reports["cold"][1] for n in whole)
    sub = [r for r in reports["cold"][1] if r[0].startswith(SUBTREE + "/")]
    same_sub = reports["xfs cold"][1] == sub and reports["xfs warm"][1] == sub
    grep_sub = [h for h in grep_sites["grep cold"] if h["path"].startswith(SUBTREE + "/")]
    same_grep = all(grep_sites[f"grep xfs #{n}"] == grep_sub for n in (1, 2))
    spatch = next((t for t in timings if t.name == "spatch"), None)
    rg = timings[0]
    lines = [
        f"Machine: {machine()}",
        f"Tree: {tree} ({sum(1 for _ in tree.rglob('*.[ch]'))} .c/.h files); page cache warm for every run",
        "",
        "| run | what | CPU s | CPU x spatch | CPU x rg | wall s | peak RSS MiB | result |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for t in timings:
        vs_spatch = f"{t.cpu / spatch.cpu:.2f}" if spatch else "-"
        lines.append(f"| {t.name} | {t.what} | {t.cpu:.2f} | {vs_spatch} | {t.cpu / max(rg.cpu, 0.01):.1f} | "
                     f"{t.wall:.2f} | {t.rss_mib:.0f} | {t.result} |")
    lines += ["", f"Findings identical across {', '.join(whole)}: {'yes' if same else 'NO'}",
              f"{SUBTREE} findings identical to the whole-tree run's under {SUBTREE}: {'yes' if same_sub else 'NO'}",
              f"grep {SUBTREE} sites identical to the whole grep's under {SUBTREE}: {'yes' if same_grep else 'NO'}"]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    return 0 if same and same_sub and same_grep else 1


if __name__ == "__main__":
    sys.exit(main())
