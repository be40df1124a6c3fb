"""One URL picks the backend: sqlite (the embedded default), postgresql, memory."""

from __future__ import annotations

import threading
from pathlib import Path

from journal.errors import StoreError
from journal.keys import Keyring
from journal.memory_store import MemoryStore
from journal.store import Store

DEFAULT_URL = "sqlite:///journal.db"
_memory_stores: dict[str, MemoryStore] = {}
_memory_lock = threading.Lock()


def sqlite_path(url: str) -> Path | None:
    """The file a SQLite URL (or bare path) names; None for other schemes."""
    if url.startswith("sqlite://"):
        rest = url[len("sqlite://") :]
        if not rest.startswith("/"):
            raise StoreError(f"bad SQLite URL {url!r}: use sqlite:///relative.db")
        return Path(rest[1:]) if rest[1:] else None
    if "://" in url:
        return None
    return Path(url)


def check_url(url: str) -> str:
    """Refuse a URL no backend accepts (`StoreError`), without opening it."""
    if url.startswith(("postgresql://", "postgres://", "memory://")):
        return url
    if sqlite_path(url) is None:
        raise StoreError(
            f"unsupported journal URL {url!r}: use sqlite:///file.db, "
            "postgresql://… or memory://"
        )
    return url


def open_store(
    url: str, *, create: bool = True, keyring: Keyring | None = None
) -> Store:
    """Open the store a URL names.

    ``sqlite:///rel.db``, ``sqlite:////abs/path.db`` or a bare path: SQLite.
    ``postgresql://user@host:5432/db``: PostgreSQL. ``memory://`` (or
    ``memory://name``, shared within the process): in memory. With
    ``create=False`` a missing SQLite file is an error and nothing is created.
    """
    if url.startswith(("postgresql://", "postgres://")):
        from journal.postgres_store import PostgresStore

        return PostgresStore(url, create=create, keyring=keyring)
    if url.startswith("memory://"):
        name = url[len("memory://") :]
        if not name:
            return MemoryStore(url, keyring=keyring)
        with _memory_lock:
            if name not in _memory_stores:
                if not create:
                    raise StoreError(f"no journal at {url}")
                _memory_stores[name] = MemoryStore(url, keyring=keyring)
            return _memory_stores[name]
    path = sqlite_path(check_url(url))
    assert path is not None  # check_url refused every other scheme
    from journal.sqlite_store import SQLiteStore

    return SQLiteStore(path, create=create, keyring=keyring, url=url)
