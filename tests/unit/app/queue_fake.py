"""A fake audit API for the ``postline queue`` unit tests: the answers it gives and
what it was asked (``FakeQueueApi``), served over HTTP on loopback by ``serving``, and
the message documents it hands out, timed against ``NOW``."""

from __future__ import annotations

import io
import json
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Json = dict[str, Any]
NOW = datetime.now(UTC)


class Pinned(datetime):
    """``datetime`` whose ``now`` is ``NOW``: ages and "in 4m" do not move while tests run."""

    @classmethod
    def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
        return NOW if tz is not None else NOW.replace(tzinfo=None)


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def message(
    message_id: str, state: str = "deferred", *, mail_from: str = "mary@example.org",
    events: list[Json] | None = None, age: float = 3600,
) -> Json:  # fmt: skip
    """A message of the API waiting for john@partner.test after 3 attempts (451)."""
    recipient = {
        "address": "john@partner.test", "state": state, "attempts": 3,
        "reply": {"code": 451, "enhanced": "4.3.0", "text": "Try again later"},
        "next_attempt_at": iso(NOW + timedelta(minutes=4, seconds=30)),
    }  # fmt: skip
    return {
        "message_id": message_id, "state": state, "mail_from": mail_from,
        "received_at": iso(NOW - timedelta(seconds=age)), "recipients": [recipient],
        "events": events or [],
    }  # fmt: skip


@dataclass
class FakeQueueApi:
    """``/v1/messages`` from ``by_state``; ``/v1/queue/{action}`` matching ``matches``;
    ``/v1/queue/requests/{id}`` answered by ``progress(request_ids, poll_number)``."""

    by_state: dict[str, list[Json]] = field(default_factory=dict)
    matches: list[str] = field(default_factory=list)
    not_waiting: list[Json] = field(default_factory=list)
    progress: Callable[[list[str], int], Json] | None = None
    page_size: int = 500
    gets: list[tuple[str, dict[str, list[str]]]] = field(default_factory=list)
    posts: list[tuple[str, Json]] = field(default_factory=list)
    polls: dict[str, int] = field(default_factory=dict)
    requests: dict[str, list[str]] = field(default_factory=dict)
    error: tuple[int, str] | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, query: dict[str, list[str]]) -> tuple[int, Json]:
        self.gets.append((path, query))
        if path == "/v1/messages":
            found = self.by_state.get(query.get("state", [""])[0], [])
            start = int(query.get("cursor", ["0"])[0])
            end = start + self.page_size
            return 200, {
                "messages": found[start:end],
                "next_cursor": str(end) if end < len(found) else None,
            }
        request_id = path.rsplit("/", 1)[-1]
        ids = self.requests[request_id]
        self.polls[request_id] = self.polls.get(request_id, 0) + 1
        answer = (self.progress or applied_at_once)(ids, self.polls[request_id])
        return 200, {"request_id": request_id, "total": len(ids), **answer}

    def post(self, path: str, body: Json) -> tuple[int, Json]:
        self.posts.append((path, body))
        if self.error is not None:
            return self.error[0], {"error": self.error[1]}
        action = path.rsplit("/", 1)[-1]
        ids = [i for i in body.get("ids") or self.matches if i in self.matches]
        answer: Json = {
            "action": action,
            "dry_run": body["dry_run"],
            "matched": len(ids),
            "ids": ids,
        }
        answer["not_waiting"] = [n for n in self.not_waiting if n["id"] in (body.get("ids") or ())]
        answer["request_id"] = None
        if not body["dry_run"] and ids:
            answer["request_id"] = f"req{len(self.requests)}"
            self.requests[answer["request_id"]] = ids
        return 200, answer

    def actions(self) -> list[Json]:
        return [body for _, body in self.posts if not body["dry_run"]]


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def applied_at_once(ids: list[str], poll: int) -> Json:
    return {"applied": ids, "gone": [], "pending": []}


@contextmanager
def serving(fake: FakeQueueApi) -> Iterator[FakeQueueApi]:
    """``fake`` answering HTTP on a free loopback port (``fake.port``) until the block ends."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parsed = urllib.parse.urlsplit(self.path)
            self.answer(*fake.get(parsed.path, urllib.parse.parse_qs(parsed.query)))

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            assert self.headers.get("Content-Type") == "application/json"
            self.answer(*fake.post(self.path, json.loads(self.rfile.read(length))))

        def answer(self, status: int, body: Json) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
