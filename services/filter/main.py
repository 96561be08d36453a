"""Filter service wiring: consume ``submit`` with the configured chain (``postline filter``).

``build`` resolves the chain (a bad entry fails here, before any message is
taken) and returns a ``Worker`` consuming ``submit`` with at most
``[filter] concurrency`` messages in flight; ``postline filter`` runs it.
"""

from __future__ import annotations

from postline.filter.chain import Chain
from postline.filter.handler import FilterHandler
from postline.filter.registry import build_filters
from postline.filter.settings import FilterSettings
from postline.lifecycle import Service, Supervisor
from postline.settings import Settings
from postline.topology import Stage
from postline.worker import Worker


def effective_settings(settings: Settings) -> FilterSettings:
    """``[filter]`` with ``hostname`` defaulted to ``[ingress] hostname``."""
    section = settings.filter
    if section.hostname:
        return section
    return section.model_copy(update={"hostname": settings.ingress.hostname})


def build(settings: Settings, supervisor: Supervisor) -> Service:
    section = effective_settings(settings)
    chain = Chain(build_filters(section), section.timeout)
    worker = Worker("filter", settings, supervisor, Stage.SUBMIT, section.concurrency)
    reporting_mta = section.hostname or settings.ingress.hostname
    worker.set_handler(FilterHandler(chain, worker.bus, reporting_mta=reporting_mta))
    return worker
