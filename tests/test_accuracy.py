"""What the findings say, for the idiom families the fixtures cover: the
notes that justify a finding (the -ENOMEM chain, the other allocator of a
loop, the looping wrapper) and the advice when __GFP_NOFAIL cannot apply."""
from __future__ import annotations

import json

from conftest import FIXTURES, run_cli


def _findings(cli, folder: str) -> list[dict]:
    proc = run_cli(cli, "check", "--format", "json", "-q", str(FIXTURES / folder))
    assert proc.returncode == 1, proc.stderr
    return json.loads(proc.stdout)["findings"]


def _at(findings, name: str, line: int) -> dict:
    found = [f for f in findings if f["path"].endswith(name) and f["line"] == line]
    assert len(found) == 1, [(f["path"], f["line"]) for f in findings if f["path"].endswith(name)]
    return found[0]


def test_enomem_retry_cites_the_chain_down_to_the_allocator(cli):
    f = _at(_findings(cli, "nf002"), "enomem_propagation.c", 60)
    assert "en_node_get() -> en_node_alloc() -> kzalloc()" in " ".join(f["notes"])
    assert "takes no gfp mask" in f["message"] and "use __GFP_NOFAIL" not in f["message"]


def test_allocator_retry_still_advises_nofail(cli):
    f = _at(_findings(cli, "nf002"), "event_loops.c", 93)
    assert f["message"].endswith("use __GFP_NOFAIL instead")


def test_one_finding_per_loop_names_the_fallback(cli):
    findings = _findings(cli, "nf002")
    f = _at(findings, "real_tree_shapes.c", 195)
    assert "the same loop also retries vmalloc() (line 197)" in f["notes"]
    assert not [g for g in findings if g["path"].endswith("real_tree_shapes.c") and g["line"] == 197]


def test_event_test_is_never_the_allocator(cli):
    findings = _findings(cli, "nf002")
    assert not [f for f in findings if "kthread_should_stop" in f["message"] or "signal_pending" in f["message"]]


def test_looping_wrapper_null_test_names_the_loop_and_the_flag(cli):
    f = _at(_findings(cli, "nf006"), "looping_wrappers.c", 73)
    assert f["rule_id"] == "NF006"
    notes = " ".join(f["notes"])
    assert "call chain: nf6lw_zalloc() -> nf6lw_alloc()" in notes
    assert "unless the flags include NF6LW_MAYFAIL" in notes
