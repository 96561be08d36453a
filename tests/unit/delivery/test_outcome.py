"""A decision plus the retry plan gives each recipient exactly one outcome."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from postline.delivery.engine import Conversation
from postline.delivery.outcome import conversation_events, recipient_events, settle
from postline.delivery.retry import RetryPlan
from postline.delivery.transaction import Decision, Where
from postline.delivery.trouble import Phase
from postline.dsn import FailedRecipient, bounce
from postline.models import Envelope, Event, EventKind, Peer, TlsInfo
from postline.reply import SmtpReply

LATER = RetryPlan("1m", datetime(2025, 1, 1, 0, 1, tzinfo=UTC))
EXPIRED = RetryPlan(None, None)
NOW = datetime(2025, 1, 1, tzinfo=UTC)
TLS = TlsInfo(version="TLSv1.3", cipher="TLS_AES_256_GCM_SHA384", verified=True)
WHERE = Where(Peer(name="mx", ip="192.0.2.1", port=25), "S1", TLS)
ENVELOPE = Envelope(message_id="M1", mail_from="s@x.test", rcpt_to=("a@x",))


def decision(code: int, phase: Phase = Phase.RCPT, remote: bool = True) -> Decision:
    return Decision(SmtpReply(code=code), phase, WHERE, remote)


def test_2xx_after_the_final_dot_is_delivered_whatever_the_plan() -> None:
    delivered = settle("a@x", decision(250, Phase.END_OF_DATA), EXPIRED, 60)
    assert delivered.kind is EventKind.DELIVERED


@pytest.mark.parametrize(
    ("code", "phase"),
    [(250, Phase.DATA), (250, Phase.MAIL), (251, Phase.RCPT), (354, Phase.END_OF_DATA)],
)
def test_2xx_or_3xx_anywhere_but_after_the_final_dot_is_never_delivered(
    code: int, phase: Phase
) -> None:
    assert settle("a@x", decision(code, phase), LATER, 60).kind is EventKind.DEFERRED


@pytest.mark.parametrize(
    ("phase", "reason"),
    [
        (Phase.END_OF_DATA, "failed after end of data; retry via tier 1m"),
        (Phase.DATA, "failed at DATA; retry via tier 1m"),
        (Phase.RCPT, "failed at RCPT TO; retry via tier 1m"),
        (Phase.GREETING, "failed at greeting; retry via tier 1m"),
        (Phase.CONNECT, "could not connect; retry via tier 1m"),
    ],
)
def test_a_reply_not_from_the_remote_never_says_the_remote_replied(
    phase: Phase, reason: str
) -> None:
    outcome = settle("a@x", decision(451, phase, remote=False), LATER, 60)
    assert outcome.reason == reason


def test_the_remotes_own_reply_after_the_final_dot_says_so() -> None:
    outcome = settle("a@x", decision(451, Phase.END_OF_DATA), LATER, 60)
    assert outcome.reason == "remote replied to end of data; retry via tier 1m"


def test_5xx_is_bounced() -> None:
    outcome = settle("a@x", decision(550), LATER, 60)
    assert outcome.kind is EventKind.BOUNCED
    assert outcome.reason == "remote replied to RCPT TO"


def test_4xx_is_deferred_with_the_plan() -> None:
    outcome = settle("a@x", decision(451), LATER, 60)
    assert outcome.kind is EventKind.DEFERRED
    assert outcome.next_attempt_at == LATER.next_attempt_at
    assert outcome.reason == "remote replied to RCPT TO; retry via tier 1m"


def test_4xx_past_the_lifetime_is_expired() -> None:
    outcome = settle("a@x", decision(451), EXPIRED, 86400 * 5)
    assert outcome.kind is EventKind.EXPIRED
    assert outcome.reason == "expired: not delivered within 5d; last: remote replied to RCPT TO"


def test_552_at_rcpt_is_deferred() -> None:
    assert settle("a@x", decision(552), LATER, 60).kind is EventKind.DEFERRED


def test_event_ids_keep_their_derivation_from_message_attempt_kind_and_recipient() -> None:
    """Ids already in the trails must match what a redelivery derives after an upgrade."""
    envelope = ENVELOPE
    outcome = settle("a@x", decision(250, Phase.END_OF_DATA), LATER, 60)
    [event] = recipient_events(envelope, 2, [outcome], NOW)
    key = "postline:M1:2:delivered:a@x"
    assert event.event_id == uuid.uuid5(uuid.NAMESPACE_URL, key).hex
    failed = [FailedRecipient("a@x", SmtpReply(code=550), None)]
    _, _, sent = bounce(
        envelope, b"", failed, reporting_mta="relay.test", service="delivery", attempt=2, now=NOW
    )
    assert sent.event_id == uuid.uuid5(uuid.NAMESPACE_URL, "postline:M1:2:dsn_sent").hex


@pytest.mark.parametrize(
    ("code", "phase", "plan", "kind"),
    [
        (250, Phase.END_OF_DATA, LATER, EventKind.DELIVERED),
        (451, Phase.RCPT, LATER, EventKind.DEFERRED),
        (550, Phase.RCPT, LATER, EventKind.BOUNCED),
        (451, Phase.END_OF_DATA, EXPIRED, EventKind.EXPIRED),
    ],
)
def test_every_outcome_event_carries_the_mx_the_session_and_its_tls_as_data(
    code: int, phase: Phase, plan: RetryPlan, kind: EventKind
) -> None:
    outcome = settle("a@x", decision(code, phase), plan, 60)
    [event] = recipient_events(ENVELOPE, 1, [outcome], NOW)
    assert event.kind is kind
    assert (event.mx, event.session_id, event.tls) == (WHERE.mx, "S1", TLS)
    assert event.mx_host is None, "the name[ip]:port string is rendered by readers only"
    assert event.version == 2
    assert Event.from_json(event.to_json()) == event


def test_an_outcome_decided_before_any_host_carries_no_mx_and_no_session() -> None:
    decided = Decision(SmtpReply(code=550, enhanced="5.1.2"), Phase.DNS, None, remote=False)
    [event] = recipient_events(ENVELOPE, 1, [settle("a@x", decided, LATER, 60)], NOW)
    assert (event.mx, event.session_id, event.tls) == (None, None, None)


def test_conversation_events_carry_the_mx_the_session_and_its_tls_as_data() -> None:
    talk = Conversation(WHERE, ("> EHLO relay.test", "< 250 mx"))
    [event] = conversation_events(ENVELOPE, 1, ("a@x",), [talk])
    assert (event.mx, event.session_id, event.tls) == (WHERE.mx, "S1", TLS)
    assert event.transcript == ["> EHLO relay.test", "< 250 mx"]
