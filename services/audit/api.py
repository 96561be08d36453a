"""The audit listener: the query API (``/v1/...``) and the message console (``/``).

``ApiServer(section, index, queue)`` serves on ``[audit] api_listen`` (nothing
when it is None):

* ``GET /v1/messages?rcpt=&sender=&message_id=&state=&since=&until=&domain=``
  ``&older_than=&reply=&limit=&cursor=`` -> ``{"messages": [...], "next_cursor":
  ...}`` (``params`` checks the query; a bad one is a ``400``), newest first;
* ``GET /v1/messages/{id}`` -> ``{"messages": [one]}``, or ``404``;
* ``POST /v1/queue/{action}`` and ``GET /v1/queue/requests/{id}``: operator
  actions on waiting mail (``queueapi``; ``queue`` is the ``QueueActions``,
  None where the API runs without a broker: those routes answer ``503``);
* ``GET /v1/openapi.json``: the OpenAPI 3.1 document of every route (``openapi``);
* the console's pages (``console``).

Each message is ``views.to_json``; errors are ``{"error": "..."}`` with one
clear message. With ``[audit] api_tokens_file`` every route except the
console's ``POST /login`` needs ``Authorization: Bearer <token>`` or an open
console session (``auth``): the API answers ``401`` with ``WWW-Authenticate``,
the console its login form. Without a tokens file the server refuses to start
unless ``api_listen`` is a loopback address (``ConfigError``, one line).
Nothing here logs a token, an address or a query: the access log is off.
Every response says ``no-store``, ``nosniff``, ``no-referrer`` and a
Content-Security-Policy that allows no script and no outside resource.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from postline.audit.auth import Sessions, Token, TokenStore, bearer
from postline.audit.console import SESSION_COOKIE, Console
from postline.audit.index import Index
from postline.audit.openapi import document
from postline.audit.params import BadParameter, parse_query, search
from postline.audit.queueapi import Actions, QueueRoutes
from postline.audit.settings import AuditSettings
from postline.audit.views import to_json
from postline.models import utcnow
from postline.netaddr import parse_ip
from postline.settings import ConfigError
from postline.values import HostPort

log = logging.getLogger("postline.audit.api")

ACTOR = web.RequestKey("postline.actor", str)  # the name of the token behind a request
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
}
_NEED_TOKEN = "a valid token is required: send 'Authorization: Bearer <token>'"


def is_loopback(host: str) -> bool:
    address = parse_ip(host)
    return host.lower() == "localhost" or (address is not None and address.is_loopback)


def refuse_exposure(listen: HostPort, tokens_file: Path | None) -> None:
    """Raise ``ConfigError`` when the API would serve without tokens beyond loopback."""
    if tokens_file is None and not is_loopback(listen.host):
        raise ConfigError(
            f"[audit] api_listen {listen} is not a loopback address and [audit] "
            "api_tokens_file is not set: the API serves personal data, so set a tokens "
            "file or listen on 127.0.0.1"
        )


def json_response(body: dict[str, Any], status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


def json_error(status: int, message: str) -> web.Response:
    return json_response({"error": message}, status)


class ApiServer:
    """The query API and the console on ``[audit] api_listen`` (module docstring)."""

    def __init__(self, section: AuditSettings, index: Index, queue: Actions | None = None) -> None:
        self._section = section
        self._index = index
        self.queue = QueueRoutes(queue, ACTOR)
        self.tokens = TokenStore(section.api_tokens_file)
        self.sessions = Sessions()
        self.console = Console(index, self.tokens, self.sessions)
        self._runner: web.AppRunner | None = None

    def application(self) -> web.Application:
        app = web.Application(middlewares=[self._guard])
        app.router.add_get("/v1/messages", self._search, allow_head=False)
        app.router.add_get("/v1/messages/{id}", self._message, allow_head=False)
        app.router.add_get("/v1/openapi.json", self._openapi, allow_head=False)
        self.queue.add_routes(app)
        self.console.add_routes(app)
        return app

    async def start(self) -> None:
        listen = self._section.api_listen
        if listen is None:
            return
        refuse_exposure(listen, self._section.api_tokens_file)
        await self.tokens.refresh()
        runner = web.AppRunner(self.application(), access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, listen.host, listen.port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        log.info(
            "query API and message console on http://%s/",
            listen,
            extra={"tokens": self.tokens.enabled},
        )

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- authentication and headers --------------------------------------------------------

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await self._authorized(request, handler)
        except web.HTTPException as error:
            if error.status < 400:
                raise
            response = self._http_error(request, error)
        response.headers.update(SECURITY_HEADERS)
        return response

    async def _authorized(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.tokens.enabled and not self.console.is_public(request):
            token = await self.authenticate(request)
            if token is None:
                return self._refuse(request)
            request[ACTOR] = token.name
        return await handler(request)

    async def authenticate(self, request: web.Request) -> Token | None:
        """The token behind the request's bearer header, else behind its session cookie."""
        header = request.headers.get("Authorization")
        if header is not None:
            presented = bearer(header)
            return None if presented is None else await self.tokens.check(presented)
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            return None
        await self.tokens.refresh()
        return self.sessions.get(cookie, self.tokens)

    def _refuse(self, request: web.Request) -> web.StreamResponse:
        if not _is_api(request):
            return self.console.login_page(request, status=401)
        response = json_error(401, _NEED_TOKEN)
        wrong = "Authorization" in request.headers
        challenge = 'Bearer realm="postline"' + (', error="invalid_token"' if wrong else "")
        response.headers["WWW-Authenticate"] = challenge
        return response

    def _http_error(self, request: web.Request, error: web.HTTPException) -> web.StreamResponse:
        """A router error (unknown path, wrong method) as JSON or as a console page."""
        if _is_api(request):
            response: web.StreamResponse = json_error(error.status, error.reason.lower())
        else:
            response = self.console.error_page(error.status, error.reason, request)
        if "Allow" in error.headers:
            response.headers["Allow"] = error.headers["Allow"]
        return response

    # -- the API ---------------------------------------------------------------------------

    async def _search(self, request: web.Request) -> web.Response:
        try:
            page = await search(self._index, parse_query(request.query, utcnow()))
        except BadParameter as error:
            return json_error(400, str(error))
        return json_response(
            {
                "messages": [to_json(record) for record in page.messages],
                "next_cursor": page.next_cursor,
            }
        )

    async def _message(self, request: web.Request) -> web.Response:
        record = await self._index.message(request.match_info["id"])
        if record is None:
            return json_error(404, "no message with this id")
        return json_response({"messages": [to_json(record)]})

    async def _openapi(self, _: web.Request) -> web.Response:
        return json_response(document())


def _is_api(request: web.Request) -> bool:
    return request.path.startswith("/v1/") or request.path == "/v1"
