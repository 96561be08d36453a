"""The chain: order, verdicts, time limits; the registry: names and config errors."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from postline.app.settings import Settings
from postline.filter.api import Decision, Verdict
from postline.filter.chain import Chain, FilterDeferred, FilterTimeout, Outcome
from postline.filter.handler import filtered_event, rejected_events
from postline.filter.message import FilterMessage
from postline.filter.registry import build_filters, resolve
from postline.filter.settings import FilterSettings
from postline.models import Envelope, EventKind
from postline.reply import reply

ENVELOPE = Envelope(message_id="M1", mail_from="a@x.test", rcpt_to=("b@y.test", "c@z.test"))


class Recording:
    """A filter that records its turn, tags the message and answers ``decision``."""

    def __init__(self, name: str, log: list[str], decision: Decision | None = None) -> None:
        self.name = name
        self.log = log
        self.decision = decision or Decision.proceed()

    async def apply(self, message: FilterMessage) -> Decision:
        self.log.append(self.name)
        message.headers.append("X-Seen-By", self.name)
        return self.decision


class Sleeper:
    name = "sleeper"

    def __init__(self, settings: FilterSettings | None = None) -> None:
        self.settings = settings

    async def apply(self, message: FilterMessage) -> Decision:
        await asyncio.sleep(10)
        return Decision.proceed()


def new_message() -> FilterMessage:
    return FilterMessage(ENVELOPE, b"Subject: s\r\n\r\nbody\r\n")


async def test_filters_run_in_configured_order_and_all_continue_means_passed() -> None:
    log: list[str] = []
    chain = Chain([Recording("one", log), Recording("two", log), Recording("three", log)], 5)
    message = new_message()
    outcome = await chain.run(message)
    assert log == ["one", "two", "three"]
    assert outcome.passed and outcome.decided_by is None
    assert message.headers.get_all("X-Seen-By") == ["one", "two", "three"]
    assert outcome.summary() == "filters: one; two; three"


async def test_accept_passes_the_message_and_skips_later_filters() -> None:
    log: list[str] = []
    chain = Chain(
        [Recording("one", log, Decision.accept("trusted")), Recording("two", log)], timeout=5
    )
    outcome = await chain.run(new_message())
    assert log == ["one"]
    assert outcome.passed and outcome.decided_by == "one"
    assert outcome.summary() == "filters: one (trusted)"


async def test_reject_stops_the_chain_with_a_failed_outcome() -> None:
    log: list[str] = []
    rejecting = Decision.reject("spam", reply(554, "5.7.1", "no thanks"))
    chain = Chain([Recording("one", log, rejecting), Recording("two", log)], timeout=5)
    outcome = await chain.run(new_message())
    assert log == ["one"]
    assert not outcome.passed and outcome.decision is rejecting


async def test_defer_raises_a_temporary_failure_so_the_message_is_requeued() -> None:
    log: list[str] = []
    chain = Chain([Recording("av", log, Decision.defer("scanner down")), Recording("x", log)], 5)
    with pytest.raises(FilterDeferred, match="scanner down"):
        await chain.run(new_message())
    assert log == ["av"]


async def test_filter_past_its_timeout_raises_filter_timeout() -> None:
    chain = Chain([Sleeper()], timeout=0.05)
    with pytest.raises(FilterTimeout, match=r"filter sleeper ran past the message.s 0\.05s"):
        await asyncio.wait_for(chain.run(new_message()), 2)


async def test_filter_returning_something_else_than_a_decision_is_an_error() -> None:
    class Broken:
        name = "broken"

        async def apply(self, message: FilterMessage) -> Decision:
            return Verdict.CONTINUE  # type: ignore[return-value]

    with pytest.raises(TypeError, match="broken returned"):
        await Chain([Broken()], 5).run(new_message())


@pytest.mark.parametrize(
    ("verdict", "code"),
    [(Verdict.REJECT, 451), (Verdict.DEFER, 550), (Verdict.CONTINUE, 550), (Verdict.ACCEPT, 250)],
)
def test_decision_reply_must_match_its_verdict(verdict: Verdict, code: int) -> None:
    with pytest.raises(ValueError):
        Decision(verdict, "r", reply(code, f"{str(code)[0]}.0.0", "x"))


def test_rejected_outcome_makes_one_event_per_recipient_with_the_default_reply() -> None:
    decided = Outcome(False, "body", Decision.reject("looks bad"), (("body", Decision.proceed()),))
    events = rejected_events(ENVELOPE, decided)
    assert [(e.kind, e.recipient) for e in events] == [
        (EventKind.REJECTED, "b@y.test"),
        (EventKind.REJECTED, "c@z.test"),
    ]
    assert events[0].reason == "rejected by filter body: looks bad"
    assert events[0].reply is not None and str(events[0].reply).startswith("550 5.7.1")
    assert events[0].event_id != events[1].event_id
    assert rejected_events(ENVELOPE, decided)[0].event_id == events[0].event_id


def test_filtered_event_is_message_level_with_a_stable_id() -> None:
    passed = Outcome(True, None, Decision.proceed(), (("headers", Decision.proceed("x")),))
    event = filtered_event(ENVELOPE, passed, 123)
    assert event.kind is EventKind.FILTERED and event.recipient is None
    assert event.rcpt_to == ENVELOPE.rcpt_to and event.reason == "filters: headers (x)"
    assert filtered_event(ENVELOPE, passed, 123).event_id == event.event_id


def test_builtin_and_custom_filter_names_resolve() -> None:
    assert resolve("headers").__name__ == "HeadersFilter"
    assert resolve("tests.unit.filter.test_chain:Sleeper") is Sleeper
    filters = build_filters(FilterSettings(chain=["headers"], hostname="relay.test"))
    assert [f.name for f in filters] == ["headers"]


@pytest.mark.parametrize(
    ("chain", "message"),
    [
        (["headers", "spamassassin"], "unknown filter 'spamassassin'"),
        (["no.such.module:Thing"], "cannot import no.such.module"),
        (["tests.unit.filter.test_chain:Nothing"], "has no callable 'Nothing'"),
        (["headers", "headers"], "listed twice"),
    ],
)
def test_bad_chain_entry_is_a_config_error_naming_filter_chain(
    chain: list[str], message: str
) -> None:
    from pydantic import ValidationError

    from postline.filter.registry import check_chain
    from postline.settings import ConfigError

    with pytest.raises((ValidationError, ConfigError)) as caught:
        check_chain(Settings.model_validate({"filter": {"chain": chain}}).filter)
    text = str(caught.value)
    assert "filter.chain" in text and message in text


def test_reading_the_configuration_imports_no_filter_module() -> None:
    """Only the filter service (and config check) import what [filter] chain names."""
    settings = Settings.model_validate({"filter": {"chain": ["no.such.module:factory"]}})
    assert settings.filter.chain == ["no.such.module:factory"]


def test_hostname_defaults_to_the_relay_hostname() -> None:
    from postline.app.settings import context_for
    from postline.filter.main import resolved

    settings = Settings.model_validate({"relay": {"hostname": "mx.example.org"}})
    assert resolved(settings.filter, context_for(settings)).hostname == "mx.example.org"
    own = Settings.model_validate({"filter": {"hostname": "filter.example.org"}})
    assert resolved(own.filter, context_for(own)).hostname == "filter.example.org"


def test_filter_event_ids_keep_their_derivation_from_the_message_id() -> None:
    """Ids already in the trails must match what a redelivery derives after an upgrade."""
    passed = Outcome(True, None, Decision.proceed(), ())
    rejected = Outcome(False, "body", Decision.reject("bad"), ())
    expected = uuid.uuid5(uuid.NAMESPACE_URL, "postline:M1:filtered:").hex
    assert filtered_event(ENVELOPE, passed, 1).event_id == expected
    key = "postline:M1:rejected:c@z.test"
    assert (
        rejected_events(ENVELOPE, rejected)[1].event_id == uuid.uuid5(uuid.NAMESPACE_URL, key).hex
    )
