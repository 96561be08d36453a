"""One delivery attempt to one destination: route, resolve, secure, connect, transact.

``Engine.attempt(domain, transaction)`` fills ``transaction.decided`` with a
``Decision`` for every recipient and returns the conversations (one per SMTP
session touched, or host skipped) for the transcript events. It never raises
for anything the network, DNS or the remote did; only programming errors
escape.

Order of work, as a careful MTA does it:

1. wait for a session slot at the destination (``Limiter``); none within
   ``destination_wait``: every recipient gets ``4.4.5`` with ``counted=False``
   (the handler requeues it without using up a retry step);
2. under the wall-clock cap ``attempt_timeout`` (aiosmtplib's timeouts are
   per reply, so a drip-feeding server would never trip them): resolve the
   route (``route``/``mx``) and, at the same time, the domain's MTA-STS policy
   (``security``); then try each MX host in order and each of its addresses.
   A host is skipped when its transport security policy says so (MTA-STS
   ``enforce`` and an MX it does not allow; a failed DANE TLSA lookup), an
   address when the ``DestinationGuard`` refuses it, when the sender's source
   pool has no address of its family (``sources``), or while the host is down
   (``health``: ``skipped: host ... down since 12:03``, no connection made);
   a host that refuses the connection, times out, or answers the greeting,
   EHLO or STARTTLS with a refusal or a reply those phases cannot have (a
   protocol error) is skipped for the next one; connection failures and
   timeouts count towards the host being down, any answer clears that;
3. the first usable session carries the transaction; its replies are final.
   A transaction that fails midway (lost, timed out, protocol error) gives
   its undecided recipients the temporary reply standing for the failure.
   The session goes back to the pool only if it is alive, in step (nothing
   unread or unsolicited arrived: ``Connection.reusable``) and not closing;
4. if no host was usable, every recipient gets the last temporary failure
   (or, when all failures were permanent, the last permanent one);
5. if the cap expires, recipients still undecided get ``4.4.2`` and the
   session is dropped.

Every decision and conversation says where as data (``transaction.Where``:
the host as a ``Peer``, and the session id and TLS once connected); the
``name[ip]:port`` label appears only in transcript lines and reply texts.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from postline.delivery import metrics, replies
from postline.delivery.connection import Connection, HostFailure, Target
from postline.delivery.health import HostHealth
from postline.delivery.mtasts import StsLookup
from postline.delivery.mx import MxHost, Resolver, RouteError
from postline.delivery.pool import DestinationBusy, Limiter, Pool
from postline.delivery.route import DestinationGuard, Route, route_for
from postline.delivery.security import HostSecurity, Security
from postline.delivery.settings import DeliverySettings
from postline.delivery.sources import NoSource, Source, Sources
from postline.delivery.tlsrpt import TlsReports
from postline.delivery.transaction import Decision, Transaction, Where, peer_of, where_of
from postline.delivery.trouble import Phase, reply_for
from postline.models import Peer
from postline.reply import SmtpReply

_CONNECTION_PHASES = (Phase.CONNECT, Phase.GREETING)


@dataclass(frozen=True)
class Conversation:
    """The transcript of one SMTP session (or failed connection) during an attempt."""

    where: Where
    lines: tuple[str, ...]


class Engine:
    """Delivery attempts for one service instance (module docstring)."""

    def __init__(
        self,
        settings: DeliverySettings,
        resolver: Resolver,
        guard: DestinationGuard,
        pool: Pool,
        limiter: Limiter,
        *,
        security: Security | None = None,
        health: HostHealth | None = None,
        sources: Sources | None = None,
    ) -> None:
        self.settings = settings
        self.resolver = resolver
        self.guard = guard
        self.pool = pool
        self.limiter = limiter
        self.security = security or Security(settings, resolver, TlsReports(), None)
        self.health = health or HostHealth(settings.host_failure_limit, settings.host_backoff)
        self.sources = sources or Sources(settings.source_addresses, settings.pools)

    async def attempt(self, domain: str, transaction: Transaction) -> list[Conversation]:
        route = route_for(domain, self.settings)
        conversations: list[Conversation] = []
        try:
            async with self.limiter.slot(route.nexthop):
                await self._capped(domain, route, transaction, conversations)
        except DestinationBusy:
            metrics.DESTINATION_BUSY.inc()
            detail = f"{route.nexthop} after {self.settings.destination_wait:g}s"
            reply = replies.detailed(replies.DESTINATION_BUSY, detail)
            transaction.decide_all(reply, Phase.QUEUE, None, counted=False)
        return conversations

    async def _capped(
        self, domain: str, route: Route, transaction: Transaction, out: list[Conversation]
    ) -> None:
        started = time.monotonic()
        cap = self.settings.attempt_timeout
        try:
            async with asyncio.timeout(cap) as deadline:
                await self._deliver(domain, route, transaction, out)
        except TimeoutError:
            if not deadline.expired():
                raise
            reply = replies.detailed(replies.ATTEMPT_TIMEOUT, f"{cap:g}s")
            transaction.decide_all(reply, transaction.phase, transaction.where, remote=False)
        finally:
            metrics.SESSION_SECONDS.observe(time.monotonic() - started)

    async def _deliver(
        self, domain: str, route: Route, transaction: Transaction, out: list[Conversation]
    ) -> None:
        transaction.phase = Phase.DNS
        policy = asyncio.ensure_future(self.security.domain_policy(domain, route))
        try:
            hosts = await self._hosts(route)
            sts = await policy
        except RouteError as error:
            transaction.decide_all(error.reply, Phase.DNS, None, remote=False)
            return
        finally:
            policy.cancel()
        failures: list[Decision] = []  # of each host skipped, in order
        for host in hosts:
            targets = await self._targets(domain, route, host, sts, transaction, failures, out)
            for target in targets:
                transaction.where = Where(peer_of(target))
                transaction.phase = Phase.CONNECT
                connection = await self._connect(target, failures, out)
                if connection is not None:
                    await self._transact(connection, transaction, out)
                    return
        final = _final(failures)
        transaction.decide_all(final.reply, final.phase, final.where, final.remote)

    async def _hosts(self, route: Route) -> list[MxHost]:
        if route.lookup_mx:
            return await self.resolver.mx_hosts(route.host)
        return [MxHost(route.host, 0)]

    async def _connect(
        self, target: Target, failures: list[Decision], out: list[Conversation]
    ) -> Connection | None:
        """A session to ``target``, or None after noting why not (down, or it failed)."""
        where = Where(peer_of(target))
        down = self.health.down(target.address, target.port)
        if down is not None:
            out.append(Conversation(where, (f"skipped: host {target.label} {down.describe()}",)))
            reply = replies.detailed(replies.HOST_DOWN, f"{target.label} {down.describe()}")
            failures.append(Decision(reply, Phase.CONNECT, where, remote=False))
            return None
        try:
            connection, _ = await self.pool.acquire(target)
        except HostFailure as failure:
            self._health_after(target, failure)
            where = where_of(failure.connection)
            out.append(Conversation(where, tuple(failure.connection.take_lines())))
            failures.append(Decision(failure.reply, failure.phase, where, failure.remote))
            return None
        except BaseException:
            self.health.release(target.address, target.port)
            raise
        self.health.up(target.address, target.port)
        return connection

    def _health_after(self, target: Target, failure: HostFailure) -> None:
        """Connection failures and timeouts count; any answer means the host is up."""
        silent = failure.phase in _CONNECTION_PHASES and not failure.remote
        if silent and (failure.reply.enhanced or "").startswith("4.4."):
            self.health.failed(target.address, target.port)
        else:
            self.health.up(target.address, target.port)

    async def _targets(
        self,
        domain: str,
        route: Route,
        host: MxHost,
        sts: StsLookup | None,
        transaction: Transaction,
        failures: list[Decision],
        out: list[Conversation],
    ) -> list[Target]:
        where = Where(Peer(name=host.name))
        try:
            addresses, secure = await self.resolver.secure_addresses(host.name)
        except RouteError as error:
            failures.append(Decision(error.reply, Phase.DNS, where, False))
            return []
        security = await self.security.for_host(domain, route, host, sts, secure)
        if isinstance(security, SmtpReply):
            out.append(Conversation(where, (f"skipped: {security}",)))
            failures.append(Decision(security, Phase.POLICY, where, False))
            return []
        targets = []
        for address in addresses:
            why = None if route.operator_chosen else self.guard.refusal(address)
            if why is not None:
                reply = replies.detailed(replies.PRIVATE_DESTINATION, f"{host.name}: {why}")
                failures.append(Decision(reply, Phase.ROUTE, where, False))
                continue
            try:
                source = self.sources.pick(transaction.mail_from, transaction.auth_user, address)
            except NoSource as error:
                reply = replies.detailed(replies.NO_SOURCE, f"{host.name}[{address}]: {error}")
                failures.append(Decision(reply, Phase.ROUTE, where, False))
                continue
            targets.append(self._target(domain, route, host, address, security, source))
        return targets

    def _target(
        self,
        domain: str,
        route: Route,
        host: MxHost,
        address: str,
        security: HostSecurity,
        source: Source | None,
    ) -> Target:
        credentials = None
        if route.smarthost and self.settings.smarthost_username is not None:
            assert self.settings.smarthost_password is not None
            password = self.settings.smarthost_password.get_secret_value()
            credentials = (self.settings.smarthost_username, password)
        return Target(
            host.name,
            address,
            route.port,
            security.tls_policy,
            credentials,
            tlsa=security.tlsa,
            sts=security.sts,
            tls_fallback=security.tls_fallback,
            domain=domain,
            policy_type=security.policy_type,
            source=source,
            note=security.note,
        )

    async def _transact(
        self, connection: Connection, transaction: Transaction, out: list[Conversation]
    ) -> None:
        where = where_of(connection)
        reusable = False
        try:
            await transaction.run(connection)
            closing = any(d.reply.code == 421 for d in transaction.decided.values())
            reusable = connection.reusable and not closing
            connection.note_out_of_step()
        except Exception as error:
            reply = reply_for(error, transaction.phase, connection.target.label)
            connection.note(f"failed: {reply}")
            transaction.decide_all(reply, transaction.phase, where, remote=False)
        finally:
            if not reusable:
                connection.abort()
            out.append(Conversation(where, tuple(connection.take_lines())))
            self.pool.release(connection, reusable)


def _final(failures: list[Decision]) -> Decision:
    """The last temporary failure, or the last failure when all were permanent."""
    if not failures:
        reply = replies.detailed(replies.NO_MX_ADDRESS, "no usable host")
        return Decision(reply, Phase.ROUTE, None, remote=False)
    temporary = [f for f in failures if f.reply.is_transient]
    return (temporary or failures)[-1]
