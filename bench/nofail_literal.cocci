// The incumbent's simplest NOFAIL rule, for bench/bench.py: every call that
// passes a literal __GFP_NOFAIL somewhere in an argument. Context mode (*):
// spatch prints the matching calls; nothing is rewritten.
@nofail_literal@
identifier fn;
expression list before, after;
@@
* fn(before, <+... __GFP_NOFAIL ...+>, after)
