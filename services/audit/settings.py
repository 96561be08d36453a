"""The ``[audit]`` section: the trails, the index, the query API and the console."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from postline.values import Duration, HostPort, Listen, Size


class AuditSettings(BaseModel):
    """Audit trails, the message index and the query API."""

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
    database_url: str = Field(
        default="",
        pattern=r"^$|^postgres(ql)?://",
        description="The message index: empty for embedded SQLite at "
        "<trail_dir>/index.sqlite3; 'postgresql://...' for a PostgreSQL index that several "
        "audit replicas share.",
    )
    retention: Duration = Field(
        default=30 * 86400.0,
        description="How long the index keeps a message after its last event (purged in the "
        "background). The trail files rotate by size instead.",
    )
    api_listen: Listen | None = Field(
        default=HostPort("127.0.0.1", 8025),
        description="Query API (/v1/...) and message console (/); separate from "
        "metrics_listen. Without api_tokens_file it must be a loopback address.",
    )
    api_tokens_file: Path | None = Field(
        default=None,
        description="Bearer tokens, one per line ('name:token' or just the token); every API "
        "route and the console then require one. A Kubernetes Secret mount.",
    )
    shutdown_grace: Duration = Field(
        default=30.0, description="Time in-flight messages get to finish on SIGTERM."
    )
    metrics_listen: Listen | None = Field(
        default=HostPort("0.0.0.0", 9104), description="/metrics, /healthz, /readyz address."
    )
