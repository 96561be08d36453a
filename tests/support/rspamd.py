"""A fake rspamd normal worker on loopback: HTTP ``POST /checkv2`` with rspamd's JSON answers.

``answer`` (a function of the request) chooses the JSON; by default a
message whose Subject contains ``SPAM`` gets ``{"action": "reject", ...}``,
``SOFT`` gets ``soft reject``, ``HEADER`` gets ``add header`` with a
``milter.add_headers`` block (``X-Spam: Yes``) and ``REWRITE`` gets
``rewrite subject`` with ``subject``; everything else ``no action``.
``status`` other than 200 answers that HTTP status; ``delay`` waits before
answering (a slow scanner). ``requests`` records every ``(headers, body)``
received (headers as a list of pairs, so repeated ``Rcpt`` stay visible).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

Request = tuple[list[tuple[str, str]], bytes]


def default_answer(request: Request) -> dict[str, Any]:
    _, body = request
    subject = next(
        (line for line in body.split(b"\r\n") if line.lower().startswith(b"subject:")), b""
    )
    answer: dict[str, Any] = {"action": "no action", "score": 0.5, "required_score": 15.0}
    if b"SPAM" in subject:
        answer.update(action="reject", score=20.1)
    elif b"SOFT" in subject:
        answer.update(action="soft reject", score=9.0)
    elif b"HEADER" in subject:
        answer.update(action="add header", score=7.0)
        answer["milter"] = {"add_headers": {"X-Spam": {"value": "Yes", "order": 0}}}
    elif b"REWRITE" in subject:
        answer.update(action="rewrite subject", score=8.0, subject="*** SPAM *** hello")
    return answer


class FakeRspamd:
    """See the module docstring. ``url`` is the ``/checkv2`` URL."""

    def __init__(self) -> None:
        self.answer: Callable[[Request], dict[str, Any]] = default_answer
        self.status = 200
        self.delay = 0.0
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/checkv2"

    def start(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                request = (list(self.headers.items()), body)
                with fake._lock:
                    fake.requests.append(request)
                if fake.delay:
                    time.sleep(fake.delay)
                if self.path != "/checkv2" or fake.status != 200:
                    self.send_response(fake.status if fake.status != 200 else 404)
                    self.end_headers()
                    return
                data = json.dumps(fake.answer(request)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.1,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> FakeRspamd:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
