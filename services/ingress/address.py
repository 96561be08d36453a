"""RFC 5321 envelope addresses and MAIL/RCPT parameters, parsed by the grammar.

``parse_path(text, allow_null=...)`` takes what follows ``MAIL FROM:`` or
``RCPT TO:`` and returns the mailbox (``None`` for the null sender ``<>``), the
ESMTP parameters and whether a source route was present. It never splits on
``@`` naively: the local part is a dot-string or a quoted string (which may hold
``@``, ``%``, ``!``), the domain is a host name or an address literal
(``[192.0.2.1]``, ``[IPv6:2001:db8::1]``). Source routes (``<@a,@b:u@c>``) are
accepted and discarded, as RFC 5321 4.1.1.3 and C require. Trailing dots,
empty labels, missing domains and over-long parts are syntax errors.

The result is canonical: domains in lower case, literals normalised, a quoted
local part unquoted when it is a plain dot-string. Non-ASCII is parsed (RFC
6531) but reported with ``AddressError.needs_smtputf8`` unless allowed.
Internationalised labels (and ``xn--`` A-labels) must be valid IDNA 2008
(the ``idna`` package: what dnspython and delivery resolve), not IDNA 2003.

Pure functions; no I/O, no policy.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

import idna

_ATEXT = "!#$%&'*+-/=?^_`{|}~"
_LDH_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$", re.IGNORECASE)
_KEYWORD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")
MAX_LOCAL = 64
MAX_DOMAIN = 255
MAX_PATH = 256


class AddressError(ValueError):
    """The text is not an RFC 5321 path; ``needs_smtputf8`` when only non-ASCII is wrong."""

    def __init__(self, reason: str, *, needs_smtputf8: bool = False) -> None:
        super().__init__(reason)
        self.needs_smtputf8 = needs_smtputf8


@dataclass(frozen=True)
class Mailbox:
    """``local@domain`` in canonical form."""

    local: str
    domain: str

    @property
    def is_ascii(self) -> bool:
        return self.local.isascii() and self.domain.isascii()

    def __str__(self) -> str:
        return f"{self.local}@{self.domain}"


@dataclass(frozen=True)
class Path:
    """A parsed ``MAIL FROM``/``RCPT TO`` argument."""

    mailbox: Mailbox | None
    params: dict[str, str | None]
    routed: bool = False


def parse_path(text: str, *, allow_null: bool, smtputf8: bool = True) -> Path:
    """Parse ``<mailbox> [SP params]`` (a bare ``mailbox`` is tolerated); see module doc."""
    text = text.lstrip(" ")
    if text.startswith("<"):
        end = _path_end(text)
        inner, rest = text[1:end], text[end + 1 :]
    else:
        inner, space, rest = text.partition(" ")
        rest = space + rest
    if rest and not rest.startswith(" "):
        raise AddressError("junk after the path")
    if len(inner) > MAX_PATH:
        raise AddressError("path too long")
    params = parse_params(rest.strip(" "))
    if inner == "":
        if not allow_null or not text.startswith("<"):
            raise AddressError("empty address")
        return Path(None, params)
    routed = inner.startswith("@")
    if routed:
        inner = _strip_route(inner)
    mailbox = parse_mailbox(inner)
    if not smtputf8 and not (mailbox.is_ascii and inner.isascii()):
        raise AddressError("non-ASCII address without SMTPUTF8", needs_smtputf8=True)
    return Path(mailbox, params, routed)


def parse_mailbox(text: str) -> Mailbox:
    """``Local-part "@" ( Domain / address-literal )`` -> ``Mailbox``."""
    _check_chars(text)
    if text.startswith('"'):
        content, end = _quoted(text)
        local = _canonical_local(content)
    else:
        end = text.find("@")
        if end < 0:
            raise AddressError("no domain")
        local = text[:end]
        _check_dot_string(local)
    if text[end : end + 1] != "@":
        raise AddressError("no '@' after the local part")
    if len(local.encode()) > MAX_LOCAL:
        raise AddressError("local part too long")
    return Mailbox(local, parse_domain(text[end + 1 :]))


def parse_domain(text: str) -> str:
    """A host name (checked label by label) or an address literal; canonical form."""
    if text.startswith("["):
        return _literal(text)
    if not text or len(text.encode()) > MAX_DOMAIN:
        raise AddressError("missing or over-long domain")
    labels = text.split(".")
    for label in labels:
        _check_label(label)
    return ".".join(labels).lower()


def parse_params(text: str) -> dict[str, str | None]:
    """ESMTP parameters ``KEY[=value] ...``; keys upper-cased; duplicates are errors."""
    params: dict[str, str | None] = {}
    for item in text.split():
        key, eq, value = item.partition("=")
        if not _KEYWORD.match(key) or (eq and not _valid_value(value)):
            raise AddressError("malformed parameter")
        key = key.upper()
        if key in params:
            raise AddressError("duplicate parameter")
        params[key] = value if eq else None
    return params


# -- helpers ---------------------------------------------------------------------------------
def _path_end(text: str) -> int:
    """Index of the ``>`` closing the path at ``text[0] == '<'``, honouring quotes."""
    quoted = escaped = False
    for index in range(1, len(text)):
        char = text[index]
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == ">" and not quoted:
            return index
    raise AddressError("unterminated path")


def _strip_route(inner: str) -> str:
    """``@a,@b:mailbox`` -> ``mailbox`` after checking every route domain."""
    route, colon, mailbox = inner.partition(":")
    if not colon:
        raise AddressError("source route without ':'")
    for hop in route.split(","):
        if not hop.startswith("@"):
            raise AddressError("malformed source route")
        parse_domain(hop[1:])
    return mailbox


def _check_chars(text: str) -> None:
    for char in text:
        if ord(char) < 32 or ord(char) == 127 or "\udc80" <= char <= "\udcff":
            raise AddressError("control or undecodable character in address")


def _is_atext(char: str) -> bool:
    if char.isascii():
        return char.isalnum() or char in _ATEXT
    return char.isprintable() and not char.isspace()


def _check_dot_string(local: str) -> None:
    if not local:
        raise AddressError("empty local part")
    for atom in local.split("."):
        if not atom or not all(_is_atext(char) for char in atom):
            raise AddressError("malformed local part")


def _quoted(text: str) -> tuple[str, int]:
    """Content of the quoted string at ``text[0]`` and the index just after it."""
    content: list[str] = []
    index = 1
    while index < len(text):
        char = text[index]
        if char == "\\":
            if index + 1 >= len(text) or ord(text[index + 1]) < 32:
                raise AddressError("bad quoted pair")
            content.append(text[index + 1])
            index += 2
            continue
        if char == '"':
            return "".join(content), index + 1
        if not (char == " " or (33 <= ord(char) <= 126 and char != "\\") or not char.isascii()):
            raise AddressError("bad character in quoted local part")
        content.append(char)
        index += 1
    raise AddressError("unterminated quoted local part")


def _canonical_local(content: str) -> str:
    try:
        _check_dot_string(content)
    except AddressError:
        escaped = content.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    return content


def _check_label(label: str) -> None:
    """LDH for ASCII labels; IDNA 2008 (UTS 46, non-transitional) for the others and for
    ``xn--`` labels, the same conversion dnspython and delivery use, so ``straße`` is
    ``xn--strae-oqa`` here too (Python's ``idna`` codec is IDNA 2003: ``strasse``)."""
    if label.isascii():
        if not _LDH_LABEL.match(label):
            raise AddressError("malformed domain label")
        if not label.lower().startswith("xn--"):
            return
    try:
        ace = idna.encode(label, uts46=True, transitional=False).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        raise AddressError("malformed internationalised domain label") from None
    if not _LDH_LABEL.match(ace):
        raise AddressError("malformed internationalised domain label")


def _literal(text: str) -> str:
    if not text.endswith("]") or len(text) < 3:
        raise AddressError("unterminated address literal")
    body = text[1:-1]
    try:
        if body[:5].lower() == "ipv6:":
            return f"[IPv6:{ipaddress.IPv6Address(body[5:]).compressed}]"
        return f"[{ipaddress.IPv4Address(body)}]"
    except ValueError:
        raise AddressError("unsupported or malformed address literal") from None


def _valid_value(value: str) -> bool:
    return bool(value) and all(
        (33 <= ord(char) <= 126 and char != "=") or (not char.isascii() and char.isprintable())
        for char in value
    )
