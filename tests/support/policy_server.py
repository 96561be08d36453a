"""An HTTPS server for MTA-STS policies (RFC 8461 3.3), on loopback, for delivery tests.

``PolicyServer(chain_file, key_file)`` serves ``/.well-known/mta-sts.txt`` over
TLS on ``127.0.0.1`` (a free port, ``port``) on the test's event loop (aiohttp).
Tests set what it answers while it runs:

* ``policy``: the body (``text/plain``), e.g. ``policy_text("enforce", "mx.x.test")``;
* ``status``: the HTTP status (``500`` makes every fetch fail);
* ``content_type``: to serve something that is not ``text/plain``.

``fetches`` counts the requests for the policy. Delivery reaches it with
``[delivery] mta_sts_port = server.port`` and ``mta_sts_ca_file`` = the CA
that issued its certificate; the test's DNS server points
``mta-sts.<domain>`` at 127.0.0.1.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from aiohttp import web

from tests.support.net import free_port


def policy_text(mode: str, *mx: str, max_age: int = 86400) -> str:
    """An RFC 8461 policy: ``version``, ``mode``, one ``mx`` line per pattern, ``max_age``."""
    lines = ["version: STSv1", f"mode: {mode}", *(f"mx: {m}" for m in mx), f"max_age: {max_age}"]
    return "\r\n".join(lines) + "\r\n"


class PolicyServer:
    """See the module docstring. ``async with PolicyServer(chain, key) as server:``."""

    def __init__(self, chain_file: Path, key_file: Path, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = free_port(host)
        self.policy = policy_text("enforce", "mx.x.test")
        self.status = 200
        self.content_type = "text/plain"
        self.fetches = 0
        self._tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._tls.load_cert_chain(chain_file, key_file)
        self._runner: web.AppRunner | None = None

    async def _serve(self, request: web.Request) -> web.Response:
        self.fetches += 1
        return web.Response(status=self.status, text=self.policy, content_type=self.content_type)

    async def __aenter__(self) -> PolicyServer:
        app = web.Application()
        app.router.add_get("/.well-known/mta-sts.txt", self._serve)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self._tls)
        await site.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
