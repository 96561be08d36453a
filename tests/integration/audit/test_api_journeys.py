"""The query API over the real index: journeys written as events, read back with a diagnosis.

The helpers here (``journey`` builders and ``serving``) are shared by the
console tests: each builds the events the services send for one journey, and
``serving`` writes them to a fresh index (``open_index``: SQLite in a temporary
``trail_dir``, or the PostgreSQL database ``database`` gives) and starts an
``ApiServer`` over it on a free loopback port. The journeys and the pagination
run on both index backends.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from postline.audit.api import ApiServer
from postline.audit.index import Index, open_index
from postline.audit.settings import AuditSettings
from postline.models import Event, EventKind, Peer, TlsInfo
from postline.reply import SmtpReply, reply
from postline.values import HostPort
from tests.support.net import free_port

pytestmark = pytest.mark.integration

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
SENDER = "mary@company.test"
TLS = TlsInfo(version="TLSv1.3", cipher="TLS_AES_256_GCM_SHA384", verified=False)
MX = Peer(name="mx.partner.test", ip="192.0.2.1", port=25)
NEXT_ATTEMPT = T0 + timedelta(minutes=50)


def queue_id() -> str:
    return "Q" + uuid.uuid4().hex[:15].upper()


def received(mid: str, rcpt: str, at: datetime = T0, **fields: Any) -> Event:
    values: dict[str, Any] = {
        "mail_from": SENDER,
        "client_ip": "10.1.2.3",
        "helo": "laptop.company.test",
        "size": 2048,
        "subject": "Quarterly report",
        "header_message_id": f"<{mid.lower()}@company.test>",
        "session_id": "in-" + mid.lower(),
        "tls": TLS,
    }
    values.update(fields)
    return Event(kind=EventKind.RECEIVED, service="ingress", message_id=mid, at=at,
                 rcpt_to=(rcpt,), **values)  # fmt: skip


def attempt(kind: EventKind, mid: str, rcpt: str, number: int, answer: SmtpReply,
            at: datetime, **fields: Any) -> Event:  # fmt: skip
    return Event(kind=kind, service="delivery", message_id=mid, at=at, mail_from=SENDER,
                 recipient=rcpt, attempt=number, reply=answer, **fields)  # fmt: skip


def talk(mid: str, rcpt: str, number: int, session: str, lines: list[str], at: datetime) -> Event:
    return Event(kind=EventKind.CONVERSATION, service="delivery", message_id=mid, at=at,
                 mail_from=SENDER, rcpt_to=(rcpt,), attempt=number, mx=MX, tls=TLS,
                 session_id=session, transcript=lines)  # fmt: skip


def delivered_journey(rcpt: str, at: datetime = T0, mid: str | None = None) -> list[Event]:
    """Greylisted on the first attempt, delivered on the second, with both conversations."""
    mid = mid or queue_id()
    later = at + timedelta(minutes=5)
    grey = reply(451, "4.7.1", "Greylisted, please try again later")
    ok = reply(250, "2.0.0", "Ok: queued as 4QXAB12")
    return [
        received(mid, rcpt, at, auth_user="mary"),
        Event(kind=EventKind.FILTERED, service="filter", message_id=mid, rcpt_to=(rcpt,),
              at=at + timedelta(seconds=1), reason="filters: headers (added Received, Date)"),
        talk(mid, rcpt, 1, "s1-" + mid, [
            "<<< 220 mx.partner.test ESMTP", ">>> EHLO relay.company.test",
            "<<< 250-mx.partner.test", "<<< 250 STARTTLS", ">>> STARTTLS",
            "<<< 220 2.0.0 Ready", ">>> MAIL FROM:<mary@company.test>",
            "<<< 250 2.1.0 Ok", f">>> RCPT TO:<{rcpt}>", f"<<< {grey}", ">>> QUIT",
        ], at + timedelta(seconds=2)),
        attempt(EventKind.DEFERRED, mid, rcpt, 1, grey, at + timedelta(seconds=2), mx=MX, tls=TLS,
                session_id="s1-" + mid, reason="remote replied to RCPT TO; retry via tier 1",
                next_attempt_at=later),
        talk(mid, rcpt, 2, "s2-" + mid, [
            "<<< 220 mx.partner.test ESMTP", ">>> EHLO relay.company.test",
            ">>> MAIL FROM:<mary@company.test>", "<<< 250 2.1.0 Ok",
            f">>> RCPT TO:<{rcpt}>", "<<< 250 2.1.5 Ok", ">>> DATA",
            "<<< 354 End data with <CR><LF>.<CR><LF>", ">>> .", f"<<< {ok}", ">>> QUIT",
        ], later),
        attempt(EventKind.DELIVERED, mid, rcpt, 2, ok, later, mx=MX, tls=TLS,
                session_id="s2-" + mid, queued_seconds=300.0),
    ]  # fmt: skip


def bounced_journey(rcpt: str, answer: SmtpReply, reason: str, at: datetime = T0) -> list[Event]:
    mid = queue_id()
    sent = Event(kind=EventKind.DSN_SENT, service="delivery", message_id=mid, mail_from=SENDER,
                 rcpt_to=(rcpt,), at=at + timedelta(seconds=3),
                 reason=f"delivery status notification D{mid} queued to <{SENDER}>")  # fmt: skip
    mx = None if answer.enhanced == "5.1.2" else MX
    return [
        received(mid, rcpt, at),
        attempt(EventKind.BOUNCED, mid, rcpt, 1, answer, at + timedelta(seconds=2), mx=mx,
                reason=reason),
        sent,
    ]  # fmt: skip


def deferred_journey(rcpt: str, attempts: int, at: datetime = T0) -> list[Event]:
    mid = queue_id()
    refused = reply(451, "4.4.1", "Connection failed: Connection refused (mx.partner.test)")
    events = [received(mid, rcpt, at)]
    for number in range(1, attempts + 1):
        when = at + timedelta(minutes=number)
        events.append(
            attempt(EventKind.DEFERRED, mid, rcpt, number, refused, when, mx=MX,
                    reason="could not connect; retry via tier 1",
                    next_attempt_at=NEXT_ATTEMPT)
        )  # fmt: skip
    return events


def refused_journey(rcpt: str, client: str = "10.9.8.7", at: datetime = T0) -> list[Event]:
    event_id = uuid.uuid4().hex
    return [
        Event(event_id=event_id, kind=EventKind.REFUSED, service="ingress",
              message_id=f"refused-{event_id}", at=at, command="RCPT", reason="relay_denied",
              reply=reply(554, "5.7.1", "Relay access denied"), client_ip=client,
              helo="printer.local", mail_from=SENDER, recipient=rcpt, count=1)
    ]  # fmt: skip


def rejected_journey(rcpt: str, at: datetime = T0) -> list[Event]:
    mid = queue_id()
    return [
        received(mid, rcpt, at),
        Event(kind=EventKind.REJECTED, service="filter", message_id=mid, mail_from=SENDER,
              recipient=rcpt, at=at + timedelta(seconds=1),
              reply=reply(550, "5.7.1", "Message rejected"),
              reason="rejected by filter reject-all: policy says no"),
    ]  # fmt: skip


def rcpt_address() -> str:
    return f"john-{uuid.uuid4().hex[:8]}@partner.test"


@dataclass
class Served:
    base: str
    index: Index
    settings: AuditSettings


@asynccontextmanager
async def serving(workdir: Path, events: Sequence[Event], **section: Any) -> AsyncIterator[Served]:
    """A fresh index holding ``events`` and an ``ApiServer`` over it."""
    port = free_port()
    settings = AuditSettings(trail_dir=workdir, api_listen=HostPort("127.0.0.1", port), **section)
    index = open_index(settings)
    await index.open()
    try:
        assert await index.write(list(events)) == len(events)
        server = ApiServer(settings, index)
        await server.start()
        try:
            yield Served(f"http://127.0.0.1:{port}", index, settings)
        finally:
            await server.close()
    finally:
        await index.close()


async def get_json(base: str, path: str, token: str | None = None, **params: str) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as http,
        http.get(base + path, params=params, headers=headers) as response,
    ):
        return response.status, await response.json()


async def only_message(base: str, rcpt: str) -> dict[str, Any]:
    status, body = await get_json(base, "/v1/messages", rcpt=rcpt)
    assert status == 200 and len(body["messages"]) == 1, body
    message: dict[str, Any] = body["messages"][0]
    return message


def database(index_section: Callable[..., AuditSettings]) -> dict[str, Any]:
    """``database_url`` of a fresh PostgreSQL database, or nothing (SQLite), by ``backend``."""
    url = index_section().database_url
    return {"database_url": url} if url else {}


async def test_each_journey_reads_back_with_its_state_and_diagnosis(tmp_path, index_section):
    ok, unknown, waiting, outside, filtered = (rcpt_address() for _ in range(5))
    nowhere = f"ann-{uuid.uuid4().hex[:6]}@nxdomain.test"
    events = [
        *delivered_journey(ok),
        *bounced_journey(unknown, reply(550, "5.1.1", "user unknown"), "remote replied to RCPT TO"),
        *bounced_journey(nowhere, reply(550, "5.1.2", "Host or domain name not found: "
                                                     "nxdomain.test"), "DNS lookup failed"),
        *deferred_journey(waiting, 3),
        *refused_journey(outside),
        *rejected_journey(filtered),
    ]  # fmt: skip
    async with serving(tmp_path, events, **database(index_section)) as served:
        message = await only_message(served.base, ok)
        assert message["state"] == "delivered"
        assert message["diagnosis"] == (
            "Diagnosis: delivered: accepted by mx.partner.test (250 2.0.0 Ok: queued as "
            "4QXAB12); if the recipient cannot find it, the problem is on their side"
        )
        assert message["submission"] == {
            "client_ip": "10.1.2.3",
            "helo": "laptop.company.test",
            "auth_user": "mary",
            "tls": "TLSv1.3",
        }
        assert [e["kind"] for e in message["events"]] == [
            "received", "filtered", "conversation", "deferred", "conversation", "delivered",
        ]  # fmt: skip
        assert (await only_message(served.base, unknown))["diagnosis"] == (
            "Diagnosis: destination refused: 550 5.1.1 user unknown; a DSN went to "
            "<mary@company.test>"
        )
        assert (await only_message(served.base, nowhere))["diagnosis"].startswith(
            "Diagnosis: MX record for nxdomain.test not found (NXDOMAIN): the domain does not "
            "exist or has no mail servers; check the address"
        )
        deferred = await only_message(served.base, waiting)
        assert deferred["state"] == "deferred"
        assert deferred["recipients"][0]["attempts"] == 3
        assert deferred["diagnosis"].startswith(
            "Diagnosis: destination not responding: connection to "
            "mx.partner.test[192.0.2.1]:25 was refused on 3 attempts; next attempt "
        )
        assert deferred["diagnosis"].endswith(f"{NEXT_ATTEMPT:%H:%M} UTC")
        refused = await only_message(served.base, outside)
        assert refused["state"] == "refused" and refused["message_id"].startswith("refused-")
        assert refused["diagnosis"] == (
            "Diagnosis: refused at submission: client 10.9.8.7 is not in relay_networks and "
            "did not authenticate"
        )
        assert (await only_message(served.base, filtered))["diagnosis"] == (
            "Diagnosis: rejected by filter reject-all: policy says no (550 5.7.1 Message "
            "rejected); it was not sent"
        )


async def test_a_message_is_found_by_its_message_id_header_with_or_without_brackets(tmp_path):
    events = delivered_journey(rcpt_address())
    mid = events[0].message_id
    async with serving(tmp_path, events) as served:
        for wanted in (f"<{mid.lower()}@company.test>", f"{mid.lower()}@company.test", mid):
            status, body = await get_json(served.base, "/v1/messages", message_id=wanted)
            assert status == 200
            assert [m["message_id"] for m in body["messages"]] == [mid], wanted
        status, body = await get_json(served.base, f"/v1/messages/{mid}")
        assert status == 200 and body["messages"][0]["message_id"] == mid
        assert await get_json(served.base, "/v1/messages/NOSUCHID") == (
            404,
            {"error": "no message with this id"},
        )


async def test_pagination_over_the_index_gives_every_message_once_newest_first(
    tmp_path, index_section
):
    rcpt = rcpt_address()
    journeys = [delivered_journey(rcpt, T0 + timedelta(minutes=n)) for n in range(7)]
    newest_first = [j[0].message_id for j in reversed(journeys)]
    events = [e for j in journeys for e in j]
    async with serving(tmp_path, events, **database(index_section)) as served:
        seen: list[str] = []
        params = {"rcpt": rcpt, "limit": "3"}
        for _ in range(4):
            status, body = await get_json(served.base, "/v1/messages", **params)
            assert status == 200 and len(body["messages"]) <= 3
            seen += [m["message_id"] for m in body["messages"]]
            if body["next_cursor"] is None:
                break
            params["cursor"] = body["next_cursor"]
        assert seen == newest_first
        status, body = await get_json(served.base, "/v1/messages", rcpt=rcpt, cursor="%%%")
        assert status == 400 and body["error"].startswith("cursor is not valid")


async def test_without_the_right_token_every_route_is_401(tmp_path):
    token = "k8s-secret-token-0123456789abcdef"
    tokens = tmp_path / "tokens"
    tokens.write_text(f"trace:{token}\n")
    events = delivered_journey(rcpt_address())
    async with serving(tmp_path, events, api_tokens_file=tokens) as served:
        paths = ["/v1/messages", f"/v1/messages/{events[0].message_id}", "/v1/openapi.json"]
        for path in paths:
            assert (await get_json(served.base, path))[0] == 401  # none
            assert (await get_json(served.base, path, token=token[:-1] + "X"))[0] == 401  # wrong
            assert (await get_json(served.base, path, token=token + "0"))[0] == 401  # longer
            assert (await get_json(served.base, path, token=token[:8]))[0] == 401  # shorter
            assert (await get_json(served.base, path, token=token))[0] == 200
