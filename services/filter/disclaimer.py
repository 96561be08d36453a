"""Built-in filter ``disclaimer``: append a text to the body of the message, once.

Which text: ``[filter.disclaimer.domains."<domain>"]`` for the envelope
sender's domain (or its nearest listed parent), else the table's own
``text``/``html`` unless ``only_domains = true``. ``text`` goes at the end of
``text/plain`` body parts, ``html`` before ``</body>`` of ``text/html`` ones.

Which parts: the message's body, not its attachments. A ``text/plain`` or
``text/html`` message is its body; in ``multipart/alternative`` every
alternative is; in ``multipart/mixed`` or ``related`` the first part (and,
recursively, its body). Nothing inside ``multipart/signed``,
``multipart/encrypted`` or S/MIME (``application/pkcs7-mime``), nor a text
part carrying inline PGP, is touched: that would break the signature or the
encryption. Attached messages (``message/rfc822``) are never changed.

How: through the parsed-MIME path (``postline.filter.mime_edit``), so the
MIME structure, boundaries and character sets stay valid; each changed part
keeps its charset when the disclaimer fits in it (UTF-8 otherwise) and a
7-bit transfer encoding. The first version adds ``X-Postline-Disclaimer:
added``; a message that carries that field already (a redelivery, a loop
through the relay, a client's own copy) is left as it is: never twice.

Rewrites the message: list it before ``dkim``. Always ``CONTINUE``. The MIME
walk bounds the structure first (``MimeTooComplex``: the chain rejects).
"""

from __future__ import annotations

from email.message import EmailMessage
from typing import TYPE_CHECKING

from postline.filter.api import Decision
from postline.filter.message import FilterMessage
from postline.filter.mime import MimeLimits, parts_of
from postline.filter.mime_edit import append_text, apply_entity, entity_of
from postline.filter.offload import off_loop
from postline.filter.sections import DisclaimerText

if TYPE_CHECKING:
    from postline.filter.settings import FilterSettings

MARK = "X-Postline-Disclaimer"
SEALED = ("multipart/signed", "multipart/encrypted")
_PGP = ("-----BEGIN PGP SIGNED MESSAGE-----", "-----BEGIN PGP MESSAGE-----")


class DisclaimerFilter:
    """See the module docstring."""

    name = "disclaimer"
    rewrites_message = True

    def __init__(self, settings: FilterSettings) -> None:
        self.section = settings.disclaimer
        self.limits = MimeLimits(settings.max_mime_depth, settings.max_mime_parts)

    def text_for(self, mail_from: str) -> DisclaimerText | None:
        _, at, domain = mail_from.rpartition("@")
        labels = domain.lower().rstrip(".").split(".") if at else []
        for i in range(len(labels)):
            found = self.section.domains.get(".".join(labels[i:]))
            if found is not None:
                return found
        if self.section.only_domains or not (self.section.text or self.section.html):
            return None
        return DisclaimerText(text=self.section.text, html=self.section.html)

    async def apply(self, message: FilterMessage) -> Decision:
        chosen = self.text_for(message.envelope.mail_from)
        if chosen is None:
            return Decision.proceed("none for this sender")
        if MARK in message.headers:
            return Decision.proceed("already added")
        await parts_of(message, self.limits)  # bounds the structure before the email package
        added = await off_loop(lambda: add_disclaimer(message, chosen), len(message.body))
        if not added:
            return Decision.proceed("no part to add it to")
        message.headers.append(MARK, "added")
        return Decision.proceed(f"added to {added} part{'s' if added > 1 else ''}")


def add_disclaimer(message: FilterMessage, chosen: DisclaimerText) -> int:
    """Add ``chosen`` to the body parts of ``message``; how many parts changed (blocking)."""
    entity = entity_of(message)
    changed = 0
    for part in body_parts(entity):
        html = part.get_content_subtype() == "html"
        addition = chosen.html if html else chosen.text
        if addition and not _inline_pgp(part) and append_text(part, addition, html=html):
            changed += 1
    if changed:
        apply_entity(message, entity)
    return changed


def body_parts(entity: EmailMessage) -> list[EmailMessage]:
    """The text parts that make the body of ``entity`` (module docstring)."""
    content_type = entity.get_content_type()
    if content_type in SEALED or content_type.endswith("pkcs7-mime"):
        return []
    if entity.is_multipart():
        children = list(entity.iter_parts())
        if content_type == "multipart/alternative":
            return [p for child in children for p in body_parts(child)]  # type: ignore[arg-type]
        return body_parts(children[0]) if children else []  # type: ignore[arg-type]
    if content_type in ("text/plain", "text/html") and entity.get_content_disposition() != (
        "attachment"
    ):
        return [entity]
    return []


def _inline_pgp(part: EmailMessage) -> bool:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return False
    text = payload.decode("ascii", errors="replace")
    return any(marker in text for marker in _PGP)
