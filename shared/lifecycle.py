"""Process lifecycle shared by every service: start, serve, drain, exit.

``serve`` is the one skeleton every service runs in (Postfix's
``*_server_main``): it builds the services with a ``Supervisor``, starts the
health endpoints and the services, waits for SIGTERM/SIGINT or a fatal error,
then turns ``/readyz`` false, drains every service within its grace period,
closes them and returns the exit code (0 after a clean stop, 1 after a fatal
error). ``run`` is its synchronous entry point, which bounds the clean-up of
leftover tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Sequence
from typing import Protocol

from postline.health import HealthServer
from postline.values import HostPort

log = logging.getLogger("postline.lifecycle")


class Service(Protocol):
    """What the lifecycle needs from a service."""

    name: str

    async def start(self) -> None: ...

    @property
    def ready(self) -> bool: ...

    async def drain(self, grace: float) -> None: ...

    async def close(self) -> None: ...


class Supervisor:
    """Lets services ask the process to stop (``stop``) or die (``fail``)."""

    def __init__(self) -> None:
        self.stopping = asyncio.Event()
        self.exit_code = 0

    def stop(self) -> None:
        self.stopping.set()

    def fail(self, reason: str) -> None:
        log.critical("fatal: %s", reason)
        self.exit_code = 1
        self.stopping.set()


Builder = Callable[[Supervisor], Sequence[Service]]


async def serve(build: Builder, listens: Sequence[HostPort | None], grace: float) -> int:
    """Run the services built by ``build`` until a signal or a fatal error."""
    supervisor = Supervisor()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, supervisor.stop)
    services = list(build(supervisor))
    draining = False

    def is_ready() -> bool:
        return not draining and all(service.ready for service in services)

    servers = [HealthServer(listen, is_ready) for listen in listens if listen is not None]
    try:
        for server in servers:
            await server.start()
        for service in services:
            await service.start()
            log.info("%s started", service.name)
        await supervisor.stopping.wait()
    except Exception as error:  # a listener that cannot bind, a bad certificate, ...
        log.critical("could not start: %s", error)
        supervisor.exit_code = 1
    draining = True
    log.info("draining (grace %.0fs)", grace)
    await asyncio.gather(*(service.drain(grace) for service in services), return_exceptions=True)
    for service in services:
        with contextlib.suppress(Exception):
            await service.close()
    for server in servers:
        await server.close()
    log.info("stopped", extra={"exit_code": supervisor.exit_code})
    return supervisor.exit_code


def run(build: Builder, listens: Sequence[HostPort | None], grace: float) -> int:
    """Synchronous entry point of every service: returns the process exit code.

    Unlike ``asyncio.run``, whose final clean-up waits without limit for every
    leftover task to finish cancelling, a stopped service gives leftovers
    ``LEFTOVER_GRACE`` seconds: a library task that will not die must not keep
    a drained process (and its supervisor's restart) waiting forever.
    """
    loop = asyncio.new_event_loop()
    try:
        code = loop.run_until_complete(serve(build, listens, grace))
        loop.run_until_complete(_cancel_leftovers(LEFTOVER_GRACE))
        return code
    finally:
        loop.close()


LEFTOVER_GRACE = 10.0


async def _cancel_leftovers(within: float) -> None:
    current = asyncio.current_task()
    leftovers = [task for task in asyncio.all_tasks() if task is not current]
    for task in leftovers:
        task.cancel()
    if leftovers:
        _, pending = await asyncio.wait(leftovers, timeout=within)
        if pending:
            log.warning("%d tasks did not stop within %.0fs; exiting anyway", len(pending), within)
    loop = asyncio.get_running_loop()
    await loop.shutdown_asyncgens()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(loop.shutdown_default_executor(), within)
