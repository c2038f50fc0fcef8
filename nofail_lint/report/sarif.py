"""SARIF 2.1.0 for GitHub code scanning and other dashboards (DESIGN.md section 5).

Built from the `sarif_om` classes and serialised here: every attrs field is
written under its `schema_property_name`; None values and values equal to the
field's default are dropped, except `level`, which is always written because
dashboards show it. Property bags are plain dicts.

partialFingerprints.primaryLocationLineHash is computed from content, never
from line numbers: sha256 over the rule id, the function name and the
whitespace-normalised source line, then ":<n>" where n counts identical hashes
within one file in sort order (GitHub's own "hash:n" format). Moving unrelated
lines leaves it unchanged. GitHub's upload-sarif action keeps a value that is
already present. Because that value differs from the one the action would
compute itself, the action logs an "inconsistent fingerprint" warning.
"""
from __future__ import annotations

import json
import pathlib
import urllib.parse

import attr
import sarif_om as om

from ..findings import Finding, FixProposal, Incomplete, Location, RunResult, Skipped
from ..rules_catalog import RuleDoc, fact_text, indent_code, markdown_to_text
from .fingerprint import fingerprints

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"
TOOL_NAME = "nofail-lint"
INFORMATION_URI = "https://github.com/nofail-lint/nofail-lint"
SRCROOT = "%SRCROOT%"
FINGERPRINT_KEY = "primaryLocationLineHash"
RULE_TAGS = ["memory", "correctness"]
_ALWAYS_WRITTEN = frozenset({"level"})


# --- serialisation ---------------------------------------------------------

def to_json(obj):
    """sarif_om object tree -> plain JSON-able data (see module docstring)."""
    if attr.has(type(obj)):
        out = {}
        for field in attr.fields(type(obj)):
            value = getattr(obj, field.name)
            if value is None:
                continue
            default = field.default
            if isinstance(default, attr.Factory):  # type: ignore[arg-type]
                default = default.factory()
            if (default is not attr.NOTHING and value == default
                    and field.name not in _ALWAYS_WRITTEN):
                continue
            out[field.metadata["schema_property_name"]] = to_json(value)
        return out
    if isinstance(obj, dict):
        return {key: to_json(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json(value) for value in obj]
    return obj


# --- locations ---------------------------------------------------------------

def artifact_location(path: str) -> om.ArtifactLocation:
    """Relative paths become URIs under %SRCROOT%; absolute ones file:// URIs."""
    posix = pathlib.PurePosixPath(path)
    if posix.is_absolute():
        return om.ArtifactLocation(uri=posix.as_uri())
    rel = path[2:] if path.startswith("./") else path
    return om.ArtifactLocation(uri=urllib.parse.quote(rel, safe="/-._~!$&'()*+,;=@"),
                               uri_base_id=SRCROOT)


def _region(loc: Location) -> om.Region:
    line = max(loc.line, 1)
    column = max(loc.column, 1)
    end_line = max(loc.end_line, line)
    end_column = max(loc.end_column, 1)
    if end_line == line and end_column < column:
        end_column = column
    return om.Region(
        start_line=line, start_column=column, end_line=end_line, end_column=end_column,
        snippet=om.ArtifactContent(text=loc.snippet) if loc.snippet else None,
    )


def _physical(loc: Location) -> om.PhysicalLocation:
    return om.PhysicalLocation(artifact_location=artifact_location(loc.path),
                               region=_region(loc))


def _srcroot_uri(root: pathlib.Path) -> str:
    uri = pathlib.Path(root).resolve().as_uri()
    return uri if uri.endswith("/") else uri + "/"


# --- rules ---------------------------------------------------------------------

def _help_markdown(rule: RuleDoc, facts: dict[str, str]) -> str:
    fact_lines = "\n".join(f"- `{fid}`: {fact_text(fid, facts)}" for fid in rule.facts)
    return (
        f"## Why it matters\n\n{rule.why}\n\n"
        f"## Example\n\n```c\n{rule.example}\n```\n\n"
        f"## Fix\n\n{rule.fix}\n\n"
        f"## Model facts\n\n{fact_lines}\n"
    )


def _help_text(rule: RuleDoc, facts: dict[str, str]) -> str:
    fact_lines = "\n".join(f"  - {fid}: {fact_text(fid, facts)}" for fid in rule.facts)
    return (
        f"Why it matters:\n{markdown_to_text(rule.why, width=10_000)}\n\n"
        f"Example:\n{indent_code(rule.example)}\n\n"
        f"Fix:\n{markdown_to_text(rule.fix, width=10_000)}\n\n"
        f"Model facts:\n{fact_lines}\n"
    )


def _descriptor(rule: RuleDoc, facts: dict[str, str]) -> om.ReportingDescriptor:
    return om.ReportingDescriptor(
        id=rule.id,
        name=rule.name,
        short_description=om.MultiformatMessageString(text=rule.summary),
        full_description=om.MultiformatMessageString(text=rule.description),
        help=om.MultiformatMessageString(text=_help_text(rule, facts),
                                         markdown=_help_markdown(rule, facts)),
        default_configuration=om.ReportingConfiguration(level=rule.level),
        properties={"tags": list(RULE_TAGS), "precision": "high"},
    )


def _stub_descriptor(rule_id: str, level: str) -> om.ReportingDescriptor:
    """For a finding whose rule has no rule file: keeps GitHub's requirements."""
    text = f"nofail-lint rule {rule_id} (no rule documentation installed)."
    return om.ReportingDescriptor(
        id=rule_id,
        short_description=om.MultiformatMessageString(text=text),
        full_description=om.MultiformatMessageString(text=text),
        help=om.MultiformatMessageString(text=text, markdown=text),
        default_configuration=om.ReportingConfiguration(level=level),
        properties={"tags": list(RULE_TAGS), "precision": "high"},
    )


# --- results ---------------------------------------------------------------------

def _result(f: Finding, rule_index: int, fingerprint: str, suppressed: bool = False) -> om.Result:
    primary = _physical(f.location)
    result = om.Result(
        rule_id=f.rule_id,
        rule_index=rule_index,
        level=f.level,
        message=om.Message(text=f.message),
        locations=[om.Location(physical_location=primary)],
        partial_fingerprints={FINGERPRINT_KEY: fingerprint},
        properties={"facts": list(f.facts), "function": f.function},
        suppressions=[om.Suppression(kind="inSource")] if suppressed else None,
    )
    if f.path:
        # Call order: the primary location (where NOFAIL enters, the outermost
        # call) first, then each PathStep down to the kernel API. A step at the
        # primary location itself is not repeated.
        steps = [s for s in f.path if s.location != f.location]
        flow = [om.ThreadFlowLocation(location=om.Location(
            physical_location=_physical(f.location), message=om.Message(text=f.message)))]
        flow += [om.ThreadFlowLocation(location=om.Location(
            physical_location=_physical(s.location), message=om.Message(text=s.message)))
            for s in steps]
        result.code_flows = [om.CodeFlow(thread_flows=[om.ThreadFlow(locations=flow)])]
        result.related_locations = [
            om.Location(id=i, physical_location=_physical(s.location),
                        message=om.Message(text=s.message))
            for i, s in enumerate(f.path, start=1)
        ]
    return result


def _fix(p: FixProposal) -> om.Fix:
    """A proposed rewrite: whole lines replaced (column 1 of the first line up
    to column 1 of the line after the last)."""
    return om.Fix(
        description=om.Message(text=p.description + ("" if p.safe else " (unsafe fix)")),
        artifact_changes=[om.ArtifactChange(
            artifact_location=artifact_location(p.path),
            replacements=[om.Replacement(
                deleted_region=om.Region(start_line=r.start_line, start_column=1,
                                         end_line=r.end_line, end_column=1),
                inserted_content=om.ArtifactContent(text=r.text) if r.text else None)
                for r in p.replacements])])


def _notification(s: Skipped) -> om.Notification:
    return om.Notification(
        level="warning",
        message=om.Message(text=s.reason),
        locations=[om.Location(physical_location=om.PhysicalLocation(
            artifact_location=artifact_location(s.path)))],
    )


def _incomplete_notification(i: Incomplete) -> om.Notification:
    region = om.Region(start_line=i.line, end_line=max(i.end_line, i.line)) if i.line > 0 else None
    return om.Notification(
        level="warning",
        message=om.Message(text=f"{i.kind}: {i.message}"),
        locations=[om.Location(physical_location=om.PhysicalLocation(
            artifact_location=artifact_location(i.path), region=region))],
    )


def build(result: RunResult, rules: dict[str, RuleDoc], facts: dict[str, str],
          root: pathlib.Path, tool_version: str, show_suppressed: bool = False,
          fixes: dict[Finding, list[FixProposal]] | None = None) -> om.SarifLog:
    silenced = set(result.suppressed) if show_suppressed else set()
    findings = sorted([*result.findings, *silenced], key=lambda f: f.sort_key())
    skipped = sorted(result.skipped, key=lambda s: (s.path, s.reason))

    descriptors = [_descriptor(rules[rid], facts) for rid in sorted(rules)]
    index = {d.id: i for i, d in enumerate(descriptors)}
    for f in findings:
        if f.rule_id not in index:
            index[f.rule_id] = len(descriptors)
            descriptors.append(_stub_descriptor(f.rule_id, f.level))

    results = [_result(f, index[f.rule_id], fp, f in silenced)
               for f, fp in zip(findings, fingerprints(findings), strict=True)]
    for f, r in zip(findings, results, strict=True):
        if fixes and fixes.get(f):
            r.fixes = [_fix(p) for p in fixes[f]]

    driver = om.ToolComponent(
        name=TOOL_NAME,
        version=tool_version,
        semantic_version=tool_version,
        information_uri=INFORMATION_URI,
        rules=descriptors,
    )
    incomplete = sorted(result.incomplete, key=lambda i: (i.path, i.line, i.kind, i.message))
    notifications = [_notification(s) for s in skipped] + [_incomplete_notification(i) for i in incomplete]
    invocation = om.Invocation(
        execution_successful=not skipped,
        tool_execution_notifications=notifications or None,
    )
    run_properties: dict[str, object] = {"filesScanned": result.files_scanned}
    if result.kernel_version:
        run_properties["kernelVersion"] = result.kernel_version
    run = om.Run(
        tool=om.Tool(driver=driver),
        original_uri_base_ids={SRCROOT: om.ArtifactLocation(uri=_srcroot_uri(root))},
        invocations=[invocation],
        column_kind="unicodeCodePoints",
        results=results,
        properties=run_properties,
    )
    return om.SarifLog(runs=[run], version=SARIF_VERSION, schema_uri=SCHEMA_URI)


def render(result: RunResult, rules: dict[str, RuleDoc], facts: dict[str, str],
           root: pathlib.Path, tool_version: str, show_suppressed: bool = False,
           fixes: dict[Finding, list[FixProposal]] | None = None) -> str:
    doc = to_json(build(result, rules, facts, root, tool_version, show_suppressed, fixes))
    # Conventional order: $schema and version first.
    ordered = {"$schema": doc.pop("$schema"), "version": doc.pop("version"), **doc}
    return json.dumps(ordered, indent=2) + "\n"
