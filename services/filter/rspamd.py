"""Built-in filter ``rspamd``: the message through rspamd's HTTP ``/checkv2``.

The message is POSTed as it is, with rspamd's request headers for the
envelope (``Queue-Id``, ``From``, one ``Rcpt`` per recipient, ``IP``,
``Helo``, ``User``; ``Password`` when set). rspamd's JSON answer carries an
``action``, which ``[filter.rspamd] actions`` maps to a verdict (default:
``reject`` -> reject, ``soft reject`` -> defer, everything else continue), a
score, and in its ``milter`` block the headers it wants added (``add_headers``,
added when ``add_headers = true``: names checked, values made one line and
capped). With ``rewrite_subject = true`` the ``rewrite subject`` action
replaces ``Subject:`` with rspamd's ``subject`` (that rewrites the message:
the filter must then run before ``dkim``).

Unreachable, slower than ``timeout``, an HTTP status other than 200, or an
answer that is not rspamd's JSON is a scan error: ``on_error = "defer"``
defers, ``"accept"`` lets the message go on unscanned; both are counted in
``postline_filter_scanner_errors_total``. Reasons hold rspamd's action and
score, never message content. Each check opens its own HTTP connection (an
aiohttp session per check), so nothing is left open when the service stops.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import TYPE_CHECKING, Any

import aiohttp
from multidict import CIMultiDict

from postline.filter import metrics
from postline.filter.api import Decision
from postline.filter.message import FilterMessage
from postline.models import Envelope

if TYPE_CHECKING:
    from postline.filter.settings import FilterSettings

log = logging.getLogger("postline.filter.rspamd")
MAX_ANSWER = 1024 * 1024
MAX_VALUE = 900
_NAME = re.compile(r"^[\x21-\x39\x3b-\x7e]{1,100}$")
_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")


class CheckError(Exception):
    """The check could not be made; the text says why."""


def request_headers(envelope: Envelope, password: str | None) -> CIMultiDict[str]:
    """rspamd's request headers for ``envelope`` (values with control characters left out)."""
    headers: CIMultiDict[str] = CIMultiDict()
    pairs: list[tuple[str, str | None]] = [
        ("Queue-Id", envelope.message_id),
        ("From", envelope.mail_from),
    ]
    pairs += [("Rcpt", rcpt) for rcpt in envelope.rcpt_to]
    pairs += [("IP", envelope.client_ip), ("Helo", envelope.helo), ("User", envelope.auth_user)]
    pairs += [("Password", password)]
    for name, value in pairs:
        if value and value.isascii() and not _UNSAFE.search(value):
            headers.add(name, value)
    return headers


async def check(url: str, data: bytes, headers: CIMultiDict[str], timeout: float) -> dict[str, Any]:
    """rspamd's answer as a dict; ``CheckError`` for anything else."""
    try:
        async with (
            asyncio.timeout(timeout),
            aiohttp.ClientSession() as session,
            session.post(url, data=data, headers=headers) as response,
        ):
            if response.status != 200:
                raise CheckError(f"HTTP {response.status}")
            body = await response.content.read(MAX_ANSWER + 1)
    except TimeoutError:
        raise CheckError(f"no answer within {timeout:g}s") from None
    except aiohttp.ClientError as error:
        raise CheckError(f"{type(error).__name__}: {error}") from None
    if len(body) > MAX_ANSWER:
        raise CheckError("an answer too long")
    try:
        answer = json.loads(body)
    except ValueError:
        raise CheckError("an answer that is not JSON") from None
    if not isinstance(answer, dict) or not isinstance(answer.get("action"), str):
        raise CheckError("an answer without an action")
    return answer


class RspamdFilter:
    """See the module docstring."""

    name = "rspamd"

    def __init__(self, settings: FilterSettings) -> None:
        self.section = settings.rspamd

    @property
    def rewrites_message(self) -> bool:
        return self.section.rewrite_subject

    async def apply(self, message: FilterMessage) -> Decision:
        headers = request_headers(message.envelope, self.section.password)
        try:
            answer = await check(
                self.section.url, message.to_bytes(), headers, self.section.timeout
            )
        except CheckError as error:
            return self._failed(str(error))
        action = str(answer["action"])
        verdict = self.section.actions.get(action, "continue")
        reason = f"action {_UNSAFE.sub('?', action)[:40]}, score {_number(answer.get('score'))}"
        if verdict == "reject":
            return Decision.reject(reason, self.section.reject_reply)
        if verdict == "defer":
            return Decision.defer(reason, self.section.defer_reply)
        if verdict == "discard":
            return Decision.discard(reason)
        if self.section.add_headers:
            add_headers(message, answer.get("milter"))
        subject = answer.get("subject")
        if (
            action == "rewrite subject"
            and self.section.rewrite_subject
            and isinstance(subject, str)
        ):
            message.headers.set("Subject", one_line(subject))
        return Decision.proceed(reason)

    def _failed(self, why: str) -> Decision:
        action = "deferred" if self.section.on_error == "defer" else "accepted"
        metrics.SCANNER_ERRORS.labels(self.name, action).inc()
        log.warning("rspamd check failed (%s); message %s", why, action)
        if self.section.on_error == "defer":
            return Decision.defer(f"check failed: {why}")
        return Decision.proceed(f"not checked: {why}")


def add_headers(message: FilterMessage, milter: object) -> None:
    """The ``milter.add_headers`` rspamd asks for: ``{name: value | {value} | [..]}``."""
    wanted = milter.get("add_headers") if isinstance(milter, dict) else None
    if not isinstance(wanted, dict):
        return
    for name, spec in list(wanted.items())[:50]:
        if not isinstance(name, str) or not _NAME.match(name):
            continue
        for value in spec if isinstance(spec, list) else [spec]:
            text = value.get("value") if isinstance(value, dict) else value
            if isinstance(text, str | int | float):
                message.headers.append(name, one_line(str(text)))


def one_line(text: str) -> str:
    """``text`` in printable ASCII (others as ``?``, controls as spaces), ``MAX_VALUE`` at most."""
    ascii_text = text.encode("ascii", "replace").decode("ascii")
    return _UNSAFE.sub(" ", ascii_text).strip()[:MAX_VALUE]


def _number(value: object) -> str:
    return f"{value:.2f}" if isinstance(value, int | float) else "?"
