"""The console's login: token in, a random HttpOnly SameSite=Strict session out, CSRF-safe forms."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from http.cookies import SimpleCookie
from pathlib import Path

import aiohttp
import pytest

from tests.integration.audit.test_api_journeys import (
    Served,
    delivered_journey,
    rcpt_address,
    serving,
)

pytestmark = pytest.mark.integration

TOKEN = "console-token-0123456789abcdef"
RCPT = rcpt_address()


def cookies_of(response: aiohttp.ClientResponse) -> SimpleCookie:
    jar: SimpleCookie = SimpleCookie()
    for header in response.headers.getall("Set-Cookie", []):
        jar.load(header)
    return jar


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


class Browser:
    """A client that keeps cookies by hand, so the tests see exactly what was set."""

    def __init__(self, served: Served, http: aiohttp.ClientSession) -> None:
        self.served, self.http = served, http
        self.cookies: dict[str, str] = {}

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = dict(extra or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        return headers

    def _keep(self, response: aiohttp.ClientResponse) -> None:
        for name, morsel in cookies_of(response).items():
            if morsel.value:
                self.cookies[name] = morsel.value
            else:
                self.cookies.pop(name, None)

    async def get(self, path: str) -> tuple[int, str]:
        async with self.http.get(
            self.served.base + path, headers=self._headers(), allow_redirects=False
        ) as response:
            self._keep(response)
            return response.status, await response.text()

    async def post(
        self, path: str, form: dict[str, str], headers: dict[str, str] | None = None
    ) -> aiohttp.ClientResponse:
        async with self.http.post(
            self.served.base + path,
            data=form,
            headers=self._headers(headers),
            allow_redirects=False,
        ) as response:
            self._keep(response)
            await response.read()
            return response

    async def login(self, token: str = TOKEN, **extra: str) -> aiohttp.ClientResponse:
        _, html = await self.get("/")
        return await self.post("/login", {"token": token, "csrf": csrf_of(html), **extra})


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[Browser]:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"helpdesk:{TOKEN}\n")
    async with (
        serving(tmp_path, delivered_journey(RCPT), api_tokens_file=tokens) as served,
        aiohttp.ClientSession() as http,
    ):
        yield Browser(served, http)


async def test_without_a_session_the_console_shows_the_login_form(browser):
    status, html = await browser.get("/")
    assert status == 401
    assert '<form class="login" method="post" action="/login"' in html
    assert RCPT not in html
    assert browser.cookies.keys() == {"postline_csrf"}


async def test_login_sets_an_httponly_samesite_strict_session_that_is_not_the_token(browser):
    response = await browser.login()
    assert response.status == 303 and response.headers["Location"] == "/"
    session = cookies_of(response)["postline_session"]
    assert session["httponly"] is True
    assert session["samesite"] == "Strict"
    assert not session["secure"]  # plain HTTP here
    assert session["path"] == "/"
    assert TOKEN not in session.value and len(session.value) >= 32
    status, html = await browser.get(f"/?rcpt={RCPT}")
    assert status == 200 and RCPT in html
    status, _ = await browser.get("/v1/messages")
    assert status == 200


async def test_the_session_cookie_is_secure_when_the_request_came_over_tls(browser):
    _, html = await browser.get("/")
    response = await browser.post(
        "/login", {"token": TOKEN, "csrf": csrf_of(html)}, {"X-Forwarded-Proto": "https"}
    )
    assert cookies_of(response)["postline_session"]["secure"] is True


async def test_a_wrong_token_gets_the_form_again_and_no_session(browser):
    response = await browser.login(token=TOKEN[:-1] + "x")
    assert response.status == 401
    assert "postline_session" not in browser.cookies


async def test_a_cross_site_form_without_the_csrf_cookie_is_refused(browser):
    _, html = await browser.get("/")
    browser.cookies.pop("postline_csrf")  # a cross-site POST does not carry a Strict cookie
    response = await browser.post("/login", {"token": TOKEN, "csrf": csrf_of(html)})
    assert response.status == 403
    assert "postline_session" not in browser.cookies
    _, html = await browser.get("/")
    response = await browser.post("/login", {"token": TOKEN, "csrf": "0" * 32})
    assert response.status == 403


async def test_after_login_the_browser_goes_back_only_to_a_local_page(browser):
    response = await browser.login(next="/messages/X?a=1")
    assert response.headers["Location"] == "/messages/X?a=1"
    for elsewhere in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        browser.cookies.pop("postline_session", None)
        response = await browser.login(next=elsewhere)
        assert response.headers["Location"] == "/", elsewhere


async def test_logout_ends_the_session(browser):
    await browser.login()
    session = browser.cookies["postline_session"]
    _, html = await browser.get("/")
    response = await browser.post("/logout", {"csrf": csrf_of(html)})
    assert response.status == 303
    assert "postline_session" not in browser.cookies
    browser.cookies["postline_session"] = session  # replaying the old cookie
    status, _ = await browser.get("/")
    assert status == 401


async def test_a_session_ends_when_its_token_is_removed_from_the_file(browser):
    await browser.login()
    assert (await browser.get("/"))[0] == 200
    tokens_file = browser.served.settings.api_tokens_file
    assert tokens_file is not None
    tokens_file.write_text("other:another-token-0123456789abc\n")
    assert (await browser.get("/"))[0] == 401


async def test_without_tokens_the_console_needs_no_login(tmp_path):
    async with (
        serving(tmp_path, delivered_journey(RCPT)) as served,
        aiohttp.ClientSession() as http,
        http.get(served.base + "/", params={"rcpt": RCPT}) as response,
    ):
        html = await response.text()
        assert response.status == 200
        assert RCPT in html and 'action="/login"' not in html and "Log out" not in html
