"""The queue routes of the audit API: ``POST /v1/queue/{action}``, ``GET /v1/queue/requests/{id}``.

Behind the same guard as every ``/v1`` route (``api.ApiServer``: a bearer token
or a console session). ``POST /v1/queue/{action}`` needs a JSON object body
(``Content-Type: application/json``, at most ``MAX_BODY`` bytes; anything else
is a ``400`` or ``415``), checked by ``queueparams.parse_selection``; the
actor is the token's name, else the body's ``actor``, else ``unknown``. It
answers ``200`` with ``{"action", "dry_run", "matched", "ids", "not_waiting",
"request_id"}`` once the control record is confirmed (``503`` when the broker
did not confirm it: nothing was done). ``GET /v1/queue/requests/{id}``
answers ``{"request_id", "action", "total", "applied", "gone", "pending"}``,
or ``404`` for a request this audit process does not remember. Without a
``QueueActions`` (the API built alone) both answer ``503``.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Protocol

from aiohttp import web

from postline.audit.params import BadParameter
from postline.audit.queueparams import Selection, parse_selection
from postline.publish import PublishError

log = logging.getLogger("postline.audit.api")

MAX_BODY = 1024 * 1024
_NOT_HERE = "queue actions are not available on this listener (no broker connection)"


class Actions(Protocol):
    async def act(self, selection: Selection, actor: str) -> dict[str, Any]: ...

    async def status(self, request_id: str) -> dict[str, Any] | None: ...


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class QueueRoutes:
    """The handlers; ``actor_of(request)`` gives the token's name (or None)."""

    def __init__(self, actions: Actions | None, actor_key: web.RequestKey[str]) -> None:
        self.actions = actions
        self._actor_key = actor_key

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/queue/{action}", self.act)
        app.router.add_get("/v1/queue/requests/{request_id}", self.status, allow_head=False)

    async def act(self, request: web.Request) -> web.Response:
        if request.content_type != "application/json":
            return _error(415, "send the body as JSON (Content-Type: application/json)")
        try:
            body = await _json_body(request)
            selection = parse_selection(request.match_info["action"], body)
        except BadParameter as error:
            return _error(400, str(error))
        if self.actions is None:
            return _error(503, _NOT_HERE)
        actor = request.get(self._actor_key) or selection.actor or "unknown"
        try:
            answer = await self.actions.act(selection, actor)
        except BadParameter as error:
            return _error(400, str(error))
        except PublishError as error:
            log.warning("operator action not recorded: %s", error)
            return _error(503, "the broker did not confirm the action: nothing was done; retry")
        return web.json_response(answer)

    async def status(self, request: web.Request) -> web.Response:
        if self.actions is None:
            return _error(503, _NOT_HERE)
        found = await self.actions.status(request.match_info["request_id"])
        if found is None:
            return _error(404, "no such request (requests are remembered for some hours)")
        return web.json_response(found)


async def _json_body(request: web.Request) -> Any:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise BadParameter(f"the body must be at most {MAX_BODY} bytes")
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise BadParameter(f"the body must be at most {MAX_BODY} bytes")
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError):
        raise BadParameter("the body is not valid JSON") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
