"""Filter service wiring: consume ``submit`` with the configured chain (``postline filter``).

``build`` resolves the chain (an unknown or broken entry, a bad
``[filter.<name>]`` setting or a rewriting filter after ``dkim`` raises
``ConfigError``, before any message is taken) and returns a ``Worker``
consuming ``submit`` with at most ``[filter] concurrency`` messages in flight.
The section's ``hostname`` defaults to the relay's (``context.hostname``), which
also names the reporting MTA of the DSNs this service sends.

Deferrals wait in the retry tiers of ``context.topology`` (the tiers are
what ``[delivery] retry_schedule`` defines, built by the composition root):
``[filter] defer_schedule`` picks among them, and a wait that is not a tier is
a ``ConfigError`` naming ``filter.defer_schedule``. The schedule is the
filter's own setting rather than delivery's schedule carried in the context:
how long to wait for a scanner is not how long to wait for a remote MX, and
the only thing the two must share, the tier queues, is already in the topology.
"""

from __future__ import annotations

from postline.context import ServiceContext
from postline.filter.chain import Chain
from postline.filter.deferral import checked_schedule
from postline.filter.handler import FilterHandler
from postline.filter.registry import build_filters
from postline.filter.settings import FilterSettings
from postline.lifecycle import Service, Supervisor
from postline.settings import ConfigError
from postline.topology import Stage
from postline.worker import Worker


def resolved(section: FilterSettings, context: ServiceContext) -> FilterSettings:
    """``section`` with ``hostname`` defaulted to the relay's name."""
    return section.model_copy(update={"hostname": section.hostname or context.hostname})


def defer_schedule(section: FilterSettings, context: ServiceContext) -> tuple[float, ...]:
    """``[filter] defer_schedule`` checked against the topology's tiers (or its default)."""
    try:
        return checked_schedule(section.defer_schedule, context.topology.tiers)
    except ValueError as error:
        raise ConfigError(f"invalid configuration: filter.defer_schedule: {error}") from None


def build(section: FilterSettings, context: ServiceContext, supervisor: Supervisor) -> Service:
    section = resolved(section, context)
    schedule = defer_schedule(section, context)
    chain = Chain(build_filters(section), section.timeout)
    worker = Worker("filter", context, supervisor, Stage.SUBMIT, section.concurrency)
    handler = FilterHandler(
        chain,
        worker.bus,
        reporting_mta=context.hostname,
        limits=section.header_limits,
        defer_schedule=schedule,
    )
    worker.set_handler(handler)
    return worker
