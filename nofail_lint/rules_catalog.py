"""The rule catalog: the `rules/*.toml` files (docs/architecture.md, Rules).

In an installed wheel the files live in the package as `nofail_lint/_rules/`
(pyproject.toml force-include). In a source checkout, including an editable
install, they are read from the top-level `rules/` directory beside the
package. The file format is described in `rules/README.md`.
"""
from __future__ import annotations

import functools
import pathlib
import re
import textwrap
import tomllib
from dataclasses import dataclass

_PACKAGE_DIR = pathlib.Path(__file__).resolve().parent
_LEVELS = ("error", "warning", "note")
_STRING_KEYS = ("id", "name", "level", "summary", "description", "why",
                "example", "fix")
_ID_RE = re.compile(r"NF\d{3}")
_WIDTH = 78


@dataclass(frozen=True)
class RuleDoc:
    id: str            # "NF001"
    name: str          # "nofail-vmalloc-range"
    level: str         # default level: "error" | "warning" | "note"
    summary: str       # one sentence (Markdown inline code allowed)
    description: str   # full paragraph(s), Markdown
    why: str           # why it matters, Markdown
    example: str       # bad C code, no fences
    fix: str           # Markdown prose plus a ```c fenced good example
    facts: tuple[str, ...]  # allocator-model fact ids behind the rule (its documentation)
    cites: tuple[str, ...] = ()  # the subset of `facts` every finding of the rule cites


class RuleFileError(ValueError):
    """A rule file is missing, unreadable or malformed."""


def rules_dir() -> pathlib.Path:
    """The directory the rule files are read from."""
    installed = _PACKAGE_DIR / "_rules"
    if installed.is_dir():
        return installed
    return _PACKAGE_DIR.parent / "rules"


def load_rules(directory: pathlib.Path | None = None) -> dict[str, RuleDoc]:
    """Read every `*.toml` rule file; the result is ordered by rule id.

    Raises RuleFileError when the directory or a file is broken, so a bad
    package fails loudly instead of silently losing a rule.
    """
    directory = pathlib.Path(directory) if directory else rules_dir()
    if not directory.is_dir():
        raise RuleFileError(f"rule directory not found: {directory}")
    rules: dict[str, RuleDoc] = {}
    for path in sorted(directory.glob("*.toml")):
        rule = _parse(path)
        if rule.id in rules:
            raise RuleFileError(f"{path}: duplicate rule id {rule.id}")
        rules[rule.id] = rule
    return dict(sorted(rules.items()))


@functools.cache
def catalog() -> dict[str, RuleDoc]:
    """The bundled rules, read once: the single source of every rule's id,
    name, level, facts and documentation."""
    return load_rules()


def _fact_list(path: pathlib.Path, data: dict, key: str, required: bool) -> tuple[str, ...]:
    value = data.get(key, None if required else [])
    if (not isinstance(value, list) or (required and not value)
            or not all(isinstance(f, str) and f.strip() for f in value)):
        raise RuleFileError(f"{path}: key {key!r} must be a {'non-empty ' if required else ''}list of strings")
    return tuple(f.strip() for f in value)


def _parse(path: pathlib.Path) -> RuleDoc:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RuleFileError(f"{path}: {exc}") from exc
    values: dict[str, str] = {}
    for key in _STRING_KEYS:
        value = data.get(key)
        if not isinstance(value, str) or not value.strip():
            raise RuleFileError(f"{path}: key {key!r} must be a non-empty string")
        # Code keeps its leading indentation; prose is trimmed.
        values[key] = (value.strip("\n").rstrip() if key == "example"
                       else value.strip())
    facts = _fact_list(path, data, "facts", required=True)
    cites = _fact_list(path, data, "cites", required=False)
    if not set(cites) <= set(facts):
        raise RuleFileError(f"{path}: 'cites' must be a subset of 'facts' "
                            f"(not listed: {', '.join(sorted(set(cites) - set(facts)))})")
    if not _ID_RE.fullmatch(values["id"]) or values["id"] != path.stem:
        raise RuleFileError(f"{path}: id {values['id']!r} must be NFnnn and match the file name")
    if values["level"] not in _LEVELS:
        raise RuleFileError(f"{path}: level must be one of {', '.join(_LEVELS)}")
    return RuleDoc(facts=facts, cites=cites, **values)


def markdown_to_text(markdown: str, width: int = _WIDTH, indent: str = "") -> str:
    """Plain-text rendering of the small Markdown subset the rule files use.

    Paragraphs are re-wrapped, `- ` items get a hanging indent, and fenced
    code blocks lose their fences and are indented by four spaces.
    """
    out: list[str] = []
    for kind, block in _blocks(markdown):
        if kind == "code":
            out.append(indent_code("\n".join(block), indent + "    "))
        elif kind == "list":
            out.append("\n".join(
                _fill(item, width, indent + "  - ", indent + "    ") for item in block))
        else:
            out.append(_fill(" ".join(block), width, indent, indent))
    return "\n\n".join(out)


def _fill(text: str, width: int, first: str, rest: str) -> str:
    return textwrap.fill(" ".join(text.split()), width=width, initial_indent=first,
                         subsequent_indent=rest, break_on_hyphens=False,
                         break_long_words=False)


def indent_code(code: str, prefix: str = "    ") -> str:
    """Tabs expanded, common indentation removed, then `prefix` added."""
    code = textwrap.dedent(code.expandtabs(8))
    return "\n".join((prefix + line).rstrip() if line.strip() else ""
                     for line in code.splitlines())


def _blocks(markdown: str):
    """Yield ("code" | "list" | "para", lines) blocks of a Markdown text."""
    lines = markdown.strip("\n").splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        if line.lstrip().startswith("```"):
            i += 1
            code = []
            while i < len(lines) and not lines[i].lstrip().startswith("```"):
                code.append(lines[i].expandtabs(8))
                i += 1
            i += 1  # closing fence
            yield "code", code
            continue
        # A paragraph, or a "- " list (which may interrupt a paragraph).
        para: list[str] = []
        items: list[str] = []
        while (i < len(lines) and lines[i].strip()
               and not lines[i].lstrip().startswith("```")):
            text = lines[i].strip()
            if text.startswith("- "):
                if para:
                    yield "para", para
                    para = []
                items.append(text[2:])
            elif items:
                items[-1] += " " + text
            else:
                para.append(text)
            i += 1
        if para:
            yield "para", para
        if items:
            yield "list", items


def fact_text(fact_id: str, facts: dict[str, str]) -> str:
    return facts.get(fact_id) or "(not in the bundled allocator model)"


def explain_text(rule: RuleDoc, facts: dict[str, str]) -> str:
    """The page `nofail-lint explain RULE` prints (ends with a newline)."""
    def section(title: str, body: str) -> str:
        return f"{title}\n{'-' * len(title)}\n{body}"

    code = indent_code(rule.example)
    fact_lines = "\n".join(_fill(f"{fid}: {fact_text(fid, facts)}", _WIDTH, "  - ", "    ")
                           for fid in rule.facts)
    parts = [
        f"{rule.id}  {rule.name}  (default level: {rule.level})",
        markdown_to_text(rule.summary),
        section("Description", markdown_to_text(rule.description)),
        section("Why it matters", markdown_to_text(rule.why)),
        section("Example (reported)", code),
        section("Fix", markdown_to_text(rule.fix)),
        f"Model facts:\n{fact_lines}",
    ]
    return "\n\n".join(parts) + "\n"
