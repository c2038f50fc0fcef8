"""Command line: `nofail-lint check|grep|explain|model|cache`.

Exit codes (check): 0 clean; 1 findings at or above --fail-on (default
warning) and nothing else; 2 usage, config or tool error, a report that
could not be written, or a run with no findings at all that could not
analyse everything (skipped inputs, parts not analysed); 130/143 interrupted
by SIGINT/SIGTERM. An unexpected error prints one line naming the inputs
(`--debug` adds the traceback), never a bare traceback.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import sys
import tempfile
import threading
import time
import traceback
import weakref
from collections import Counter
from pathlib import Path
from typing import Callable, NoReturn

import click

from . import __version__, baseline
from . import cache as facts_cache
from .cache import ENV_VAR
from .cache import cache_dir as resolve_cache_dir
from .check import run_rules
from .config import Config, ConfigError, find_config, load_config
from .discover import SOURCE_SUFFIXES, MissingPath, discover, display_path, kernel_version_of
from .findings import Finding, PathStep
from .gitdiff import DiffError, changed_lines, split_changed, staged_lines, touched
from .model import load_model, version_key
from .pipeline import Options, Terminated, analyse, grep, interruptible, paused_gc, run
from .report import FORMATS, render
from .report import statistics as stats_report
from .rules_catalog import RuleFileError, explain_text, load_rules
from .suppress import Suppressions

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2
EXIT_SIGINT, EXIT_SIGTERM = 128 + signal.SIGINT, 128 + signal.SIGTERM
LEVELS = ("note", "warning", "error")          # --fail-on thresholds, lowest first
DEFAULT_FAIL_ON = "warning"
MAX_LISTED = 20       # parts not analysed listed on stderr (a whole kernel has about a hundred)

_state = {"debug": False, "inputs": ""}        # for the one-line error report of _Main


class _Main(click.Group):
    """Every command runs under one guard: an unexpected exception becomes one
    line naming the inputs and exit 2 (`--debug`: the traceback too); Ctrl-C
    exits 130, SIGTERM 143; a report that cannot be written exits 2."""

    def main(self, *args, **kwargs):
        """Usage errors are one `nofail-lint: error:` line (and exit 2), as the README promises."""
        kwargs["standalone_mode"] = False
        try:
            code = super().main(*args, **kwargs)
        except click.UsageError as e:
            hint = f" (see `{e.ctx.command_path} --help`)" if e.ctx is not None else ""
            _stderr(f"nofail-lint: error: {e.format_message()}{hint}")
            sys.exit(EXIT_ERROR)
        except click.ClickException as e:
            _stderr(f"nofail-lint: error: {e.format_message()}")
            sys.exit(e.exit_code)
        except click.Abort:
            _interrupted("interrupted", EXIT_SIGINT)
        sys.exit(code if isinstance(code, int) else EXIT_CLEAN)

    def invoke(self, ctx):
        closed = [name for name in ("stdout", "stderr") if getattr(sys, name) is None]
        if closed:
            _closed_streams(closed)
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Terminated:
            _interrupted("terminated", EXIT_SIGTERM)
        except KeyboardInterrupt:
            _interrupted("interrupted", EXIT_SIGINT)
        except BrokenPipeError:
            _stdout_gone()
            _stderr("nofail-lint: error: cannot write the report: stdout was closed")
            sys.exit(EXIT_ERROR)
        except OSError as e:
            if e.errno not in _WRITE_ERRORS:
                raise
            _stdout_gone()
            _stderr(f"nofail-lint: error: cannot write the output: {e.strerror or e}")
            sys.exit(EXIT_ERROR)
        except Exception as e:      # noqa: BLE001 -- the contract: one line, exit 2
            if _state["debug"]:
                traceback.print_exc()
            where = f" while {_state['inputs']}" if _state["inputs"] else ""
            _stderr(f"nofail-lint: error: internal error{where}: {type(e).__name__}: {e}"
                    + ("" if _state["debug"] else " (run with --debug for the traceback)"))
            sys.exit(EXIT_ERROR)


_WRITE_ERRORS = frozenset({errno.ENOSPC, errno.EPIPE, errno.EDQUOT, errno.EFBIG, errno.EBADF})


def _closed_streams(closed: list[str]) -> NoReturn:
    """Started with stdout or stderr closed (`>&-`, `2>&-`): say so on the
    other one, if it is open, and exit 2 before doing anything."""
    other = sys.stderr if "stderr" not in closed else sys.stdout
    if other is not None:
        with contextlib.suppress(OSError, ValueError):
            other.write(f"nofail-lint: error: cannot write {' or '.join(closed)}: it is closed\n")
            other.flush()
    for name in closed:                 # the interpreter's exit must not trip over them
        setattr(sys, name, open(os.devnull, "w"))
    sys.exit(EXIT_ERROR)


def _interrupted(what: str, code: int):
    """Leave at once: what finished is already in the cache (committed per
    batch). os._exit skips the interpreter's exit handlers, which would wait
    for a stopped worker pool or trip over its closed pipes."""
    _stderr(f"nofail-lint: {what}; finished work is kept in the cache")
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.flush()
    os._exit(code)


def _stderr(line: str):
    try:
        click.echo(line, err=True)
    except OSError:
        pass


def _stdout_gone():
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, sys.stdout.fileno())
        os.close(fd)
    except (OSError, ValueError):
        pass


def _set_debug(ctx, param, value):
    if value:
        _state["debug"] = True


def _debug_option(command):
    return click.option("--debug", is_flag=True, expose_value=False, is_eager=True, callback=_set_debug,
                        help="On an internal error, print the traceback.")(command)


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nofail-lint")
@_debug_option
def main():
    """Find __GFP_NOFAIL misuse and open-coded allocation retry loops in Linux kernel sources."""


def _rule_ids(value: str | None, rules, option: str) -> set[str] | None:
    """Comma-separated rule ids or names -> ids; an unknown one is a usage error."""
    if value is None:
        return None
    by_name = {r.name: r.id for r in rules.values()}
    out = set()
    for v in (v.strip() for v in value.split(",")):
        if not v:
            continue
        rid = v.upper() if v.upper() in rules else by_name.get(v.lower())
        if rid is None:
            _fail(f"{option}: unknown rule {v!r}; known: "
                  + ", ".join(f"{r.id} ({r.name})" for r in rules.values()))
        out.add(rid)
    return out


def _rule_selection(select: str | None, ignore: str | None, rules, config: Config) -> set[str] | None:
    """--select/--ignore and the config -> the rule ids to run (None: every rule).
    --select overrides the config's select/ignore; --ignore is taken out last."""
    selected = _rule_ids(select, rules, "--select")
    ignored = _rule_ids(ignore, rules, "--ignore") or set()
    chosen = config.rules(selected, rules)
    if ignored:
        chosen = (set(rules) if chosen is None else chosen) - ignored
    return chosen


class _Progress:
    """Progress on stderr: one rewritten line on a terminal, or (`--progress`
    when stderr is a file or pipe, as in CI logs) a full line every few
    seconds. Both show an ETA once the rate is known."""

    EVERY = 5.0          # seconds between lines when stderr is not a terminal

    def __init__(self, mode: str | None):
        self.mode = mode          # "tty", "lines" or None
        self.started = time.monotonic()
        self.last = float("-inf")      # the first call always shows
        self.shown = False
        self.base: int | None = None    # files already done at the first call (known from the cache)
        self._beat: threading.Event | None = None    # stops the heartbeat after the last file
        self.finished = False           # the last call counted every file

    def __call__(self, done: int, total: int):
        if self.mode is None:
            return
        now = time.monotonic()
        if self.base is None:
            self.base = done
            self.started = now
        gap = 0.1 if self.mode == "tty" else self.EVERY
        if now - self.last < gap and done < total:
            return
        self.last = now
        elapsed = max(now - self.started, 1e-6)
        rate = (done - self.base) / elapsed
        eta = ""
        if done < total and rate > 0 and elapsed >= 2:
            eta = f", ETA {_duration((total - done) / rate)}"
        self._write(f"nofail-lint: {done}/{total} files ({rate:.0f} files/s{eta})"
                    + (", linking and checking..." if done == total else ""))
        self.finished = done == total
        if done == total and self._beat is None:
            self._start_heartbeat()

    def _start_heartbeat(self):
        """After the last file, linking and checking print no counts of their
        own: a line every EVERY seconds (the tty line updated) says the run
        is still going and for how long, until clear() (or until this object
        is gone: the thread holds it only weakly)."""
        stop = threading.Event()
        ref = weakref.ref(self)
        gap = self.EVERY if self.mode == "lines" else 1.0

        def beat():
            began = None
            while not stop.wait(gap):
                me = ref()
                if me is None or me.mode is None:
                    return
                now = time.monotonic()
                began = now if began is None else began
                if me.finished and now - me.last >= gap:     # nothing else said meanwhile
                    me._write(f"nofail-lint: linking and checking ({_duration(now - began + gap)})")
                    me.last = now
                del me
        self._beat = stop
        threading.Thread(target=beat, name="nofail-lint-progress", daemon=True).start()

    def _write(self, text: str):
        try:
            if self.mode == "tty":
                sys.stderr.write("\r\033[K" + text)
            else:
                sys.stderr.write(text + "\n")
            sys.stderr.flush()
        except OSError:
            self.mode = None
        self.shown = True

    def clear(self):
        if self._beat is not None:
            self._beat.set()
        if self.shown and self.mode == "tty":
            try:
                sys.stderr.write("\r\033[K")
                sys.stderr.flush()
            except OSError:
                pass
            self.shown = False


def _duration(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _progress_mode(progress: bool | None, quiet: bool) -> str | None:
    """--progress forces it (lines when stderr is no terminal), --no-progress and -q turn it off;
    by default only a terminal gets it."""
    if quiet or progress is False:
        return None
    if sys.stderr.isatty():
        return "tty"
    return "lines" if progress else None


def _fail(message: str) -> NoReturn:
    _stderr(f"nofail-lint: error: {message}")
    sys.exit(EXIT_ERROR)


def _warn(message: str):
    _stderr(f"nofail-lint: warning: {message}")


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


def _check_destination(option: str, target: str, inputs: list[str], cwd: Path):
    """A report or baseline destination is checked before the (long) analysis:
    its directory exists and is writable, it is no directory, and it is not
    one of the inputs (a report written over a source file destroys it)."""
    if target == "-":
        return
    p = Path(os.path.abspath(cwd / target))
    if p.is_dir():
        _fail(f"{option} {target}: is a directory")
    if not p.parent.is_dir():
        _fail(f"{option} {target}: directory {p.parent} does not exist")
    if p.exists():
        if not os.access(p, os.W_OK):
            _fail(f"{option} {target}: not writable")
    elif not os.access(p.parent, os.W_OK | os.X_OK):
        _fail(f"{option} {target}: directory {p.parent} is not writable")
    real = os.path.realpath(p)
    for raw in inputs:
        src = os.path.realpath(cwd / raw)
        if real == src or (p.name.endswith(SOURCE_SUFFIXES) and real.startswith(src.rstrip("/") + "/")):
            _fail(f"{option} {target}: is an input source file; refusing to overwrite it")


def _write_report(text: str, output: str | None):
    """The report to FILE or stdout; a failed write is one line and exit 2."""
    if output and output != "-":
        try:
            with open(output, "w", encoding="utf-8") as fh:
                fh.write(text)
        except OSError as e:
            _fail(f"cannot write the report to {output}: {e.strerror or e}")
        return
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        _stdout_gone()
        _fail("cannot write the report: stdout was closed")
    except OSError as e:
        _stdout_gone()
        _fail(f"cannot write the report to stdout: {e.strerror or e}")


def _use_color(color: str, output: str | None) -> bool:
    """--color always|never win; auto: colour only on a terminal, and never with NO_COLOR set."""
    if color == "always":
        return True
    if color == "never" or (output and output != "-"):
        return False
    return not os.environ.get("NO_COLOR") and sys.stdout.isatty()


def _stdin_source(stdin_filename: str | None, cwd: Path) -> tuple[str, str, str]:
    """`check -`: stdin is written to a private temporary file named like
    --stdin-filename (so .c/.h and reports read right). Returns (temporary
    path, its display path, the display path reports must show)."""
    name = Path(stdin_filename).name if stdin_filename else "stdin.c"
    if not name.endswith(SOURCE_SUFFIXES):
        name += ".c"
    tmp = Path(tempfile.mkdtemp(prefix="nofail-lint-stdin-")) / name
    tmp.write_bytes(sys.stdin.buffer.read())
    shown = display_path(stdin_filename, cwd) if stdin_filename else "-"
    return str(tmp), display_path(tmp, cwd), shown


def _remove_stdin_copy(path: str):
    Path(path).unlink(missing_ok=True)
    Path(path).parent.rmdir()


def _rename(findings: list[Finding], old: str, new: str) -> list[Finding]:
    """Findings in the stdin stand-in file carry the name the editor gave."""
    import dataclasses

    def loc(location):
        return dataclasses.replace(location, path=new) if location.path == old else location
    return [dataclasses.replace(f, location=loc(f.location),
                                path=tuple(PathStep(loc(s.location), s.message) for s in f.path))
            for f in findings]


_EPILOG_EXAMPLES = """\
  nofail-lint check .                                   # the whole tree, text report
  nofail-lint check --format sarif -o out.sarif .       # for GitHub code scanning
  nofail-lint check --diff origin/master .              # only findings on changed lines
  nofail-lint check --select NF002 --fail-on error fs/  # one rule; only errors fail
  cat fs/x.c | nofail-lint check --stdin-filename fs/x.c -   # from an editor"""

_EPILOG_EXIT = """\
  0    no failing findings and every input analysed
  1    findings at or above --fail-on (default: warning; NF006 is a note)
  2    usage, config or tool error, a report that could not be written, or no
       findings at all but some input was skipped or not fully analysed
  130  interrupted (Ctrl-C); 143 terminated (SIGTERM). Finished files are cached."""


class _CheckCommand(click.Command):
    """`check --help` ends with the exit codes, examples and the rule list."""

    def format_epilog(self, ctx, formatter):
        try:
            rules = load_rules()
        except RuleFileError:
            rules = {}
        with formatter.section("Exit codes"):
            formatter.write(_EPILOG_EXIT + "\n")
        with formatter.section("Examples"):
            formatter.write(_EPILOG_EXAMPLES + "\n")
        if rules:
            with formatter.section("Rules (nofail-lint explain RULE)"):
                formatter.write_dl([(f"{r.id} {r.name}", f"[{r.level}] {r.summary.replace('`', '')}")
                                    for r in rules.values()])


@main.command(cls=_CheckCommand)
@click.argument("paths", nargs=-1, type=click.Path(path_type=str))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True,
              help="Output format.")
@click.option("-o", "--output", metavar="FILE", default=None,
              help="Write the report to FILE instead of stdout (checked before the analysis starts).")
@click.option("-j", "--jobs", type=click.IntRange(min=0), default=0, show_default=True,
              help="Worker processes for parsing; 0 means all cores (at most one per core and per batch).")
@click.option("--kernel-version", metavar="X.Y", default=None,
              help="Target kernel version; default: config, else the tree's top-level Makefile, else the "
                   "model's newest (the summary says so).")
@click.option("--select", metavar="RULES", default=None,
              help="Comma-separated rule ids or names to run (overrides the config's select/ignore).")
@click.option("--ignore", "ignore_rules", metavar="RULES", default=None,
              help="Comma-separated rule ids or names not to run.")
@_CONFIG_OPT
@click.option("--fail-on", type=click.Choice(LEVELS), default=DEFAULT_FAIL_ON, show_default=True,
              help="Lowest finding level that makes the exit status 1 (NF006 is a note).")
@click.option("--exit-zero", is_flag=True, help="Exit 0 even when there are findings (errors still exit 2).")
@click.option("--show-suppressed", is_flag=True,
              help="Also report findings silenced by `nofail-lint: ignore` comments, marked as such.")
@click.option("--fixes", "with_fixes", is_flag=True,
              help="SARIF: attach the rewrites of `nofail-lint fix` (NF002; both ways out for NF003 "
                   "and NF006) as `fixes`; verifying them costs a second analysis.")
@click.option("--report-unused-suppressions", is_flag=True,
              help="Warn about `nofail-lint: ignore` comments that silenced nothing.")
@click.option("--baseline", "baseline_file", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="Hide findings recorded in this baseline file.")
@click.option("--write-baseline", "write_baseline_file", type=click.Path(path_type=str),
              default=None, help="Record the current findings in FILE (they are then hidden).")
@click.option("--diff", "diff_rev", metavar="REV", default=None,
              help="Report only findings on lines added or changed since git revision REV.")
@click.option("--diff-staged", is_flag=True,
              help="Report only findings on lines staged for commit (the pre-commit hook's default).")
@click.option("--statistics", "show_statistics", is_flag=True,
              help="Counts per rule and per top-level directory (after a text report, in JSON, "
                   "else on stderr).")
@click.option("--no-notes", is_flag=True, help="Text: leave out the indented note lines.")
@click.option("--terse", is_flag=True, help="Text: one line per finding.")
@click.option("--color", type=click.Choice(("auto", "always", "never")), default="auto", show_default=True,
              help="Colour the text report; auto: on a terminal unless NO_COLOR is set.")
@click.option("--stdin-filename", metavar="PATH", default=None,
              help="With `-` as the path: the name of the file read from stdin (config, reports).")
@click.option("--progress/--no-progress", default=None,
              help="Progress on stderr; default: only on a terminal. --progress prints a line every "
                   "few seconds when stderr is not a terminal (CI logs).")
@click.option("-q", "--quiet", is_flag=True,
              help="No summary line or progress; parts not analysed only as a count.")
@_cache_options
@_context_option
@_debug_option
def check(paths, fmt, output, jobs, kernel_version, select, ignore_rules, config_file, fail_on, exit_zero,  # noqa: C901
          show_suppressed, with_fixes, report_unused_suppressions, baseline_file, write_baseline_file, diff_rev,
          diff_staged, show_statistics, no_notes, terse, color, stdin_filename, progress, quiet,
          cache_dir, no_cache, context):
    """Check C files and trees (recursive .c/.h; default: current directory; `-`: stdin)."""
    cwd = Path.cwd()
    paths = list(paths) or ["."]
    _state["inputs"] = f"checking {' '.join(paths)}"
    if "-" in paths and len(paths) > 1:
        _fail("`-` (stdin) cannot be mixed with other paths")
    if stdin_filename is not None and paths != ["-"]:
        _fail("--stdin-filename needs `-` as the path")
    if diff_rev is not None and diff_staged:
        _fail("--diff and --diff-staged are mutually exclusive")
    try:
        rules = load_rules()
    except RuleFileError as e:
        _fail(str(e))
    locate = [stdin_filename or "."] if paths == ["-"] else paths      # where config and Makefile are looked up
    config = _config(config_file, locate, rules)
    run_rules = _rule_selection(select, ignore_rules, rules, config)
    if run_rules is not None and not run_rules:
        _warn("no rules to run: " + ("--select/--ignore leave none" if select is not None or ignore_rules
                                     else f"the config {config.path} ignores every rule"))
    for option, target in (("-o", output), ("--write-baseline", write_baseline_file)):
        if target:
            _check_destination(option, target, [stdin_filename or "-"] if paths == ["-"] else paths, cwd)
    known = changed = None       # read before the (long) run, so a bad file or rev fails fast
    if baseline_file:
        try:
            known = baseline.load(Path(baseline_file), cwd)
        except baseline.BaselineError as e:
            _fail(str(e))
    if diff_rev is not None or diff_staged:
        try:
            changed = changed_lines(diff_rev, paths, cwd) if diff_rev is not None else staged_lines(paths, cwd)
        except DiffError as e:
            _fail(str(e))
    stdin = None
    if paths == ["-"]:
        stdin = _stdin_source(stdin_filename, cwd)
        click.get_current_context().call_on_close(lambda: _remove_stdin_copy(stdin[0]))
        paths = [stdin[0]]
    version_given = kernel_version or config.kernel_version
    options = _options(paths, jobs, kernel_version, run_rules, config, (cache_dir, no_cache), context)
    if options.kernel_version is None:
        options.kernel_version = kernel_version_of(locate)
    _check_version_range(options.kernel_version)
    show = _Progress(_progress_mode(progress, quiet))
    try:
        result = run(options, cwd, show, warn=_warn)
    except MissingPath as e:
        show.clear()
        _fail(f"no such file or directory: {e}")
    finally:
        show.clear()

    names = {r.name: r.id for r in rules.values()}
    suppressions = Suppressions(cwd, names, _warn)
    findings, result.suppressed = suppressions.split(result.findings)
    if stdin is not None:
        findings = _rename(findings, stdin[1], stdin[2])
        result.suppressed = _rename(result.suppressed, stdin[1], stdin[2])
        result.skipped = [type(s)(stdin[2] if s.path == stdin[1] else s.path, s.reason) for s in result.skipped]
    extra = []                   # what the summary says was hidden, and why
    if write_baseline_file:      # record everything, then hide what was recorded
        try:
            n = baseline.write(Path(write_baseline_file), findings, cwd)
        except baseline.BaselineError as e:
            _fail(str(e))
        if not quiet:
            _stderr(f"nofail-lint: wrote {n} finding(s) to baseline {write_baseline_file}")
        findings = []
        extra.append(f"{n} in baseline")
    elif known is not None:
        findings, old = baseline.split_known(findings, known, Path(baseline_file), cwd)
        extra.append(f"{len(old)} in baseline")
    if changed is not None:
        findings, unchanged = split_changed(findings, changed, cwd)
        result.suppressed, _ = split_changed(result.suppressed, changed, cwd)
        extra.append(f"{len(unchanged)} outside --diff{'-staged' if diff_staged else ' ' + diff_rev}")
        # what could not be analysed matters only where the diff changed something
        result.skipped = [s for s in result.skipped if touched(s.path, changed, cwd)]
        result.incomplete = [i for i in result.incomplete if touched(i.path, changed, cwd)]
    result.findings = findings

    statistics = stats_report.statistics(findings, {r.id: r.name for r in rules.values()}) \
        if show_statistics else None
    model = load_model()
    fixes = _fix_proposals(options, cwd, result.findings) if fmt == "sarif" and with_fixes else None
    text = render(result, fmt, rules, model.fact_lines(), cwd, __version__, show_suppressed,
                  notes=not no_notes, terse=terse, color=_use_color(color, output),
                  statistics=statistics if fmt == "json" else None, fixes=fixes)
    if show_statistics and fmt == "text":
        text += ("\n" if text else "") + stats_report.render(findings, {r.id: r.name for r in rules.values()})
    _write_report(text, output)
    if show_statistics and fmt not in ("text", "json"):
        _stderr(stats_report.render(findings, {r.id: r.name for r in rules.values()}).rstrip("\n"))
    for s in result.skipped:
        _stderr(f"nofail-lint: skipped {s.path}: {s.reason}")
    if result.incomplete:
        if quiet:
            _stderr(f"nofail-lint: warning: {len(result.incomplete)} part(s) of the input not analysed "
                    "(listed without -q, and in JSON/SARIF)")
        else:
            for i in result.incomplete[:MAX_LISTED]:
                where = f"{i.path}:{i.line}" + (f"-{i.end_line}" if i.end_line > i.line else "") if i.line else i.path
                _warn(f"not analysed: {where}: {i.message}")
            if len(result.incomplete) > MAX_LISTED:
                _warn(f"not analysed: {len(result.incomplete) - MAX_LISTED} more part(s) "
                      "(all of them in --format json/sarif/github)")
    if report_unused_suppressions:
        for path, line, ids in suppressions.unused(_input_files(options, cwd)):
            shown = stdin[2] if stdin is not None and path == stdin[1] else path
            _warn(f"{shown}:{line}: unused suppression "
                  f"`nofail-lint: ignore{'[' + ','.join(ids) + ']' if ids else ''}`")
    if not result.files_scanned and not result.skipped:
        _warn(f"no .c/.h files to check in {' '.join(stdin_filename or p for p in locate)}"
              + (f" ({result.excluded} excluded by {config.path})" if result.excluded else ""))
    if not quiet:
        per_rule = Counter(f.rule_id for f in result.findings)
        detail = ", ".join(f"{r}: {n}" for r, n in sorted(per_rule.items()))
        hidden = "".join(f", {e}" for e in extra)
        excluded = f", {result.excluded} excluded" if result.excluded else ""
        cached = f" ({result.from_cache} from cache)" if result.from_cache else ""
        partial = f", {len(result.incomplete)} part(s) not analysed" if result.incomplete else ""
        origin = "" if version_given or kernel_version_of(locate) else \
            " (default: no kernel Makefile found; see --kernel-version)"
        _stderr(f"nofail-lint: {len(result.findings)} finding(s){f' ({detail})' if detail else ''}, "
                f"{len(result.suppressed)} suppressed{hidden}"
                f" in {result.files_scanned} file(s){cached}{result.context},"
                f" {len(result.skipped)} skipped{excluded}{partial},"
                f" Linux {result.kernel_version}{origin}, {result.seconds:.1f}s")
    failing = [f for f in result.findings if LEVELS.index(_level(f)) >= LEVELS.index(fail_on)]
    if failing and not exit_zero:
        sys.exit(EXIT_FINDINGS)
    # incomplete is the outcome only when nothing was found: a kernel tree
    # always has some part not analysed, and its findings are still the result
    only_incomplete = not result.findings and (result.skipped or result.incomplete)
    sys.exit(EXIT_ERROR if only_incomplete else EXIT_CLEAN)


def _input_files(options: Options, cwd: Path) -> list[str]:
    """Display paths of the analysed files that mention the suppression marker."""
    files, _ = discover(options.paths, cwd)
    base = Path(os.path.abspath(cwd))
    out = []
    for f in files:
        if options.exclude is not None and options.exclude.matches(base / f.path):
            continue
        try:
            with open(f.path, "rb") as fh:
                if b"nofail-lint" in fh.read():
                    out.append(f.display)
        except OSError:
            continue
    return out


def _level(f: Finding) -> str:
    return f.level if f.level in LEVELS else "warning"


def _check_version_range(version: str | None):
    """A target kernel outside the model's versions: the nearest facts are used, and the user is told."""
    if version is None:
        return
    outside = _outside_model(version)
    if outside:
        _warn(f"Linux {version} is outside the allocator model's range {outside}; "
              "the facts of the nearest known version are used")


def _outside_model(version: str) -> str | None:
    """The model's version range ("6.1-6.12") when `version` lies outside it, else None."""
    known = load_model().versions
    if version_key(known[0])[:2] <= version_key(version)[:2] <= version_key(known[-1])[:2]:
        return None
    return f"{known[0]}-{known[-1]}"


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
@_debug_option
def grep_cmd(paths, flag, count, files_only, as_json, jobs, kernel_version, config_file, quiet,
             cache_dir, no_cache, context):
    """List allocation sites whose effective gfp mask may include FLAG.

    One line per call where the flag enters the mask -- written directly, via a
    macro or a local variable, or passed by a caller to an allocator wrapper:
    `path:line:col: callee: <gfp argument as written>`. Exit 0 if something
    matched, 1 if nothing did, 2 on error (or nothing matched and some inputs
    were skipped).
    """
    from .grep import normalise_flag
    cwd = Path.cwd()
    paths = list(paths) or ["."]
    _state["inputs"] = f"searching {' '.join(paths)}"
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
    progress = _Progress(_progress_mode(None, quiet))
    try:
        result = grep(options, wanted, cwd, progress, _warn)
    except MissingPath as e:
        progress.clear()
        _fail(f"no such file or directory: {e}")
    progress.clear()
    found = result.hits
    per_file = Counter(h.path for h in found)
    if as_json:
        doc: list
        if count:
            doc = [{"path": p, "count": n} for p, n in sorted(per_file.items())]
        elif files_only:
            doc = sorted(per_file)
        else:
            doc = [h.as_json() for h in found]
        lines = [json.dumps(doc, indent=2)]
    elif count:
        lines = [f"{p}:{n}" for p, n in sorted(per_file.items())]
    elif files_only:
        lines = sorted(per_file)
    else:
        lines = [h.text() for h in found]
    _write_report("".join(line + "\n" for line in lines), None)
    for s in result.skipped:
        _stderr(f"nofail-lint: skipped {s.path}: {s.reason}")
    if found:
        sys.exit(EXIT_CLEAN)
    sys.exit(EXIT_ERROR if result.skipped else EXIT_FINDINGS)


def _fix_proposals(options: Options, cwd: Path, findings):
    """SARIF `fixes` for the findings `fix` knows a rewrite or suggestion for
    (a second, cached analysis: only when there is something to propose)."""
    from .fix.plan import HANDLED, proposals
    if not any(f.rule_id in HANDLED for f in findings):
        return None
    with paused_gc():
        analysis = analyse(options, cwd)
        tables = analysis.tables
        out = proposals(tables, findings, cwd, tables.model.retry_wait | tables.extra_retry_wait)
    analysis.close()
    return out


@main.command("fix")
@click.argument("paths", nargs=-1, type=click.Path(path_type=str))
@click.option("--write", is_flag=True, help="Apply the fixes in place instead of printing a diff.")
@click.option("--format-patch", "patch_dir", metavar="DIR", type=click.Path(file_okay=False, path_type=str),
              default=None, help="Write a git format-patch series into DIR: one patch per MAINTAINERS "
                                 "section and kind of change, From and Signed-off-by from your git "
                                 "identity, To/Cc from MAINTAINERS.")
@click.option("--from", "from_ident", metavar='"NAME <ADDR>"', default=None,
              help="--format-patch: author and sign-off (default: `git var GIT_AUTHOR_IDENT`, as "
                   "`git format-patch -s`).")
@click.option("--signoff/--no-signoff", default=None,
              help="--format-patch: add Signed-off-by (default: on).")
@click.option("--cover-letter", is_flag=True,
              help="--format-patch: also write 0000-cover-letter.patch (always written when one "
                   "MAINTAINERS section gets more than one patch).")
@click.option("--get-maintainer", "get_maintainer", metavar="[PATH]", is_flag=False,
              flag_value="scripts/get_maintainer.pl", default=None,
              help="--format-patch: take To/Cc from get_maintainer.pl --nogit --nogit-fallback (the "
                   "tree's scripts/get_maintainer.pl, or PATH). This RUNS CODE FROM THE ANALYSED TREE: "
                   "use it only on a tree you trust. Without it MAINTAINERS is only read; `check` never "
                   "runs tree code.")
@click.option("--select", metavar="RULES", default=None, help="Comma-separated rule ids to fix.")
@click.option("--ignore", metavar="RULES", default=None, help="Comma-separated rule ids not to fix.")
@click.option("--unsafe-fixes", is_flag=True,
              help="Also apply unsafe fixes (NF006: they trust the allocator model or change behaviour).")
@click.option("--nf006", type=click.Choice(("drop-check", "drop-nofail")), default="drop-check",
              show_default=True, help="Way out of a dead NULL check: remove the check, or drop __GFP_NOFAIL.")
@click.option("-j", "--jobs", type=click.IntRange(min=0), default=0, show_default=True,
              help="Worker processes for parsing; 0 means all cores.")
@click.option("--kernel-version", metavar="X.Y", default=None,
              help="Target kernel version; default: read from the tree's top-level Makefile.")
@_CONFIG_OPT
@click.option("-q", "--quiet", is_flag=True, help="No summary line or progress on stderr.")
@_cache_options
@_debug_option
def fix_cmd(paths, write, patch_dir, from_ident, signoff, cover_letter, get_maintainer, select, ignore,
            unsafe_fixes, nf006, jobs, kernel_version, config_file, quiet, cache_dir, no_cache):
    """Rewrite findings that have a safe fix; print a unified diff (default).

    Only findings in PATHS are fixed: files read as context from the rest of
    the tree are never rewritten. The diff's paths are relative to the
    repository root (`git apply` takes it). Findings without a verified
    rewrite are listed on stderr with the reason. Exit 0 when nothing is
    left to fix, 1 when a diff was printed or some finding was refused, 2 on
    error (no git identity for --format-patch included).
    """
    from .fix import FixOptions, make_plan
    from .fix.output import print_plan, refusal_lines, summary, write_files
    from .fix.patch import kernel_root, repo_root
    cwd = Path.cwd()
    paths = list(paths) or ["."]
    _state["inputs"] = f"fixing {' '.join(paths)}"
    if write and patch_dir:
        _fail("--write and --format-patch are mutually exclusive")
    try:
        rules = load_rules()
    except RuleFileError as e:
        _fail(str(e))
    config = _config(config_file, paths, rules)
    to_fix = _rule_selection(select, ignore, rules, config)
    root = repo_root(paths, cwd)
    series = _series_options(patch_dir, paths, cwd, root, from_ident, signoff, cover_letter, get_maintainer)
    options = _options(paths, jobs, kernel_version, None, config, (cache_dir, no_cache))
    if options.kernel_version is None:
        options.kernel_version = kernel_version_of(paths)
    _check_version_range(options.kernel_version)
    progress = _Progress(_progress_mode(None, quiet))
    try:
        with paused_gc(), interruptible():
            analysis = analyse(options, cwd, progress, _warn)
            tables = analysis.tables
            before = run_rules(tables, None)
            findings, _suppressed = Suppressions(cwd, {r.name: r.id for r in rules.values()}).split(before)
            # only findings in PATHS: the rest of the tree was read as context, and is never rewritten
            findings = [f for f in findings if analysis.reports_on(f.location.path)]
            waits = tables.model.retry_wait | tables.extra_retry_wait
            plan = make_plan(tables, findings, before, FixOptions(to_fix, unsafe_fixes, nf006), cwd, waits)
    except MissingPath as e:
        progress.clear()
        _fail(f"no such file or directory: {e}")
    analysis.close()
    progress.clear()
    written: list[Path] = []
    if series is not None:
        from .fix.series import SeriesError, write_series
        try:
            written = write_series(plan, Path(patch_dir), root, cwd, tables, series, kernel_root(paths, cwd))
        except SeriesError as e:
            _fail(str(e))
        _write_report("".join(f"{p}\n" for p in written), None)
    elif write:
        write_files(plan, cwd)
    else:
        _write_report(print_plan(plan, root, cwd), None)
    for line in refusal_lines(plan, root, cwd):
        _stderr(line)
    for s in analysis.skipped:
        _stderr(f"nofail-lint: skipped {s.path}: {s.reason}")
    if not quiet:
        mode = "applied" if write else ("patches" if series is not None else "proposed")
        _stderr(summary(plan, mode, written, patch_dir))
    if plan.refusals or (plan.rewrites and not (write or patch_dir)):
        sys.exit(EXIT_FINDINGS)
    sys.exit(EXIT_ERROR if analysis.skipped else EXIT_CLEAN)


def _series_options(patch_dir: str | None, paths: list[str], cwd: Path, root: Path, from_ident: str | None,
                    signoff: bool | None, cover_letter: bool, get_maintainer: str | None):
    """--format-patch's options, checked before the analysis: an identity must exist.
    None without --format-patch (and then none of its options may be given)."""
    if not patch_dir:
        for given, name in ((from_ident, "--from"), (signoff, "--signoff/--no-signoff"),
                            (cover_letter or None, "--cover-letter"), (get_maintainer, "--get-maintainer")):
            if given is not None:
                _fail(f"{name} needs --format-patch")
        return None
    from .fix.identity import IdentityError, resolve
    from .fix.patch import kernel_root
    from .fix.series import SeriesOptions
    try:
        identity = resolve(from_ident, root)
    except IdentityError as e:
        _fail(str(e))
    script = None
    if get_maintainer is not None:
        base = kernel_root(paths, cwd) or root
        script = (base / get_maintainer) if get_maintainer == "scripts/get_maintainer.pl" \
            else Path(os.path.abspath(cwd / get_maintainer))
        if not script.is_file():
            _fail(f"--get-maintainer: {script} does not exist")
    return SeriesOptions(identity, signoff is not False, cover_letter, script)


def _valid_version(v: str) -> bool:
    parts = v.split(".")
    return 2 <= len(parts) <= 3 and all(p.isdigit() for p in parts)


@main.command()
@click.argument("rule_id", required=False)
def explain(rule_id):
    """Print a rule's documentation and the allocator-model facts behind it; no RULE: list the rules."""
    rules = load_rules()
    if rule_id is None:
        width = max(len(r.name) for r in rules.values())
        for r in rules.values():
            click.echo(f"{r.id}  {r.name:<{width}}  {r.level:<7}  {r.summary.replace('`', '')}")
        return
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


def _model_version(version: str | None):
    """`model --kernel-version`: a well-formed version inside the model's range, else exit 2."""
    if version is None:
        return
    if not _valid_version(version):
        _fail(f"--kernel-version wants X.Y, got {version!r}")
    outside = _outside_model(version)
    if outside:
        _fail(f"--kernel-version {version} is outside the allocator model's range {outside}")


@main.command("cache")
@click.option("--cache-dir", metavar="DIR", default=None, help="The cache directory (default as for `check`).")
@click.option("--clear", "clear_it", is_flag=True, help="Delete the cache's databases.")
def cache_cmd(cache_dir, clear_it):
    """Where the facts cache is and how big; --clear deletes it."""
    directory = resolve_cache_dir(cache_dir, False)
    assert directory is not None     # only --no-cache gives none
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
        _model_version(kernel_version)
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
    _model_version(kernel_version)
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
    extra: list[tuple[str, Callable[..., list]]] = [("signatures", check_signatures)] if signatures else []
    extra += [("gfp", check_gfp)] if gfp_algebra else []
    for label, check_part in extra:
        part = check_part(m, linux_tree, version)
        for p in part:
            click.echo(p.line())
        c = Counter(p.status for p in part)
        bad += c["mismatch"] + c["missing"]
        summary += (f"; {label}: {c['ok']} ok, {c['mismatch']} mismatch, {c['missing']} missing, "
                    f"{c['skipped']} skipped")
    click.echo(summary)
    sys.exit(EXIT_FINDINGS if bad else EXIT_CLEAN)


if __name__ == "__main__":  # pragma: no cover
    main()
