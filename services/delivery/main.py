"""Delivery service wiring: consume ``deliver`` and send mail out (``postline delivery``).

``build`` returns a ``DeliveryService``: a ``Worker`` consuming ``deliver`` with
at most ``[delivery] concurrency`` messages in flight, plus the resources its
handler shares across messages: the DNS resolver and cache, the pool of
reusable outbound connections, the per-destination session limiter, the
memory of hosts that are down (``health``), the MTA-STS policy cache, the
source address pools, the TLS report table (``tls_reports``) and the control
state (``postline.control``: operator actions and done markers, read from the
``<ns>.control`` stream through the bus's node). ``start`` prepares them (TLS
contexts, nameservers, the broker's addresses for the destination guard, the
HTTPS client of policy fetches) and starts following the control stream before
consuming; no message is decided before the stream was read once, and the
service is not ready until then. ``close`` says QUIT to idle connections,
closes the HTTPS client and stops following the stream.
``postline delivery`` runs it through the shared lifecycle.
"""

from __future__ import annotations

import asyncio
import contextlib

from postline.context import ServiceContext
from postline.control import ControlState
from postline.delivery.connection import Timeouts
from postline.delivery.engine import Engine
from postline.delivery.gate import ControlGate
from postline.delivery.handler import DeliveryHandler
from postline.delivery.health import HostHealth
from postline.delivery.mtasts import MtaSts
from postline.delivery.mx import Resolver
from postline.delivery.pool import Limiter, Pool
from postline.delivery.route import DestinationGuard, broker_addresses
from postline.delivery.security import Security
from postline.delivery.sender import SessionConfig, tls_contexts
from postline.delivery.settings import DeliverySettings
from postline.delivery.sources import Sources
from postline.delivery.tlsrpt import TlsReports
from postline.lifecycle import Service, Supervisor
from postline.topology import Stage
from postline.worker import Worker


class DeliveryService:
    """The delivery worker and its shared outbound resources."""

    name = "delivery"

    def __init__(
        self, section: DeliverySettings, context: ServiceContext, supervisor: Supervisor
    ) -> None:
        self._section = section
        self._context = context
        self.worker = Worker("delivery", context, supervisor, Stage.DELIVER, section.concurrency)
        self.resolver = Resolver(
            section.dns_nameservers,
            timeout=section.dns_timeout,
            cache_ttl=section.dns_cache_ttl,
            max_mx_hosts=section.max_mx_hosts,
            dnssec=section.dnssec_resolver,
        )
        self.limiter = Limiter(section.per_destination_concurrency, section.destination_wait)
        self.health = HostHealth(section.host_failure_limit, section.host_backoff)
        self.tls_reports = TlsReports()
        self.pool: Pool | None = None
        self.mta_sts: MtaSts | None = None
        self.control = ControlState(context.topology.control_stream)
        self._follow: asyncio.Task[None] | None = None

    async def start(self) -> None:
        section, context = self._section, self._context
        unverified, verified = await asyncio.to_thread(tls_contexts, section.tls_ca_file)
        config = SessionConfig(
            helo_name=section.helo_name or context.hostname,
            connect_timeout=section.connect_timeout,
            unverified_tls=unverified,
            verified_tls=verified,
            timeouts=timeouts_of(section),
            reports=self.tls_reports,
        )
        self.pool = Pool(
            config,
            max_per_connection=section.max_messages_per_connection,
            idle_timeout=section.connection_idle_timeout,
            max_idle=section.max_idle_connections,
        )
        self.pool.start()
        await self.resolver.start()
        guard = DestinationGuard(
            section.deny_private_destinations, await broker_addresses(context.broker.urls)
        )
        if section.mta_sts:
            self.mta_sts = MtaSts(
                self.resolver,
                guard,
                self.tls_reports,
                port=section.mta_sts_port,
                ca_file=section.mta_sts_ca_file,
                timeout=section.mta_sts_timeout,
            )
            await self.mta_sts.start()
        engine = Engine(
            section,
            self.resolver,
            guard,
            self.pool,
            self.limiter,
            security=Security(section, self.resolver, self.tls_reports, self.mta_sts),
            health=self.health,
            sources=Sources(section.source_addresses, section.pools),
        )
        bus = self.worker.bus
        gate = ControlGate(self.control)
        handler = DeliveryHandler(section, engine, bus, gate, reporting_mta=context.hostname)
        self.worker.set_handler(handler)
        await self.worker.start()
        self._follow = asyncio.create_task(self.control.run(bus))

    @property
    def ready(self) -> bool:
        return self.worker.ready and self.control.synced.is_set()

    async def drain(self, grace: float) -> None:
        await self.worker.drain(grace)

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()
        if self.mta_sts is not None:
            await self.mta_sts.close()
        self.health.clear()
        if self._follow is not None:
            self._follow.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follow
        await self.control.close()
        await self.worker.close()


def timeouts_of(section: DeliverySettings) -> Timeouts:
    """The per-reply timeouts of ``[delivery]``."""
    return Timeouts(
        greeting=section.greeting_timeout,
        command=section.command_timeout,
        mail=section.mail_timeout,
        rcpt=section.rcpt_timeout,
        data_init=section.data_init_timeout,
        data_block=section.data_block_timeout,
        data_done=section.data_done_timeout,
        rset=section.rset_timeout,
    )


def build(section: DeliverySettings, context: ServiceContext, supervisor: Supervisor) -> Service:
    return DeliveryService(section, context, supervisor)
