"""Fixtures shared by every test layer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from postline.app.settings import Settings
from tests.support.broker import delete_namespace_of, make_settings, new_namespace


@pytest.fixture
def namespace() -> str:
    return new_namespace()


@pytest.fixture
async def broker_settings(namespace: str) -> AsyncIterator[Callable[..., Settings]]:
    """Factory of settings in a fresh namespace; everything declared in it is deleted after."""
    made: list[Settings] = []

    def factory(**sections: dict[str, Any]) -> Settings:
        settings = make_settings(namespace, **sections)
        made.append(settings)
        return settings

    yield factory
    for settings in made:
        await delete_namespace_of(settings)
