"""Command line: `nofail-lint check|explain|model`.

Exit codes: 0 clean, 1 findings, 2 usage or tool error, or a run with no
findings that had to skip inputs (the result is incomplete).
"""
from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import click

from . import __version__
from .discover import MissingPath
from .model import load_model
from .pipeline import Options, run
from .report import FORMATS, render
from .rules_catalog import RuleFileError, explain_text, load_rules

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nofail-lint")
def main():
    """Find __GFP_NOFAIL misuse and open-coded allocation retry loops in Linux kernel sources."""


def _split_rules(value: str | None) -> set[str] | None:
    if not value:
        return None
    return {v.strip().upper() for v in value.split(",") if v.strip()}


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
@click.option("-q", "--quiet", is_flag=True, help="No summary line on stderr.")
def check(paths, fmt, output, jobs, kernel_version, select, quiet):
    """Check C files and trees (recursive .c/.h; default: current directory)."""
    cwd = Path.cwd()
    try:
        rules = load_rules()
    except RuleFileError as e:
        click.echo(f"nofail-lint: error: {e}", err=True)
        sys.exit(EXIT_ERROR)
    selected = _split_rules(select)
    if selected is not None:
        unknown = selected - set(rules)
        if unknown:
            click.echo(f"nofail-lint: error: unknown rule(s): {', '.join(sorted(unknown))}", err=True)
            sys.exit(EXIT_ERROR)
    if kernel_version is not None and not _valid_version(kernel_version):
        click.echo(f"nofail-lint: error: --kernel-version wants X.Y, got {kernel_version!r}", err=True)
        sys.exit(EXIT_ERROR)
    try:
        result = run(Options(list(paths) or ["."], jobs=jobs, kernel_version=kernel_version,
                             rules=selected), cwd)
    except MissingPath as e:
        click.echo(f"nofail-lint: error: no such file or directory: {e}", err=True)
        sys.exit(EXIT_ERROR)
    model = load_model()
    text = render(result, fmt, rules, model.fact_lines(), cwd, __version__)
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)
    for s in result.skipped:
        click.echo(f"nofail-lint: skipped {s.path}: {s.reason}", err=True)
    if not quiet:
        per_rule = Counter(f.rule_id for f in result.findings)
        detail = ", ".join(f"{r}: {n}" for r, n in sorted(per_rule.items()))
        click.echo(f"nofail-lint: {len(result.findings)} finding(s){f' ({detail})' if detail else ''}"
                   f" in {result.files_scanned} file(s), {len(result.skipped)} skipped,"
                   f" Linux {result.kernel_version}, {result.seconds:.1f}s", err=True)
    if result.findings:
        sys.exit(EXIT_FINDINGS)
    sys.exit(EXIT_ERROR if result.skipped else EXIT_CLEAN)


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
    if signatures:
        sig_results = check_signatures(m, linux_tree, version)
        for r in sig_results:
            click.echo(r.line())
        sc = Counter(r.status for r in sig_results)
        bad += sc["mismatch"] + sc["missing"]
        summary += (f"; signatures: {sc['ok']} ok, {sc['mismatch']} mismatch, {sc['missing']} missing, "
                    f"{sc['skipped']} skipped")
    if gfp_algebra:
        gfp_results = check_gfp(m, linux_tree, version)
        for r in gfp_results:
            click.echo(r.line())
        gc = Counter(r.status for r in gfp_results)
        bad += gc["mismatch"] + gc["missing"]
        summary += (f"; gfp: {gc['ok']} ok, {gc['mismatch']} mismatch, {gc['missing']} missing, "
                    f"{gc['skipped']} skipped")
    click.echo(summary)
    sys.exit(EXIT_FINDINGS if bad else EXIT_CLEAN)


if __name__ == "__main__":  # pragma: no cover
    main()
