"""Command line: `nofail-lint check|grep|explain|model`.

Exit codes: 0 clean, 1 findings, 2 usage or tool error, or a run with no
findings that had to skip inputs (the result is incomplete).
"""
from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path

import click

from . import __version__, baseline
from . import cache as facts_cache
from .cache import ENV_VAR, cache_dir as resolve_cache_dir
from .config import Config, ConfigError, find_config, load_config
from .discover import MissingPath, kernel_version_of
from .gitdiff import DiffError, changed_lines, split_changed
from .model import load_model
from .pipeline import Options, analyse, paused_gc, run
from .report import FORMATS, render
from .rules_catalog import RuleFileError, explain_text, load_rules
from .suppress import split_suppressed

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nofail-lint")
def main():
    """Find __GFP_NOFAIL misuse and open-coded allocation retry loops in Linux kernel sources."""


def _split_rules(value: str | None) -> set[str] | None:
    if not value:
        return None
    return {v.strip().upper() for v in value.split(",") if v.strip()}


class _Progress:
    """`files done/total, rate` on one stderr line, only when stderr is a terminal."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.started = time.monotonic()
        self.last = 0.0
        self.shown = False

    def __call__(self, done: int, total: int):
        now = time.monotonic()
        if not self.enabled or (now - self.last < 0.1 and done < total):
            return
        self.last = now
        rate = done / max(now - self.started, 1e-6)
        self._write(f"nofail-lint: {done}/{total} files ({rate:.0f} files/s)"
                    + (", linking and checking..." if done == total else ""))

    def _write(self, text: str):
        sys.stderr.write("\r\033[K" + text)
        sys.stderr.flush()
        self.shown = True

    def clear(self):
        if self.shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
            self.shown = False


def _fail(message: str):
    click.echo(f"nofail-lint: error: {message}", err=True)
    sys.exit(EXIT_ERROR)


def _config(config_file: str | None, paths: list[str], rules) -> Config:
    try:
        path = Path(config_file) if config_file else find_config(paths)
        return load_config(path, rules) if path is not None else Config()
    except ConfigError as e:
        _fail(f"config: {e}")


def _options(paths: list[str], jobs: int, kernel_version: str | None, rules: set[str] | None,
             config: Config, cache: tuple[str | None, bool], context: str = "tree") -> Options:
    if kernel_version is not None and not _valid_version(kernel_version):
        _fail(f"--kernel-version wants X.Y, got {kernel_version!r}")
    return Options(paths, jobs=jobs, kernel_version=kernel_version or config.kernel_version, rules=rules,
                   extra_allocators=config.extra_allocators, extra_retry_wait=config.extra_retry_wait,
                   exclude=config.excludes(), cache_dir=resolve_cache_dir(*cache), context=context)


def _context_option(command):
    """--context, shared by check and grep."""
    return click.option(
        "--context", type=click.Choice(["tree", "none"]), default="tree", show_default=True,
        help="tree: in a kernel tree (found upward by its Makefile's VERSION/PATCHLEVEL), resolve "
             "wrappers and macros from the whole tree, and report only on PATHS; none: analyse "
             "PATHS alone.")(command)


def _cache_options(command):
    """--cache-dir / --no-cache, shared by the commands that scan trees."""
    command = click.option("--no-cache", is_flag=True,
                           help="Neither read nor write the facts cache.")(command)
    return click.option("--cache-dir", metavar="DIR", default=None,
                        help=f"Facts cache directory (default: ${ENV_VAR}, else "
                             "$XDG_CACHE_HOME/nofail-lint, else ~/.cache/nofail-lint).")(command)


_CONFIG_OPT = click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=str),
                           default=None, help="Config file (default: .nofail-lint.toml in the first "
                                              "path's directory or the nearest one above it).")


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=str))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True,
              help="Output format.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write the report to FILE instead of stdout.")
@click.option("-j", "--jobs", type=click.IntRange(min=0), default=0, show_default=True,
              help="Worker processes for parsing; 0 means all cores.")
@click.option("--kernel-version", metavar="X.Y", default=None,
              help="Target kernel version; default: read from the tree's top-level Makefile.")
@click.option("--select", metavar="RULES", default=None, help="Comma-separated rule ids to run.")
@_CONFIG_OPT
@click.option("--show-suppressed", is_flag=True,
              help="Also report findings silenced by `nofail-lint: ignore` comments, marked as such.")
@click.option("--baseline", "baseline_file", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="Hide findings recorded in this baseline file.")
@click.option("--write-baseline", "write_baseline_file", type=click.Path(dir_okay=False, path_type=str),
              default=None, help="Record the current findings in FILE (they are then hidden).")
@click.option("--diff", "diff_rev", metavar="REV", default=None,
              help="Report only findings on lines added or changed since git revision REV.")
@click.option("-q", "--quiet", is_flag=True, help="No summary line or progress on stderr.")
@_cache_options
@_context_option
def check(paths, fmt, output, jobs, kernel_version, select, config_file, show_suppressed,
          baseline_file, write_baseline_file, diff_rev, quiet, cache_dir, no_cache, context):
    """Check C files and trees (recursive .c/.h; default: current directory)."""
    cwd = Path.cwd()
    paths = list(paths) or ["."]
    try:
        rules = load_rules()
    except RuleFileError as e:
        _fail(str(e))
    selected = _split_rules(select)
    if selected is not None:
        unknown = selected - set(rules)
        if unknown:
            _fail(f"unknown rule(s): {', '.join(sorted(unknown))}")
    config = _config(config_file, paths, rules)
    options = _options(paths, jobs, kernel_version, config.rules(selected, rules), config, (cache_dir, no_cache),
                       context)
    known = changed = None       # read before the (long) run, so a bad file or rev fails fast
    if baseline_file:
        try:
            known = baseline.load(Path(baseline_file), cwd)
        except baseline.BaselineError as e:
            _fail(str(e))
    if diff_rev is not None:
        try:
            changed = changed_lines(diff_rev, paths, cwd)
        except DiffError as e:
            _fail(str(e))
    progress = _Progress(not quiet and sys.stderr.isatty())
    try:
        result = run(options, cwd, progress)
    except MissingPath as e:
        progress.clear()
        _fail(f"no such file or directory: {e}")
    progress.clear()

    findings, result.suppressed = split_suppressed(result.findings, cwd, {r.name: r.id for r in rules.values()})
    extra = []                   # what the summary says was hidden, and why
    if write_baseline_file:      # record everything, then hide what was recorded
        try:
            n = baseline.write(Path(write_baseline_file), findings, cwd)
        except baseline.BaselineError as e:
            _fail(str(e))
        if not quiet:
            click.echo(f"nofail-lint: wrote {n} finding(s) to baseline {write_baseline_file}", err=True)
        findings = []
        extra.append(f"{n} in baseline")
    elif known is not None:
        findings, old = baseline.split_known(findings, known, Path(baseline_file), cwd)
        extra.append(f"{len(old)} in baseline")
    if changed is not None:
        findings, unchanged = split_changed(findings, changed, cwd)
        result.suppressed, _ = split_changed(result.suppressed, changed, cwd)
        extra.append(f"{len(unchanged)} outside --diff {diff_rev}")
    result.findings = findings

    model = load_model()
    text = render(result, fmt, rules, model.fact_lines(), cwd, __version__, show_suppressed)
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)
    for s in result.skipped:
        click.echo(f"nofail-lint: skipped {s.path}: {s.reason}", err=True)
    if not quiet:
        per_rule = Counter(f.rule_id for f in result.findings)
        detail = ", ".join(f"{r}: {n}" for r, n in sorted(per_rule.items()))
        hidden = "".join(f", {e}" for e in extra)
        excluded = f", {result.excluded} excluded" if result.excluded else ""
        cached = f" ({result.from_cache} from cache)" if result.from_cache else ""
        click.echo(f"nofail-lint: {len(result.findings)} finding(s){f' ({detail})' if detail else ''}, "
                   f"{len(result.suppressed)} suppressed{hidden}"
                   f" in {result.files_scanned} file(s){cached}{result.context}, {len(result.skipped)} skipped{excluded},"
                   f" Linux {result.kernel_version}, {result.seconds:.1f}s", err=True)
    if result.findings:
        sys.exit(EXIT_FINDINGS)
    sys.exit(EXIT_ERROR if result.skipped else EXIT_CLEAN)


@main.command("grep")
@click.argument("paths", nargs=-1, type=click.Path(path_type=str))
@click.option("--flag", default="__GFP_NOFAIL", show_default=True,
              help="The gfp flag to look for (an atom such as __GFP_NORETRY).")
@click.option("-c", "--count", is_flag=True, help="Print the number of matching sites per file.")
@click.option("-l", "--files-with-matches", "files_only", is_flag=True, help="Print only file names.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@click.option("-j", "--jobs", type=click.IntRange(min=0), default=0, show_default=True,
              help="Worker processes for parsing; 0 means all cores.")
@click.option("--kernel-version", metavar="X.Y", default=None,
              help="Target kernel version (flag algebra); default: the tree's Makefile.")
@_CONFIG_OPT
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
@_cache_options
@_context_option
def grep_cmd(paths, flag, count, files_only, as_json, jobs, kernel_version, config_file, quiet,
             cache_dir, no_cache, context):
    """List allocation sites whose effective gfp mask may include FLAG.

    One line per call where the flag enters the mask -- written directly, via a
    macro or a local variable, or passed by a caller to an allocator wrapper:
    `path:line:col: callee: <gfp argument as written>`. Exit 0 if something
    matched, 1 if nothing did, 2 on error (or nothing matched and some inputs
    were skipped).
    """
    from .grep import hits, normalise_flag
    cwd = Path.cwd()
    paths = list(paths) or ["."]
    if count and files_only:
        _fail("-c and -l are mutually exclusive")
    try:
        rules = load_rules()
    except RuleFileError as e:
        _fail(str(e))
    config = _config(config_file, paths, rules)
    options = _options(paths, jobs, kernel_version, set(), config, (cache_dir, no_cache), context)
    model = load_model()
    version = options.kernel_version or kernel_version_of(paths) or model.newest_version
    atoms = model.algebra(version).atoms
    wanted = normalise_flag(flag)
    if wanted not in atoms:
        _fail(f"--flag: {flag!r} is not a gfp flag of Linux {version}; known: {', '.join(sorted(atoms))}")
    progress = _Progress(not quiet and sys.stderr.isatty())
    try:
        with paused_gc():
            analysis = analyse(options, cwd, progress)
            found = [h for h in hits(analysis.tables, wanted, cwd) if analysis.reports_on(h.path)]
    except MissingPath as e:
        progress.clear()
        _fail(f"no such file or directory: {e}")
    analysis.close()
    progress.clear()
    per_file = Counter(h.path for h in found)
    if as_json:
        if count:
            doc = [{"path": p, "count": n} for p, n in sorted(per_file.items())]
        elif files_only:
            doc = sorted(per_file)
        else:
            doc = [h.as_json() for h in found]
        click.echo(json.dumps(doc, indent=2))
    elif count:
        for p, n in sorted(per_file.items()):
            click.echo(f"{p}:{n}")
    elif files_only:
        for p in sorted(per_file):
            click.echo(p)
    else:
        for h in found:
            click.echo(h.text())
    for s in analysis.skipped:
        click.echo(f"nofail-lint: skipped {s.path}: {s.reason}", err=True)
    if found:
        sys.exit(EXIT_CLEAN)
    sys.exit(EXIT_ERROR if analysis.skipped else EXIT_FINDINGS)


def _valid_version(v: str) -> bool:
    parts = v.split(".")
    return 2 <= len(parts) <= 3 and all(p.isdigit() for p in parts)


@main.command()
@click.argument("rule_id")
def explain(rule_id):
    """Print a rule's documentation and the allocator-model facts behind it."""
    rules = load_rules()
    rule = rules.get(rule_id.upper())
    if rule is None:
        by_name = {r.name: r for r in rules.values()}
        rule = by_name.get(rule_id)
    if rule is None:
        click.echo(f"nofail-lint: error: unknown rule {rule_id!r}; known: {', '.join(rules)}", err=True)
        sys.exit(EXIT_ERROR)
    click.echo(explain_text(rule, load_model().fact_lines()), nl=False)


# ---------------------------------------------------------------- model

class _ModelGroup(click.Group):
    """`model` takes either a subcommand (`verify`) or an API name."""

    def resolve_command(self, ctx, args):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            return "show", self.commands["show"], args
        return super().resolve_command(ctx, args)


_KERNEL_VERSION_OPT = click.option(
    "--kernel-version", metavar="X.Y", default=None,
    help="Show the model as it applies to this kernel version (default: the newest known).")


@main.command("cache")
@click.option("--cache-dir", metavar="DIR", default=None, help="The cache directory (default as for `check`).")
@click.option("--clear", "clear_it", is_flag=True, help="Delete the cache's databases.")
def cache_cmd(cache_dir, clear_it):
    """Where the facts cache is and how big; --clear deletes it."""
    directory = resolve_cache_dir(cache_dir, False)
    if clear_it:
        n = facts_cache.clear(directory) if directory.is_dir() else 0
        click.echo(f"{directory}: deleted {n} database(s)")
        return
    found = facts_cache.databases(directory) if directory.is_dir() else []
    click.echo(f"{directory}: {len(found)} database(s), {sum(s for _, s, _ in found) / 1e6:.1f} MB")
    for p, size, current in found:
        click.echo(f"  {p.name}  {size / 1e6:.1f} MB{'  (this version)' if current else ''}")


@main.group(cls=_ModelGroup, invoke_without_command=True)
@_KERNEL_VERSION_OPT
@click.pass_context
def model(ctx, kernel_version):
    """The bundled allocator model: `model` (table), `model API`, `model verify LINUX_TREE`."""
    if ctx.invoked_subcommand is None:
        if kernel_version is not None and not _valid_version(kernel_version):
            click.echo(f"nofail-lint: error: --kernel-version wants X.Y, got {kernel_version!r}", err=True)
            sys.exit(EXIT_ERROR)
        from .model.show import table
        click.echo(table(load_model(), kernel_version), nl=False)


@model.command("show", hidden=True)
@click.argument("api")
@_KERNEL_VERSION_OPT
@click.pass_context
def model_show(ctx, api, kernel_version):
    """Print one allocator entry (any spelling) with its facts and citations."""
    from .model.show import entry, not_allocator
    if kernel_version is None and ctx.parent is not None:
        kernel_version = ctx.parent.params.get("kernel_version")
    if kernel_version is not None and not _valid_version(kernel_version):
        click.echo(f"nofail-lint: error: --kernel-version wants X.Y, got {kernel_version!r}", err=True)
        sys.exit(EXIT_ERROR)
    m = load_model()
    if m.allocator(api) is not None:
        click.echo(entry(m, api, kernel_version), nl=False)
        return
    na = m.not_allocator(api)
    if na is not None:
        click.echo(not_allocator(m, na, kernel_version), nl=False)
        return
    click.echo(f"nofail-lint: error: {api!r} is not in the allocator model; "
               "`nofail-lint model` lists the known allocators", err=True)
    sys.exit(EXIT_ERROR)


@model.command("verify")
@click.argument("linux_tree", type=click.Path(path_type=Path))
@click.option("--signatures", is_flag=True,
              help="Also check every allocator's argument positions against the tree's declarations.")
@click.option("--gfp", "gfp_algebra", is_flag=True,
              help="Also compare the model's GFP flag algebra with the tree's headers.")
def model_verify(linux_tree, signatures, gfp_algebra):
    """Check that the model's cited kernel functions and code still exist in LINUX_TREE.

    Exit 0 when every fact that applies to the tree's version holds, 1 when any
    is stale, 2 on usage errors.
    """
    from .model.verify import VerifyUsageError, check_gfp, check_signatures, verify_tree
    m = load_model()
    try:
        version, results = verify_tree(m, linux_tree)
    except VerifyUsageError as e:
        click.echo(f"nofail-lint: error: {e}", err=True)
        sys.exit(EXIT_ERROR)
    for r in results:
        click.echo(r.line())
    counts = Counter(r.status for r in results)
    bad = counts["stale"]
    summary = (f"Linux {version}: {counts['ok']} ok, {counts['stale']} stale, "
               f"{counts['skipped']} skipped (not in version range) of {len(results)} facts")
    extra = [("signatures", check_signatures)] if signatures else []
    extra += [("gfp", check_gfp)] if gfp_algebra else []
    for label, check_part in extra:
        part = check_part(m, linux_tree, version)
        for r in part:
            click.echo(r.line())
        c = Counter(r.status for r in part)
        bad += c["mismatch"] + c["missing"]
        summary += (f"; {label}: {c['ok']} ok, {c['mismatch']} mismatch, {c['missing']} missing, "
                    f"{c['skipped']} skipped")
    click.echo(summary)
    sys.exit(EXIT_FINDINGS if bad else EXIT_CLEAN)


if __name__ == "__main__":  # pragma: no cover
    main()
