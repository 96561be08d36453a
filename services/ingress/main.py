"""``postline ingress``: wiring only (see ``service.py`` for the service)."""

from __future__ import annotations

from postline.ingress.service import IngressService
from postline.lifecycle import Service, Supervisor, run
from postline.settings import Settings


def build(settings: Settings, supervisor: Supervisor) -> Service:
    """The ingress service for ``settings`` (not started)."""
    return IngressService(settings, supervisor)


def main(settings: Settings) -> int:
    return run(
        lambda sup: [build(settings, sup)],
        [settings.ingress.metrics_listen],
        settings.ingress.shutdown_grace,
    )
