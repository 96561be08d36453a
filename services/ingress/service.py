"""The ingress service: listeners, broker connection and drain (``lifecycle.Service``).

``start`` loads the certificate (a bad one stops the start), connects to the
broker in the background (ingress listens even while RabbitMQ is down; DATA
then answers ``451 4.3.0``), and opens one asyncio server per ``listen`` and
``listen_tls`` address, each creating an ``IngressSMTP`` per connection on
the running loop. ``ready`` is true once the broker is connected and the
listeners are open, and false from the first moment of a drain.

``drain``: ``/readyz`` is already false; after ``drain_delay`` the listeners
close, idle sessions get ``421 4.3.2``, open transactions may finish until
``grace`` runs out, then whatever is left is closed with ``421 4.3.2``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from postline.bus import Bus
from postline.context import ServiceContext
from postline.ingress.auth import Authenticator
from postline.ingress.handler import IngressHandler
from postline.ingress.replies import SHUTTING_DOWN
from postline.ingress.session import session_factory
from postline.ingress.settings import IngressSettings
from postline.ingress.state import Listener, Shared
from postline.ingress.tls import TlsContext
from postline.ingress.users import PasswordChecker, UserStore
from postline.lifecycle import Supervisor
from postline.values import HostPort

log = logging.getLogger("postline.ingress")
BACKLOG = 1024


class IngressService:
    """One ingress process's listeners and broker connection."""

    name = "ingress"

    def __init__(
        self, settings: IngressSettings, context: ServiceContext, supervisor: Supervisor
    ) -> None:
        self.settings = settings
        self.hostname = settings.hostname or context.hostname
        self.bus = Bus(
            context.broker, context.topology, name="postline-ingress", on_fatal=supervisor.fail
        )
        self.users = UserStore(self.settings.users_file)
        self.handler = IngressHandler(self.settings, self.bus, self.users)
        self.authenticator = Authenticator(self.settings, self.users, PasswordChecker())
        self.shared: Shared | None = None
        self.addresses: dict[Listener, list[HostPort]] = {kind: [] for kind in Listener}
        self._servers: list[asyncio.Server] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    async def start(self) -> None:
        tls = None
        if self.settings.tls_cert is not None and self.settings.tls_key is not None:
            cert, key = self.settings.tls_cert, self.settings.tls_key
            interval = self.settings.tls_reload_interval
            tls = await asyncio.to_thread(TlsContext, cert, key, interval)
            self._tasks.append(asyncio.create_task(tls.watch()))
        self.shared = Shared(self.settings, self.handler, self.authenticator, tls, self.hostname)
        await self.users.refresh()
        await self.bus.start()
        for kind, listens in (
            (Listener.PLAIN, self.settings.listen),
            (Listener.IMPLICIT_TLS, self.settings.listen_tls),
        ):
            for listen in listens:
                await self._listen(self.shared, kind, listen)

    async def _listen(self, shared: Shared, kind: Listener, listen: HostPort) -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: session_factory(shared, kind),
            listen.host,
            listen.port,
            reuse_address=True,
            backlog=BACKLOG,
        )
        self._servers.append(server)
        for sock in server.sockets:
            host, port = sock.getsockname()[:2]
            self.addresses[kind].append(HostPort(host, port))
            log.info("listening", extra={"listener": kind.value, "address": f"{host}:{port}"})

    @property
    def ready(self) -> bool:
        """Listening, connected to the broker, and able to take another session."""
        if self._stopping or not self._servers or not self.bus.ready or self.shared is None:
            return False
        return self.shared.sessions.total < self.shared.sessions.max_total

    async def drain(self, grace: float) -> None:
        self._stopping = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        await asyncio.sleep(self.settings.drain_delay)
        for server in self._servers:
            server.close()
        if self.shared is None:
            return
        self.shared.begin_drain()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.shared.all_closed.wait(), max(deadline - loop.time(), 0))
        for session in list(self.shared.live):
            session.abort(SHUTTING_DOWN, "drain grace period over")
        await self.handler.wait_idle(max(deadline - loop.time(), 1.0))
        log.info("ingress drained")

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for server in self._servers:
            server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 5)
        await self.bus.close()
