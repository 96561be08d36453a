"""The filter API: what a filter is and what it may answer.

A filter is any object with a ``name`` and a coroutine
``apply(message: FilterMessage) -> Decision`` (Haraka's hooks, reduced to the
one after-queue phase). The chain runs filters in ``[filter] chain`` order and
stops at the first verdict other than ``CONTINUE``.

The verdict set is closed and small:

* ``CONTINUE`` - no objection; run the next filter (Haraka ``CONT``).
* ``ACCEPT``   - pass the message now; later filters do not run (``OK``).
* ``REJECT``   - refuse for good: every recipient fails with a 5xx reply and
  the sender gets a DSN (``DENY``).
* ``DEFER``    - cannot decide now: the message waits in a retry tier
  (``[filter] defer_schedule``) and is filtered again; once the schedule is
  used up it is parked (``DENYSOFT``).
* ``DISCARD``  - drop the message on purpose: one ``discarded`` event per
  recipient (failure trail), no DSN, nothing delivered (Postfix ``DISCARD``).

A filter that raises is requeued at once (and parked after ``[broker]
delivery_limit`` deliveries); one that raises ``postline.bus.Poison`` parks the
message at once.

Changing the message: a filter edits ``message.headers`` (adding fields keeps
every other byte as it came) or the body (``message.replace_body``, or the
parsed-MIME path of ``postline.filter.mime_edit``). A filter that may change
the body or change/remove existing header fields sets ``rewrites_message =
True`` (class or instance attribute): such a filter must run before ``dkim``,
which the registry checks at start. Adding fields is not a rewrite.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from postline.reply import SmtpReply

if TYPE_CHECKING:
    from postline.filter.message import FilterMessage
    from postline.filter.settings import FilterSettings


class Verdict(StrEnum):
    """A filter's answer (see the module docstring)."""

    CONTINUE = "continue"
    ACCEPT = "accept"
    REJECT = "reject"
    DEFER = "defer"
    DISCARD = "discard"


@dataclass(frozen=True)
class Decision:
    """A verdict with a reason for the trails and, optionally, the SMTP reply to record.

    ``reply`` must be permanent (5xx) for ``REJECT`` and transient (4xx) for ``DEFER``;
    when it is ``None`` the service uses its default reply for the verdict.
    ``CONTINUE``, ``ACCEPT`` and ``DISCARD`` take no reply.
    """

    verdict: Verdict
    reason: str = ""
    reply: SmtpReply | None = None

    def __post_init__(self) -> None:
        if self.reply is None:
            return
        if self.verdict is Verdict.REJECT and not self.reply.is_permanent:
            raise ValueError(f"a REJECT needs a 5xx reply, not {self.reply.code}")
        if self.verdict is Verdict.DEFER and not self.reply.is_transient:
            raise ValueError(f"a DEFER needs a 4xx reply, not {self.reply.code}")
        if self.verdict in (Verdict.CONTINUE, Verdict.ACCEPT, Verdict.DISCARD):
            raise ValueError(f"{self.verdict.value} takes no reply")

    @classmethod
    def proceed(cls, reason: str = "") -> Decision:
        """``CONTINUE``: let the next filter look."""
        return cls(Verdict.CONTINUE, reason)

    @classmethod
    def accept(cls, reason: str = "") -> Decision:
        return cls(Verdict.ACCEPT, reason)

    @classmethod
    def reject(cls, reason: str, reply: SmtpReply | None = None) -> Decision:
        return cls(Verdict.REJECT, reason, reply)

    @classmethod
    def defer(cls, reason: str, reply: SmtpReply | None = None) -> Decision:
        return cls(Verdict.DEFER, reason, reply)

    @classmethod
    def discard(cls, reason: str) -> Decision:
        return cls(Verdict.DISCARD, reason)


class Filter(Protocol):
    """One step of the chain. ``apply`` must not block the event loop (use
    ``asyncio.to_thread`` for CPU-heavy work); it is cancelled when the message's
    ``[filter] timeout`` runs out (one budget for parsing, every filter and re-assembly)."""

    @property
    def name(self) -> str: ...

    async def apply(self, message: FilterMessage) -> Decision: ...


FilterFactory = Callable[["FilterSettings"], Filter]
"""What a chain entry names: called once at startup with the ``[filter]`` settings."""


def rewrites_message(step: object) -> bool:
    """Whether ``step`` (a filter or its factory) declares ``rewrites_message = True``.

    Only a real ``True`` counts, so a class whose attribute is a property (decided
    per instance, from its settings) is judged on its instances.
    """
    return getattr(step, "rewrites_message", False) is True
