"""The ``[ingress]`` section: where ingress listens and what it lets in."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from postline.values import Duration, HostPort, Listen, Network, Size, parse_duration


def _parse_delay(value: object) -> float:
    """A duration that may also be zero (``0``, ``"0s"``)."""
    if not isinstance(value, bool) and value in (0, "0", "0s"):
        return 0.0
    return parse_duration(value)


Delay = Annotated[float, BeforeValidator(_parse_delay)]


class IngressSettings(BaseModel):
    """Submission listener, TLS, AUTH and relay policy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    listen: list[Listen] = Field(
        default_factory=lambda: [HostPort("0.0.0.0", 587)],
        description="SMTP listeners ('host:port'); STARTTLS when a certificate is set.",
    )
    listen_tls: list[Listen] = Field(
        default_factory=list, description="Implicit-TLS listeners (port 465 style)."
    )
    hostname: str | None = Field(
        default=None,
        min_length=1,
        description="Name in the greeting and EHLO. Default: [relay] hostname.",
    )
    tls_cert: Path | None = Field(default=None, description="PEM certificate chain file.")
    tls_key: Path | None = Field(default=None, description="PEM private key file.")
    relay_networks: list[Network] = Field(
        default_factory=list,
        description="Client networks allowed to relay without AUTH (CIDRs). Empty: nobody.",
    )
    users_file: Path | None = Field(
        default=None, description="TOML file of users, password hashes and allowed senders."
    )
    max_message_size: Size = Field(
        default=25 * 1024 * 1024, description="Largest message accepted, in bytes (SIZE)."
    )
    max_recipients: int = Field(default=100, ge=1, le=100_000, description="RCPTs per message.")
    max_header_lines: int = Field(
        default=5000,
        ge=0,
        description="Lines (fields and their continuation lines) in a message's header "
        "section; more get 552 5.3.4. 0: no limit.",
    )
    max_header_size: Size | int = Field(
        default=512 * 1024,
        ge=0,
        description="Octets in a message's header section (Postfix header_size_limit); "
        "more get 552 5.3.4. 0: no limit.",
    )
    record_subject: bool = Field(
        default=True,
        description="The received event (and so the audit index and trace) carries the "
        "message's Subject (decoded, at most 200 characters); false for sites that treat "
        "subjects as content.",
    )
    proxy_protocol: bool = Field(
        default=False,
        description="Every connection must come from trusted_proxies and start with a "
        "PROXY v1/v2 header (all listeners).",
    )
    trusted_proxies: list[Network] = Field(
        default_factory=list, description="Networks allowed to send a PROXY header."
    )
    shutdown_grace: Duration = Field(
        default=30.0, description="Time open transactions get to finish on SIGTERM."
    )
    drain_delay: Delay = Field(
        default=0.0,
        description="On SIGTERM, time between /readyz turning false and closing the listeners.",
    )
    idle_timeout: Duration = Field(
        default=120.0, description="Close a session whose client sends nothing for this long."
    )
    command_timeout: Duration = Field(
        default=300.0,
        description="Time a client has to complete one command line (or AUTH response, "
        "or TLS handshake) after our previous reply.",
    )
    data_timeout: Duration = Field(
        default=600.0, description="Time a client has to send the whole message after DATA."
    )
    tls_handshake_timeout: Duration = Field(
        default=10.0,
        description="Time a client has to complete the TLS handshake (implicit TLS or "
        "after STARTTLS); the session is counted from the moment it connects.",
    )
    proxy_protocol_timeout: Duration = Field(
        default=5.0, description="Time a trusted proxy has to send its PROXY header."
    )
    tls_reload_interval: Duration = Field(
        default=60.0, description="How often tls_cert/tls_key are checked for changes."
    )
    max_sessions: int = Field(
        default=1000, ge=1, le=1_000_000, description="Concurrent SMTP sessions (then 421)."
    )
    max_sessions_per_ip: int = Field(
        default=50,
        ge=1,
        le=1_000_000,
        description="Concurrent sessions per client address (IPv6: per /64), then 421.",
    )
    max_errors: int = Field(
        default=20, ge=1, le=10_000, description="5xx replies in one session before 421."
    )
    rate_window: Duration = Field(
        default=60.0, description="Window of max_messages_per_ip and max_messages_per_user."
    )
    max_messages_per_ip: int = Field(
        default=0,
        ge=0,
        description="Transactions (MAIL) per client address per rate_window; 0: unlimited.",
    )
    max_messages_per_user: int = Field(
        default=600,
        ge=0,
        description="Transactions (MAIL) per authenticated user per rate_window; 0: unlimited.",
    )
    auth_max_failures: int = Field(
        default=5,
        ge=1,
        le=1000,
        description="Password checks that may fail (counted from the moment they start) "
        "per client address (IPv6: /64), and per user name from one client network "
        "(IPv4: /24, IPv6: /48), within auth_failure_window; reaching it starts a lockout.",
    )
    auth_failure_window: Duration = Field(
        default=300.0, description="Window in which auth_max_failures are counted."
    )
    auth_lockout: Duration = Field(
        default=900.0,
        description="How long a locked-out address, or user name from one client network, "
        "is refused AUTH.",
    )
    auth_failure_delay: Delay = Field(
        default=1.0,
        description="Pause before answering a failed AUTH; also the first step of the "
        "growing wait before checking a password for a user name with recent failures.",
    )
    auth_failure_delay_max: Delay = Field(
        default=15.0,
        description="Cap of the wait before checking a password for a user name with "
        "recent failures (auth_failure_delay doubled per failure within the window).",
    )
    metrics_listen: Listen | None = Field(
        default=HostPort("0.0.0.0", 9101), description="/metrics, /healthz, /readyz address."
    )

    @model_validator(mode="after")
    def _tls_pair(self) -> IngressSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key must be set together")
        if self.listen_tls and self.tls_cert is None:
            raise ValueError("listen_tls needs tls_cert and tls_key")
        if not self.listen and not self.listen_tls:
            raise ValueError("set at least one of listen or listen_tls")
        if self.proxy_protocol and not self.trusted_proxies:
            raise ValueError("proxy_protocol = true needs trusted_proxies")
        return self
