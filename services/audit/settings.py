"""The ``[audit]`` section: where the trails are written."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from postline.values import Duration, HostPort, Listen, Size


class AuditSettings(BaseModel):
    """Audit trail writer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    trail_dir: Path = Field(default=Path("trails"), description="Directory of the trail files.")
    rotate_size: Size = Field(
        default=100 * 1024 * 1024, description="Rotate a trail file when it passes this size."
    )
    rotate_keep: int = Field(default=10, ge=1, le=1000, description="Rotated files kept.")
    concurrency: int = Field(
        default=256,
        ge=1,
        le=10_000,
        description="Events in flight (prefetch); those arriving together share one fsync.",
    )
    dedupe_window: int = Field(
        default=100_000,
        ge=0,
        le=10_000_000,
        description="Recent event ids remembered to drop redelivered duplicates (0: off).",
    )
    shutdown_grace: Duration = Field(
        default=30.0, description="Time in-flight messages get to finish on SIGTERM."
    )
    metrics_listen: Listen | None = Field(
        default=HostPort("0.0.0.0", 9104), description="/metrics, /healthz, /readyz address."
    )
