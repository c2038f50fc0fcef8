"""`.nofail-lint.toml`: per-tree settings.

Found by walking up from the first path given (a file's directory, or the
directory itself), or named with `--config FILE`. Every key is checked:
an unknown key or a value of the wrong shape is an error that names the key,
never silently ignored.

    select = ["NF001", "NF002"]          # run only these rules
    ignore = ["NF005"]                   # never run these
    exclude = ["drivers/staging/**"]     # path globs, relative to this file's directory
    kernel_version = "6.1"               # target kernel (default: the tree's Makefile)

    [allocators]
    extra = ["my_alloc"]                 # more allocators for NF002

    [retry_wait]
    extra = ["my_wait_for_memory"]       # more retry-wait helpers for NF002

Globs: `*` and `?` stay within one path component, `**` spans any number of
them, `[...]` is a character class. A pattern that matches a directory
excludes everything below it.
"""
from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

CONFIG_NAME = ".nofail-lint.toml"
_TOP_KEYS = ("select", "ignore", "exclude", "kernel_version", "allocators", "retry_wait")
_TABLE_KEYS = ("extra",)
_IDENT = re.compile(r"[A-Za-z_]\w*")
_VERSION = re.compile(r"\d+\.\d+(\.\d+)?")


class ConfigError(Exception):
    """A config file that cannot be read or has a bad key or value."""


@dataclass(frozen=True)
class Config:
    path: Path | None = None
    select: frozenset[str] | None = None
    ignore: frozenset[str] = frozenset()
    exclude: tuple[str, ...] = ()
    kernel_version: str | None = None
    extra_allocators: frozenset[str] = frozenset()
    extra_retry_wait: frozenset[str] = frozenset()

    def rules(self, cli_select: set[str] | None, all_rules) -> set[str] | None:
        """The rules to run (None: all): an explicit --select wins; else select minus ignore."""
        if cli_select is not None:
            return set(cli_select)
        if self.select is None and not self.ignore:
            return None
        return set(self.select if self.select is not None else all_rules) - self.ignore

    def excludes(self) -> Excludes | None:
        if not self.exclude or self.path is None:
            return None
        return Excludes(self.path.parent, self.exclude)


# ------------------------------------------------------------------ globs

def glob_regex(pattern: str) -> re.Pattern:
    """A path glob (see the module docstring) as a regex over POSIX paths."""
    out, i, n = [], 0, len(pattern)
    while i < n:
        c = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if i < n and pattern[i] == "/":
                out.append("(?:.*/)?")
                i += 1
            else:
                out.append(".*")
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = pattern.find("]", i + 2 if pattern[i + 1:i + 2] in ("!", "]") else i + 1)
            if j < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1:j]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body.replace(chr(92), chr(92) * 2)}]")
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z")


@dataclass
class Excludes:
    """Path globs relative to `root`; a match on a file or any parent directory excludes."""

    root: Path
    patterns: tuple[str, ...]
    _regexes: list[re.Pattern] = field(default_factory=list, repr=False)

    def __post_init__(self):
        self.root = Path(os.path.abspath(self.root))
        self._regexes = [glob_regex(p.strip("/")) for p in self.patterns]

    def matches(self, path: Path) -> bool:
        try:
            rel = Path(os.path.abspath(path)).relative_to(self.root)
        except ValueError:
            return False
        parts = rel.parts
        candidates = ["/".join(parts[:k]) for k in range(1, len(parts) + 1)]
        return any(rx.match(c) for rx in self._regexes for c in candidates)


# ------------------------------------------------------------------ loading

def find_config(paths: list[str], cwd: Path | None = None) -> Path | None:
    """`.nofail-lint.toml` in the first path's directory or the nearest one above it."""
    first = Path(paths[0]) if paths else Path(".")
    start = Path(os.path.abspath(Path(cwd or Path.cwd()) / first))
    if not start.is_dir():
        start = start.parent
    for d in (start, *start.parents):
        candidate = d / CONFIG_NAME
        if candidate.is_file():
            return candidate
    return None


def _strings(where: str, value, check=None) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: expected a list of strings, got {_shape(value)}")
    if check is not None:
        for v in value:
            check(where, v)
    return list(value)


def _shape(value) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list containing " + ", ".join(sorted({type(v).__name__ for v in value})) if value else "[]"
    return f"{type(value).__name__} {value!r}"


def _identifier(where: str, name: str):
    if not _IDENT.fullmatch(name):
        raise ConfigError(f"{where}: {name!r} is not a C identifier")


def _read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason})") from None


def _excludes(name: str, value) -> tuple[str, ...]:
    patterns = _strings(f"{name}: exclude", value)
    for p in patterns:
        if not p.strip("/") or os.path.isabs(p) or ".." in Path(p).parts:
            raise ConfigError(f"{name}: exclude: {p!r} must be a relative path glob without '..'")
    return tuple(patterns)


def _kernel_version(name: str, value) -> str:
    if not isinstance(value, str) or not _VERSION.fullmatch(value):
        raise ConfigError(f"{name}: kernel_version: expected a string \"X.Y\", got {_shape(value)}")
    return value


def _extra_names(name: str, key: str, table) -> frozenset[str] | None:
    """`[allocators]` / `[retry_wait]`: the `extra` names, or None if not given."""
    if not isinstance(table, dict):
        raise ConfigError(f"{name}: {key}: expected a table ([{key}]), got {_shape(table)}")
    for sub in table:
        if sub not in _TABLE_KEYS:
            raise ConfigError(f"{name}: unknown key '{key}.{sub}'; known: "
                              + ", ".join(f"{key}.{k}" for k in _TABLE_KEYS))
    if "extra" not in table:
        return None
    return frozenset(_strings(f"{name}: {key}.extra", table["extra"], _identifier))


def load_config(path: Path, known_rules: dict[str, object]) -> Config:
    """Read and check one config file. known_rules: rule id -> doc (names accepted too)."""
    path = Path(os.path.abspath(path))
    data = _read_toml(path)
    by_name = {getattr(doc, "name", rid): rid for rid, doc in known_rules.items()}

    def rule_ids(key: str) -> frozenset[str]:
        out = set()
        for v in _strings(f"{path.name}: {key}", data[key]):
            rid = v.strip().upper() if v.strip().upper() in known_rules else by_name.get(v.strip())
            if rid is None:
                raise ConfigError(f"{path.name}: {key}: unknown rule {v!r}; known: {', '.join(sorted(known_rules))}")
            out.add(rid)
        return frozenset(out)

    for key in data:
        if key not in _TOP_KEYS:
            raise ConfigError(f"{path.name}: unknown key {key!r}; known keys: {', '.join(_TOP_KEYS)}")
    kw: dict = {"path": path}
    if "select" in data:
        kw["select"] = rule_ids("select")
    if "ignore" in data:
        kw["ignore"] = rule_ids("ignore")
    if "exclude" in data:
        kw["exclude"] = _excludes(path.name, data["exclude"])
    if "kernel_version" in data:
        kw["kernel_version"] = _kernel_version(path.name, data["kernel_version"])
    for key, attr in (("allocators", "extra_allocators"), ("retry_wait", "extra_retry_wait")):
        names = _extra_names(path.name, key, data[key]) if key in data else None
        if names is not None:
            kw[attr] = names
    return Config(**kw)
