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
    shutdown_grace: Duration = Field(
        default=30.0, description="Time in-flight messages get to finish on SIGTERM."
    )
    metrics_listen: Listen | None = Field(
        default=HostPort("0.0.0.0", 9104), description="/metrics, /healthz, /readyz address."
    )
