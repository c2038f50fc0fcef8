"""`nofail-lint model verify LINUX_TREE`: do the model's cited facts still hold?

For every fact whose version range covers the tree (top-level Makefile
`VERSION`/`PATCHLEVEL`), find the cited function in the cited file -- a C
function definition of that name (or `function_before_6_10` on trees older
than 6.10), else a `#define` of it -- take its body by brace matching, and
check that every `verify` string occurs in it. Comparison is whitespace-
normalised, and the ` * ` leaders of block comments count as whitespace, so a
quoted comment sentence may span lines. A fact whose `function` is not a C
identifier (e.g. "__GFP_NOFAIL (kernel-doc)") is checked against the whole
file. Plain Python, no tree-sitter: it reads a handful of files.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from . import Fact, Model

_MAKEFILE_VAR = re.compile(r"^(VERSION|PATCHLEVEL)\s*[:?]?=\s*(\d+)\s*$", re.M)
_COMMENT_LEADER = re.compile(r"\n[ \t]*\*(?!/)")
_WS = re.compile(r"\s+")


class VerifyUsageError(Exception):
    """The tree argument cannot be used (not a directory, no Makefile version)."""


@dataclass(frozen=True)
class FactResult:
    fact_id: str
    status: str          # "ok" | "stale" | "skipped"
    reason: str = ""
    where: str = ""      # file and function actually checked

    def line(self) -> str:
        if self.status == "ok":
            return f"{self.fact_id}: ok ({self.where})"
        if self.status == "skipped":
            return f"{self.fact_id}: skipped: {self.reason}"
        return f"{self.fact_id}: STALE: {self.reason}"


# ---------------------------------------------------------------- versions

def tree_version(tree: Path) -> str:
    """`X.Y` from the tree's top-level Makefile; VerifyUsageError if absent."""
    if not tree.is_dir():
        raise VerifyUsageError(f"not a directory: {tree}")
    makefile = tree / "Makefile"
    try:
        text = makefile.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise VerifyUsageError(f"cannot read {makefile}: {e.strerror or e}") from None
    found: dict[str, str] = {}
    for m in _MAKEFILE_VAR.finditer(text[:4096]):
        found.setdefault(m.group(1), m.group(2))
    if "VERSION" not in found or "PATCHLEVEL" not in found:
        raise VerifyUsageError(f"{makefile}: no VERSION/PATCHLEVEL lines (not a Linux tree?)")
    return f"{found['VERSION']}.{found['PATCHLEVEL']}"


# ---------------------------------------------------------------- C text

def blank_comments_and_strings(src: str) -> str:
    """Same-length copy of `src` with comments, string and char literals blanked
    (newlines kept), so braces and parentheses can be matched safely."""
    out = list(src)
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if c == "/" and i + 1 < n and src[i + 1] == "*":
            end = src.find("*/", i + 2)
            end = n if end < 0 else end + 2
            for k in range(i, end):
                if out[k] != "\n":
                    out[k] = " "
            i = end
        elif c == "/" and i + 1 < n and src[i + 1] == "/":
            end = src.find("\n", i)
            end = n if end < 0 else end
            for k in range(i, end):
                out[k] = " "
            i = end
        elif c in "\"'":
            k = i + 1
            while k < n and src[k] != c and src[k] != "\n":
                k += 2 if src[k] == "\\" else 1
            end = min(k + 1, n)
            for k in range(i + 1, end - 1):
                if out[k] != "\n":
                    out[k] = " "
            i = end
        else:
            i += 1
    return "".join(out)


def _match(code: str, i: int, open_c: str, close_c: str) -> int:
    """Index just past the bracket closing the one at code[i]; -1 if unbalanced."""
    depth = 0
    for k in range(i, len(code)):
        ch = code[k]
        if ch == open_c:
            depth += 1
        elif ch == close_c:
            depth -= 1
            if depth == 0:
                return k + 1
    return -1


_ANNOTATION = re.compile(r"__\w*\s*(?:\((?:[^()]|\([^()]*\))*\))?")   # __releases(x), __acquires(x)
_PAREN_GROUP = re.compile(r"\([^()]*\)")
_NOT_A_DECLARATOR = re.compile(r"[=(),;{}?:!&|+\-/%<>#\[\]]|\b(?:return|if|while|for|switch|case|else|do|sizeof)\b")


def _starts_declarator(code: str, pos: int) -> bool:
    """Is the identifier at `pos` the declarator of a definition? Only a type,
    `*`, storage classes and attributes (`__alloc_size(1, 2)`) may precede it on
    its line; an expression, a statement keyword or a `#define` may not."""
    line_start = code.rfind("\n", 0, pos) + 1
    before = code[line_start:pos].replace("->", " . ")
    if "." in before:
        return False
    while True:
        stripped = _PAREN_GROUP.sub(" ", before)
        if stripped == before:
            break
        before = stripped
    return not _NOT_A_DECLARATOR.search(before)


def function_body(src: str, name: str, code: str | None = None) -> str | None:
    """Text of the body `{...}` of the C function definition `name` in `src`.

    A definition is `name (` at the start of a declarator (see
    `_starts_declarator`), its parameter list balanced, then only kernel
    annotations (`__releases(x)`), then `{`. Comments and strings are blanked
    for the matching, and the body is returned from the original text.
    """
    code = blank_comments_and_strings(src) if code is None else code
    for m in re.finditer(rf"(?<![\w.]){re.escape(name)}\s*\(", code):
        if not _starts_declarator(code, m.start()):
            continue
        after_params = _match(code, m.end() - 1, "(", ")")
        if after_params < 0:
            continue
        k = after_params
        while True:
            while k < len(code) and code[k] in " \t\r\n":
                k += 1
            if k < len(code) and code[k] == "{":
                end = _match(code, k, "{", "}")
                return None if end < 0 else src[k:end]
            am = _ANNOTATION.match(code, k)
            if not am:
                break
            k = am.end()
    return None


def macro_body(src: str, name: str) -> str | None:
    """Text of `#define name...` through its backslash-continued lines."""
    m = re.search(rf"^[ \t]*#[ \t]*define[ \t]+{re.escape(name)}\b", src, re.M)
    if not m:
        return None
    end = m.start()
    while True:
        nl = src.find("\n", end)
        if nl < 0:
            return src[m.start():]
        if src[nl - 1:nl] == "\\" or src[nl - 2:nl] == "\\\r":
            end = nl + 1
            continue
        return src[m.start():nl]


def normalise(text: str) -> str:
    """Collapse whitespace; block-comment ` * ` leaders and backslash-newlines
    count as whitespace."""
    text = _COMMENT_LEADER.sub(" ", text.replace("\\\n", " "))
    return _WS.sub(" ", text).strip()


# ---------------------------------------------------------------- facts

def check_fact(fact: Fact, tree: Path, version: str) -> FactResult:
    """Does `fact` hold in the tree at `tree` (kernel `version`)?"""
    if not fact.applies_to(version):
        return FactResult(fact.id, "skipped", f"not in version range ({fact.versions}; tree is {version})")
    view = fact.for_version(version)
    rel, func = view.file, view.function
    try:
        src = (tree / rel).read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        return FactResult(fact.id, "stale", f"{rel}: cannot read ({e.strerror or e})")
    if func.isidentifier():
        body, what = function_body(src, func), f"{rel}, {func}()"
        if body is None:
            body, what = macro_body(src, func), f"{rel}, #define {func}"
        if body is None:
            return FactResult(fact.id, "stale", f"{rel}: no definition of {func}")
    else:
        body, what = src, rel
    hay = normalise(body)
    missing = [s for s in view.verify if normalise(s) not in hay]
    present = [s for s in view.verify_absent if normalise(s) in hay]
    problems = []
    if missing:
        problems.append("missing " + "; ".join(repr(s) for s in missing))
    if present:
        problems.append("should be absent but found " + "; ".join(repr(s) for s in present))
    if problems:
        return FactResult(fact.id, "stale", f"{what}: {', '.join(problems)}", what)
    if not view.verify and not view.verify_absent:
        what += "; no verify strings, existence only"
    return FactResult(fact.id, "ok", "", what)


def verify_tree(model: Model, tree: Path) -> tuple[str, list[FactResult]]:
    """(tree version, one result per model fact in id order)."""
    version = tree_version(tree)
    results = [check_fact(f, tree, version) for f in sorted(model.facts.values(), key=lambda f: f.id)]
    return version, results


# ---------------------------------------------------------------- signatures

SIGNATURE_DIRS = ("include/linux", "include/net", "mm", "block", "net/core", "drivers/base", "lib")
_IDENT = re.compile(r"[A-Za-z_]\w*")


@dataclass(frozen=True)
class Signature:
    name: str
    file: str
    kind: str                      # "function" | "prototype" | "macro"
    params: tuple[str, ...]        # parameter texts, "..." for varargs
    body: str = ""                 # macros: the replacement text

    @property
    def forwards_to(self) -> str:
        """A variadic macro's target: `X(...) alloc_hooks(Y(__VA_ARGS__))` -> Y."""
        m = re.search(r"(\w+)\s*\(\s*__VA_ARGS__", self.body) if self.variadic else None
        return m.group(1) if m else ""

    @property
    def variadic(self) -> bool:
        return bool(self.params) and self.params[-1] in ("...", "__VA_ARGS__")


def _split_params(text: str) -> tuple[str, ...]:
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in text:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    last = "".join(cur).strip()
    if last or parts:
        parts.append(last)
    if parts == ["void"]:
        return ()
    return tuple(" ".join(p.split()) for p in parts)


def param_name(param: str) -> str:
    """`struct kmem_cache *s` -> `s`; `DECL_BUCKET_PARAMS(size, b)` -> `size`."""
    m = re.match(r"DECL_BUCKET_PARAMS\s*\(\s*(\w+)", param)
    if m:
        return m.group(1)
    param = re.sub(r"\b__\w+\s*(\([^()]*\))?", " ", param)     # annotations
    idents = _IDENT.findall(param)
    return idents[-1].lstrip("_") if idents else param


def _statement_context(code: str, line_start: int) -> bool:
    """Is a line that starts with `name(` inside a statement or expression
    (a call), judging by the previous non-blank line? A declaration's previous
    line ends with its return type (`static inline void *`, `struct page`), a
    comment or a preprocessor line; anything else (`;`, `{`, `=`, `,`, ...,
    `return`, `else`) means a call."""
    prev = code[:line_start].rstrip()
    if not prev:
        return False
    last_line = prev[prev.rfind("\n") + 1:].strip()
    if last_line.startswith("#") or not last_line:
        return False
    if re.search(r"\b(?:return|else|do|case)$", prev):
        return True
    return not (prev[-1].isalnum() or prev[-1] in "_*")


def _signature_sources(tree: Path):
    """(path, text) of every readable .c/.h file under SIGNATURE_DIRS, in path order."""
    for d in SIGNATURE_DIRS:
        base = tree / d
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*")):
            if path.suffix not in (".h", ".c") or not path.is_file():
                continue
            try:
                yield path, path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue


def find_signatures(tree: Path, names: set[str]) -> dict[str, list[Signature]]:
    """Declarations, definitions and `#define`s of `names` under SIGNATURE_DIRS."""
    found: dict[str, list[Signature]] = {}
    if not names:
        return found
    pattern = re.compile(r"(?<![\w.>])(" + "|".join(sorted(map(re.escape, names), key=len, reverse=True))
                         + r")\s*\(")
    for path, src in _signature_sources(tree):
        if not pattern.search(src):
            continue
        code = blank_comments_and_strings(src)
        rel = path.relative_to(tree).as_posix()
        for m in pattern.finditer(code):
            name = m.group(1)
            line_start = code.rfind("\n", 0, m.start()) + 1
            before = code[line_start:m.start()]
            is_macro = re.fullmatch(r"\s*#\s*define\s+", before) is not None
            if not is_macro and not _starts_declarator(code, m.start()):
                continue
            if not is_macro and not before.strip() and _statement_context(code, line_start):
                continue
            close = _match(code, m.end() - 1, "(", ")")
            if close < 0:
                continue
            params = _split_params(code[m.end():close - 1])
            body = ""
            if is_macro:
                kind = "macro"
                body = macro_body(src[line_start:], name) or ""
                body = body[body.find(")", body.find(name)) + 1:] if body else ""
            else:
                k = close
                while True:
                    while k < len(code) and code[k] in " \t\r\n":
                        k += 1
                    am = _ANNOTATION.match(code, k)
                    if not am:
                        break
                    k = am.end()
                if k < len(code) and code[k] == "{":
                    kind = "function"
                elif k < len(code) and code[k] == ";":
                    kind = "prototype"
                else:
                    continue
            found.setdefault(name, []).append(Signature(name, rel, kind, params, body))
    return found


_KIND_CHECKS = {
    "gfp": lambda text, name: "gfp_t" in text or re.search(r"gfp|flags|priority", name, re.I),
    "size": lambda text, name: re.search(r"size|len|count|bytes", name, re.I),
    "order": lambda text, name: "order" in name.lower(),
    "start": lambda text, name: "start" in name.lower(),
    "end": lambda text, name: "end" in name.lower(),
}


@dataclass(frozen=True)
class SignatureResult:
    name: str
    status: str            # "ok" | "mismatch" | "missing" | "skipped"
    reason: str = ""

    def line(self) -> str:
        if self.status == "ok":
            return f"signature {self.name}: ok ({self.reason})"
        if self.status == "skipped":
            return f"signature {self.name}: skipped: {self.reason}"
        return f"signature {self.name}: {self.status.upper()}: {self.reason}"


def _fixed_signatures(spelling: str, sigs: dict[str, list[Signature]], depth: int = 0) -> list[Signature]:
    """The fixed-parameter signatures that apply to calls of `spelling`:
    its functions and prototypes if any, else its non-variadic macros, else
    (for `#define X(...) Y(__VA_ARGS__, ...)`) those of Y, whose leading
    parameters are X's."""
    own = sigs.get(spelling, [])
    real = [g for g in own if g.kind != "macro"]
    if real:
        return real
    if any(g.variadic for g in own):
        if depth >= 4:
            return []
        out = []
        for g in own:
            if g.variadic and g.forwards_to and g.forwards_to != spelling:
                out.extend(_fixed_signatures(g.forwards_to, sigs, depth + 1))
        return out
    return own


def check_signatures(model: Model, tree: Path, version: str) -> list[SignatureResult]:
    """For every allocator, do the tree's declarations of its spellings put a
    gfp/size/order/start/end parameter where the model says, and does the
    canonical name have as many parameters as the model's `params`?"""
    entries = [a.for_version(version) for a in model.entries()]
    names = {s for a in entries for s in a.spellings}
    sigs = find_signatures(tree, names)
    for _ in range(3):                     # targets of variadic forwarding macros
        targets = {g.forwards_to for gs in sigs.values() for g in gs if g.forwards_to} - set(sigs)
        if not targets:
            break
        sigs.update(find_signatures(tree, targets))
    results = []
    for a in entries:
        if not a.exists_in(version):
            results.append(SignatureResult(a.name, "skipped", f"not present in {version} ({a.present})"))
            continue
        seen = [(s, sig) for s in a.spellings for sig in _fixed_signatures(s, sigs)]
        if not seen:
            if any("?" in p for p in a.params) and any(sigs.get(s) for s in a.spellings):
                results.append(SignatureResult(a.name, "ok", "variadic macro with optional gfp"))
            else:
                results.append(SignatureResult(a.name, "missing", "no declaration of "
                                               + "/".join(a.spellings) + " under " + ", ".join(SIGNATURE_DIRS)))
            continue
        problems, checked = [], set()
        for spelling, sig in seen:
            key = (spelling, sig.params)
            if key in checked:
                continue
            checked.add(key)
            if spelling == a.name == sig.name and a.params and not any("?" in p for p in a.params) \
                    and len(sig.params) != len(a.params):
                problems.append(f"{sig.file}: {spelling} has {len(sig.params)} parameters "
                                f"({', '.join(sig.params)}), model lists {len(a.params)}")
            for what, idx in a.positions().items():
                if idx >= len(sig.params):
                    problems.append(f"{sig.file}: {sig.name}: no argument {idx} for {what}")
                    continue
                text = sig.params[idx]
                if sig.kind == "macro" and len(param_name(text)) <= 2:
                    continue          # `#define X(_n,_s,_f)`: too terse to tell
                if not _KIND_CHECKS[what](text, param_name(text)):
                    problems.append(f"{sig.file}: {sig.name}: argument {idx} is '{text}', not a {what}")
        if problems:
            results.append(SignatureResult(a.name, "mismatch", "; ".join(dict.fromkeys(problems))))
        else:
            spellings = sorted({s for s, _ in seen})
            results.append(SignatureResult(a.name, "ok", ", ".join(spellings)))
    return results


# ---------------------------------------------------------------- gfp algebra

GFP_FILES = ("include/linux/gfp_types.h", "include/linux/gfp.h", "mm/internal.h")
_OBJECT_DEFINE = re.compile(r"^[ \t]*#[ \t]*define[ \t]+(\w+)(?![\w(])((?:[^\\\n]|\\[\s\S])*)", re.M)
_ATOM_DEFINE = re.compile(r"^\(\(__force gfp_t\)___GFP_\w+\)$")


@dataclass(frozen=True)
class GfpResult:
    name: str
    status: str            # "ok" | "mismatch" | "missing" | "skipped"
    reason: str = ""

    def line(self) -> str:
        tail = f" ({self.reason})" if self.status == "ok" and self.reason else ""
        if self.status in ("ok", "skipped"):
            return f"gfp {self.name}: {self.status}{tail if self.status == 'ok' else ': ' + self.reason}"
        return f"gfp {self.name}: {self.status.upper()}: {self.reason}"


def tree_gfp_defines(tree: Path) -> dict[str, str]:
    """Object-like `#define`s of GFP_FILES (first definition of a name wins)."""
    defines: dict[str, str] = {}
    for rel in GFP_FILES:
        try:
            src = (tree / rel).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        code = blank_comments_and_strings(src)
        for m in _OBJECT_DEFINE.finditer(code):
            defines.setdefault(m.group(1), " ".join(m.group(2).replace("\\\n", " ").split()))
    return defines


def check_gfp(model: Model, tree: Path, version: str) -> list[GfpResult]:
    """Compare the model's flag algebra for `version` with the tree's headers:
    the same single-bit `__GFP_*` flags, and every composite mask (GFP_KERNEL,
    GFP_NOWAIT, GFP_RECLAIM_MASK, ...) made of the same flags."""
    from ..cexpr import MaskEvaluator
    if version not in model.gfp:
        return [GfpResult("algebra", "skipped", f"the model has no flag algebra for {version} "
                          f"(known: {', '.join(model.versions)})")]
    alg = model.gfp[version]
    defines = tree_gfp_defines(tree)
    if not defines:
        return [GfpResult("algebra", "missing", "no #defines found in " + ", ".join(GFP_FILES))]
    tree_atoms = frozenset(n for n, body in defines.items()
                           if n.startswith("__GFP_") and _ATOM_DEFINE.match(body))
    results = []
    extra, lacking = sorted(tree_atoms - alg.atoms), sorted(alg.atoms - tree_atoms)
    if extra or lacking:
        results.append(GfpResult("atoms", "mismatch",
                                 (f"tree has {', '.join(extra)} " if extra else "")
                                 + (f"model has {', '.join(lacking)} not in the tree" if lacking else "")))
    else:
        results.append(GfpResult("atoms", "ok", f"{len(tree_atoms)} flags"))
    model_eval = MaskEvaluator(alg.atoms, alg.composites, lambda n: [])
    tree_eval = MaskEvaluator(tree_atoms, {}, lambda n: [defines[n]] if n in defines else [])
    for name in sorted(alg.composites):
        if name not in defines:
            results.append(GfpResult(name, "missing", "not #defined in " + ", ".join(GFP_FILES)))
            continue
        want, got = model_eval.name(name), tree_eval.name(name)
        if not got.known:
            results.append(GfpResult(name, "mismatch", f"tree definition does not evaluate: {defines[name]}"))
        elif want.flags != got.flags:
            more, less = sorted(got.flags - want.flags), sorted(want.flags - got.flags)
            results.append(GfpResult(name, "mismatch", (f"tree adds {', '.join(more)} " if more else "")
                                     + (f"tree lacks {', '.join(less)}" if less else "")))
        else:
            results.append(GfpResult(name, "ok"))
    return results
