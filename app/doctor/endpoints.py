"""The audit API and each service's ``/readyz``, where their addresses are configured.

* ``audit api``: ``GET /v1/openapi.json`` on ``[audit] api_listen`` with the
  first token of ``api_tokens_file`` (``name:token`` or the token per line;
  none: no ``Authorization``). 200 passes; 401/403 means the token is wrong;
  no answer is a ``WARN`` (as below).
* ``readyz <service>``: ``GET /readyz`` on each ``metrics_listen`` of
  ``[ingress]``, ``[filter]``, ``[delivery]``, ``[audit]``: 200 is ready, 503
  is up but not ready (not connected to the broker, or draining): ``FAIL``.
  No answer at all is a ``WARN``: the service does not run there (it may run
  on another machine; the defaults of ``metrics_listen`` are always set).

A wildcard listen address (``0.0.0.0``, ``::``) is asked on loopback, so these
lines describe services on this machine (or in this pod). Each request has a
``TIMEOUT`` s deadline.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp

from postline.app.doctor.report import Check, escape, failed, passed, warned
from postline.app.settings import Settings
from postline.values import HostPort

TIMEOUT = 3.0
SERVICES = ("ingress", "filter", "delivery", "audit")
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def base_url(listen: HostPort) -> str:
    """``http://host:port`` of a listen address (wildcards on loopback)."""
    host = _WILDCARDS.get(listen.host, listen.host)
    return f"http://[{host}]:{listen.port}" if ":" in host else f"http://{host}:{listen.port}"


def first_token(path: Path | None) -> str | None:
    """The first token of a tokens file (the audit service's format), or None."""
    if path is None:
        return None
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError:
        return None
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            _, colon, token = line.partition(":")
            return (token if colon else line).strip() or None
    return None


async def endpoint_checks(settings: Settings) -> list[Check]:
    timeout = aiohttp.ClientTimeout(total=TIMEOUT)
    checks: list[Check] = []
    async with aiohttp.ClientSession(timeout=timeout) as session:
        if settings.audit.api_listen is not None:
            checks.append(await _api(session, settings))
        for name in SERVICES:
            listen = getattr(settings, name).metrics_listen
            if listen is not None:
                checks.append(await _readyz(session, name, listen))
    return checks


async def _get(session: aiohttp.ClientSession, url: str, token: str | None) -> int | str:
    """The status of ``GET url``, or why nothing answered."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        async with session.get(url, headers=headers, allow_redirects=False) as response:
            await response.read()
            return response.status
    except TimeoutError:
        return f"no answer within {TIMEOUT:g}s"
    except aiohttp.ClientConnectorError as error:
        return f"cannot connect ({escape(error.os_error.strerror or error.os_error)})"
    except aiohttp.ClientError as error:
        return escape(error)


async def _api(session: aiohttp.ClientSession, settings: Settings) -> Check:
    assert settings.audit.api_listen is not None
    url = base_url(settings.audit.api_listen) + "/v1/openapi.json"
    status = await _get(session, url, first_token(settings.audit.api_tokens_file))
    if status == 200:
        return passed("audit api", f"GET {url}: 200")
    if status in (401, 403):
        advice = "put a valid token first in [audit] api_tokens_file (the audit service's file)"
        return failed("audit api", f"GET {url}: {status} (token refused)", advice)
    if isinstance(status, str):
        advice = "nothing answers here: start the audit service, or fix [audit] api_listen"
        return warned("audit api", f"GET {url}: {status}", advice)
    return failed("audit api", f"GET {url}: {status}", "see the audit service's logs")


async def _readyz(session: aiohttp.ClientSession, name: str, listen: HostPort) -> Check:
    url = base_url(listen) + "/readyz"
    status = await _get(session, url, None)
    if status == 200:
        return passed(f"readyz {name}", f"GET {url}: 200 ready")
    if status == 503:
        advice = f"the {name} service runs but is not ready: see its logs (broker connection?)"
        return failed(f"readyz {name}", f"GET {url}: 503 not ready", advice)
    if isinstance(status, str):
        advice = f"nothing answers here: start the {name} service, or fix [{name}] metrics_listen"
        return warned(f"readyz {name}", f"GET {url}: {status}", advice)
    return failed(f"readyz {name}", f"GET {url}: {status}", f"see the {name} service's logs")
