"""``postline ingress``: wiring only (see ``service.py`` for the service)."""

from __future__ import annotations

from postline.ingress.service import IngressService
from postline.lifecycle import Service, Supervisor
from postline.settings import Settings


def build(settings: Settings, supervisor: Supervisor) -> Service:
    """The ingress service for ``settings`` (not started)."""
    return IngressService(settings, supervisor)
