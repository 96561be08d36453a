"""A fake clamd on loopback (TCP or a Unix socket) speaking the real INSTREAM protocol.

It reads ``zINSTREAM\\0`` (or ``nINSTREAM\\n``), then chunks of a 4-byte
big-endian length and that many bytes, up to a zero length, and answers as
clamd does, one NUL-terminated line:

* ``stream: Eicar-Test-Signature FOUND`` when the stream holds the EICAR test
  string (the standard harmless test virus);
* ``INSTREAM size limit exceeded. ERROR`` past ``stream_max`` bytes (clamd's
  ``StreamMaxLength``);
* ``stream: OK`` otherwise.

``mode`` changes that: ``"hang"`` reads the stream and never answers,
``"close"`` closes the connection without an answer. ``streams`` holds what
was scanned. One thread per connection; ``with FakeClamd() as clamd:``.
"""

from __future__ import annotations

import socket
import socketserver
import struct
import threading
from pathlib import Path
from types import TracebackType
from typing import Literal

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
Mode = Literal["scan", "hang", "close"]


class FakeClamd:
    """See the module docstring. ``address`` is ``host:port``; ``socket_path`` for Unix."""

    def __init__(self, socket_path: Path | None = None, stream_max: int = 25 * 1024 * 1024) -> None:
        self.socket_path = socket_path
        self.stream_max = stream_max
        self.mode: Mode = "scan"
        self.streams: list[bytes] = []
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._server: socketserver.BaseServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        assert isinstance(self._server, socketserver.TCPServer)
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    def start(self) -> None:
        fake = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                fake._serve(self.request)

        server: socketserver.BaseServer
        if self.socket_path is not None:
            server = socketserver.ThreadingUnixStreamServer(str(self.socket_path), Handler)
        else:
            server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.1,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> FakeClamd:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        try:
            command = _read_until(conn, (b"\0", b"\n"))
            if command not in (b"zINSTREAM", b"nINSTREAM"):
                conn.sendall(b"UNKNOWN COMMAND\0")
                return
            data, too_large = self._read_stream(conn)
            with self._lock:
                self.streams.append(data)
            if self.mode == "hang":
                self._release.wait(30)
                return
            if self.mode == "close":
                return
            conn.sendall(self._verdict(data, too_large))
        except (OSError, ValueError):
            return

    def _read_stream(self, conn: socket.socket) -> tuple[bytes, bool]:
        chunks: list[bytes] = []
        size = 0
        while True:
            (length,) = struct.unpack("!I", _read_exactly(conn, 4))
            if length == 0:
                return b"".join(chunks), size > self.stream_max
            chunk = _read_exactly(conn, length)
            size += length
            if size <= self.stream_max:
                chunks.append(chunk)

    def _verdict(self, data: bytes, too_large: bool) -> bytes:
        if too_large:
            return b"INSTREAM size limit exceeded. ERROR\0"
        if EICAR in data:
            return b"stream: Eicar-Test-Signature FOUND\0"
        return b"stream: OK\0"


def _read_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ValueError("connection closed mid-stream")
        data += chunk
    return data


def _read_until(conn: socket.socket, ends: tuple[bytes, ...]) -> bytes:
    data = b""
    while len(data) < 64:
        byte = conn.recv(1)
        if not byte:
            raise ValueError("connection closed before the command")
        if byte in ends:
            return data
        data += byte
    raise ValueError("no command")
