"""The audit API as the ``postline`` commands ask it (``trace``, ``queue``): where, with what token.

* ``client_of(args, command)`` gives an ``ApiClient`` for the arguments: the
  base URL is ``--api URL``, else ``http://`` + ``[audit] api_listen`` of the
  configuration (a wildcard address is reached on loopback); the token is
  ``--token``, else ``$POSTLINE_API_TOKEN``, else the first token in
  ``[audit] api_tokens_file`` (``name:token`` or ``token`` per line); none:
  no ``Authorization`` header. The configuration is read only when the
  arguments and the environment do not already say both. A setting that is
  missing or a tokens file that cannot be read is a ``UsageError`` (exit 2)
  whose message starts with ``command``.
* ``ApiClient.get(path, query)`` and ``ApiClient.post(path, body)`` send and
  receive JSON objects. Anything else (unreachable, an error status, not
  JSON, not an object) raises ``ApiError`` with one line fit for stderr that
  names the API's address; a ``401`` says a token is needed, other statuses
  carry the API's own ``error`` text.

Blocking ``urllib``: these are short command-line programs, not services.
"""

from __future__ import annotations

import argparse
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from postline.app.commands.common import UsageError

TIMEOUT = 30.0
WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}
Json = dict[str, Any]


class ApiError(Exception):
    """The API could not be asked, or answered with an error: exit 2 with this line."""


@dataclass(frozen=True)
class ApiClient:
    """One audit API: ``base`` (``http://host:port``) and the bearer ``token`` (or None)."""

    base: str
    token: str | None = None
    timeout: float = TIMEOUT

    def get(self, path: str, query: dict[str, str] | None = None) -> Json:
        """``GET {base}{path}?{query}`` as a JSON object; ``ApiError`` when that fails."""
        url = self._url(path) + (f"?{urllib.parse.urlencode(query)}" if query else "")
        return self._send(urllib.request.Request(url, method="GET"))

    def post(self, path: str, body: Json) -> Json:
        """``POST {base}{path}`` with ``body`` as JSON; the answer as a JSON object."""
        data = json.dumps(body).encode()
        request = urllib.request.Request(self._url(path), data=data, method="POST")
        request.add_header("Content-Type", "application/json")
        return self._send(request)

    def _url(self, path: str) -> str:
        return self.base.rstrip("/") + "/" + path.lstrip("/")

    def _send(self, request: urllib.request.Request) -> Json:
        request.add_header("Accept", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = response.read()
        except urllib.error.HTTPError as error:
            raise ApiError(http_error(self.base, error)) from None
        except (urllib.error.URLError, OSError) as error:
            why = getattr(error, "reason", error)
            raise ApiError(f"cannot reach the audit API at {self.base}: {why}") from None
        try:
            document = json.loads(body)
        except ValueError:
            raise ApiError(f"the audit API at {self.base} did not answer JSON") from None
        if not isinstance(document, dict):
            raise ApiError(f"the audit API at {self.base} answered an unexpected document")
        return document


def http_error(base: str, error: urllib.error.HTTPError) -> str:
    """One line for an error status: 401 asks for a token, others carry the API's ``error``."""
    if error.code == 401:
        return f"the audit API at {base} needs a valid token (--token or POSTLINE_API_TOKEN)"
    try:
        said = json.loads(error.read()).get("error")
    except (ValueError, AttributeError, OSError):
        said = None
    return f"the audit API at {base} answered {error.code}" + (f": {said}" if said else "")


def add_api_arguments(parser: argparse.ArgumentParser) -> None:
    """``--api URL`` and ``--token TOKEN``, as every API command spells them."""
    parser.add_argument("--api", metavar="URL", help="the audit API (default: [audit] api_listen)")
    parser.add_argument("--token", help="API token (default: $POSTLINE_API_TOKEN, tokens file)")


def client_of(args: argparse.Namespace, command: str) -> ApiClient:
    """The API and the token of the arguments, the environment and the config (docstring)."""
    token = args.token or os.environ.get("POSTLINE_API_TOKEN") or None
    if args.api and token:
        return ApiClient(args.api, token)
    from postline.app.settings import load_settings

    audit = load_settings(args.config).audit
    base = args.api
    if base is None:
        if audit.api_listen is None:
            raise UsageError(f"{command}: [audit] api_listen is not set; give --api URL")
        host = WILDCARDS.get(audit.api_listen.host, audit.api_listen.host)
        netloc = f"[{host}]" if ":" in host else host
        base = f"http://{netloc}:{audit.api_listen.port}"
    if token is None and audit.api_tokens_file is not None:
        try:
            token = first_token(Path(audit.api_tokens_file))
        except UsageError as error:
            raise UsageError(f"{command}: {error}") from None
    return ApiClient(base, token)


def first_token(path: Path) -> str | None:
    """The first token the API accepts in a tokens file (``name:token`` or ``token`` lines;
    blank lines, ``#`` comments and tokens too short for the API are skipped)."""
    from postline.audit.auth import MIN_TOKEN_LENGTH

    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise UsageError(f"cannot read [audit] api_tokens_file: {error}") from None
    for line in (raw.strip() for raw in lines):
        if not line or line.startswith("#"):
            continue
        name, colon, token = line.partition(":")
        token = (token if colon else name).strip()
        if len(token) >= MIN_TOKEN_LENGTH:
            return token
    return None
