"""A tiny custom filter for end-to-end tests: ``tests.support.trace_filter:RejectTagged``.

Named in ``[filter] chain`` it rejects every message that carries the header
``X-Test-Verdict: reject`` with ``550 5.7.1 Rejected by the test policy`` (the
reason says which header did it) and lets every other message continue.
The relay process imports it as any site's own filter module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from postline.filter.api import Decision
from postline.reply import SmtpReply

if TYPE_CHECKING:
    from postline.filter.message import FilterMessage
    from postline.filter.settings import FilterSettings

HEADER = "X-Test-Verdict"
REPLY = SmtpReply(code=550, enhanced="5.7.1", text="Rejected by the test policy")


class RejectTagged:
    """Reject messages tagged ``X-Test-Verdict: reject``."""

    name = "reject-tagged"

    def __init__(self, settings: FilterSettings) -> None:
        self.settings = settings

    async def apply(self, message: FilterMessage) -> Decision:
        if (message.headers.get(HEADER) or "").strip().lower() == "reject":
            return Decision.reject(f"{HEADER}: reject", REPLY)
        return Decision.proceed()
