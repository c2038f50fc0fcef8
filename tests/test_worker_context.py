"""What extraction needs besides a file reaches every worker: the configured
names that widen the byte prefilter, and the salt they add to fact keys."""
from __future__ import annotations

import contextlib

import pytest

from nofail_lint.engine.workers import WorkerContext
from nofail_lint.pipeline import Options, run

# no word of the default prefilter: only a configured allocator name lets it in
LOOP = """\
struct wc_obj *wc_get_{i}(struct wc_pool *pool)
{{
\tstruct wc_obj *o;

\tdo {{
\t\to = wc_take(pool);
\t}} while (!o);
\treturn o;
}}
"""


def test_configured_names_change_the_fact_key():
    plain, extra = WorkerContext.make(frozenset()), WorkerContext.make(frozenset({"wc_take"}))
    assert plain.extra is None and extra.extra is not None
    assert plain.fact_key(b"k") == b"k" and extra.fact_key(b"k") != b"k"
    assert WorkerContext.make(frozenset({"wc_take"})) == extra


@pytest.mark.parametrize("jobs", [1, 2])
def test_pool_workers_see_the_configured_allocators(tmp_path, jobs):
    for i in range(24):      # enough files for a worker pool
        (tmp_path / f"wc{i:02}.c").write_text(LOOP.format(i=i))
    with contextlib.chdir(tmp_path):
        plain = run(Options(["."], jobs=jobs), tmp_path)
        configured = run(Options(["."], jobs=jobs, extra_allocators=frozenset({"wc_take"})), tmp_path)
    assert plain.findings == []
    assert sorted((f.location.path, f.rule_id) for f in configured.findings) == \
        [(f"wc{i:02}.c", "NF002") for i in range(24)]
