"""Both index backends for every index test: SQLite in a temporary directory, PostgreSQL in
a database of its own (created on 127.0.0.1:5432 for the test and dropped after).

``backend`` is parametrised over ``sqlite`` and ``postgresql``; ``index_section(**audit)``
gives ``AuditSettings`` for a fresh index of that backend (each call: another index),
``open_fresh_index(**audit)`` such an index opened and closed after the test.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from postline.audit.index import Index, open_index
from postline.audit.settings import AuditSettings

POSTGRES = os.environ.get("POSTLINE_TEST_POSTGRES", "postgresql://127.0.0.1:5432")
BACKENDS = ("sqlite", "postgresql")


def create_database(server: str = POSTGRES) -> str:
    """A new, empty database on ``server``; its URL."""
    name = f"postline_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{server}/postgres", autocommit=True, connect_timeout=10) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return f"{server}/{name}"


def drop_database(url: str, server: str = POSTGRES) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(f"{server}/postgres", autocommit=True, connect_timeout=10) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def index_section(backend: str, tmp_path: Path) -> Iterator[Callable[..., AuditSettings]]:
    databases: list[str] = []

    def make(**audit: Any) -> AuditSettings:
        workdir = tmp_path / f"index-{uuid.uuid4().hex[:8]}"
        if backend == "postgresql":
            databases.append(create_database())
            audit.setdefault("database_url", databases[-1])
        return AuditSettings(trail_dir=workdir, api_listen=None, metrics_listen=None, **audit)

    yield make
    for url in databases:
        drop_database(url)


@pytest.fixture
async def open_fresh_index(
    index_section: Callable[..., AuditSettings],
) -> AsyncIterator[Callable[..., Any]]:
    opened: list[Index] = []

    async def make(**audit: Any) -> Index:
        index = open_index(index_section(**audit))
        await index.open()
        opened.append(index)
        return index

    yield make
    for index in opened:
        await index.close()
