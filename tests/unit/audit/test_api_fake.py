"""The query API over an in-memory index: routes, parameters, pagination, tokens, exposure.

``FakeIndex`` implements the index protocol of the contract over a list of
``MessageRecord`` values (the real SQLite index runs the same API tests in
tests/integration/audit). Servers are real aiohttp servers on loopback.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from postline.audit.api import ApiServer
from postline.audit.index import Page, Query
from postline.audit.settings import AuditSettings
from postline.audit.views import MessageRecord, RecipientRecord
from postline.models import Event, EventKind
from postline.reply import reply
from postline.settings import ConfigError
from postline.values import HostPort
from tests.support.net import free_port

T0 = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
TOKEN = "s3cret-token-for-the-help-desk"


class FakeIndex:
    """The contract's ``Index`` over records kept in memory; cursors are offsets."""

    def __init__(self, records: Sequence[MessageRecord] = ()) -> None:
        self.records = list(records)
        self.queries: list[Query] = []

    async def open(self) -> None:
        return None

    async def write(self, events: Sequence[Event]) -> int:
        new = 0
        for event in events:
            record = await self.message(event.message_id)
            if record is None:
                record = MessageRecord(message_id=event.message_id, state="queued")
                self.records.append(record)
            if all(e.event_id != event.event_id for e in record.events):
                record.events.append(event)
                new += 1
        return new

    async def search(self, query: Query) -> Page:
        self.queries.append(query)
        found = sorted(
            (r for r in self.records if _matches(r, query)),
            key=lambda r: (r.received_at or T0, r.message_id),
            reverse=True,
        )
        start = 0
        if query.cursor is not None:
            if not query.cursor.startswith("at:") or not query.cursor[3:].isdigit():
                raise ValueError("bad cursor")
            start = int(query.cursor[3:])
        end = start + query.limit
        more = f"at:{end}" if end < len(found) else None
        return Page(messages=found[start:end], next_cursor=more)

    async def message(self, message_id: str) -> MessageRecord | None:
        return next((r for r in self.records if r.message_id == message_id), None)

    async def purge(self, before: datetime) -> int:
        return 0

    async def close(self) -> None:
        return None


def _matches(record: MessageRecord, query: Query) -> bool:
    addresses = {r.address.lower() for r in record.recipients}
    wanted_id = (query.message_id or "").strip("<>")
    header_id = (record.header_message_id or "").strip("<>")
    return (
        (query.rcpt is None or query.rcpt.lower() in addresses)
        and (query.sender is None or (record.mail_from or "").lower() == query.sender.lower())
        and (not wanted_id or wanted_id in (record.message_id, header_id))
        and (query.state is None or record.state == query.state)
        and (query.since is None or (record.received_at or T0) >= query.since)
        and (query.until is None or (record.received_at or T0) <= query.until)
    )


def delivered(number: int, rcpt: str = "john@partner.test") -> MessageRecord:
    at = T0 + timedelta(minutes=number)
    ok = reply(250, "2.0.0", f"Ok: queued as R{number}")
    event = Event(kind=EventKind.DELIVERED, service="delivery", message_id=f"M{number:04d}",
                  at=at, recipient=rcpt, attempt=1, reply=ok)  # fmt: skip
    return MessageRecord(
        message_id=f"M{number:04d}",
        state="delivered",
        mail_from="mary@company.test",
        received_at=at,
        header_message_id=f"<m{number}@company.test>",
        recipients=[RecipientRecord(rcpt, "delivered", ok, 1, "mx.partner.test[192.0.2.1]:25")],
        events=[event],
    )


class Api:
    """A running ``ApiServer`` and an HTTP client for it."""

    def __init__(self, server: ApiServer, base: str, http: aiohttp.ClientSession) -> None:
        self.server, self.base, self.http = server, base, http

    async def get(self, path: str, token: str | None = None, **params: str) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        async with self.http.get(self.base + path, params=params, headers=headers) as response:
            body = await response.json() if response.content_type == "application/json" else None
            return response.status, body


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Any]:
    servers: list[ApiServer] = []
    sessions: list[aiohttp.ClientSession] = []

    async def starter(index: FakeIndex, **section: Any) -> Api:
        port = free_port()
        settings = AuditSettings(
            trail_dir=tmp_path, api_listen=HostPort("127.0.0.1", port), **section
        )
        server = ApiServer(settings, index)
        await server.start()
        servers.append(server)
        http = aiohttp.ClientSession()
        sessions.append(http)
        return Api(server, f"http://127.0.0.1:{port}", http)

    yield starter
    for http in sessions:
        await http.close()
    for server in servers:
        await server.close()


@pytest.fixture
def tokens_file(tmp_path: Path) -> Path:
    path = tmp_path / "tokens"
    path.write_text(f"# help desk\nhelpdesk:{TOKEN}\n")
    return path


async def test_search_returns_messages_newest_first_in_the_trace_json_shape(start):
    api = await start(FakeIndex([delivered(1), delivered(2)]))
    status, body = await api.get("/v1/messages", rcpt="JOHN@partner.test")
    assert status == 200
    assert [m["message_id"] for m in body["messages"]] == ["M0002", "M0001"]
    assert body["next_cursor"] is None
    first = body["messages"][0]
    assert first["recipients"][0]["reply"] == {
        "code": 250,
        "enhanced": "2.0.0",
        "text": "Ok: queued as R2",
    }
    assert first["diagnosis"].startswith("Diagnosis: delivered: accepted by mx.partner.test")
    assert first["events"][0]["kind"] == "delivered"


async def test_pages_follow_next_cursor_until_it_is_null(start):
    api = await start(FakeIndex([delivered(n) for n in range(1, 8)]))
    seen: list[str] = []
    params = {"limit": "3"}
    for _ in range(5):
        status, body = await api.get("/v1/messages", **params)
        assert status == 200 and len(body["messages"]) <= 3
        seen += [m["message_id"] for m in body["messages"]]
        if body["next_cursor"] is None:
            break
        params = {"limit": "3", "cursor": body["next_cursor"]}
    assert seen == [f"M{n:04d}" for n in range(7, 0, -1)]


async def test_parameters_reach_the_index_as_a_query(start):
    index = FakeIndex([delivered(1)])
    api = await start(index)
    status, _ = await api.get(
        "/v1/messages",
        sender="<Mary@company.test>",
        message_id="<m1@company.test>",
        state="delivered",
        since="2026-03-04T11:00:00Z",
        until="2026-03-04T13:00:00",
        limit="7",
    )
    assert status == 200
    assert index.queries[-1] == replace(
        Query(),
        sender="Mary@company.test",
        message_id="<m1@company.test>",
        state="delivered",
        since=datetime(2026, 3, 4, 11, tzinfo=UTC),
        until=datetime(2026, 3, 4, 13, tzinfo=UTC),
        limit=7,
    )


async def test_a_duration_since_means_that_long_ago(start):
    index = FakeIndex()
    api = await start(index)
    before = datetime.now(UTC)
    assert (await api.get("/v1/messages", since="2h"))[0] == 200
    since = index.queries[-1].since
    assert since is not None
    assert before - timedelta(hours=2, seconds=5) < since <= datetime.now(UTC) - timedelta(hours=2)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"limit": "0"}, "limit must be a whole number from 1 to 500"),
        ({"limit": "501"}, "limit must be a whole number from 1 to 500"),
        ({"limit": "ten"}, "limit must be a whole number from 1 to 500"),
        ({"state": "lost"}, "state must be one of queued, deferred, delivered"),
        ({"since": "yesterday"}, "since must be an ISO 8601 time"),
        ({"rcpt": "john"}, "rcpt must be an email address"),
        ({"colour": "red"}, "unknown parameter 'colour'; use rcpt, sender, message_id"),
        ({"cursor": "garbage"}, "cursor is not valid: use next_cursor of a previous page"),
        (
            {"since": "2026-03-05T00:00:00Z", "until": "2026-03-04T00:00:00Z"},
            "since must not be later than until",
        ),
    ],
)
async def test_bad_parameters_are_400_with_one_clear_message(start, params, message):
    api = await start(FakeIndex([delivered(1)]))
    status, body = await api.get("/v1/messages", **params)
    assert status == 400
    assert set(body) == {"error"} and body["error"].startswith(message)


async def test_a_repeated_parameter_is_400(start):
    api = await start(FakeIndex())
    async with api.http.get(api.base + "/v1/messages?rcpt=a@b.test&rcpt=c@d.test") as response:
        assert response.status == 400
        assert (await response.json()) == {"error": "rcpt is given more than once"}


async def test_one_message_by_id_and_404_for_an_unknown_one(start):
    api = await start(FakeIndex([delivered(1)]))
    status, body = await api.get("/v1/messages/M0001")
    assert status == 200 and [m["message_id"] for m in body["messages"]] == ["M0001"]
    assert await api.get("/v1/messages/NOPE") == (404, {"error": "no message with this id"})
    assert await api.get("/v1/nothing-here") == (404, {"error": "not found"})


async def test_every_route_needs_the_token_when_a_tokens_file_is_set(start, tokens_file):
    api = await start(FakeIndex([delivered(1)]), api_tokens_file=tokens_file)
    for path in ("/v1/messages", "/v1/messages/M0001", "/v1/openapi.json", "/v1/nothing"):
        for token in (None, "s3cret-token-for-the-help-desX", "short", TOKEN + "x", ""):
            status, body = await api.get(path, token=token)
            assert status == 401, (path, token)
            assert body == {
                "error": "a valid token is required: send 'Authorization: Bearer <token>'"
            }
        assert (await api.get(path, token=TOKEN))[0] in (200, 404)
    async with api.http.get(api.base + "/", allow_redirects=False) as response:
        assert response.status == 401  # the console answers with its login form
    async with api.http.get(
        api.base + "/v1/messages", headers={"Authorization": f"Basic {TOKEN}"}
    ) as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith('Bearer realm="postline"')


async def test_a_changed_tokens_file_takes_effect_without_a_restart(start, tokens_file):
    api = await start(FakeIndex(), api_tokens_file=tokens_file)
    assert (await api.get("/v1/messages", token=TOKEN))[0] == 200
    fresh = "a-rotated-token-0123456789"
    tokens_file.write_text(f"sre:{fresh}\n# and a longer comment, so the size changes\n")
    assert (await api.get("/v1/messages", token=TOKEN))[0] == 401
    assert (await api.get("/v1/messages", token=fresh))[0] == 200
    tokens_file.unlink()
    assert (await api.get("/v1/messages", token=fresh))[0] == 401


async def test_tokens_never_reach_the_log(start, tokens_file, caplog):
    caplog.set_level(logging.DEBUG)
    tokens_file.write_text(f"helpdesk:{TOKEN}\ntoo-short\n")
    api = await start(FakeIndex(), api_tokens_file=tokens_file)
    await api.get("/v1/messages", token=TOKEN)
    await api.get("/v1/messages", token="wrong-" + TOKEN)
    assert "line 2: token shorter than 16 characters, ignored" in caplog.text
    logged = caplog.text + repr([r.__dict__ for r in caplog.records])
    assert TOKEN not in logged and "too-short" not in logged
    assert base64.b64encode(TOKEN.encode()).decode() not in logged


async def test_without_tokens_the_api_refuses_to_listen_beyond_loopback(tmp_path):
    settings = AuditSettings(trail_dir=tmp_path, api_listen=HostPort("0.0.0.0", free_port()))
    with pytest.raises(ConfigError) as refused:
        await ApiServer(settings, FakeIndex()).start()
    assert str(refused.value) == (
        f"[audit] api_listen {settings.api_listen} is not a loopback address and [audit] "
        "api_tokens_file is not set: the API serves personal data, so set a tokens file or "
        "listen on 127.0.0.1"
    )


async def test_with_tokens_it_may_listen_on_any_address(tmp_path, tokens_file):
    port = free_port()
    settings = AuditSettings(
        trail_dir=tmp_path, api_listen=HostPort("0.0.0.0", port), api_tokens_file=tokens_file
    )
    server = ApiServer(settings, FakeIndex())
    await server.start()
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/v1/messages") as response,
        ):
            assert response.status == 401
    finally:
        await server.close()


async def test_no_api_listen_serves_nothing(tmp_path):
    server = ApiServer(AuditSettings(trail_dir=tmp_path, api_listen=None), FakeIndex())
    await server.start()
    await server.close()


async def test_responses_forbid_caching_sniffing_framing_and_scripts(start):
    api = await start(FakeIndex())
    async with api.http.get(api.base + "/v1/messages") as response:
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "script-src" not in response.headers["Content-Security-Policy"]
        assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
