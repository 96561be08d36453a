"""Built-in filter ``size``: the largest message per authenticated user or sender domain.

The limit for a message is, first found: ``[filter.size] users`` for its
authenticated user, ``domains`` for its envelope sender's domain (or the
nearest parent domain listed), then ``max_size``; none: no limit. The size is
the message's bytes as the filter has them at this point of the chain
(filters before this one may have added fields). Over the limit: ``REJECT``
with ``reply`` (default ``552 5.3.4``; RFC 3463: message too big for policy),
the reason giving both sizes. Ingress's ``max_message_size`` still caps
everyone, before the queue.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from postline.filter.api import Decision
from postline.filter.message import FilterMessage

if TYPE_CHECKING:
    from postline.filter.settings import FilterSettings


class SizeFilter:
    name = "size"

    def __init__(self, settings: FilterSettings) -> None:
        self.section = settings.size

    def limit_for(self, message: FilterMessage) -> tuple[int | None, str]:
        """The limit and where it comes from (for the reason)."""
        envelope = message.envelope
        if envelope.auth_user and envelope.auth_user in self.section.users:
            return self.section.users[envelope.auth_user], "its user"
        _, at, domain = envelope.mail_from.rpartition("@")
        labels = domain.lower().rstrip(".").split(".") if at else []
        for i in range(len(labels)):
            candidate = ".".join(labels[i:])
            if candidate in self.section.domains:
                return self.section.domains[candidate], f"domain {candidate}"
        return self.section.max_size, "everyone"

    async def apply(self, message: FilterMessage) -> Decision:
        limit, source = self.limit_for(message)
        size = message.size
        if limit is None or size <= limit:
            return Decision.proceed()
        reason = f"message of {size} bytes over the {limit}-byte limit of {source}"
        return Decision.reject(reason, self.section.reply)
