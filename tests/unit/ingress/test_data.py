"""DATA content: only CRLF.CRLF ends it; bare CR/LF and NUL refuse the whole message."""

from __future__ import annotations

import asyncio

import pytest

from postline.ingress import replies
from postline.ingress.data import Content, read_content


async def read(data: bytes, max_size: int = 10_000, then: bytes = b"NOOP\r\n") -> Content:
    reader = asyncio.StreamReader(limit=1001)
    reader.feed_data(data + then)
    reader.feed_eof()
    content = await read_content(reader, max_size)
    assert await reader.read() == then, "the reader must stop right after the end of data"
    return content


async def test_plain_message_with_dot_unstuffing() -> None:
    content = await read(b"Subject: x\r\n\r\n..leading dot\r\n.\r\n")
    assert content.error is None
    assert content.body == b"Subject: x\r\n\r\n.leading dot\r\n"


async def test_empty_message() -> None:
    assert (await read(b".\r\n")).body == b""


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
    content = await read(b"0123456789\r\n" * 100 + b".\r\n", max_size=500)
    assert content.body is None and content.error == replies.TOO_BIG


async def test_overlong_line_does_not_hide_the_end_of_data() -> None:
    content = await read(b"x" * 3000 + b".\r\nnext\r\n.\r\n")
    assert content.error == replies.LINE_TOO_LONG
