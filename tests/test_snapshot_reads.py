"""Summary and rows are read in one snapshot: appends racing a reader never
make `verify` report tampering (the head check is exact, so a reader that
saw the index row and the rows at different moments would)."""

from __future__ import annotations

import threading
from pathlib import Path

import journal
from journal.keys import Keyring
from journal.urls import open_store
from tests.conftest import isolated_url, new_tenant

APPENDS = 120


def test_verify_never_reports_tampering_while_a_writer_appends(
    sql_backend: str, tmp_path: Path
) -> None:
    url = isolated_url(sql_backend, tmp_path)
    tenant = new_tenant()
    with journal.Journal(open_store(url, keyring=Keyring()), tenant) as writer:
        handle = writer.create(flow="racing", input=None)
        handle.start()
        done = threading.Event()

        def append() -> None:
            try:
                for n in range(APPENDS):
                    handle.complete_step(handle.start_step(f"s{n}", input=n), n)
            finally:
                done.set()

        thread = threading.Thread(target=append)
        with journal.Journal(open_store(url, keyring=Keyring()), tenant) as reader:
            thread.start()
            checks = 0
            try:
                while not done.is_set() or checks == 0:
                    assert reader.verify(handle.id)[0] >= 2
                    checks += 1
            finally:
                thread.join()
            assert reader.verify(handle.id)[0] == 2 + 2 * APPENDS
    assert checks > 1
