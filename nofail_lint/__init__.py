"""nofail-lint: find __GFP_NOFAIL misuse and open-coded allocation retry loops in Linux sources."""
from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("nofail-lint")
except PackageNotFoundError:  # running from a source checkout
    __version__ = "0.1.0"
