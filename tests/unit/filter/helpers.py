"""What the filter unit tests share: settings, envelopes, messages and MIME samples."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

from postline.filter.message import FilterMessage
from postline.filter.settings import FilterSettings
from postline.models import Envelope

ARRIVED = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


def settings(**section: Any) -> FilterSettings:
    """``[filter]`` with ``section`` and the relay's name set (as ``build`` resolves it)."""
    return FilterSettings.model_validate({"hostname": "relay.test", **section})


def envelope(**fields: Any) -> Envelope:
    values: dict[str, Any] = {
        "message_id": "4Q8ZT1K2M7XHBN3C",
        "mail_from": "mary@company.test",
        "rcpt_to": ("john@partner.test",),
        "received_at": ARRIVED,
        "client_ip": "192.0.2.7",
        "helo": "laptop.company.test",
        "auth_user": "mary",
        "tls": True,
    }
    values.update(fields)
    return Envelope(**values)


def message(data: bytes | EmailMessage, **fields: Any) -> FilterMessage:
    raw = crlf_bytes(data) if isinstance(data, EmailMessage) else data
    return FilterMessage(envelope(**fields), raw)


def crlf_bytes(mail: EmailMessage) -> bytes:
    return mail.as_bytes(policy=mail.policy.clone(linesep="\r\n"))


def plain(body: str = "Hello John,\n\nsee you.\n", **headers: str) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = headers.pop("From", "Mary <mary@company.test>")
    mail["To"] = headers.pop("To", "john@partner.test")
    mail["Subject"] = headers.pop("Subject", "hello")
    for name, value in headers.items():
        mail[name.replace("_", "-")] = value
    mail.set_content(body)
    return mail


def with_attachment(
    filename: str, content: bytes, maintype: str = "application", subtype: str = "octet-stream"
) -> EmailMessage:
    mail = plain()
    mail.add_attachment(content, maintype=maintype, subtype=subtype, filename=filename)
    return mail


def alternative(
    text: str = "Hello\n", html: str = "<html><body><p>Hello</p></body></html>\n"
) -> EmailMessage:
    mail = plain(text)
    mail.add_alternative(html, subtype="html")
    return mail
