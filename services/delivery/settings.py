"""The ``[delivery]`` section: MX resolution, outbound SMTP, transport security, retries.

Domains in ``routes`` and ``tls_domain_policies`` are stored in their A-label
form (IDNA 2008, ``idn.to_ascii``), the form every lookup uses.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from postline.delivery.idn import to_ascii
from postline.delivery.sources import SourceAddress, SourcePool
from postline.values import Duration, Hop, HostPort, Listen, Nameserver, RetrySchedule

TlsPolicy = Literal["none", "opportunistic", "required", "verify"]


class DeliverySettings(BaseModel):
    """Outbound delivery engine."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    helo_name: str | None = Field(
        default=None, min_length=1, description="EHLO name. Default: [relay] hostname."
    )
    dns_nameservers: list[Nameserver] = Field(
        default_factory=list, description="'host' or 'host:port'; empty: the system resolver."
    )
    smtp_port: int = Field(default=25, ge=1, le=65535, description="Port of remote MX hosts.")
    retry_schedule: RetrySchedule = Field(
        default=(60.0, 300.0, 300.0, 1800.0, 1800.0, *([7200.0] * 8)),
        description="Waits before each retry, Haraka style: '1m,5m*2,30m*2,2h*8'.",
    )
    max_queue_lifetime: Duration = Field(
        default=5 * 86400.0, description="Give up (expire) this long after the first attempt."
    )
    delay_warning_after: Duration | None = Field(
        default=None,
        description="Send the sender one delay warning (a DSN with Action: delayed) when a "
        "recipient still waits this long after the message was received, e.g. '4h'; "
        "empty: never.",
    )
    smarthost: Hop | None = Field(
        default=None, description="Send everything via '[host]:port' instead of MX."
    )
    routes: dict[str, Hop] = Field(
        default_factory=dict, description="Per-domain next hop, like Postfix transport_maps."
    )
    concurrency: int = Field(default=32, ge=1, le=10_000, description="Messages in flight.")
    deny_private_destinations: bool = Field(
        default=True, description="Refuse MX targets on loopback, link-local or private networks."
    )
    connect_timeout: Duration = Field(default=30.0, description="TCP connect timeout per host.")
    greeting_timeout: Duration = Field(
        default=300.0, description="Wait for the 220 greeting (RFC 5321 4.5.3.2.1: 5m)."
    )
    command_timeout: Duration = Field(
        default=300.0,
        description="Reply timeout of EHLO/HELO, STARTTLS, AUTH and QUIT (RFC 5321 sets none; "
        "Postfix uses 5m).",
    )
    mail_timeout: Duration = Field(
        default=300.0, description="Reply to MAIL FROM (RFC 5321 4.5.3.2.2: 5m)."
    )
    rcpt_timeout: Duration = Field(
        default=300.0, description="Reply to each RCPT TO (RFC 5321 4.5.3.2.3: 5m)."
    )
    data_init_timeout: Duration = Field(
        default=120.0, description="Reply (354) to the DATA command (RFC 5321 4.5.3.2.4: 2m)."
    )
    data_block_timeout: Duration = Field(
        default=180.0,
        description="Time for the remote to take each 64 KiB block of the message "
        "(RFC 5321 4.5.3.2.5: 3m).",
    )
    data_done_timeout: Duration = Field(
        default=600.0,
        description="Reply after the final dot (RFC 5321 4.5.3.2.6: 10m); shorter risks "
        "duplicates with slow servers that did accept the message.",
    )
    rset_timeout: Duration = Field(
        default=10.0,
        description="Reply to RSET on a reused session before it carries a new message; a "
        "session that does not answer in time is replaced by a new one.",
    )
    attempt_timeout: Duration = Field(
        default=900.0,
        description="Wall-clock cap on one delivery attempt to one destination; keep it above "
        "data_done_timeout, or a slow end-of-data reply is cut off (and the message may be "
        "delivered twice).",
    )
    shutdown_grace: Duration = Field(
        default=30.0, description="Time in-flight messages get to finish on SIGTERM."
    )
    dns_timeout: Duration = Field(
        default=10.0, description="Overall deadline of one DNS lookup (then a temporary 4.4.3)."
    )
    dns_cache_ttl: float = Field(
        default=60.0,
        ge=0,
        le=3600,
        description="Longest time (s) a DNS answer or NXDOMAIN is reused; 0 disables the cache. "
        "SERVFAIL and timeouts are never cached.",
    )
    max_mx_hosts: int = Field(
        default=5, ge=1, le=50, description="MX hosts tried per attempt, best preference first."
    )
    tls_policy: TlsPolicy = Field(
        default="opportunistic",
        description="STARTTLS towards remote hosts: 'none' never; 'opportunistic' when "
        "offered, certificate not checked; 'required' TLS or defer, certificate not checked; "
        "'verify' TLS with a certificate valid for the MX name, or defer.",
    )
    tls_domain_policies: dict[str, TlsPolicy] = Field(
        default_factory=dict,
        description='Per recipient domain tls_policy, e.g. { "bank.example" = "verify" }.',
    )
    tls_ca_file: str | None = Field(
        default=None, description="CA bundle for 'verify' (default: the system store)."
    )
    smarthost_username: str | None = Field(
        default=None, description="AUTH user at the smarthost (only ever sent over TLS)."
    )
    smarthost_password: SecretStr | None = Field(
        default=None, description="AUTH password at the smarthost (a secret file is best)."
    )
    per_destination_concurrency: int = Field(
        default=10,
        ge=1,
        le=1000,
        description="Concurrent SMTP sessions per destination (recipient domain, or the "
        "route/smarthost), so one slow destination cannot take every worker.",
    )
    destination_wait: Duration = Field(
        default=30.0,
        description="How long a message waits for a session slot at a busy destination "
        "before it is deferred (4.4.5) to free its worker.",
    )
    max_messages_per_connection: int = Field(
        default=100,
        ge=1,
        le=100_000,
        description="Transactions sent over one reused connection (RSET between); 1 disables "
        "connection reuse.",
    )
    connection_idle_timeout: Duration = Field(
        default=10.0, description="An idle outbound connection is closed (QUIT) after this long."
    )
    max_idle_connections: int = Field(
        default=100, ge=0, le=10_000, description="Idle outbound connections kept for reuse."
    )
    mta_sts: bool = Field(
        default=True,
        description="Apply recipient domains' MTA-STS policies (RFC 8461): in 'enforce' mode "
        "deliver only to MX hosts the policy names, over verified TLS, else defer.",
    )
    mta_sts_timeout: Duration = Field(
        default=10.0, description="Time limit of one MTA-STS policy fetch (HTTPS)."
    )
    mta_sts_port: int = Field(
        default=443, ge=1, le=65535, description="HTTPS port of policy hosts (tests only)."
    )
    mta_sts_ca_file: str | None = Field(
        default=None,
        description="CA bundle that verifies policy hosts (tests only; default: the system store).",
    )
    dane: bool = Field(
        default=False,
        description="Apply DANE (RFC 7672): TLSA records of an MX make TLS mandatory and "
        "authenticate its certificate. Needs dnssec_resolver; wins over MTA-STS.",
    )
    dnssec_resolver: bool = Field(
        default=False,
        description="The configured nameservers validate DNSSEC (set the AD bit), like a local "
        "validating resolver; only then are TLSA records trusted.",
    )
    host_failure_limit: int = Field(
        default=2,
        ge=0,
        le=100,
        description="Consecutive connection failures or timeouts after which a host is "
        "skipped for host_backoff by every message of this process; 0: never skip.",
    )
    host_backoff: Duration = Field(
        default=120.0, description="How long a host that is down is skipped before a new try."
    )
    source_addresses: list[SourceAddress] = Field(
        default_factory=list,
        description='Local addresses to send from, e.g. [{ address = "192.0.2.10", '
        'helo_name = "out1.example.org" }]; empty: the system chooses.',
    )
    pools: list[SourcePool] = Field(
        default_factory=list,
        description="[[delivery.pools]]: name, sender_domains, auth_users and addresses "
        "(source address -> weight) for senders that keep their own reputation.",
    )
    metrics_listen: Listen | None = Field(
        default=HostPort("0.0.0.0", 9103), description="/metrics, /healthz, /readyz address."
    )

    @field_validator("delay_warning_after", mode="before")
    @classmethod
    def _empty_is_off(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("routes", "tls_domain_policies")
    @classmethod
    def _lower_domains(cls, routes: dict[str, object]) -> dict[str, object]:
        return {to_ascii(domain): hop for domain, hop in routes.items()}

    @model_validator(mode="after")
    def _lifetime_covers_first_retry(self) -> DeliverySettings:
        if self.max_queue_lifetime < self.retry_schedule[0]:
            raise ValueError("max_queue_lifetime is shorter than the first retry delay")
        if (self.smarthost_username is None) != (self.smarthost_password is None):
            raise ValueError("smarthost_username and smarthost_password go together")
        if self.smarthost_username is not None and self.smarthost is None:
            raise ValueError("smarthost_username is set but smarthost is empty")
        if self.dane and not self.dnssec_resolver:
            raise ValueError("dane needs dnssec_resolver = true (a validating resolver)")
        self._check_pools()
        return self

    def _check_pools(self) -> None:
        known = {source.address for source in self.source_addresses}
        if len(known) != len(self.source_addresses):
            raise ValueError("source_addresses lists an address twice")
        names = [pool.name for pool in self.pools]
        if len(set(names)) != len(names):
            raise ValueError("two pools have the same name")
        for pool in self.pools:
            unknown = set(pool.addresses) - known
            if unknown:
                raise ValueError(f"pool {pool.name}: {sorted(unknown)} not in source_addresses")
