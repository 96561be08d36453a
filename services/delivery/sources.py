"""Source addresses: which local address (and HELO name) a session is opened from.

Configuration (``[delivery]``)::

    source_addresses = [
        { address = "192.0.2.10", helo_name = "out1.example.org" },
        { address = "192.0.2.11" },
        { address = "2001:db8::10", helo_name = "out6.example.org" },
    ]
    [[delivery.pools]]                      # senders that keep their own reputation
    name = "newsletter"
    sender_domains = ["news.example.org"]   # the envelope sender's domain, or
    auth_users = ["mailer"]                 # the submitting user
    addresses = { "192.0.2.11" = 3, "2001:db8::10" = 1 }   # address -> weight

``Sources.pick(mail_from, auth_user, destination_ip)`` chooses the source for
one connection: the first pool whose ``sender_domains`` or ``auth_users``
match, else the default pool (every source address no pool names; when every
address belongs to a pool, all of them, equally weighted); among the pool's
addresses of the destination's family (IPv4 or IPv6), one at random by weight.
It returns ``None`` when no source addresses are configured (the system picks),
and raises ``NoSource`` when the pool has none of that family (the caller
skips that destination address rather than send from an address of another
pool). A source's ``helo_name`` replaces the EHLO name for its sessions.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, field_validator

from postline.delivery.idn import to_ascii


class SourceAddress(BaseModel):
    """One local address to send from, and the EHLO name that goes with it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    address: str = Field(description="A local IPv4 or IPv6 address.")
    helo_name: str | None = Field(
        default=None, min_length=1, description="EHLO name for sessions from this address."
    )

    @field_validator("address")
    @classmethod
    def _an_address(cls, value: str) -> str:
        try:
            return str(ipaddress.ip_address(value.strip()))
        except ValueError:
            raise ValueError(f"{value!r} is not an IPv4 or IPv6 address") from None


class SourcePool(BaseModel):
    """Source addresses (with weights) for some senders."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64, description="Name, for transcripts.")
    sender_domains: list[str] = Field(
        default_factory=list, description="Envelope sender domains this pool serves."
    )
    auth_users: list[str] = Field(
        default_factory=list, description="Submitting (AUTH) users this pool serves."
    )
    addresses: dict[str, int] = Field(
        min_length=1, description="Source address (from source_addresses) -> weight (>= 1)."
    )

    @field_validator("sender_domains")
    @classmethod
    def _ascii_domains(cls, domains: list[str]) -> list[str]:
        return [to_ascii(domain) for domain in domains]

    @field_validator("addresses")
    @classmethod
    def _weights(cls, addresses: dict[str, int]) -> dict[str, int]:
        normalised: dict[str, int] = {}
        for address, weight in addresses.items():
            if weight < 1:
                raise ValueError(f"weight of {address} must be at least 1")
            normalised[SourceAddress(address=address).address] = weight
        return normalised


class NoSource(Exception):
    """The sender's pool has no source address of the destination's family."""


@dataclass(frozen=True)
class Source:
    """The address a session is opened from and its EHLO name (None: the default)."""

    address: str
    helo_name: str | None = None
    pool: str = "default"


class Sources:
    """Chooses source addresses (module docstring)."""

    def __init__(
        self,
        addresses: Sequence[SourceAddress],
        pools: Sequence[SourcePool],
        rng: random.Random | None = None,
    ) -> None:
        self._by_address = {a.address: a for a in addresses}
        self._pools = list(pools)
        pooled = {address for pool in pools for address in pool.addresses}
        default = [a.address for a in addresses if a.address not in pooled]
        self._default = {a: 1 for a in default or self._by_address}
        self._rng = rng or random.Random()

    def pick(self, mail_from: str, auth_user: str | None, destination: str) -> Source | None:
        """The source for a session to ``destination`` (an IP address), or None."""
        if not self._by_address:
            return None
        name, weights = self._pool_for(mail_from, auth_user)
        family = ipaddress.ip_address(destination).version
        usable = [(a, w) for a, w in weights.items() if ipaddress.ip_address(a).version == family]
        if not usable:
            raise NoSource(f"pool {name} has no IPv{family} source address")
        chosen = self._rng.choices([a for a, _ in usable], [w for _, w in usable])[0]
        return Source(chosen, self._by_address[chosen].helo_name, name)

    def _pool_for(self, mail_from: str, auth_user: str | None) -> tuple[str, dict[str, int]]:
        domain = mail_from.rpartition("@")[2]
        try:
            domain = to_ascii(domain) if domain else ""
        except ValueError:
            domain = ""
        for pool in self._pools:
            if (domain and domain in pool.sender_domains) or (
                auth_user is not None and auth_user in pool.auth_users
            ):
                return pool.name, pool.addresses
        return "default", self._default
