"""The ``[ingress]`` section: where ingress listens and what it lets in."""

from __future__ import annotations

import socket
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from postline.values import Duration, HostPort, Listen, Network, Size


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
    hostname: str = Field(
        default_factory=socket.getfqdn, min_length=1, description="Name in the greeting and EHLO."
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
    proxy_protocol: bool = Field(default=False, description="Expect a PROXY v1/v2 header.")
    trusted_proxies: list[Network] = Field(
        default_factory=list, description="Networks allowed to send a PROXY header."
    )
    shutdown_grace: Duration = Field(
        default=30.0, description="Time open transactions get to finish on SIGTERM."
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
