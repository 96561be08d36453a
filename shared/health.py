"""The operations endpoint of every service: ``/metrics``, ``/healthz``, ``/readyz``.

``/healthz`` answers 200 while the event loop runs. ``/readyz`` answers 200 only
while ``is_ready()`` is true (broker connected, consumers running, not
draining), so a load balancer or Kubernetes stops sending work before a drain.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from postline.values import HostPort


class HealthServer:
    """Serves the three endpoints on one ``host:port``."""

    def __init__(self, listen: HostPort, is_ready: Callable[[], bool]) -> None:
        self._listen = listen
        self._is_ready = is_ready
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self._listen.host, self._listen.port).start()

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _metrics(self, _: web.Request) -> web.Response:
        body = generate_latest(REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, _: web.Request) -> web.Response:
        if self._is_ready():
            return web.Response(text="ready\n")
        return web.Response(status=503, text="not ready\n")
