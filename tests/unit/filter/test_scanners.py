"""clamav and rspamd against fakes that speak their real protocols on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from postline.filter.api import Verdict
from postline.filter.clamav import ClamavFilter
from postline.filter.rspamd import RspamdFilter
from tests.support.clamd import EICAR, FakeClamd
from tests.support.net import free_port
from tests.support.rspamd import FakeRspamd
from tests.unit.filter.helpers import message, plain


def sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def clamd() -> Iterator[FakeClamd]:
    with FakeClamd() as server:
        yield server


@pytest.fixture
def rspamd() -> Iterator[FakeRspamd]:
    with FakeRspamd() as server:
        yield server


def clamav(**section: Any) -> ClamavFilter:
    from tests.unit.filter.helpers import settings

    return ClamavFilter(settings(clamav=section))


def spam_filter(**section: Any) -> RspamdFilter:
    from tests.unit.filter.helpers import settings

    return RspamdFilter(settings(rspamd=section))


async def test_clamav_passes_a_clean_message_and_streams_it_whole(clamd: FakeClamd) -> None:
    filtered = message(plain("x" * 200_000 + "\n"))
    decision = await clamav(address=clamd.address, chunk_size=4096).apply(filtered)
    assert decision.verdict is Verdict.CONTINUE and decision.reason == "clean"
    assert clamd.streams == [filtered.to_bytes()]


async def test_clamav_rejects_a_virus_naming_the_signature(clamd: FakeClamd) -> None:
    filtered = message(plain(EICAR.decode() + "\n"))  # the fake, unlike clamd, reads no MIME
    decision = await clamav(address=clamd.address).apply(filtered)
    assert decision.verdict is Verdict.REJECT
    assert decision.reason == "virus Eicar-Test-Signature"
    assert str(decision.reply) == "554 5.7.1 Message contains a virus"


async def test_clamav_over_a_unix_socket(tmp_path: Path) -> None:
    with FakeClamd(socket_path=tmp_path / "clamd.sock") as server:
        filtered = message(plain(EICAR.decode() + "\n"))
        decision = await clamav(socket=str(server.socket_path)).apply(filtered)
    assert decision.verdict is Verdict.REJECT


@pytest.mark.parametrize("trouble", ["down", "hang", "close", "size-limit"])
@pytest.mark.parametrize("on_error", ["defer", "accept"])
async def test_clamav_failures_defer_or_accept_as_configured(
    clamd: FakeClamd, trouble: str, on_error: str
) -> None:
    address = f"127.0.0.1:{free_port()}" if trouble == "down" else clamd.address
    if trouble in ("hang", "close"):
        clamd.mode = trouble  # type: ignore[assignment]
    if trouble == "size-limit":
        clamd.stream_max = 100
    action = "deferred" if on_error == "defer" else "accepted"
    before = sample("postline_filter_scanner_errors_total", {"filter": "clamav", "action": action})
    scan = clamav(address=address, timeout="0.5s", on_error=on_error)
    decision = await scan.apply(message(plain()))
    expected = Verdict.DEFER if on_error == "defer" else Verdict.CONTINUE
    assert decision.verdict is expected
    assert decision.reason.startswith("scan failed: " if on_error == "defer" else "not scanned: ")
    after = sample("postline_filter_scanner_errors_total", {"filter": "clamav", "action": action})
    assert after == before + 1


async def test_clamav_does_not_send_a_message_over_max_size(clamd: FakeClamd) -> None:
    decision = await clamav(address=clamd.address, max_size=100).apply(message(plain()))
    assert decision.verdict is Verdict.DEFER and "over max_size" in decision.reason
    assert clamd.streams == []


async def test_rspamd_gets_the_message_and_the_envelope_in_its_headers(rspamd: FakeRspamd) -> None:
    filtered = message(plain(), rcpt_to=("a@x.test", "b@y.test"))
    decision = await spam_filter(url=rspamd.url, password="pw").apply(filtered)
    assert decision.verdict is Verdict.CONTINUE
    assert decision.reason == "action no action, score 0.50"
    [(headers, body)] = rspamd.requests
    assert body == filtered.to_bytes()
    sent = [(name.lower(), value) for name, value in headers]
    for expected in [
        ("queue-id", "4Q8ZT1K2M7XHBN3C"), ("from", "mary@company.test"), ("rcpt", "a@x.test"),
        ("rcpt", "b@y.test"), ("ip", "192.0.2.7"), ("helo", "laptop.company.test"),
        ("user", "mary"), ("password", "pw"),
    ]:  # fmt: skip
        assert expected in sent


@pytest.mark.parametrize(
    ("subject", "verdict", "reply"),
    [
        ("SPAM offer", Verdict.REJECT, "554 5.7.1 Message rejected as spam"),
        ("SOFT offer", Verdict.DEFER, "451 4.7.1 Message deferred by the spam filter"),
        ("HEADER offer", Verdict.CONTINUE, None),
    ],
)
async def test_rspamd_actions_map_to_verdicts(
    rspamd: FakeRspamd, subject: str, verdict: Verdict, reply: str | None
) -> None:
    decision = await spam_filter(url=rspamd.url).apply(message(plain(Subject=subject)))
    assert decision.verdict is verdict
    assert (str(decision.reply) if decision.reply else None) == reply


async def test_rspamd_added_headers_and_subject_rewrite(rspamd: FakeRspamd) -> None:
    tagged = message(plain(Subject="HEADER offer"))
    await spam_filter(url=rspamd.url).apply(tagged)
    assert tagged.headers.get("X-Spam") == "Yes"
    rewritten = message(plain(Subject="REWRITE me"))
    checker = spam_filter(url=rspamd.url, rewrite_subject=True)
    assert checker.rewrites_message is True
    await checker.apply(rewritten)
    assert rewritten.headers.get_all("Subject") == ["*** SPAM *** hello"]
    untouched = message(plain(Subject="REWRITE me"))
    await spam_filter(url=rspamd.url).apply(untouched)
    assert untouched.headers.get("Subject") == "REWRITE me"


async def test_rspamd_header_values_cannot_inject_fields(rspamd: FakeRspamd) -> None:
    rspamd.answer = lambda request: {
        "action": "add header",
        "milter": {"add_headers": {"X-Spam": "Yes\r\nBcc: victim@x.test", "Bad Name": "x"}},
    }
    filtered = message(plain())
    await spam_filter(url=rspamd.url).apply(filtered)
    assert filtered.headers.get_all("X-Spam") == ["Yes  Bcc: victim@x.test"]
    assert "Bcc" not in filtered.headers and "Bad Name" not in filtered.headers


@pytest.mark.parametrize("trouble", ["down", "slow", "http-500", "not-json"])
async def test_rspamd_failures_follow_on_error(rspamd: FakeRspamd, trouble: str) -> None:
    url = f"http://127.0.0.1:{free_port()}/checkv2" if trouble == "down" else rspamd.url
    if trouble == "slow":
        rspamd.delay = 2.0
    if trouble == "http-500":
        rspamd.status = 500
    if trouble == "not-json":
        rspamd.answer = lambda request: ["not", "an", "answer"]  # type: ignore[assignment,return-value]
    closed = await spam_filter(url=url, timeout="0.5s").apply(message(plain()))
    assert closed.verdict is Verdict.DEFER and closed.reason.startswith("check failed: ")
    opened = await spam_filter(url=url, timeout="0.5s", on_error="accept").apply(message(plain()))
    assert opened.verdict is Verdict.CONTINUE and opened.reason.startswith("not checked: ")
