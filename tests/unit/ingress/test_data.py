"""DATA content: only CRLF.CRLF ends it; bare CR/LF and NUL refuse the whole message."""

from __future__ import annotations

import time

import pytest

from postline.ingress import replies
from postline.ingress.data import Content, Limits, check_content, header_error, line_error
from postline.ingress.wire import ClientWire, RawData

NO_LIMITS = Limits(max_size=10_000)


async def _never(_: ClientWire) -> None:
    raise AssertionError("no session in unit tests")


async def read(
    data: bytes, max_size: int = 10_000, then: bytes = b"NOOP\r\n", chunk: int = 0
) -> Content:
    """``data`` through a wire (in chunks of ``chunk`` octets, 0: at once), then checked."""
    wire = ClientWire(_never)
    payload = data + then
    step = chunk or len(payload)
    for start in range(0, len(payload), step):
        wire.data_received(payload[start : start + step])
    wire.eof_received()
    raw = await wire.read_data(max_size, idle=5, deadline=wire.loop.time() + 5)
    assert wire.take_buffered() == then, "the wire must stop right after the end of data"
    return await check_content(raw, Limits(max_size))


async def test_plain_message_with_dot_unstuffing() -> None:
    content = await read(b"Subject: x\r\n\r\n..leading dot\r\n.\r\n")
    assert content.error is None
    assert content.body == b"Subject: x\r\n\r\n.leading dot\r\n"


async def test_first_line_is_unstuffed_too() -> None:
    assert (await read(b"..x\r\n.y\r\n.\r\n")).body == b".x\r\ny\r\n"


async def test_empty_message() -> None:
    assert (await read(b".\r\n")).body == b""


@pytest.mark.parametrize("chunk", [1, 2, 3, 4, 5, 7])
async def test_end_of_data_split_across_reads_is_found(chunk: int) -> None:
    content = await read(b"a\r\n..b\r\n.\r\n", chunk=chunk)
    assert content.body == b"a\r\n.b\r\n"


SMUGGLING = [
    b"body\n.\nMAIL FROM:<a@evil.test>\r\nRCPT TO:<b@victim.test>\r\nDATA\r\nsmuggled\r\n.\r\n",
    b"body\r.\rMAIL FROM:<a@evil.test>\r\nRCPT TO:<b@victim.test>\r\nDATA\r\nsmuggled\r\n.\r\n",
    b"body\n.\r\nMAIL FROM:<a@evil.test>\r\nRCPT TO:<b@victim.test>\r\nDATA\r\nx\r\n.\r\n",
    b"body\r\n.\nMAIL FROM:<a@evil.test>\r\nRCPT TO:<b@victim.test>\r\nDATA\r\nx\r\n.\r\n",
    b"body\r.\r\nMAIL FROM:<a@evil.test>\r\nRCPT TO:<b@victim.test>\r\nDATA\r\nx\r\n.\r\n",
    b"body\r\n.\rMAIL FROM:<a@evil.test>\r\nRCPT TO:<b@victim.test>\r\nDATA\r\nx\r\n.\r\n",
]


@pytest.mark.parametrize("payload", SMUGGLING)
async def test_smuggling_payloads_are_one_refused_message(payload: bytes) -> None:
    content = await read(payload)
    assert content.body is None
    assert content.error == replies.BARE_LINE_ENDING


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"bare\nlf\r\n.\r\n", replies.BARE_LINE_ENDING),
        (b"bare\rcr\r\n.\r\n", replies.BARE_LINE_ENDING),
        (b"ends in cr\r\r\n.\r\n", replies.BARE_LINE_ENDING),
        (b"nul\x00byte\r\n.\r\n", replies.NUL_IN_CONTENT),
        (b"x" * 999 + b"\r\n.\r\n", replies.LINE_TOO_LONG),
        (b"x" * 5000 + b"\r\n.\r\n", replies.LINE_TOO_LONG),
    ],
)
async def test_content_errors(data: bytes, error: object) -> None:
    content = await read(data)
    assert content.body is None and content.error == error


async def test_longest_legal_lines() -> None:
    assert (await read(b"x" * 998 + b"\r\n.\r\n")).error is None
    assert (await read(b"." * 999 + b"\r\n.\r\n")).error is None, "998 + transparency dot"


async def test_too_big_without_size_keeps_reading_to_the_end() -> None:
    content = await read(b"0123456789\r\n" * 100 + b".\r\n", max_size=500, chunk=64)
    assert content.body is None and content.error == replies.TOO_BIG


async def test_too_big_in_one_read_is_refused_as_well() -> None:
    content = await read(b"x" * 500 + b"\r\n" + b"y" * 500 + b"\r\n.\r\n", max_size=1000)
    assert content.error == replies.TOO_BIG


async def test_transparency_dots_do_not_count_toward_the_size() -> None:
    assert (await read(b"..\r\n" * 300 + b".\r\n", max_size=1000, chunk=7)).error is None


async def test_overlong_line_does_not_hide_the_end_of_data() -> None:
    content = await read(b"x" * 3000 + b".\r\nnext\r\n.\r\n")
    assert content.error == replies.LINE_TOO_LONG


async def test_an_oversized_message_keeps_only_a_few_octets() -> None:
    wire = ClientWire(_never)
    wire.data_received(b"\r\n" * 1000)
    task = wire.loop.create_task(wire.read_data(100, idle=5, deadline=wire.loop.time() + 5))
    for _ in range(50):
        wire.data_received(b"\r\n" * 1000)
        await _settle()
        assert len(wire._buffer) == 0  # everything read is consumed ...
    wire.data_received(b".\r\n")
    raw = await task
    assert raw == RawData(None, raw.size) and raw.size > 100  # ... and nothing was kept


async def _settle() -> None:
    import asyncio

    for _ in range(3):
        await asyncio.sleep(0)


def test_header_section_limits_count_fields_and_continuations() -> None:
    folded = b"Subject: x\r\n" + b" y\r\n" * 10 + b"\r\nbody\r\n"
    assert header_error(folded, Limits(10**6, max_header_lines=11)) is None
    assert header_error(folded, Limits(10**6, max_header_lines=10)) == replies.HEADER_TOO_BIG
    assert header_error(folded, Limits(10**6, max_header_size=40)) == replies.HEADER_TOO_BIG
    assert header_error(folded, Limits(10**6)) is None, "0 means no limit"


def test_the_header_section_ends_at_the_first_line_that_is_not_a_field() -> None:
    body = b"From: a@b\r\nnot a field\r\n" + b"x\r\n" * 100
    assert header_error(body, Limits(10**6, max_header_lines=2)) is None


def test_checks_are_linear_in_the_message_size() -> None:
    """A hostile shape (millions of empty lines) costs about twice as much for twice the size."""

    def cost(lines: int) -> float:
        body = b"Subject: x\r\n" + b"\r\n" * lines
        started = time.perf_counter()
        assert line_error(body) is None
        assert header_error(body, Limits(10**9, 5000, 512 * 1024)) is None
        return time.perf_counter() - started

    small, large = min(cost(500_000) for _ in range(3)), min(cost(4_000_000) for _ in range(3))
    assert large < small * 8 * 3, f"{small=:.4f}s {large=:.4f}s: not linear"
