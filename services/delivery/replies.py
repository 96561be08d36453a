"""Replies the delivery service makes up itself, when the remote said nothing usable.

Every one is an ``SmtpReply`` so that events and the failure trail carry the
same shape whether the words came from a remote MX, from DNS or from us. The
enhanced codes follow RFC 3463 (``4.4.x`` network/routing, ``5.1.x`` address,
``4.7.x`` security). Texts are completed with details by ``trouble``.
"""

from __future__ import annotations

from postline.reply import SmtpReply, reply

_WORDS_LIMIT = 200

# DNS: NXDOMAIN and a null MX are permanent, SERVFAIL and timeouts temporary
DOMAIN_NOT_FOUND = reply(550, "5.1.2", "Host or domain name not found")
NO_ADDRESS = reply(550, "5.1.2", "Domain has no MX and no address records")
NULL_MX = reply(556, "5.1.10", "Domain does not accept mail (null MX)")
DNS_TEMPORARY = reply(451, "4.4.3", "Temporary DNS failure")
NO_MX_ADDRESS = reply(554, "5.4.4", "No address found for any mail exchanger")

# Routing and policy
PRIVATE_DESTINATION = reply(554, "5.4.4", "Destination address refused (deny_private_destinations)")
BAD_ADDRESS = reply(553, "5.1.3", "Bad recipient address syntax")
DESTINATION_BUSY = reply(451, "4.4.5", "Destination busy, too many sessions in progress")
HOST_DOWN = reply(451, "4.4.1", "Host skipped: down after repeated connection failures")
SMTPUTF8_UNSUPPORTED = reply(553, "5.6.7", "Remote server does not support SMTPUTF8")
MESSAGE_TOO_BIG = reply(552, "5.3.4", "Message too big for the remote server")
CONVERSION_IMPOSSIBLE = reply(
    554, "5.6.3", "Conversion to 7-bit required (no 8BITMIME at the remote) but not possible"
)

# Network and session
CONNECT_FAILED = reply(451, "4.4.1", "Connection failed")
CONNECT_TIMEOUT = reply(451, "4.4.1", "Connection timed out")
LOST_CONNECTION = reply(451, "4.4.2", "Lost connection")
READ_TIMEOUT = reply(451, "4.4.2", "Timed out waiting for the remote server")
ATTEMPT_TIMEOUT = reply(451, "4.4.2", "Delivery attempt exceeded its time limit")
SMTP_ERROR = reply(451, "4.4.0", "SMTP protocol error")
# The remote broke the protocol (a reply its phase cannot have, a malformed or
# inconsistent reply, input out of step): temporary, with the remote's words.
PROTOCOL_ERROR = reply(451, "4.5.0", "SMTP protocol error")

# TLS and authentication
TLS_FAILED = reply(451, "4.7.5", "TLS negotiation failed")
TLS_UNAVAILABLE = reply(451, "4.7.4", "TLS required but not offered by the remote server")
AUTH_WITHOUT_TLS = reply(451, "4.7.0", "Refusing to authenticate over an unencrypted connection")
AUTH_FAILED = reply(451, "4.7.0", "Authentication at the smarthost failed")
# Transport security policies: a failure is temporary (RFC 8461 5, RFC 7672 2.2)
MTA_STS_MX_MISMATCH = reply(451, "4.7.5", "MTA-STS: MX host not allowed by the domain's policy")
DANE_FAILED = reply(451, "4.7.5", "DANE: certificate does not match the TLSA records")
DANE_LOOKUP = reply(451, "4.7.5", "DANE: TLSA lookup failed")
NO_SOURCE = reply(451, "4.4.0", "No source address of this address family in the pool")


def detailed(base: SmtpReply, detail: str) -> SmtpReply:
    """``base`` with ``: detail`` appended to its text."""
    return base.model_copy(update={"text": f"{base.text}: {detail}" if detail else base.text})


def escaped(text: str, limit: int = _WORDS_LIMIT) -> str:
    """What a remote sent, fit for a reply text: control characters escaped, cut at ``limit``."""
    clean = "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."
