"""Built-in filter ``rules``: ordered rules on headers, envelope and text; the first match decides.

Each ``[[filter.rules.rule]]`` tests one thing (``on``):

* ``header:NAME`` - every field called NAME, unfolded and RFC 2047-decoded;
* ``sender`` - the envelope sender (``MAIL FROM``, ``""`` for ``<>``);
* ``recipient`` - each envelope recipient (any one matching is a match);
* ``auth_user`` - the authenticated user (no user: no match);
* ``client_ip`` - the client's address (``network``: in one of the networks);
* ``text`` - the decoded text parts (``text/*`` that are not attachments,
  transfer encoding and charset undone, at most ``max_text_size`` each).

with a substring (``contains``) or a regular expression (``regex``), both
case-insensitive unless ``ignore_case = false``. The first rule that matches
answers its ``verdict`` (reject, defer, discard, accept) with its ``reason``
(and ``reply``); no match: ``CONTINUE``.

Regular expressions run on RE2 (``google-re2``): matching is linear in the
text, whatever the pattern, so no pattern and no message can make a worker
backtrack for ever; RE2 refuses what it cannot do in linear time (back
references, look-around), which stops the service at start naming the rule.
Text rules run off the event loop for large messages; the MIME walk is the
bounded one of ``postline.filter.mime``.
"""

from __future__ import annotations

import email.header
import functools
import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import re2

from postline.filter.api import Decision
from postline.filter.message import FilterMessage
from postline.filter.mime import MimeLimits, Part, parts_of, text_of
from postline.filter.offload import off_loop
from postline.filter.sections import RuleSettings

if TYPE_CHECKING:
    from postline.filter.settings import FilterSettings

Test = Callable[[str], bool]


@dataclass(frozen=True)
class Rule:
    """One compiled rule: what it looks at, its test and the decision it answers."""

    on: str
    test: Test
    decision: Decision


class RulesFilter:
    """The rules of ``[filter.rules]``, in order (module docstring)."""

    name = "rules"

    def __init__(self, settings: FilterSettings) -> None:
        self.rules = [compile_rule(index, rule) for index, rule in enumerate(settings.rules.rule)]
        self.max_text = settings.rules.max_text_size
        self.limits = MimeLimits(settings.max_mime_depth, settings.max_mime_parts)

    async def apply(self, message: FilterMessage) -> Decision:
        texts: list[str] | None = None
        for rule in self.rules:
            if rule.on == "text":
                if texts is None:
                    texts = await self._texts(message)
                found = await off_loop(functools.partial(_any, rule.test, texts), _size(texts))
            else:
                found = _any(rule.test, values_of(rule.on, message))
            if found:
                return rule.decision
        return Decision.proceed()

    async def _texts(self, message: FilterMessage) -> list[str]:
        parts = await parts_of(message, self.limits)
        chosen = [p for p in parts if is_body_text(p)]
        size = sum(min(p.size, self.max_text) for p in chosen)
        return await off_loop(lambda: [text_of(p, self.max_text) for p in chosen], size)


def compile_rule(index: int, rule: RuleSettings) -> Rule:
    """A ``Rule``; ``ValueError`` naming ``rule[index]`` for a bad pattern or reply."""
    where = f"[[filter.rules.rule]] {index + 1} ({rule.reason!r})"
    try:
        decision = _decision(rule)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None
    if rule.network:
        networks = tuple(rule.network)
        return Rule(rule.on, lambda value: _in_networks(value, networks), decision)
    if rule.contains is not None:
        needle = rule.contains.casefold() if rule.ignore_case else rule.contains
        if rule.ignore_case:
            return Rule(rule.on, lambda value: needle in value.casefold(), decision)
        return Rule(rule.on, lambda value: needle in value, decision)
    options = re2.Options()
    options.log_errors = False
    options.case_sensitive = not rule.ignore_case
    try:
        pattern = re2.compile(rule.regex or "", options)
    except re2.error as error:
        message = error.args[0] if error.args else error
        text = message.decode(errors="replace") if isinstance(message, bytes) else str(message)
        raise ValueError(f"{where}: regex refused by RE2: {text}") from None
    return Rule(rule.on, lambda value: pattern.search(value) is not None, decision)


def _decision(rule: RuleSettings) -> Decision:
    if rule.verdict == "reject":
        return Decision.reject(rule.reason, rule.reply)
    if rule.verdict == "defer":
        return Decision.defer(rule.reason, rule.reply)
    if rule.reply is not None:
        raise ValueError(f"a {rule.verdict} rule takes no reply")
    if rule.verdict == "discard":
        return Decision.discard(rule.reason)
    return Decision.accept(rule.reason)


def values_of(on: str, message: FilterMessage) -> list[str]:
    """What a non-text rule looks at in ``message``."""
    envelope = message.envelope
    if on.startswith("header:"):
        return [decoded_header(v) for v in message.headers.get_all(on.removeprefix("header:"))]
    if on == "sender":
        return [envelope.mail_from]
    if on == "recipient":
        return list(envelope.rcpt_to)
    if on == "auth_user":
        return [envelope.auth_user] if envelope.auth_user else []
    if on == "client_ip":
        return [envelope.client_ip] if envelope.client_ip else []
    raise ValueError(f"unknown rule target {on!r}")


def decoded_header(value: str) -> str:
    """``value`` with RFC 2047 encoded words decoded; as it is when they do not decode."""
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except (LookupError, ValueError, UnicodeError):
        return value


def is_body_text(part: Part) -> bool:
    return part.maintype == "text" and not part.is_attachment


def _any(test: Test, values: Iterable[str]) -> bool:
    return any(test(value) for value in values)


def _size(texts: list[str] | None) -> int:
    return sum(len(t) for t in texts or [])


def _in_networks(
    value: str, networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
) -> bool:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)
