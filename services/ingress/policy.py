"""Who may relay, and as whom: the before-queue policy decisions, as pure functions.

* Relay: a client may relay if it authenticated, or if its address (the
  proxied address behind a trusted proxy) is inside ``relay_networks``.
  Postline has no local domains, so every recipient needs relay rights.
  MAIL FROM never enters the decision. IPv4-mapped IPv6 addresses
  (``::ffff:192.0.2.1``) are judged as the IPv4 address they carry, and match
  both IPv4 networks and IPv6 networks written in mapped form. Default deny.
* Sender ownership: an authenticated user may only use the senders listed for
  them (``User.may_send_as``).
* ``limit_key``: the key per-client limits count by: the IPv4 address, or the
  /64 of an IPv6 address (one subscriber usually holds a whole /64).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from postline.ingress import replies
from postline.ingress.address import Mailbox
from postline.ingress.users import User
from postline.netaddr import IPAddress, parse_ip
from postline.reply import SmtpReply

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
client_address = parse_ip
"""A peer address as policy judges it (``::ffff:a.b.c.d`` unwrapped, ``%zone`` dropped)."""


def in_networks(address: IPAddress | None, networks: Sequence[IPNetwork]) -> bool:
    """Whether ``address`` is inside one of ``networks`` (None: never)."""
    if address is None:
        return False
    forms: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv4Address):
        forms.append(ipaddress.IPv6Address(f"::ffff:{address}"))
    return any(form.version == net.version and form in net for form in forms for net in networks)


def relay_reply(authenticated: bool, trusted_client: bool) -> SmtpReply | None:
    """None when the recipient may be accepted, else ``554 5.7.1``."""
    if authenticated or trusted_client:
        return None
    return replies.RELAY_DENIED


def sender_reply(user: User | None, mailbox: Mailbox | None) -> SmtpReply | None:
    """For an authenticated session: None if ``user`` owns ``mailbox``, else ``553 5.7.1``."""
    if user is not None and user.may_send_as(mailbox):
        return None
    return replies.SENDER_NOT_OWNED


def limit_key(address: IPAddress | None) -> str:
    """The per-client limit key: the IPv4 address or the IPv6 /64."""
    if address is None:
        return "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network(f"{address}/64", strict=False))
    return str(address)
