"""`nofail-lint fix`: reviewable rewrites for the findings that have a safe one.

After check: findings -> rewrites (one module per kind: retry_loop for NF002,
dead_check for NF006, suggestions for NF003 in plan) -> verification (the
rules run again on the patched tree) -> diffs, in-place writes, or a patch
series for maintainers (series). A finding without a verified rewrite is
refused with a named reason, never half-fixed.
"""
from __future__ import annotations

from .edit import Refusal, Rewrite
from .plan import FixOptions, Plan, make_plan

__all__ = ["FixOptions", "Plan", "Refusal", "Rewrite", "make_plan"]
