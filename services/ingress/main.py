"""``postline ingress``: wiring only (see ``service.py`` for the service)."""

from __future__ import annotations

from postline.context import ServiceContext
from postline.ingress.service import IngressService
from postline.ingress.settings import IngressSettings
from postline.lifecycle import Service, Supervisor


def build(section: IngressSettings, context: ServiceContext, supervisor: Supervisor) -> Service:
    """The ingress service for ``section`` (not started)."""
    return IngressService(section, context, supervisor)
