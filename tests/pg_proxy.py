"""A fault-injecting TCP proxy between a client and PostgreSQL (loopback only).

It relays bytes both ways and reads the client's side of the PostgreSQL
wire protocol (v3: an untyped startup message, then messages of one type
byte and a 4-byte length) just enough to see a transaction's end: a simple
``Query`` or an extended-protocol ``Parse`` whose text is ``COMMIT``, or a
call of ``journal_append`` (an autocommit statement that is a whole append
transaction, see `journal.postgres_append`). Armed with `cut_next_commit`,
it cuts that connection (both sides), either before forwarding the commit
(the server rolls back) or after the server has answered it and is idle
again (the server committed; the client never hears so). Use
``sslmode=disable`` and ``gssencmode=disable`` in the client's URL so that
the stream is readable. `cut_next_listens` cuts connections as they send
``LISTEN``. `pause` plays a server that went away (every connection cut,
new ones refused) until `resume`.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from dataclasses import dataclass, field

_COMMIT = b"COMMIT"
_CALL = b"SELECT JOURNAL_APPEND("
_IDLE = b"Z\x00\x00\x00\x05I"  # ReadyForQuery, no transaction open


@dataclass
class _Link:
    client: socket.socket
    server: socket.socket
    holding: threading.Event = field(default_factory=threading.Event)
    closed: threading.Event = field(default_factory=threading.Event)

    def close(self) -> None:
        self.closed.set()
        for sock in (self.client, self.server):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


class FaultProxy:
    """Listens on 127.0.0.1 and relays to ``upstream`` (host, port)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._armed: str | None = None  # "before" or "after"
        self._holding_for = ""  # what the held answer ends
        self._listen_cuts = 0
        self._links: list[_Link] = []
        self.cuts: list[str] = []  # what was done, in order
        self._stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_next_commit(self, when: str) -> None:
        """Cut the next connection that sends COMMIT: ``before`` forwarding
        it, or ``after`` the server has answered it."""
        assert when in ("before", "after")
        with self._lock:
            self._armed = when

    def cut_next_listens(self, count: int) -> None:
        """Cut each of the next `count` connections that send ``LISTEN``,
        before forwarding it."""
        with self._lock:
            self._listen_cuts = count

    def _take_listen_cut(self) -> bool:
        with self._lock:
            if self._listen_cuts == 0:
                return False
            self._listen_cuts -= 1
            return True

    def cut_all(self) -> int:
        """Close every open connection at once; return how many."""
        with self._lock:
            links = [link for link in self._links if not link.closed.is_set()]
        for link in links:
            link.close()
        return len(links)

    def pause(self) -> None:
        """Play a server that went away: cut every connection and refuse new
        ones (nothing listens on the port) until `resume`."""
        self._close_listener()
        self.cut_all()

    def resume(self) -> None:
        """Accept connections on the same port again."""
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._stopped.set()
        self._close_listener()
        self.cut_all()

    def _close_listener(self) -> None:
        # shutdown wakes the accepting thread: close alone leaves it blocked
        # in accept(), and the port listening, on Linux.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()

    def _accept(self) -> None:
        listener = self._listener
        while not self._stopped.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            link = _Link(client, server)
            with self._lock:
                self._links.append(link)
            threading.Thread(
                target=self._client_side, args=(link,), daemon=True
            ).start()
            threading.Thread(
                target=self._server_side, args=(link,), daemon=True
            ).start()

    def _take_armed(self) -> str | None:
        with self._lock:
            armed, self._armed = self._armed, None
            return armed

    def _client_side(self, link: _Link) -> None:
        """Relay client -> server message by message, watching for COMMIT."""
        reader = _Reader(link.client)
        try:
            startup = reader.untyped()
            link.server.sendall(startup)
            pending: str | None = None  # a cut waiting for the Parse's Sync
            while True:
                kind, message = reader.typed()
                if (
                    kind in (b"Q", b"P")
                    and _statement(message).startswith(b"LISTEN")
                    and self._take_listen_cut()
                ):
                    self.cuts.append("before LISTEN")
                    link.close()
                    return
                ends = _ends_transaction(message) if kind in (b"Q", b"P") else ""
                if ends:
                    pending = self._take_armed()
                    self._holding_for = ends
                    if pending == "before":
                        self.cuts.append(f"before {ends}")
                        link.close()
                        return
                if pending == "after" and kind in (b"Q", b"S"):
                    link.holding.set()  # hold the server's answer back
                link.server.sendall(message)
                if pending == "after" and kind in (b"Q", b"S"):
                    pending = None
        except (OSError, EOFError):
            link.close()

    def _server_side(self, link: _Link) -> None:
        """Relay server -> client, unless holding: then wait for the server
        to answer the commit and be idle again, and cut without relaying."""
        answer = b""
        try:
            while True:
                data = link.server.recv(65536)
                if not data:
                    break
                if link.holding.is_set():
                    answer += data
                    if _IDLE in answer:
                        self.cuts.append(f"after {self._holding_for}")
                        break
                    continue
                link.client.sendall(data)
        except OSError:
            pass
        link.close()


def _statement(message: bytes) -> bytes:
    """The SQL of a Query or Parse message, upper case, stripped."""
    # Q: type, length, query text. P: type, length, statement name, query.
    body = message[5:]
    if message[:1] == b"P":
        body = body.split(b"\x00", 1)[1] if b"\x00" in body else body
        body = body.split(b"\x00", 1)[0]
    return body.strip(b"\x00 ;\n").upper()


def _ends_transaction(message: bytes) -> str:
    """``COMMIT``, ``journal_append`` (a whole append), or ``""``."""
    # Q: type, length, query text. P: type, length, statement name, query.
    body = message[5:]
    if message[:1] == b"P":
        body = body.split(b"\x00", 1)[1] if b"\x00" in body else body
    text = body.strip(b"\x00 ;\n").upper()
    if text == _COMMIT:
        return "COMMIT"
    if text.startswith(_CALL):
        return "journal_append"
    return ""


class _Reader:
    """Reads whole protocol messages from a socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def _exactly(self, count: int) -> bytes:
        while len(self.buffer) < count:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError
            self.buffer += data
        out, self.buffer = self.buffer[:count], self.buffer[count:]
        return out

    def untyped(self) -> bytes:
        head = self._exactly(4)
        (length,) = struct.unpack("!I", head)
        return head + self._exactly(length - 4)

    def typed(self) -> tuple[bytes, bytes]:
        head = self._exactly(5)
        (length,) = struct.unpack("!I", head[1:])
        return head[:1], head + self._exactly(length - 4)
