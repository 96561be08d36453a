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


def relay_hostname(settings: Settings) -> str:
    """This relay's name: ``[filter] hostname``, defaulting to ``[ingress] hostname``."""
    return settings.filter.hostname or settings.ingress.hostname


def effective_settings(settings: Settings) -> FilterSettings:
    """``[filter]`` with ``hostname`` defaulted (``relay_hostname``)."""
    return settings.filter.model_copy(update={"hostname": relay_hostname(settings)})


def build(settings: Settings, supervisor: Supervisor) -> Service:
    section = effective_settings(settings)
    chain = Chain(build_filters(section), section.timeout)
    worker = Worker("filter", settings, supervisor, Stage.SUBMIT, section.concurrency)
    handler = FilterHandler(
        chain, worker.bus, reporting_mta=relay_hostname(settings), limits=section.header_limits
    )
    worker.set_handler(handler)
    return worker
