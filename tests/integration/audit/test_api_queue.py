"""``POST /v1/queue/{action}`` and ``GET /v1/queue/requests/{id}`` over a real index and broker."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from postline.audit.api import ApiServer
from postline.audit.index import Index, open_index
from postline.audit.queueactions import QueueActions
from postline.audit.settings import AuditSettings
from postline.control import FLUSH_HEADER, publish_control
from postline.models import Event, EventKind, stable_event_id
from postline.reply import reply
from postline.topology import Stage
from postline.values import HostPort
from tests.integration.audit.flush_support import SCHEDULE, Stack, drain, park_in_tier, stack
from tests.integration.audit.test_api_journeys import (
    T0,
    deferred_journey,
    delivered_journey,
    get_json,
    rcpt_address,
)
from tests.support.broker import wait_until
from tests.support.net import free_port

pytestmark = pytest.mark.integration

TOKEN = "queue-token-0123456789abcdef"


@dataclass
class Served:
    base: str
    index: Index
    stack: Stack
    actions: QueueActions


@asynccontextmanager
async def serving(tmp_path: Path, settings: Any, events: Sequence[Event]) -> AsyncIterator[Served]:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"help-desk:{TOKEN}\n")
    port = free_port()
    section = AuditSettings(trail_dir=tmp_path, api_listen=HostPort("127.0.0.1", port),
                            api_tokens_file=tokens)  # fmt: skip
    index = open_index(section)
    await index.open()
    await index.write(list(events))
    async with stack(settings) as s:

        async def publish_action(record: Any) -> None:
            await publish_control(s.bus, record)

        def connect() -> Any:
            return s.bus.open_connection("flush")

        actions = QueueActions(index, s.topology, s.flusher, publish_action=publish_action,
                               state=s.state, connect=connect)  # fmt: skip
        actions.start()
        server = ApiServer(section, index, actions)
        await server.start()
        try:
            yield Served(f"http://127.0.0.1:{port}", index, s, actions)
        finally:
            await server.close()
            await actions.close()
            await index.close()


async def post(base: str, action: str, body: Any, token: str | None = TOKEN,
               raw: bytes | None = None) -> tuple[int, Any]:  # fmt: skip
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as http:
        if raw is not None:
            call = http.post(f"{base}/v1/queue/{action}", data=raw, headers=headers)
        else:
            call = http.post(f"{base}/v1/queue/{action}", json=body, headers=headers)
        async with call as response:
            return response.status, await response.json()


def waiting(count: int, domain: str = "partner.test") -> list[list[Event]]:
    return [deferred_journey(rcpt_address().replace("partner.test", domain), 2)
            for _ in range(count)]  # fmt: skip


async def test_without_a_token_the_queue_routes_are_401(tmp_path, broker_settings):
    async with serving(tmp_path, broker_settings(**SCHEDULE), []) as served:
        assert (await post(served.base, "retry", {"all": True}, token=None))[0] == 401
        assert (await post(served.base, "retry", {"all": True}, token="x" * 30))[0] == 401
        status, _ = await get_json(served.base, "/v1/queue/requests/abc")
        assert status == 401


@pytest.mark.parametrize(
    ("action", "body", "says"),
    [
        ("purge", {"all": True}, "unknown action"),
        ("retry", {"ids": ["A"], "all": True}, "exactly one of ids, all, or filters"),
        ("delete", {"older_than": "yesterday"}, "older_than must be a duration"),
        ("retry", {"all": True, "keep": True}, "keep applies to hold only"),
        ("retry", "all", "must be a JSON object"),
    ],
)
async def test_bad_bodies_are_400_and_do_nothing(tmp_path, broker_settings, action, body, says):
    async with serving(tmp_path, broker_settings(**SCHEDULE), []) as served:
        status, answer = await post(served.base, action, body)
        assert status == 400 and says in answer["error"]
        status, answer = await post(served.base, "retry", None, raw=b"{not json")
        assert status == 415  # not sent as JSON at all


async def test_a_dry_run_says_what_matches_and_changes_nothing(tmp_path, broker_settings):
    journeys = waiting(3) + waiting(2, "other.test")
    settings = broker_settings(**SCHEDULE)
    async with serving(tmp_path, settings, [e for j in journeys for e in j]) as served:
        ids = [j[0].message_id for j in journeys]
        await park_in_tier(served.stack.bus, "1h", ids, due_in_ms=600_000)
        status, answer = await post(served.base, "retry", {"domain": "partner.test",
                                                            "dry_run": True})  # fmt: skip
        assert status == 200, answer
        assert answer["dry_run"] is True and answer["request_id"] is None
        assert answer["matched"] == 3 and sorted(answer["ids"]) == sorted(ids[:3])
        assert await served.actions.idle(5)
        assert await served.stack.state.wait_synced(10)
        assert all(served.stack.state.action_for(mid) is None for mid in ids)
        url = settings.broker.url
        assert await drain(url, served.stack.topology.queue_name(Stage.DELIVER)) == []
        assert len(await drain(url, served.stack.topology.tier_queue("1h"))) == 5


async def test_retry_records_the_action_moves_the_messages_and_reports_progress(
    tmp_path, broker_settings
):
    journeys = waiting(4)
    done_already = delivered_journey(rcpt_address())
    events = [e for j in journeys for e in j] + done_already
    settings = broker_settings(**SCHEDULE)
    async with serving(tmp_path, settings, events) as served:
        ids = [j[0].message_id for j in journeys]
        gone_id = done_already[0].message_id
        await park_in_tier(served.stack.bus, "1h", ids, due_in_ms=600_000)
        status, answer = await post(served.base, "retry", {"ids": [*ids, gone_id, "NOSUCH"],
                                                            "reason": "MX is back"})  # fmt: skip
        assert status == 200, answer
        assert answer["matched"] == 4 and answer["request_id"]
        assert answer["not_waiting"] == [{"id": gone_id, "state": "delivered"},
                                         {"id": "NOSUCH", "state": "unknown"}]  # fmt: skip
        request_id = answer["request_id"]
        action = served.stack.state.action_for(ids[0])
        assert action is not None and action.request_id == request_id
        assert (action.actor, action.reason, action.action) == ("help-desk", "MX is back", "retry")
        deliver = served.stack.topology.queue_name(Stage.DELIVER)
        moved: list[Any] = []

        async def all_moved() -> bool:
            moved.extend(await drain(settings.broker.url, deliver))
            return len(moved) >= 4

        await wait_until(all_moved, 15, "the flush to move the messages")
        assert sorted(m.message_id for m in moved) == sorted(ids)
        assert {m.headers[FLUSH_HEADER] for m in moved} == {request_id}
        path = f"/v1/queue/requests/{request_id}"
        status, progress = await get_json(served.base, path, token=TOKEN)
        assert (
            status == 200 and progress["total"] == 4 and sorted(progress["pending"]) == sorted(ids)
        )
        # what delivery writes: the operator event for two, a delivery for one (it raced)
        later = T0 + timedelta(hours=2)
        ok, rcpt = reply(250, "2.0.0", "ok"), (journeys[2][0].rcpt_to or ("?",))[0]
        await served.index.write([
            Event(event_id=stable_event_id(mid, "operator", request_id), kind=EventKind.OPERATOR,
                  service="delivery", message_id=mid, action="retry", actor="help-desk", at=later)
            for mid in ids[:2]
        ] + [Event(kind=EventKind.DELIVERED, service="delivery", message_id=ids[2], at=later,
                   recipient=rcpt, reply=ok)])  # fmt: skip
        status, progress = await get_json(served.base, path, token=TOKEN)
        assert sorted(progress["applied"]) == sorted(ids[:2])
        assert progress["gone"] == [{"id": ids[2], "state": "delivered"}]
        assert progress["pending"] == [ids[3]]
        assert (await get_json(served.base, "/v1/queue/requests/nosuch", token=TOKEN))[0] == 404


async def test_the_actor_is_the_token_name_not_what_the_body_claims(tmp_path, broker_settings):
    journeys = waiting(1)
    async with serving(tmp_path, broker_settings(**SCHEDULE), journeys[0]) as served:
        mid = journeys[0][0].message_id
        status, answer = await post(served.base, "hold", {"ids": [mid], "actor": "someone-else"})
        assert status == 200 and answer["request_id"]
        action = served.stack.state.action_for(mid)
        assert action is not None and action.actor == "help-desk" and action.action == "hold"


async def test_messages_can_be_searched_by_domain_age_and_reply(tmp_path, broker_settings):
    old, new = waiting(1, "old.test"), waiting(1, "new.test")
    old_events = [e.model_copy(update={"at": e.at - timedelta(days=2)}) for e in old[0]]
    async with serving(tmp_path, broker_settings(**SCHEDULE), old_events + new[0]) as served:
        base = served.base

        async def found(**params: str) -> list[str]:
            status, body = await get_json(base, "/v1/messages", token=TOKEN, **params)
            assert status == 200, body
            return [m["message_id"] for m in body["messages"]]

        assert await found(domain="old.test") == [old[0][0].message_id]
        assert await found(older_than="1d") == [old[0][0].message_id]
        assert len(await found(reply="connection refused")) == 2
        assert (await get_json(base, "/v1/messages", token=TOKEN, older_than="soon"))[0] == 400
