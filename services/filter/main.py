"""Filter service wiring: consume ``submit`` with the configured chain (``postline filter``).

``build`` resolves the chain (an unknown or broken entry raises ``ConfigError``
naming ``filter.chain``, before any message is taken) and returns a ``Worker``
consuming ``submit`` with at most ``[filter] concurrency`` messages in flight.
The section's ``hostname`` defaults to the relay's (``context.hostname``), which
also names the reporting MTA of the DSNs this service sends.
"""

from __future__ import annotations

from postline.context import ServiceContext
from postline.filter.chain import Chain
from postline.filter.handler import FilterHandler
from postline.filter.registry import build_filters
from postline.filter.settings import FilterSettings
from postline.lifecycle import Service, Supervisor
from postline.topology import Stage
from postline.worker import Worker


def resolved(section: FilterSettings, context: ServiceContext) -> FilterSettings:
    """``section`` with ``hostname`` defaulted to the relay's name."""
    return section.model_copy(update={"hostname": section.hostname or context.hostname})


def build(section: FilterSettings, context: ServiceContext, supervisor: Supervisor) -> Service:
    section = resolved(section, context)
    chain = Chain(build_filters(section), section.timeout)
    worker = Worker("filter", context, supervisor, Stage.SUBMIT, section.concurrency)
    handler = FilterHandler(
        chain, worker.bus, reporting_mta=context.hostname, limits=section.header_limits
    )
    worker.set_handler(handler)
    return worker
