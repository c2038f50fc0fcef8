"""The engine: how files become facts, and which files a run needs.

Read top to bottom; imports go down the list only:

- `workers`: worker processes (fork, one tree-sitter parser each), the
  per-file guards, Ctrl-C/SIGTERM and die-with-parent handling.
- `seeds`: the files a flag can enter from: its text, its macro closure.
- `store`: the facts store: every file's fact key and outcome, extracted in
  workers or loaded from the cache (`extract_all`), and the tree scan's rows
  and seeds (`scan_all`).
- `flow_demand`: from seed files down through the gfp-carrying calls to the
  definitions they reach.
- `runs`: the partial runs (`DemandRun`) and the seed-driven runs
  (`SeedRun`) that `pipeline.analyse` builds.

See docs/architecture.md ("The engine").
"""
