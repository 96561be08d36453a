"""What clients and remote servers sent renders as text: no markup of theirs reaches a page."""

from __future__ import annotations

import html
from datetime import timedelta

import aiohttp
import pytest

from postline.models import Event, EventKind
from postline.reply import SmtpReply
from tests.integration.audit.test_api_journeys import (
    MX,
    T0,
    queue_id,
    rcpt_address,
    received,
    refused_journey,
    serving,
)

pytestmark = pytest.mark.integration

SCRIPT = "<script>alert('xss')</script>"
ATTRIBUTE = '"><img src=x onerror=alert(1)>'
PAYLOADS = (SCRIPT, ATTRIBUTE)
EVIL_SENDER = f'"{ATTRIBUTE}{SCRIPT}"@evil.test'


def hostile_journey(rcpt: str) -> list[Event]:
    mid = queue_id()
    evil_reply = SmtpReply(code=550, enhanced="5.7.1", text=f"No {SCRIPT} {ATTRIBUTE}")
    return [
        received(mid, rcpt, subject=f"Invoice {SCRIPT} {ATTRIBUTE}", mail_from=EVIL_SENDER,
                 helo=f"helo{ATTRIBUTE}", header_message_id=f"<{ATTRIBUTE}@evil.test>"),
        Event(kind=EventKind.CONVERSATION, service="delivery", message_id=mid, attempt=1,
              at=T0 + timedelta(seconds=1), rcpt_to=(rcpt,), mx=MX, session_id="s-" + mid,
              transcript=["<<< 220 mx ESMTP", f"<<< {evil_reply}"]),
        Event(kind=EventKind.BOUNCED, service="delivery", message_id=mid, attempt=1,
              at=T0 + timedelta(seconds=1), recipient=rcpt, mail_from=EVIL_SENDER, mx=MX,
              session_id="s-" + mid, reply=evil_reply, reason="remote replied to RCPT TO"),
    ]  # fmt: skip


def assert_inert(page: str) -> None:
    """No payload survives as markup, and each shows up as its escaped text."""
    assert "<script" not in page.lower()
    assert "<img" not in page.lower()
    assert "onerror=alert(1)>" not in page
    for payload in PAYLOADS:
        assert payload not in page
        assert payload in html.unescape(page)


async def test_subject_sender_helo_and_remote_reply_render_as_text(tmp_path):
    rcpt = rcpt_address()
    events = hostile_journey(rcpt)
    refusal = refused_journey(rcpt_address())[0].model_copy(
        update={"helo": f"x{SCRIPT}", "mail_from": EVIL_SENDER}
    )
    async with serving(tmp_path, [*events, refusal]) as served, aiohttp.ClientSession() as http:
        async with http.get(served.base + "/", params={"rcpt": rcpt}) as response:
            results = await response.text()
        assert response.status == 200 and events[0].message_id in results
        assert_inert(results)
        async with http.get(f"{served.base}/messages/{events[0].message_id}") as response:
            page = await response.text()
        assert response.status == 200
        assert_inert(page)
        assert "Diagnosis: destination refused: 550 5.7.1 No &lt;script&gt;" in page
        async with http.get(f"{served.base}/messages/{refusal.message_id}") as response:
            refused_page = await response.text()
        assert response.status == 200
        assert "<script" not in refused_page.lower()
        assert f"x{SCRIPT}" in html.unescape(refused_page)


async def test_search_values_sent_back_into_the_form_are_escaped(tmp_path):
    async with serving(tmp_path, []) as served, aiohttp.ClientSession() as http:
        async with http.get(
            served.base + "/", params={"message_id": ATTRIBUTE, "state": ATTRIBUTE}
        ) as response:
            page = await response.text()
        assert response.status == 400  # the state is not one of ours
        assert "<img" not in page.lower()
        assert 'value="&#34;&gt;&lt;img src=x onerror=alert(1)&gt;"' in page
