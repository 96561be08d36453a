"""Relay policy: who may relay without AUTH, and that AUTH needs TLS.

``network_check(network)`` is pure: ``0.0.0.0/0`` and ``::/0`` (anyone),
and any network with global (public Internet) addresses in it, are ``FAIL``:
whoever sits there may relay through us without a password, which is how open
relays are found and abused. One public address (``/32``, ``/128``) is a
``WARN`` (a fixed office address can be meant, but must be ours). Private,
loopback, link-local and shared (RFC 6598) ranges pass; IPv4-mapped IPv6
networks are judged as the IPv4 network they map.

``auth_check`` reads ``[ingress]``: this ingress offers AUTH only on a TLS
session (after STARTTLS or on a ``listen_tls`` listener), so a users file
without a certificate means AUTH is never offered (``WARN``: nobody can log in).
"""

from __future__ import annotations

import ipaddress

from postline.app.doctor.report import Check, failed, passed, warned
from postline.ingress.settings import IngressSettings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
NETWORKS = "relay networks"
AUTH = "relay auth"
_SHARED = ipaddress.IPv4Network("100.64.0.0/10")
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_ADVICE = "list only your own private client networks in [ingress] relay_networks; others use AUTH"


def is_public(network: Network) -> bool:
    """True if ``network`` holds addresses of the public Internet."""
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_MAPPED):
        mapped = ipaddress.ip_network(
            (int(network.network_address) & 0xFFFFFFFF, network.prefixlen - 96)
        )
        return is_public(mapped)
    if isinstance(network, ipaddress.IPv4Network) and network.subnet_of(_SHARED):
        return False
    if network.prefixlen == 0:
        return True
    private = network.is_private or network.is_loopback or network.is_link_local
    return not private


def network_check(network: Network) -> Check | None:
    """A ``FAIL``/``WARN`` for a dangerous ``relay_networks`` entry, None for a safe one."""
    if network.prefixlen == 0:
        return failed(NETWORKS, f"{network} lets every address relay (an open relay)", _ADVICE)
    if not is_public(network):
        return None
    if network.num_addresses == 1:
        found = f"{network} is a public address allowed to relay without AUTH"
        return warned(NETWORKS, found, "make sure it is your own host, or use AUTH instead")
    return failed(NETWORKS, f"{network} is a public range allowed to relay without AUTH", _ADVICE)


def networks_checks(networks: list[Network]) -> list[Check]:
    """One line per dangerous entry, or one ``PASS`` line when there is none."""
    checks = [check for network in networks if (check := network_check(network)) is not None]
    if checks:
        return checks
    shown = ", ".join(str(network) for network in networks) or "none (AUTH only)"
    return [passed(NETWORKS, f"only private networks relay without AUTH: {shown}")]


def auth_check(ingress: IngressSettings) -> Check:
    """How AUTH is offered (module docstring)."""
    if ingress.tls_cert is not None:
        return passed(AUTH, "AUTH is offered only on TLS sessions (STARTTLS or listen_tls)")
    if ingress.users_file is not None:
        found = "users_file is set but there is no tls_cert: AUTH is never offered"
        return warned(AUTH, found, "set tls_cert and tls_key so users can log in over TLS")
    return passed(AUTH, "no TLS and no users: AUTH is not offered")
