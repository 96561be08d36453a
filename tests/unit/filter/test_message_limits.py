"""Header parsing is linear in the input and bounded by ``HeaderLimits`` (issue 7, section 4).

Timing tests compare two sizes ten times apart, each the best of a few runs:
linear work takes about 10 times longer, quadratic work about 100 times; the
assertions sit far from both.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from postline.filter import message as message_module
from postline.filter.message import (
    FilterMessage,
    HeaderField,
    HeaderLimits,
    HeaderSectionTooLarge,
    split_message,
)
from postline.models import Envelope

ENVELOPE = Envelope(message_id="4Q8ZT1K2M7XHBN3C", mail_from="a@x.test", rcpt_to=("b@y.test",))
FAR_FROM_QUADRATIC = 50.0  # ten times the input: ~10x when linear, ~100x when quadratic;
# 50 leaves room for a loaded machine (34x was seen with other suites running) and still
# tells the two apart.


def best_of(runs: int, work: Callable[[], object]) -> float:
    """The shortest of ``runs`` wall-clock timings of ``work()``."""
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        timings.append(time.perf_counter() - started)
    return min(timings)


def folded(lines: int) -> bytes:
    """One ``Subject`` folded over ``lines`` continuation lines, then a short body."""
    return b"Subject: x\r\n" + b" a\r\n" * lines + b"\r\nbody\r\n"


def many_fields(count: int) -> bytes:
    return b"".join(b"X-N%d: v\r\n" % n for n in range(count)) + b"\r\nbody\r\n"


def test_split_time_grows_linearly_with_the_number_of_folded_lines() -> None:
    small, large = folded(30_000), folded(300_000)
    ratio = best_of(3, lambda: split_message(large)) / best_of(3, lambda: split_message(small))
    assert ratio < FAR_FROM_QUADRATIC, f"10x the folded lines took {ratio:.0f}x the time"
    [field], separator, body = split_message(large)
    assert field.raw == b"Subject: x\r\n" + b" a\r\n" * 300_000
    assert (separator, body) == (b"\r\n", b"body\r\n")


def test_value_and_lookups_grow_linearly_with_folded_lines_and_fields() -> None:
    small, large = FilterMessage(ENVELOPE, folded(30_000)), FilterMessage(ENVELOPE, folded(300_000))
    ratio = best_of(3, lambda: large.headers.get("subject")) / best_of(
        3, lambda: small.headers.get("subject")
    )
    assert ratio < FAR_FROM_QUADRATIC, f"value: 10x the folded lines took {ratio:.0f}x the time"
    assert large.headers.get("subject") == "x" + " a" * 300_000
    few, lots = (
        FilterMessage(ENVELOPE, many_fields(5_000)),
        FilterMessage(ENVELOPE, many_fields(50_000)),
    )

    def lookups(message: FilterMessage) -> object:
        return ("date" in message.headers, message.headers.get_all("x-n1"))

    ratio = best_of(3, lambda: lookups(lots)) / best_of(3, lambda: lookups(few))
    assert ratio < FAR_FROM_QUADRATIC, f"lookups: 10x the fields took {ratio:.0f}x the time"


def test_reassembly_grows_linearly_and_gives_back_the_same_bytes() -> None:
    small, large = folded(30_000), folded(300_000)
    small_message, large_message = FilterMessage(ENVELOPE, small), FilterMessage(ENVELOPE, large)
    ratio = best_of(3, large_message.to_bytes) / best_of(3, small_message.to_bytes)
    assert ratio < FAR_FROM_QUADRATIC, f"10x the folded lines took {ratio:.0f}x the time"
    assert large_message.to_bytes() == large


@pytest.mark.parametrize(
    ("extra_bytes", "refused"), [(0, False), (1, True)], ids=["at-limit", "one-byte-over"]
)
def test_header_section_larger_than_max_size_is_refused(extra_bytes: int, refused: bool) -> None:
    head = b"Subject: " + b"s" * (extra_bytes + 20) + b"\r\nTo: b@y.test\r\n"
    limits = HeaderLimits(max_size=len(head) - extra_bytes, max_lines=10)
    data = head + b"\r\n" + b"a body far longer than the header limit\r\n" * 1000
    if refused:
        with pytest.raises(HeaderSectionTooLarge, match=f"more than {len(head) - 1} bytes"):
            split_message(data, limits)
    else:
        fields, separator, body = split_message(data, limits)
        assert [f.name for f in fields] == ["Subject", "To"] and separator == b"\r\n"
        assert body.startswith(b"a body far longer")


@pytest.mark.parametrize(("lines", "refused"), [(50, False), (51, True)])
def test_header_section_with_more_lines_than_max_lines_is_refused(
    lines: int, refused: bool
) -> None:
    data = b"Subject: x\r\n" + b" a\r\n" * 20 + many_fields(lines - 21)
    limits = HeaderLimits(max_size=1 << 20, max_lines=50)
    if refused:
        with pytest.raises(HeaderSectionTooLarge, match="more than 50 lines"):
            split_message(data, limits)
    else:
        fields, _, body = split_message(data, limits)
        assert len(fields) == lines - 20 and body == b"body\r\n"


def test_limits_bound_the_header_only_and_a_header_without_final_crlf_counts_its_line() -> None:
    limits = HeaderLimits(max_size=12, max_lines=1)
    assert split_message(b"Subject: x\r\n", limits)[0][0].raw == b"Subject: x\r\n"
    assert split_message(b"Subject: xy!", limits)[0][0].raw == b"Subject: xy!"
    with pytest.raises(HeaderSectionTooLarge):
        split_message(b"Subject: x\r\nTo: y\r\n", limits)
    body = b"not a header line\r\n" * 100
    assert split_message(b"Subject: x\r\n" + body, limits)[2] == body


@pytest.mark.parametrize("name_length", [200, 2000], ids=["field", "name-past-the-slack"])
def test_a_field_running_past_max_size_is_refused_not_taken_for_body(name_length: int) -> None:
    limits = HeaderLimits(max_size=100, max_lines=10)
    with pytest.raises(HeaderSectionTooLarge, match="more than 100 bytes"):
        split_message(b"To: b@y.test\r\nX-" + b"n" * name_length + b": v\r\n\r\n", limits)
    assert split_message(b"X-" + b"n" * 50 + b" v\r\n", limits)[2].startswith(b"X-nnn")


def test_parsing_under_limits_stops_at_the_limits_whatever_the_input_size(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[HeaderField] = []

    def counting(name: str, raw: bytes) -> HeaderField:
        made.append(HeaderField(name, raw))
        return made[-1]

    monkeypatch.setattr(message_module, "HeaderField", counting)
    with pytest.raises(HeaderSectionTooLarge):
        split_message(many_fields(200_000), HeaderLimits(max_size=1 << 30, max_lines=1000))
    assert len(made) <= 1000
    huge = folded(1_000_000)
    limited = best_of(3, lambda: _refused(huge, HeaderLimits(max_size=4096, max_lines=1 << 30)))
    unlimited = best_of(3, lambda: split_message(huge))
    assert limited * 20 < unlimited, f"limited {limited:.6f}s, unlimited {unlimited:.6f}s"


def _refused(data: bytes, limits: HeaderLimits) -> None:
    with pytest.raises(HeaderSectionTooLarge):
        split_message(data, limits)
