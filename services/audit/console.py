"""The message console: server-rendered pages on the API's listener, for people.

* ``GET /``: the search box (recipient, sender, message id, state) and the
  results table (time, sender, recipients, state, last reply), newest first,
  with a link to the next page; with no search, the latest messages.
* ``GET /messages/{id}``: the diagnosis first, then the four steps of
  ``timeline`` with the SMTP conversation of each attempt.
* ``POST /login`` / ``POST /logout``: with tokens configured, the login form
  takes a token and opens a session (``auth.Sessions``): the cookie is a random
  server-side value, never the token, ``HttpOnly``, ``SameSite=Strict``, and
  ``Secure`` when the request came over TLS (or says so in ``X-Forwarded-Proto``).

Forms are CSRF-safe by a double submit: every page sets a random
``SameSite=Strict`` CSRF cookie and puts the same value in its forms; a POST
whose field and cookie differ (a cross-site form cannot send the cookie) is a
``403``. Pages are Jinja2 templates with autoescape on and ``StrictUndefined``;
every value from a client or a remote server reaches HTML escaped. No script,
no external asset: the CSS is inline and everything works without JavaScript.
"""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from postline.audit.auth import Sessions, TokenStore
from postline.audit.diagnose import diagnose
from postline.audit.index import Index
from postline.audit.params import PARAMETERS, BadParameter, parse_query, search
from postline.audit.timeline import summary, timeline
from postline.audit.views import STATES
from postline.models import utcnow

TEMPLATES = Path(__file__).parent / "templates"
SESSION_COOKIE = "postline_session"
CSRF_COOKIE = "postline_csrf"
_MAX_TOKEN = 4096


def environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def secure(request: web.Request) -> bool:
    """Whether the browser reached us over TLS (directly, or through a TLS-ending proxy)."""
    return request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"


def safe_next(target: str) -> str:
    """A local path to go to after login (never another site)."""
    if target.startswith("/") and not target.startswith(("//", "/\\")) and target.isprintable():
        return target
    return "/"


def redirect(location: str) -> web.Response:
    """``303 See Other`` to a local path (a returned response, so cookies can be set on it)."""
    return web.Response(status=303, headers={"Location": location})


class Console:
    """The console's routes and pages (module docstring)."""

    def __init__(self, index: Index, tokens: TokenStore, sessions: Sessions) -> None:
        self._index = index
        self._tokens = tokens
        self._sessions = sessions
        self._env = environment()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/", self._search, allow_head=False)
        app.router.add_get("/messages/{id}", self._message, allow_head=False)
        app.router.add_post("/login", self._login)
        app.router.add_post("/logout", self._logout)

    def is_public(self, request: web.Request) -> bool:
        """The one route that needs no login: the login form's POST."""
        return request.method == "POST" and request.path == "/login"

    # -- pages -----------------------------------------------------------------------------

    def render(
        self, request: web.Request | None, template: str, status: int = 200, **context: Any
    ) -> web.Response:
        csrf = (request.cookies.get(CSRF_COOKIE) if request is not None else None) or ""
        fresh = not (16 <= len(csrf) <= 128 and csrf.isalnum())
        if fresh:
            csrf = secrets.token_hex(16)
        html = self._env.get_template(template).render(
            csrf=csrf, auth=self._tokens.enabled, **context
        )
        response = web.Response(text=html, status=status, content_type="text/html")
        if fresh and request is not None:
            response.set_cookie(
                CSRF_COOKIE, csrf, httponly=True, samesite="Strict", secure=secure(request)
            )
        return response

    def login_page(
        self, request: web.Request, status: int = 401, error: str = "", target: str | None = None
    ) -> web.Response:
        """The login form; after login the browser goes to ``target`` (default: this page)."""
        if target is None:
            target = request.path_qs if request.method == "GET" else "/"
        return self.render(request, "login.html", status, next=safe_next(target), error=error)

    def error_page(
        self, status: int, reason: str, request: web.Request | None = None
    ) -> web.Response:
        return self.render(request, "error.html", status, code=status, reason=reason)

    async def _search(self, request: web.Request) -> web.Response:
        form = {name: request.query.get(name, "") for name in PARAMETERS if name != "cursor"}
        try:
            page = await search(self._index, parse_query(request.query, utcnow()))
        except BadParameter as error:
            return self.render(request, "search.html", 400, form=form, states=STATES,
                               rows=[], error=str(error), next_url=None)  # fmt: skip
        next_url = None
        if page.next_cursor is not None:
            kept = {k: v for k, v in request.query.items() if k != "cursor" and v}
            next_url = "/?" + urlencode({**kept, "cursor": page.next_cursor})
        rows = [summary(record) for record in page.messages]
        return self.render(request, "search.html", form=form, states=STATES, rows=rows,
                           error="", next_url=next_url)  # fmt: skip

    async def _message(self, request: web.Request) -> web.Response:
        record = await self._index.message(request.match_info["id"])
        if record is None:
            return self.error_page(404, "No message with this id.", request)
        return self.render(
            request,
            "message.html",
            record=record,
            diagnosis=diagnose(record),
            steps=timeline(record),
            row=summary(record),
        )

    # -- login and logout ------------------------------------------------------------------

    async def _login(self, request: web.Request) -> web.Response:
        form = await request.post()
        target = safe_next(str(form.get("next", "/")))
        if not self._csrf_ok(request, form.get("csrf")):
            return self.login_page(request, 403, "The form expired; please try again.", target)
        if not self._tokens.enabled:
            return redirect(target)
        token = str(form.get("token", ""))[:_MAX_TOKEN].strip()
        found = await self._tokens.check(token) if token else None
        if found is None:
            return self.login_page(request, 401, "That token is not valid.", target)
        response = redirect(target)
        response.set_cookie(
            SESSION_COOKIE,
            self._sessions.open(found),
            httponly=True,
            samesite="Strict",
            secure=secure(request),
            path="/",
        )
        return response

    async def _logout(self, request: web.Request) -> web.Response:
        form = await request.post()
        if not self._csrf_ok(request, form.get("csrf")):
            return self.error_page(403, "The form expired; please try again.", request)
        self._sessions.close(request.cookies.get(SESSION_COOKIE, ""))
        response = redirect("/")
        response.del_cookie(SESSION_COOKIE, path="/")
        return response

    def _csrf_ok(self, request: web.Request, field: object) -> bool:
        cookie = request.cookies.get(CSRF_COOKIE, "")
        given = field if isinstance(field, str) else ""
        return bool(cookie) and hmac.compare_digest(cookie.encode(), given.encode())
