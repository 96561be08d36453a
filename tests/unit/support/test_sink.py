"""The steerable SMTP sink answers as its module docstring promises (driven by smtplib)."""

from __future__ import annotations

import smtplib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.certs import client_tls, make_cert
from tests.support.sink import SmtpSink, behaviour

BODY = b"Subject: test\r\n\r\nhello\r\n"


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with SmtpSink() as smtp_sink:
        yield smtp_sink


def client(sink: SmtpSink, timeout: float = 10) -> smtplib.SMTP:
    return smtplib.SMTP(sink.host, sink.port, timeout=timeout)


def rcpt(sink: SmtpSink, address: str) -> tuple[int, bytes]:
    with client(sink) as smtp:
        smtp.ehlo("test")
        smtp.mail("a@example.org")
        return smtp.rcpt(address)


def test_behaviour_is_parsed_from_the_local_part() -> None:
    assert behaviour("flaky2-abc@x.test") == ("flaky", 2.0)
    assert behaviour("slow0.5-x@x.test") == ("slow", 0.5)
    assert behaviour("permfail@x.test") == ("permfail", None)
    assert behaviour("alice@x.test") == ("", None)


def test_plain_recipient_is_accepted_and_stored_raw(sink: SmtpSink) -> None:
    with client(sink) as smtp:
        smtp.sendmail("a@example.org", ["alice@x.test", "bob@x.test"], BODY)
    [message] = sink.wait_for(1, 5)
    assert message.mail_from == "a@example.org"
    assert message.rcpt_tos == ("alice@x.test", "bob@x.test")
    assert message.data == BODY
    assert message.peer.startswith("127.0.0.1:")
    assert sink.attempts == [("alice@x.test", 250), ("bob@x.test", 250)]


def test_permfail_is_refused_with_550_at_rcpt(sink: SmtpSink) -> None:
    code, text = rcpt(sink, "permfail@x.test")
    assert (code, text[:5]) == (550, b"5.1.1")
    assert sink.attempts == [("permfail@x.test", 550)]


def test_tempfail_is_refused_with_451_every_time(sink: SmtpSink) -> None:
    assert rcpt(sink, "tempfail@x.test")[0] == 451
    assert rcpt(sink, "tempfail@x.test")[0] == 451


def test_flaky_address_fails_n_times_then_is_accepted(sink: SmtpSink) -> None:
    codes = [rcpt(sink, "flaky2-abc@x.test")[0] for _ in range(3)]
    assert codes == [451, 451, 250]
    assert rcpt(sink, "flaky2-other@x.test")[0] == 451  # counted per exact address


def test_full_and_quota_are_refused_at_rcpt(sink: SmtpSink) -> None:
    assert rcpt(sink, "full@x.test")[0] == 452
    assert rcpt(sink, "quota@x.test")[0] == 552


def test_goodbye_answers_421_and_closes(sink: SmtpSink) -> None:
    with client(sink) as smtp:
        smtp.ehlo("test")
        smtp.mail("a@example.org")
        assert smtp.rcpt("goodbye@x.test")[0] == 421
        with pytest.raises(smtplib.SMTPServerDisconnected):
            smtp.noop()


@pytest.mark.parametrize(("address", "code"), [("dataperm@x.test", 554), ("datatemp@x.test", 451)])
def test_replies_after_the_final_dot(sink: SmtpSink, address: str, code: int) -> None:
    with client(sink) as smtp:
        smtp.ehlo("test")
        smtp.mail("a@example.org")
        smtp.rcpt(address)
        assert smtp.data(BODY)[0] == code
    assert sink.messages == []


def test_data421_answers_421_after_the_dot_and_closes(sink: SmtpSink) -> None:
    smtp = client(sink)
    smtp.ehlo("test")
    smtp.mail("a@example.org")
    smtp.rcpt("data421@x.test")
    with pytest.raises((smtplib.SMTPDataError, smtplib.SMTPServerDisconnected)) as caught:
        smtp.data(BODY)
        smtp.noop()
    if isinstance(caught.value, smtplib.SMTPDataError):
        assert caught.value.smtp_code == 421
    smtp.close()
    assert sink.messages == []


def test_hangup_closes_after_the_dot_without_reply_then_accepts(sink: SmtpSink) -> None:
    smtp = client(sink)
    with pytest.raises(smtplib.SMTPServerDisconnected):
        smtp.sendmail("a@example.org", ["hangup1-x@x.test"], BODY)
    smtp.close()
    assert sink.messages == []
    with client(sink) as smtp:
        smtp.sendmail("a@example.org", ["hangup1-x@x.test"], BODY)
    assert len(sink.wait_for(1, 5)) == 1


def test_slow_waits_before_the_end_of_data_reply(sink: SmtpSink) -> None:
    started = time.monotonic()
    with client(sink) as smtp:
        smtp.sendmail("a@example.org", ["slow0.5-x@x.test"], BODY)
    assert time.monotonic() - started >= 0.5
    sink.wait_for(1, 5)


def test_drip_sends_replies_one_byte_at_a_time(sink: SmtpSink) -> None:
    started = time.monotonic()
    with client(sink, timeout=2) as smtp:
        smtp.ehlo("test")
        smtp.mail("a@example.org")
        code, _ = smtp.rcpt("drip0.3-x@x.test")
        assert code == 250
        assert time.monotonic() - started >= 0.3
        assert smtp.data(BODY)[0] == 250
    assert time.monotonic() - started >= 0.6
    sink.wait_for(1, 5)


def test_wait_for_raises_on_timeout(sink: SmtpSink) -> None:
    with pytest.raises(AssertionError, match="0 of 1"):
        sink.wait_for(1, 0.1)


def test_starttls_is_offered_with_a_certificate(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path)
    with SmtpSink(tls_cert=cert, tls_key=key) as tls_sink:
        with client(tls_sink) as smtp:
            smtp.starttls(context=client_tls())
            smtp.sendmail("a@example.org", ["alice@x.test"], BODY)
        [message] = tls_sink.wait_for(1, 5)
    assert message.tls


def test_users_require_auth_over_tls(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path)
    with SmtpSink(tls_cert=cert, tls_key=key, users={"relay": "s3cret"}) as smarthost:
        with client(smarthost) as smtp:
            smtp.ehlo("test")
            assert "auth" not in smtp.esmtp_features
            smtp.starttls(context=client_tls())
            smtp.ehlo("test")
            assert smtp.mail("a@example.org")[0] == 530
            with pytest.raises(smtplib.SMTPAuthenticationError):
                smtp.login("relay", "wrong")
            smtp.login("relay", "s3cret")
            smtp.sendmail("a@example.org", ["alice@x.test"], BODY)
        smarthost.wait_for(1, 5)
    assert smarthost.auth_logins == ["relay"]


@pytest.mark.parametrize(("sender", "code"), [("permfail@x.test", 550), ("tempfail@x.test", 451)])
def test_sender_local_part_steers_mail_from(sink: SmtpSink, sender: str, code: int) -> None:
    with client(sink) as smtp:
        smtp.ehlo("test")
        assert smtp.mail(sender)[0] == code


def test_peak_data_counts_concurrent_end_of_data_waits(sink: SmtpSink) -> None:
    import threading

    def send() -> None:
        with client(sink) as smtp:
            smtp.sendmail("a@example.org", ["slow0.5-x@x.test"], BODY)

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sink.peak_data == 2


def test_size_limit_is_announced() -> None:
    with SmtpSink(size_limit=1000) as limited, client(limited) as smtp:
        smtp.ehlo("test")
        assert smtp.esmtp_features["size"] == "1000"
