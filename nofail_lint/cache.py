"""The facts cache: per-file facts keyed by content, whole-run results keyed by every input.

Extraction is the expensive stage and depends on nothing but a file's bytes
(and this tool's code and allocator model), so its output is stored under a
hash of the content. A stat table (size, mtime, inode per absolute path) lets
a second run know an unchanged file without reading it; a file whose stat
changed is read and hashed, and re-extracted only if its content did change
(`touch` costs a hash, a fresh CI checkout with a restored cache costs one read
per file). The findings of a whole run are stored under a hash of all its
inputs, so a run where nothing changed skips linking and checking too.

One SQLite database per namespace: the namespace is a digest of the tool's own
source and model data, so any change to the analysis starts a new cache. SQLite
transactions make writes atomic and let concurrent runs share a directory.
Every stored blob carries its own digest: a truncated or corrupted entry is
detected on load and recomputed, and a database file that SQLite cannot read
is set aside and started anew. The cache is an accelerator, never a source of
truth: if it cannot be used, the run goes on without it and says so.
"""
from __future__ import annotations

import functools
import hashlib
import os
import pickle
import sqlite3
import sys
import time
from pathlib import Path
from typing import Iterable, Mapping

SCHEMA = 1
ENV_VAR = "NOFAIL_LINT_CACHE_DIR"
# a file modified this recently may change again within the same mtime tick:
# its stat row is not recorded, so the next run hashes it again ("racy git")
RACY_SECONDS = 2.0
# namespaces (tool versions) not opened for this long are deleted
STALE_NAMESPACE_DAYS = 30
KEEP_RESULTS = 16


def content_hash(src: bytes) -> bytes:
    return hashlib.blake2b(src, digest_size=16).digest()


def default_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "nofail-lint"


def cache_dir(option: str | None, disabled: bool) -> Path | None:
    """--no-cache, then --cache-dir, then $NOFAIL_LINT_CACHE_DIR, then the XDG cache home."""
    if disabled:
        return None
    if option:
        return Path(option)
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else default_dir()


@functools.cache
def namespace() -> str:
    """Digest of everything that decides what extraction and the rules produce:
    this package's Python source and its data files (model, rule docs)."""
    h = hashlib.blake2b(digest_size=12)
    h.update(f"schema {SCHEMA} python {sys.version_info[:2]}".encode())
    root = Path(__file__).parent
    for p in sorted(root.rglob("*")):
        if p.suffix in (".py", ".toml") and p.is_file() and "__pycache__" not in p.parts:
            h.update(p.relative_to(root).as_posix().encode() + b"\0")
            h.update(p.read_bytes())
    return h.hexdigest()


def seal(value: object) -> tuple[bytes, bytes]:
    """(digest, pickled value): what is stored, and how damage is detected."""
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return content_hash(data), data


class _Corrupt(Exception):
    pass


def unseal(digest: bytes, data: bytes) -> object:
    if not isinstance(data, bytes) or content_hash(data) != digest:
        raise _Corrupt("digest mismatch")
    try:
        return pickle.loads(data)
    except Exception as e:  # a blob that hashes right but does not unpickle: treat as corrupt
        raise _Corrupt(str(e)) from e


_TABLES = """
CREATE TABLE IF NOT EXISTS stats (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER,
                                  ino INTEGER, hash BLOB);
CREATE TABLE IF NOT EXISTS facts (hash BLOB PRIMARY KEY, digest BLOB, data BLOB);
CREATE TABLE IF NOT EXISTS results (key BLOB PRIMARY KEY, digest BLOB, data BLOB);
CREATE TABLE IF NOT EXISTS scans (hash BLOB PRIMARY KEY, digest BLOB, data BLOB);
CREATE TABLE IF NOT EXISTS runs (scope BLOB PRIMARY KEY, digest BLOB, data BLOB);
"""


class FactsCache:
    """Open with `FactsCache.open(directory)`; None means "run without a cache"."""

    def __init__(self, db: sqlite3.Connection, path: Path):
        self.db = db
        self.path = path
        self.corrupt_entries = 0      # entries that failed their digest (recomputed)

    # ------------------------------------------------------------ opening

    @classmethod
    def open(cls, directory: Path, warn=None) -> FactsCache | None:
        warn = warn or _stderr
        path = directory / f"facts-{namespace()}.sqlite"
        try:
            directory.mkdir(parents=True, exist_ok=True)
            _prune_stale(directory, path)
        except OSError as e:
            warn(f"cache directory {directory} is unusable ({e.strerror or e}); running without a cache")
            return None
        damaged = busy = 0
        while True:
            try:
                cache = cls(_connect(path), path)
                try:
                    os.utime(path)      # marks the namespace as in use (see _prune_stale)
                except OSError:
                    pass
                return cache
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) and "busy" not in str(e):    # read-only, cannot open...
                    warn(f"cache {path} is unusable ({e}); running without a cache")
                    return None
                # another run is creating or writing it: wait, it is not damage
                busy += 1
                if busy > 20:
                    warn(f"cache {path} stays busy ({e}); running without a cache")
                    return None
                time.sleep(0.05 * busy)
            except sqlite3.DatabaseError as e:
                damaged += 1
                if damaged > 1:
                    warn(f"cache {path} could not be recreated; running without a cache")
                    return None
                warn(f"cache {path} is unreadable ({e}); starting a new one")
                _set_aside(path)
            except OSError as e:
                warn(f"cache {path} is unusable ({e.strerror or e}); running without a cache")
                return None

    def close(self):
        if self.corrupt_entries:
            _stderr(f"cache {self.path}: {self.corrupt_entries} damaged entr"
                    f"{'y' if self.corrupt_entries == 1 else 'ies'} recomputed")
            self.corrupt_entries = 0
        try:
            self.db.close()
        except sqlite3.Error:
            pass

    # ------------------------------------------------------------ reads

    def known_hashes(self, paths: list[tuple[str, tuple[int, int, int]]]) -> dict[str, bytes]:
        """{absolute path: content hash} for files whose stat identity is as recorded."""
        if not paths:
            return {}
        low, high = min(p for p, _ in paths), max(p for p, _ in paths)
        # only this run's part of the table (several trees may share a cache)
        recorded = {(p, (size, mtime_ns, ino)): h for p, size, mtime_ns, ino, h
                    in self._query("SELECT path, size, mtime_ns, ino, hash FROM stats "
                                   "WHERE path BETWEEN ? AND ?", (low, high))}
        out = {}
        for key in paths:
            h = recorded.get(key)
            if isinstance(h, bytes):
                out[key[0]] = h
        return out

    def stored_hashes(self) -> set[bytes]:
        """Content hashes that have an entry (whether or not it is intact)."""
        return {r[0] for r in self._query("SELECT hash FROM facts")}

    def load_facts(self, hashes: Iterable[bytes]) -> dict[bytes, object]:
        """{hash: stored extraction result}; corrupt or missing entries are left out."""
        return self._load_by_hash("facts", hashes)

    def stored_scan_hashes(self) -> set[bytes]:
        return {r[0] for r in self._query("SELECT hash FROM scans")}

    def load_scans(self, hashes: Iterable[bytes]) -> dict[bytes, object]:
        """{hash: stored scan row} (scan.py); corrupt or missing entries are left out."""
        return self._load_by_hash("scans", hashes)

    def _load_by_hash(self, table: str, hashes: Iterable[bytes]) -> dict[bytes, object]:
        wanted = sorted(set(hashes))
        out = {}
        for i in range(0, len(wanted), 500):
            chunk = wanted[i:i + 500]
            rows = self._query(f"SELECT hash, digest, data FROM {table} WHERE hash IN ({','.join('?' * len(chunk))})",
                               chunk)
            for h, digest, data in rows:
                try:
                    out[h] = unseal(digest, data)
                except _Corrupt:
                    self.corrupt_entries += 1
        return out

    def store_scans(self, rows: Mapping[bytes, object], stats: list[tuple[str, tuple[int, int, int], bytes]]):
        """Scan rows by content hash, and the stat rows of the files read, in one transaction."""
        sealed = [(h, *seal(row)) for h, row in rows.items()]
        stat_rows = self._stat_rows(stats)
        self._write(lambda db: (
            db.executemany("INSERT OR REPLACE INTO scans VALUES (?, ?, ?)", sealed),
            db.executemany("INSERT OR REPLACE INTO stats VALUES (?, ?, ?, ?, ?)", stat_rows)))

    def load_run(self, scope: bytes, part: str) -> object | None:
        """One part of the last run record of this scope (same paths and options;
        incremental.RunRecord)."""
        return self._load_one("SELECT digest, data FROM runs WHERE scope = ?", scope + part.encode())

    def _load_one(self, sql: str, key: bytes) -> object | None:
        rows = self._query(sql, (key,))
        if not rows:
            return None
        try:
            return unseal(*rows[0])
        except _Corrupt:
            self.corrupt_entries += 1
            return None

    def store_run(self, scope: bytes, parts: dict[str, object]):
        """Replace the parts of this scope's run record given, in one transaction."""
        rows = [(scope + name.encode(), *seal(value)) for name, value in parts.items()]

        def write(db):
            db.executemany("INSERT OR REPLACE INTO runs VALUES (?, ?, ?)", rows)
            db.execute("DELETE FROM runs WHERE rowid NOT IN "
                       f"(SELECT rowid FROM runs ORDER BY rowid DESC LIMIT {3 * KEEP_RESULTS})")
        self._write(write)

    def load_result(self, key: bytes) -> object | None:
        return self._load_one("SELECT digest, data FROM results WHERE key = ?", key)

    # ------------------------------------------------------------ writes

    def store(self, facts: dict[bytes, tuple[bytes, bytes]], stats: list[tuple[str, tuple[int, int, int], bytes]]):
        """New extraction results (sealed, see `seal`) and the stat rows of files
        read this run, in one transaction."""
        rows = [(h, digest, data) for h, (digest, data) in facts.items()]
        stat_rows = self._stat_rows(stats)
        self._write(lambda db: (
            db.executemany("INSERT OR REPLACE INTO facts VALUES (?, ?, ?)", rows),
            db.executemany("INSERT OR REPLACE INTO stats VALUES (?, ?, ?, ?, ?)", stat_rows)))

    @staticmethod
    def _stat_rows(stats: list[tuple[str, tuple[int, int, int], bytes]]) -> list[tuple]:
        """Stat rows worth recording: not of files modified too recently ("racy git")."""
        now_ns = time.time_ns()
        racy_ns = int(RACY_SECONDS * 1e9)
        return [(p, size, mtime, ino, h) for p, (size, mtime, ino), h in stats if now_ns - mtime > racy_ns]

    def store_result(self, key: bytes, value: object):
        row = (key, *seal(value))

        def write(db):
            db.execute("INSERT OR REPLACE INTO results VALUES (?, ?, ?)", row)
            db.execute("DELETE FROM results WHERE rowid NOT IN "
                       f"(SELECT rowid FROM results ORDER BY rowid DESC LIMIT {KEEP_RESULTS})")
        self._write(write)

    # ------------------------------------------------------------ plumbing

    def _query(self, sql: str, args=()) -> list[tuple]:
        try:
            return self.db.execute(sql, args).fetchall()
        except sqlite3.OperationalError as e:     # locked past the timeout: not damage
            _stderr(f"cache {self.path} is busy ({e}); ignoring it for this run")
            self._disable()
            return []
        except sqlite3.DatabaseError as e:
            _stderr(f"cache {self.path} is unreadable ({e}); set aside, the next run starts a new one")
            self._disable()
            _set_aside(self.path)
            return []

    def _write(self, work):
        try:
            self.db.execute("BEGIN IMMEDIATE")
            work(self.db)
            self.db.execute("COMMIT")
        except sqlite3.Error as e:
            try:
                self.db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            _stderr(f"cache {self.path} could not be written ({e}); results are not cached")

    def _disable(self):
        """A database that fails mid-run is closed; an in-memory one stands in."""
        self.close()
        self.db = _connect(Path(":memory:"))


def databases(directory: Path) -> list[tuple[Path, int, bool]]:
    """(database, bytes on disk with its WAL, belongs to this tool version) in `directory`."""
    out = []
    for p in sorted(directory.glob("facts-*.sqlite")):
        size = sum(q.stat().st_size for q in (p, Path(str(p) + "-wal")) if q.exists())
        out.append((p, size, p.name == f"facts-{namespace()}.sqlite"))
    return out


def clear(directory: Path) -> int:
    """Delete every database in `directory`; how many there were."""
    found = databases(directory)
    for p, _, _ in found:
        _set_aside(p)
    return len(found)


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(str(path), timeout=60, isolation_level=None)
    try:
        if str(path) != ":memory:":
            # changing the journal mode needs the database to itself: only the
            # run that creates the cache does it (WAL then persists)
            if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_TABLES)
        db.execute("SELECT count(*) FROM stats").fetchone()
    except Exception:
        db.close()
        raise
    return db


def _set_aside(path: Path):
    for p in (path, Path(str(path) + "-wal"), Path(str(path) + "-shm")):
        try:
            p.unlink()
        except FileNotFoundError:
            pass
        except OSError:
            pass


def _prune_stale(directory: Path, current: Path):
    """Databases of other tool versions nobody opened for a month."""
    limit = time.time() - STALE_NAMESPACE_DAYS * 86400
    for p in directory.glob("facts-*.sqlite"):
        if p != current:
            try:
                if p.stat().st_mtime < limit:
                    _set_aside(p)
            except OSError:
                pass


def _stderr(message: str):
    print(f"nofail-lint: warning: {message}", file=sys.stderr)
