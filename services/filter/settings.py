"""The ``[filter]`` section: which filters run, in which order, for how long, on how much.

Each built-in filter reads its own table, ``[filter.<name>]`` (models in
``postline.filter.sections`` and ``scanner_sections``); a filter from another
package reads ``[filter.plugins.<name>]`` (free-form, its own to check).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from postline.filter.message import DEFAULT_LIMITS, HeaderLimits
from postline.filter.scanner_sections import ClamavSettings, RspamdSettings
from postline.filter.sections import (
    AttachmentSettings,
    DisclaimerSettings,
    DkimSettings,
    HeadersSettings,
    RulesSettings,
    SenderSettings,
    SizeSettings,
)
from postline.values import Duration, HostPort, Listen, RetrySchedule, Size


class FilterSettings(BaseModel):
    """After-queue filter chain."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    chain: list[str] = Field(
        default_factory=lambda: ["headers"],
        description="Filter names, run in this order: built-ins (headers, rules, "
        "attachments, size, disclaimer, sender, clamav, rspamd, dkim), a name of the "
        "'postline.filters' entry-point group, or 'package.module:factory'. dkim goes last "
        "of the filters that change the message.",
    )
    concurrency: int = Field(default=16, ge=1, le=1000, description="Messages in flight.")
    timeout: Duration = Field(
        default=30.0,
        description="Longest the filter may spend on one message: parsing it, every filter "
        "of the chain and re-assembling it, together; past it the message is requeued (and "
        "parked after [broker] delivery_limit tries).",
    )
    max_header_size: Size = Field(
        default=DEFAULT_LIMITS.max_size,
        ge=1,
        description="Largest header section (bytes, without the empty line) the filter "
        "parses; a message with a larger one is rejected (554 5.6.0). Keep it at least "
        "[ingress] max_header_size.",
    )
    max_header_lines: int = Field(
        default=DEFAULT_LIMITS.max_lines,
        ge=1,
        le=10_000_000,
        description="Most header lines (continuation lines included) the filter parses; a "
        "message with more is rejected (554 5.6.0). Keep it at least [ingress] "
        "max_header_lines.",
    )
    max_mime_depth: int = Field(
        default=30,
        ge=1,
        le=200,
        description="Deepest MIME nesting (multiparts, attached messages) filters look into; "
        "deeper: rejected (554 5.6.0).",
    )
    max_mime_parts: int = Field(
        default=2000, ge=1, le=100_000, description="Most MIME parts; more: rejected (554 5.6.0)."
    )
    defer_schedule: RetrySchedule | None = Field(
        default=None,
        description="Waits of a message a filter deferred, one per deferral, each a retry tier "
        "of [delivery] retry_schedule; once used up, the message is parked. Default: each "
        "tier once, shortest first.",
    )
    hostname: str | None = Field(
        default=None,
        max_length=253,
        pattern=r"^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$",
        description="This relay's name in Received and Message-ID fields. "
        "Default: [relay] hostname.",
    )
    shutdown_grace: Duration = Field(
        default=30.0, description="Time in-flight messages get to finish on SIGTERM."
    )
    metrics_listen: Listen | None = Field(
        default=HostPort("0.0.0.0", 9102), description="/metrics, /healthz, /readyz address."
    )

    headers: HeadersSettings = Field(
        default_factory=HeadersSettings, description="The headers filter's table, [filter.headers]."
    )
    rules: RulesSettings = Field(
        default_factory=RulesSettings, description="The rules filter's table, [filter.rules]."
    )
    attachments: AttachmentSettings = Field(
        default_factory=AttachmentSettings,
        description="The attachments filter's table, [filter.attachments].",
    )
    size: SizeSettings = Field(
        default_factory=SizeSettings, description="The size filter's table, [filter.size]."
    )
    disclaimer: DisclaimerSettings = Field(
        default_factory=DisclaimerSettings,
        description="The disclaimer filter's table, [filter.disclaimer].",
    )
    sender: SenderSettings = Field(
        default_factory=SenderSettings, description="The sender filter's table, [filter.sender]."
    )
    clamav: ClamavSettings = Field(
        default_factory=ClamavSettings, description="The clamav filter's table, [filter.clamav]."
    )
    rspamd: RspamdSettings = Field(
        default_factory=RspamdSettings, description="The rspamd filter's table, [filter.rspamd]."
    )
    dkim: DkimSettings = Field(
        default_factory=DkimSettings, description="The dkim filter's table, [filter.dkim]."
    )
    plugins: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Settings of filters from other packages: [filter.plugins.<name>].",
    )

    @property
    def header_limits(self) -> HeaderLimits:
        return HeaderLimits(self.max_header_size, self.max_header_lines)

    @field_validator("chain")
    @classmethod
    def _listed_once(cls, chain: list[str]) -> list[str]:
        """Names are checked here; whether they resolve, by ``registry.check_chain``
        (when the filter service starts, and by ``postline config check``), so no
        other service imports filter modules when it reads the configuration."""
        seen: set[str] = set()
        for name in chain:
            if name in seen:
                raise ValueError(f"filter {name!r} is listed twice")
            seen.add(name)
        return chain
