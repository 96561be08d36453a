"""The ``[filter.<name>]`` tables of the built-in policy filters (pure pydantic, no I/O).

Each table is a model with ``extra="forbid"``, so a misspelt key stops the
service at start naming it (``filter.dkim.keys.0.selector: ...``). Imported by
``postline.filter.settings`` (and so by every service reading the
configuration): nothing here imports a filter implementation or a library it
needs (dkimpy, re2). Checks that need those (a key file that parses, a
regular expression RE2 accepts) are made when the filter is built.

Replies are written as SMTP reply lines, ``"550 5.7.1 Text"`` (``Reply``);
verdicts as their names (``"reject"``, ``"defer"``, ``"discard"``...).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)

from postline.reply import SmtpReply
from postline.values import Network, Size

_REPLY = re.compile(r"^([245]\d\d)(?:\s+(.*))?$")
_HEADER_NAME = re.compile(r"^[\x21-\x39\x3b-\x7e]+$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9])?\.)*[A-Za-z0-9-]+$")


def parse_reply(value: object) -> SmtpReply:
    """``"550 5.7.1 Text"`` -> ``SmtpReply``; a reply value is kept as it is."""
    if isinstance(value, SmtpReply):
        return value
    if not isinstance(value, str) or not (match := _REPLY.match(value.strip())):
        raise ValueError("expected an SMTP reply such as '550 5.7.1 Message refused'")
    if any(ord(c) < 32 or ord(c) > 126 for c in value.strip()):
        raise ValueError("an SMTP reply is printable ASCII")
    parsed = SmtpReply.parse(int(match.group(1)), match.group(2) or "")
    if not parsed.is_consistent:
        raise ValueError(f"{value!r}: the enhanced code's class differs from the reply's")
    return parsed


def _permanent(value: SmtpReply) -> SmtpReply:
    if not value.is_permanent:
        raise ValueError("a refusal's reply is a 5xx reply")
    return value


def _transient(value: SmtpReply) -> SmtpReply:
    if not value.is_transient:
        raise ValueError("a deferral's reply is a 4xx reply")
    return value


Reply = Annotated[SmtpReply, BeforeValidator(parse_reply), PlainSerializer(str, return_type=str)]
RefusalReply = Annotated[Reply, AfterValidator(_permanent)]
DeferralReply = Annotated[Reply, AfterValidator(_transient)]
Verdict = Literal["reject", "defer", "discard", "accept"]
Block = Literal["reject", "discard"]


def header_name(value: str) -> str:
    if not _HEADER_NAME.match(value):
        raise ValueError(f"{value!r} is not a header field name")
    return value


def domain_name(value: str) -> str:
    """A DNS name, lower case (IDNA for non-ASCII), no trailing dot."""
    text = value.strip().rstrip(".").lower()
    if not text.isascii():
        text = text.encode("idna").decode("ascii")
    if not _DOMAIN.match(text):
        raise ValueError(f"{value!r} is not a domain name")
    return text


HeaderName = Annotated[str, BeforeValidator(header_name)]
Domain = Annotated[str, BeforeValidator(domain_name)]


class Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DkimKeySettings(Table):
    """One signing key of a domain."""

    domain: Domain = Field(description="Signing domain (d=); the From: domain it signs for.")
    selector: str = Field(
        pattern=r"^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$",
        max_length=63,
        description="Selector (s=): the key is published at <selector>._domainkey.<domain>.",
    )
    key_file: Path = Field(
        description="Private key, PEM (RSA of 2048 bits or more, or Ed25519), or dkimpy's "
        "base64 Ed25519 seed; re-read when the file changes (Secret mounts rotate in place)."
    )


DEFAULT_SIGNED = (
    "From", "To", "Cc", "Subject", "Date", "Message-ID", "Reply-To", "MIME-Version",
    "Content-Type", "Content-Transfer-Encoding", "List-Unsubscribe",
)  # fmt: skip


class DkimSettings(Table):
    """DKIM signing (dkimpy)."""

    keys: list[DkimKeySettings] = Field(
        default_factory=list,
        description="Signing keys ([[filter.dkim.keys]] with domain, selector, key_file); two "
        "keys of one domain (RSA and Ed25519) sign each message twice.",
    )
    headers: list[HeaderName] = Field(
        default_factory=lambda: list(DEFAULT_SIGNED),
        description="Header fields signed (those present in the message).",
    )
    oversign: list[HeaderName] = Field(
        default_factory=lambda: ["From"],
        description="Fields signed once more than present, so none can be added after signing.",
    )
    canonicalization: Literal[
        "relaxed/relaxed", "relaxed/simple", "simple/relaxed", "simple/simple"
    ] = Field(default="relaxed/relaxed", description="Header/body canonicalisation (c=).")
    subdomains: bool = Field(
        default=False,
        description="Sign mail From: a subdomain with its parent domain's key when it has none.",
    )
    reload_interval: float = Field(
        default=5.0, ge=0, le=3600, description="Seconds between checks of the key files."
    )

    @field_validator("headers")
    @classmethod
    def _signs_from(cls, headers: list[str]) -> list[str]:
        if "from" not in {h.lower() for h in headers}:
            raise ValueError("From must be signed (RFC 6376 5.4)")
        return headers


class RuleSettings(Table):
    """One rule: what it tests, how, and what a match decides."""

    on: str = Field(
        pattern=r"^(header:[\x21-\x39\x3b-\x7e]+|sender|recipient|auth_user|client_ip|text)$",
        description="What is tested: header:NAME, sender, recipient (any), auth_user, "
        "client_ip, or text (the decoded text parts).",
    )
    contains: str | None = Field(default=None, min_length=1, description="A substring.")
    regex: str | None = Field(default=None, min_length=1, description="An RE2 expression.")
    network: list[Network] = Field(
        default_factory=list, description="For client_ip: networks the address is in."
    )
    ignore_case: bool = Field(default=True, description="Compare case-insensitively.")
    verdict: Verdict = Field(default="reject", description="What a match decides.")
    reason: str = Field(min_length=1, max_length=200, description="Reason for the trails.")
    reply: Reply | None = Field(default=None, description="SMTP reply for reject/defer.")

    @model_validator(mode="after")
    def _one_test(self) -> RuleSettings:
        given = [t for t in ("contains", "regex") if getattr(self, t) is not None]
        if self.network:
            given.append("network")
        if len(given) != 1:
            raise ValueError("a rule has exactly one of contains, regex, network")
        if self.network and self.on != "client_ip":
            raise ValueError("network applies to on = 'client_ip' only")
        return self


class RulesSettings(Table):
    """Ordered rules on headers, envelope and text (first match decides)."""

    rule: list[RuleSettings] = Field(
        default_factory=list, description="The rules ([[filter.rules.rule]]), in order."
    )
    max_text_size: Size = Field(
        default=1024 * 1024, description="Decoded text per part that text rules look at."
    )


DEFAULT_BLOCKED = (
    "ade", "adp", "apk", "appx", "bat", "cab", "chm", "cmd", "com", "cpl", "dll", "dmg",
    "exe", "hta", "ins", "iso", "isp", "jar", "js", "jse", "lib", "lnk", "mde", "msc",
    "msi", "msix", "msp", "mst", "nsh", "pif", "ps1", "scr", "sct", "shb", "sys", "vb",
    "vbe", "vbs", "vxd", "wsc", "wsf", "wsh",
)  # fmt: skip


class AttachmentSettings(Table):
    """Attachments by name, declared type and detected type."""

    block_extensions: list[str] = Field(
        default_factory=lambda: list(DEFAULT_BLOCKED),
        description="File-name extensions refused (without the dot, any case).",
    )
    allow_extensions: list[str] = Field(
        default_factory=list,
        description="If not empty, only these extensions are allowed (others refused).",
    )
    block_types: list[str] = Field(
        default_factory=list,
        description="Declared MIME types refused: type/subtype, or a prefix and * "
        "(application/x-*).",
    )
    block_detected: list[str] = Field(
        default_factory=lambda: ["application/x-msdownload", "application/x-executable"],
        description="Detected content types refused (from the first bytes, whatever the "
        "name says): application/x-msdownload (PE), application/x-executable (ELF), "
        "application/x-mach-binary, application/zip, application/pdf...",
    )
    look_inside_zip: bool = Field(
        default=True, description="Apply block/allow_extensions to the names inside .zip files."
    )
    verdict: Block = Field(default="reject", description="What a refused attachment decides.")
    reply: RefusalReply = Field(
        default=parse_reply("552 5.7.0 Attachment type not allowed"),
        description="Reply of a rejection.",
    )

    @field_validator("block_extensions", "allow_extensions")
    @classmethod
    def _bare(cls, names: list[str]) -> list[str]:
        return [name.strip().lstrip(".").lower() for name in names if name.strip()]


class SizeSettings(Table):
    """Largest message per sender domain or authenticated user."""

    max_size: Size | None = Field(default=None, description="Limit for everyone else.")
    domains: dict[Domain, Size] = Field(
        default_factory=dict, description="Limit by envelope sender domain."
    )
    users: dict[str, Size] = Field(default_factory=dict, description="Limit by auth user.")
    reply: RefusalReply = Field(
        default=parse_reply("552 5.3.4 Message too big for this sender"),
        description="Reply of a rejection.",
    )


class DisclaimerText(Table):
    text: str | None = Field(default=None, description="Appended to text/plain parts.")
    html: str | None = Field(default=None, description="Inserted before </body> of text/html.")


class DisclaimerSettings(DisclaimerText):
    """A text appended once to the message's body parts."""

    domains: dict[Domain, DisclaimerText] = Field(
        default_factory=dict,
        description='Per envelope sender domain ([filter.disclaimer.domains."example.org"]); '
        "other domains get text/html, when set.",
    )
    only_domains: bool = Field(
        default=False, description="Add a disclaimer only for the domains listed."
    )


class SenderSettings(Table):
    """The From:/Sender: addresses an authenticated user may use."""

    users_file: Path | None = Field(
        default=None,
        description="The submission users file ([users.NAME] senders = [...]); without it, "
        "From: must be the envelope sender (which ingress already checked).",
    )
    check_sender_header: bool = Field(default=True, description="Check Sender: too.")
    unauthenticated: bool = Field(
        default=False, description="Also check mail relayed without AUTH (against MAIL FROM)."
    )
    verdict: Block = Field(default="reject", description="What a mismatch decides.")
    reply: RefusalReply = Field(
        default=parse_reply("550 5.7.1 From: address not allowed for this user"),
        description="Reply of a rejection.",
    )


class HeadersSettings(Table):
    """The header fix-ups, fields to remove and to add."""

    remove: list[HeaderName] = Field(
        default_factory=list, description="Fields removed by name (e.g. X-Originating-IP)."
    )
    add: dict[HeaderName, str] = Field(
        default_factory=dict, description="Fixed fields appended, name = value."
    )
    hide_client: bool = Field(
        default=False,
        description="Leave the client's HELO name and address out of the Received field.",
    )

    @field_validator("add")
    @classmethod
    def _one_line(cls, add: dict[str, str]) -> dict[str, str]:
        for name, value in add.items():
            if any(c in value for c in "\r\n\x00"):
                raise ValueError(f"{name}: a value is one line")
        return add
