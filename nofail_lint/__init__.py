"""nofail-lint: find __GFP_NOFAIL misuse and open-coded allocation retry loops in Linux sources."""

# the one place the version is written (pyproject.toml reads it from here);
# a literal, not importlib.metadata: that import alone costs a warm run 50 ms
__version__ = "0.1.0"
